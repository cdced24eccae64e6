"""``spvla-bench policy``: CogACT latency per stage, analytic FLOPs and peak memory per keep ratio.

Examples::

    spvla-bench policy --preset tiny --device cpu --json bench-policy-tiny.json
    spvla-bench policy --preset cogact-base --device cuda --keep 1.0,0.75,0.5,0.35 --json bench-policy-base.json
    spvla-bench policy --preset cogact-base --flops-only      # no weights instantiated (meta device)

Latency is the median of ``--steps`` calls after ``--warmup`` calls, per keep ratio, on random-init weights
unless ``--checkpoint`` is given (speed does not depend on weight values).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys

import cv2
import numpy as np
import torch

from spvla_ros.bench.report_io import format_table, machine_info, write_json
from spvla_ros.core.policy import STAGES, get_preset, load_policy, load_policy_config
from spvla_ros.core.policy.flops import policy_flops
from spvla_ros.core.policy.model import CogACTModel
from spvla_ros.core.policy.presets import IMAGE_SIZE_PX
from spvla_ros.core.policy.prompt import WordHashTokenizer

HELP = "CogACT policy: latency per stage, analytic FLOPs and peak memory per token keep ratio"
DEFAULT_KEEP = "1.0,0.75,0.5,0.35"
DEFAULT_INSTRUCTION = "put the carrot on the plate"
BYTES_PER_MB = 1024.0 * 1024.0
KB_PER_MB = 1024.0
FP32_BYTES = 4
CPU_MEMORY_HEADROOM = 0.8
"""Refuse a CPU run whose fp32 weights need more than this fraction of physical memory."""
SCENE_SEED = 7
SCENE_SHAPES = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny", help="architecture preset: tiny | cogact-base")
    parser.add_argument("--device", default="cpu", help="cpu (fp32) | cuda[:N] (bf16)")
    parser.add_argument("--keep", default=DEFAULT_KEEP, help="comma-separated keep ratios in (0, 1]")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--steps", type=int, default=10, help="timed calls per keep ratio (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per keep ratio before timing")
    parser.add_argument("--checkpoint", default=None, help="local checkpoint directory (default: random init)")
    parser.add_argument("--unnorm-key", default=None, help="dataset key for un-normalization")
    parser.add_argument("--image", default=None, help="RGB image file (default: a synthetic tabletop scene)")
    parser.add_argument("--instruction", default=DEFAULT_INSTRUCTION, help="task instruction")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--flops-only", action="store_true", help="analytic FLOPs only; instantiate no weights")


def parse_keep(text: str) -> list[float]:
    """``"1.0,0.5"`` -> [1.0, 0.5]; ValueError for anything outside (0, 1]."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--keep must be comma-separated numbers, got {text!r}") from None
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise ValueError(f"--keep values must be in (0, 1], got {text!r}")
    return values


