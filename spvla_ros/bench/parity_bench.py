"""``spvla-bench parity``: spvla's CogACT against the official implementation at full size, stage by stage.

Example::

    spvla-bench parity --json docs/parity/full_size.json     # full towers, 2 Llama-2 7B layers, DiT-B

The official CogACT (../shared/third_party, run in its own venv ``.venv-cogact`` by tools/cogact_reference.py)
is built with random weights (full DINOv2 ViT-L/14-reg4 and SigLIP so400m/14 towers, ``--llm-layers`` real-shape
Llama-2 7B layers at hidden size 4096, DiT-B), saved in the release layout, reloaded with the official
``load_vla`` and run on a real 640x480 frame and its 224x224 crop; spvla loads the same folder with
``load_policy`` and runs the same frames, in fp32 (compared against :data:`STAGE_TOLERANCES`) and in bf16 (the
GPU path's precision, on CPU; its error is reported, not judged). Prints a per-stage max-abs / relative table,
writes the figures as JSON. Needs ../shared and ``make setup`` (the reference venv); about 6 GB of RAM per side
at the default size (they run one after the other), a 6 GB checkpoint under ``--work-dir`` (removed afterwards
unless ``--keep-checkpoint``).
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from spvla_ros.bench import cogact_parity as cp
from spvla_ros.bench.report_io import format_table, machine_info, write_json

HELP = "CogACT vs the official implementation: per-stage max-abs/relative error at full size (fp32 and bf16)"
KB_PER_GB = 1024.0 * 1024.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    full = cp.FULL_SIZE
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--work-dir", default="build/parity-bench", help="checkpoint and reference outputs")
    parser.add_argument("--shared", default=str(cp.DEFAULT_SHARED), help="the shared/ folder (third_party, data)")
    parser.add_argument("--vision-depth", type=int, default=full.vision_depth,
                        help="blocks per vision tower (default: the full 24 / 27)")
    parser.add_argument("--llm-layers", type=int, default=full.llm_layers,
                        help="Llama layers at hidden size 4096 (~0.8 GB each in fp32, per side)")
    parser.add_argument("--llm-mlp", type=int, default=full.llm_mlp, help="Llama MLP width (Llama-2 7B: 11008)")
    parser.add_argument("--dit", default=full.dit, choices=("DiT-S", "DiT-B", "DiT-L"), help="action head")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 run of spvla's side")
    parser.add_argument("--no-reload", action="store_true",
                        help="run the official model it built instead of reloading the folder with load_vla")
    parser.add_argument("--keep-checkpoint", action="store_true", help="keep the release folder's .pt file")


def run(args: argparse.Namespace) -> int:
    size = cp.ParitySize(args.vision_depth, args.llm_layers, args.llm_mlp, args.dit)
    shared, work = Path(args.shared), Path(args.work_dir)
    try:
        cp.reference_python()
        image = cp.shared_inputs(shared)[2]
    except cp.ReferenceUnavailableError as exc:
        print(f"spvla-bench parity: {exc}", file=sys.stderr)
        return 2
    frames = cp.parity_frames(image)
    dtypes = [torch.float32] + ([] if args.no_bf16 else [torch.bfloat16])
    reference_steps = 3 + (0 if args.no_reload else 1) + len(frames) + 1
    t0 = time.perf_counter()
    with tqdm(total=reference_steps + len(dtypes) * (1 + len(frames)), unit="step", file=sys.stderr) as bar:
        def on_line(line: str) -> None:
            progress = cp.parse_progress(line)
            if progress is not None:
                bar.n = progress[0]
                bar.set_description(f"official: {progress[2]}")
                bar.refresh()

        reference = cp.run_reference(size, work, shared, frames, on_line, reload=not args.no_reload)
        bar.n = reference_steps
        sides = {}
        for dtype in dtypes:
            label = str(dtype).removeprefix("torch.")
            bar.set_description(f"spvla {label}: load_policy")
            policy = cp.load_parity_policy(reference, size, shared, dtype=dtype)
            bar.update()
            results = []
            for name, frame in frames.items():
                bar.set_description(f"spvla {label}: predict_chunk {name}")
                ours = cp.spvla_stages(policy, frame, cp.INSTRUCTION, float(reference.frame(name)["scale"]))
                results += cp.compare_frame(name, ours, reference.frame(name))
                bar.update()
            sides[label] = results
            del policy
            gc.collect()
    elapsed_s = time.perf_counter() - t0
    if not args.keep_checkpoint:
        shutil.rmtree(reference.run_dir / "checkpoints", ignore_errors=True)

    for label, results in sides.items():
        judged = "" if label == "float32" else " (reported, not judged: tolerances are for fp32)"
        print(f"\nspvla {label} vs official float32{judged}")
        print(format_table(*cp.results_table(results, judged=label == "float32")))
    failed = [r for r in sides["float32"] if not r.ok]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KB_PER_GB
    child_peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / KB_PER_GB
    print(f"\nfloat32: {len(sides['float32']) - len(failed)}/{len(sides['float32'])} stages within tolerance; "
          f"{elapsed_s:.0f} s; peak RSS spvla {peak_gb:.1f} GB, official {child_peak_gb:.1f} GB "
          "(both include the mmap'd checkpoint pages)")
    if args.json:
        write_json(args.json, {
            "machine": machine_info(),
            "python": cp.python_info(),
            "size": {"vision_depth": size.vision_depth, "llm_layers": size.llm_layers, "llm_mlp": size.llm_mlp,
                     "dit": size.dit, "parameters": reference.meta["parameters"],
                     "reloaded_with_load_vla": reference.meta["reloaded_with_load_vla"]},
            "frames": {name: list(frame.shape) for name, frame in frames.items()},
            "instruction": cp.INSTRUCTION,
            "tolerances": {k: t.describe() for k, t in cp.STAGE_TOLERANCES.items()},
            "elapsed_s": elapsed_s,
            "official_times_s": reference.meta["times_s"],
            "peak_rss_gb": {"spvla": peak_gb, "official": child_peak_gb},
            "stages": {label: [{"frame": r.frame, "stage": r.stage, "shape": list(r.shape), "max_abs": r.max_abs,
                                "max_official": r.max_ref, "rel": r.rel,
                                **({"ok": r.ok} if label == "float32" else {})} for r in results]
                       for label, results in sides.items()},
        })
    return 1 if failed else 0