def synthetic_scene(size: int = IMAGE_SIZE_PX) -> np.ndarray:
    """A deterministic tabletop-like RGB image (gradient + filled shapes) with real edges for Canny."""
    rng = np.random.default_rng(SCENE_SEED)
    ramp = np.linspace(60, 180, size, dtype=np.float32)
    img = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1).astype(np.uint8)
    for _ in range(SCENE_SHAPES):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(10, size - 40, 2))
        w, h = (int(v) for v in rng.integers(12, 40, 2))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + w, y + h), color, thickness=-1)
        else:
            cv2.circle(img, (x + w // 2, y + h // 2), min(w, h) // 2, color, thickness=-1)
    return img


def key(k: float) -> str:
    return str(float(k))


def count_params(preset_name: str) -> int:
    """Parameters of a preset, counted on the meta device (no memory)."""
    with torch.device("meta"):
        model = CogACTModel(get_preset(preset_name))
    return sum(p.numel() for p in model.parameters())


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / BYTES_PER_MB, "cuda_max_memory_allocated"
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return rss_kb / KB_PER_MB, "process_max_rss"


def run(args: argparse.Namespace) -> int:
    keeps = parse_keep(args.keep)
    preset = get_preset(args.preset)
    cfg = load_policy_config()
    if args.threads:
        torch.set_num_threads(args.threads)
    text_tokens = len(WordHashTokenizer(preset.llm.vocab_size).prompt_ids(args.instruction))
    params = count_params(args.preset)
    payload: dict = {
        "preset": preset.name,
        "device": args.device,
        "params": params,
        "keep_ratios": keeps,
        "num_text_tokens": text_tokens,
        "machine": machine_info(),
        "flops": {},
        "flops_ratio": {},
        "num_vision_tokens": {},
    }
    if not args.flops_only and args.device == "cpu" and params * FP32_BYTES > CPU_MEMORY_HEADROOM * _physical_bytes():
        print(
            f"{preset.name}: {params * FP32_BYTES / 1e9:.1f} GB of fp32 weights do not fit this machine's memory; "
            "use --device cuda or --flops-only",
            file=sys.stderr,
        )
        return 2

    policy = None
    if not args.flops_only:
        policy = load_policy(args.preset, args.checkpoint, args.device, args.unnorm_key, seed=0)
        text_tokens = len(policy.tokenizer.prompt_ids(args.instruction))
        payload["num_text_tokens"] = text_tokens
        payload["dtype"] = str(policy.dtype).replace("torch.", "")
        payload.update(steps=args.steps, warmup=args.warmup, latency_s={}, stage_ms={}, peak_memory_mb={})
        image = cv2.cvtColor(cv2.imread(args.image), cv2.COLOR_BGR2RGB) if args.image else synthetic_scene()

    base_total = None
    for k in keeps:
        if policy is not None:
            if policy.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(policy.device)
            for _ in range(args.warmup):
                policy.predict_chunk(image, args.instruction, k)
            outs = [policy.predict_chunk(image, args.instruction, k) for _ in range(max(1, args.steps))]
            tokens = outs[-1].num_vision_tokens
            payload["latency_s"][key(k)] = statistics.median(o.latency_s for o in outs)
            payload["stage_ms"][key(k)] = {s: statistics.median(o.stage_ms[s] for o in outs) for s in STAGES}
            payload["peak_memory_mb"][key(k)], payload["peak_memory_kind"] = peak_memory_mb(policy.device)
        else:
            from spvla_ros.core.pruning import token_budget

            tokens = token_budget(k, preset.num_patches)
        flops = policy_flops(preset, tokens, text_tokens, cfg.cfg_scale, cfg.ddim_steps, pruned=k < 1.0)
        payload["flops"][key(k)] = flops
        payload["num_vision_tokens"][key(k)] = tokens
        base_total = base_total or policy_flops(preset, preset.num_patches, text_tokens, cfg.cfg_scale,
                                                cfg.ddim_steps, pruned=False)["total"]
        payload["flops_ratio"][key(k)] = flops["total"] / base_total

    print(_table(payload, keeps))
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    return 0


def _physical_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _table(p: dict, keeps: list[float]) -> str:
    timed = "latency_s" in p
    headers = ["keep", "tokens", "GFLOPs", "flops_ratio"]
    if timed:
        headers += ["latency_ms", "speedup", *(f"{s}_ms" for s in STAGES), "peak_MB"]
    rows = []
    for k in keeps:
        kk = key(k)
        row = [k, p["num_vision_tokens"][kk], p["flops"][kk]["total"] / 1e9, p["flops_ratio"][kk]]
        if timed:
            lat = p["latency_s"][kk]
            base = p["latency_s"][key(keeps[0])]
            row += [lat * 1e3, base / lat, *(p["stage_ms"][kk][s] for s in STAGES), p["peak_memory_mb"][kk]]
        rows.append(row)
    title = f"policy {p['preset']} on {p['device']} ({p.get('dtype', 'flops only')}), {p['params'] / 1e6:.1f} M params"
    return title + "\n" + format_table(headers, rows)
