"""CogACT parity with the official implementation: the same checkpoint and frames through both, stage by stage.

The official side runs ``tools/cogact_reference.py`` in the reference venv ``.venv-cogact`` (a subprocess; the
official code never enters this process): it builds the official CogACT with random weights at a
:class:`ParitySize`, saves it in the release layout, and records every stage of ``predict_action``. This
module loads that folder with :func:`load_policy`, runs the same stages, and compares them
(:data:`STAGE_TOLERANCES`). Used by ``test/parity/test_cogact_parity.py`` (CI size) and ``spvla-bench parity``
(full vision towers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from spvla_ros.core.policy import CogACTPolicy, PolicyConfig, PolicyPreset, load_policy
from spvla_ros.core.policy.normalization import unnormalize_actions
from spvla_ros.core.policy.presets import COGACT_BASE

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SCRIPT = REPO_ROOT / "tools" / "cogact_reference.py"
REFERENCE_VENV = REPO_ROOT / ".venv-cogact"
DEFAULT_SHARED = Path(os.environ.get("SPVLA_SHARED", REPO_ROOT.parent / "shared"))
PARITY_IMAGE = "data/real_images/bridge_stack_cube_1st_frame.png"
"""A real 640x480 BridgeData frame (shared/); its centre 224x224 crop is the 224 px input."""
BRIDGE_DATA = "data/bridge_debug_25ep.npz"
"""Real Bridge actions: their 1st/99th percentiles are the parity checkpoint's ``bridge_orig`` statistics."""
UNNORM_KEY = "bridge_orig"
INSTRUCTION = "put the red cube on the green cube"
SEED = 0
PROMPT_INSTRUCTIONS = (
    "pick coke can",
    "Put the spoon on the towel",
    "open the top drawer ",
    "  move the 7up can near the apple",
    "put carrot on plate.",
    "stack the green block on the yellow block\n",
    "Place The Eggplant In The Basket",
)
"""Instructions whose official prompt ids are recorded (capitals, stray whitespace, punctuation, digits)."""
GRIPPER = 6


@dataclass(frozen=True)
class ParitySize:
    """How big the random-weight model of a parity run is (the code path is the full one at every size).

    Args:
        vision_depth: blocks per vision tower (timm ``depth=``; >= 2 so a second-to-last block exists); None =
            the full towers (24 DINOv2, 27 SigLIP blocks).
        llm_layers: Llama decoder layers (hidden size stays 4096, 32 heads: ``predict_action`` asserts 4096).
        llm_mlp: Llama MLP width (Llama-2 7B: 11008).
        dit: action head size, ``DiT-S`` | ``DiT-B`` (CogACT-Base) | ``DiT-L``.
    """

    vision_depth: int | None
    llm_layers: int
    llm_mlp: int
    dit: str

    def preset(self) -> PolicyPreset:
        """spvla's preset of the same architecture (``cogact-base`` with these sizes)."""
        base = COGACT_BASE
        dino = replace(base.dino, num_layers=self.vision_depth or base.dino.num_layers)
        siglip = replace(base.siglip, num_layers=self.vision_depth or base.siglip.num_layers)
        llm = replace(base.llm, num_layers=self.llm_layers, intermediate_size=self.llm_mlp)
        name = f"cogact-parity-v{self.vision_depth or 'full'}-l{self.llm_layers}-{self.dit}"
        return replace(base, name=name, dino=dino, siglip=siglip, llm=llm, action_model_type=self.dit)

    def reference_args(self) -> list[str]:
        depth = [] if self.vision_depth is None else ["--vision-depth", str(self.vision_depth)]
        return [*depth, "--llm-layers", str(self.llm_layers), "--llm-mlp", str(self.llm_mlp), "--dit", self.dit]


CI_SIZE = ParitySize(vision_depth=3, llm_layers=1, llm_mlp=1024, dit="DiT-S")
"""The suite's size: ~0.5 B parameters (the 32064 x 4096 embedding and LM head are most of it), a 2 GB file."""
FULL_SIZE = ParitySize(vision_depth=None, llm_layers=2, llm_mlp=11008, dit="DiT-B")
"""``spvla-bench parity``'s default: full towers, two real-shape Llama-2 7B layers, CogACT-Base's DiT-B."""


@dataclass(frozen=True)
class Tolerance:
    """``exact``: arrays must be equal; else ``max|ours - official| <= rel * max|official|``."""

    rel: float = 0.0
    exact: bool = False

    def describe(self) -> str:
        return "exact" if self.exact else f"rel <= {self.rel:g}"


STAGE_TOLERANCES: dict[str, Tolerance] = {
    "input_ids": Tolerance(exact=True),
    "pixel_dino": Tolerance(rel=1e-6),
    "pixel_siglip": Tolerance(rel=1e-6),
    "vision_dino": Tolerance(rel=1e-4),
    "vision_siglip": Tolerance(rel=1e-4),
    "projector_in": Tolerance(rel=1e-4),
    "projector": Tolerance(rel=1e-4),
    "llm_inputs_embeds": Tolerance(rel=1e-4),
    "cognition": Tolerance(rel=1e-4),
    "noise": Tolerance(exact=True),
    "eps_t": Tolerance(exact=True),
    "eps": Tolerance(rel=1e-4),
    "ddim": Tolerance(rel=1e-4),
    "actions": Tolerance(rel=1e-4),
    "gripper": Tolerance(exact=True),
}
"""Per stage, in pipeline order. Float32 on both sides; the floating stages differ only by round-off (timm vs
transformers kernels, fused vs split q/k/v, transformers 4.40 vs 5): measured ~1e-6 relative (see
docs/benchmarks.md), so 1e-4 fails on any real mapping error (the old prompt bug moved the cognition feature by
7 %). Pixel values are the same float32 arithmetic on the same bytes. ``actions`` (the six un-normalised
continuous dims, dataset units) / ``gripper`` (0/1): the official un-normalisation of the (scaled, see
tools/cogact_reference.py) DDIM output vs ours."""


@dataclass(frozen=True)
class StageResult:
    """One compared stage of one frame."""

    frame: str
    stage: str
    max_abs: float
    max_ref: float
    tolerance: Tolerance
    shape: tuple[int, ...]

    @property
    def rel(self) -> float:
        return self.max_abs / self.max_ref if self.max_ref > 0 else self.max_abs

    @property
    def ok(self) -> bool:
        return self.max_abs == 0.0 if self.tolerance.exact else self.rel <= self.tolerance.rel


class ReferenceUnavailableError(RuntimeError):
    """The official side cannot run here (no ../shared/third_party, no reference venv); the message says why."""


def reference_python() -> Path:
    """The reference venv's interpreter; :class:`ReferenceUnavailableError` naming how to build it if absent."""
    python = REFERENCE_VENV / "bin" / "python"
    if not (REFERENCE_VENV / ".deps").is_file() or not python.is_file():
        log = REPO_ROOT / "build" / "cogact-ref-setup.log"
        hint = f"; its last build failed, see {log}" if log.is_file() else ""
        raise ReferenceUnavailableError(f"the CogACT reference venv {REFERENCE_VENV} is not built (make setup){hint}")
    return python


def shared_inputs(shared: Path) -> tuple[Path, Path, Path, Path]:
    """(third_party, tokenizer dir, parity image, bridge data) under ``shared``, or ReferenceUnavailableError."""
    paths = (shared / "third_party", shared / "models" / "llama2-tokenizer", shared / PARITY_IMAGE,
             shared / BRIDGE_DATA)
    for p in paths:
        if not p.exists():
            raise ReferenceUnavailableError(f"needs shared/{p.relative_to(shared)} (not found at {p})")
    return paths


def parity_frames(image_path: Path) -> dict[str, np.ndarray]:
    """``{"224": centre 224x224 crop, "640x480": the frame}`` as uint8 RGB (a real camera frame)."""
    from PIL import Image

    frame = np.asarray(Image.open(image_path).convert("RGB"))
    h, w = frame.shape[:2]
    top, left = (h - 224) // 2, (w - 224) // 2
    return {"224": np.ascontiguousarray(frame[top:top + 224, left:left + 224]), f"{w}x{h}": frame}


def bridge_statistics(bridge_npz: Path) -> dict:
    """``dataset_statistics.json`` content with ``bridge_orig`` q01/q99 of real Bridge actions (gripper unmasked)."""
    actions = np.load(bridge_npz)["actions"].astype(np.float64)
    mask = [True] * (actions.shape[1] - 1) + [False]
    q01, q99 = np.quantile(actions, 0.01, axis=0), np.quantile(actions, 0.99, axis=0)
    return {UNNORM_KEY: {"action": {"q01": q01.tolist(), "q99": q99.tolist(), "mask": mask}}}


@dataclass(frozen=True)
class ReferenceRun:
    """What the official side wrote: the release folder, stage arrays, prompt ids, meta."""

    run_dir: Path
    stages: dict[str, np.ndarray]
    prompt_ids: dict[str, list[int]]
    meta: dict

    def frame(self, name: str) -> dict[str, np.ndarray]:
        prefix = f"{name}."
        return {k.removeprefix(prefix): v for k, v in self.stages.items() if k.startswith(prefix)}


def run_reference(
    size: ParitySize,
    work_dir: Path,
    shared: Path = DEFAULT_SHARED,
    frames: dict[str, np.ndarray] | None = None,
    on_line: Callable[[str], None] | None = None,
    timeout_s: float | None = None,
    reload: bool = False,
) -> ReferenceRun:
    """Build and run the official model at ``size`` in the reference venv; raises ReferenceUnavailableError or
    RuntimeError (with the subprocess's last output) when it cannot.

    ``on_line`` sees every output line (see :func:`parse_progress`); ``reload`` also reloads the saved folder
    with the official ``load_vla`` before running it (a second build: slower, proves the layout)."""
    python = reference_python()
    third_party, tokenizer, image, bridge = shared_inputs(shared)
    work_dir.mkdir(parents=True, exist_ok=True)
    frames = frames if frames is not None else parity_frames(image)
    inputs = work_dir / "inputs.npz"
    np.savez(inputs, **{f"frame.{k}": v for k, v in frames.items()},
             dataset_statistics=np.array(json.dumps(bridge_statistics(bridge))))
    out = work_dir / "reference" / "stages.npz"
    cmd = [str(python), str(REFERENCE_SCRIPT), "build-run", "--third-party", str(third_party),
           "--tokenizer", str(tokenizer), "--inputs", str(inputs), "--run-dir", str(work_dir / "run"),
           "--out", str(out), "--instruction", INSTRUCTION, "--unnorm-key", UNNORM_KEY, "--seed", str(SEED),
           *size.reference_args(), *(a for text in PROMPT_INSTRUCTIONS for a in ("--prompt-instruction", text)),
           *(["--reload"] if reload else [])]
    lines = _run_streaming(cmd, on_line, timeout_s)
    if not out.is_file():
        raise RuntimeError("the official reference run failed:\n" + "\n".join(lines[-30:]))
    meta = json.loads((out.parent / "meta.json").read_text())
    with np.load(out) as data:
        stages = {k: data[k] for k in data.files}
    prompt_ids = json.loads((out.parent / "prompt_ids.json").read_text())
    return ReferenceRun(Path(meta["checkpoint"]).parents[1], stages, prompt_ids, meta)


def parse_progress(line: str) -> tuple[int, int, str] | None:
    """``(done, total, what)`` of a reference ``PROGRESS <done>/<total> <what>`` line, else None."""
    parts = line.split(maxsplit=2)
    if len(parts) < 2 or parts[0] != "PROGRESS" or "/" not in parts[1]:
        return None
    done, _, total = parts[1].partition("/")
    if not (done.isdigit() and total.isdigit()):
        return None
    return int(done), int(total), parts[2] if len(parts) > 2 else ""


def _clean_env() -> dict[str, str]:
    """This environment minus what belongs to the product's venv (ROS bootstrap re-exec guard, paths)."""
    drop = {"PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run_streaming(cmd: list[str], on_line: Callable[[str], None] | None, timeout_s: float | None) -> list[str]:
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env(),
                          cwd=REPO_ROOT) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line.rstrip())
                if on_line is not None:
                    on_line(line.rstrip())
            proc.wait(timeout=timeout_s)
        except BaseException:
            proc.kill()
            raise
    return lines


def load_parity_policy(run: ReferenceRun, size: ParitySize, shared: Path = DEFAULT_SHARED,
                       dtype: torch.dtype | None = None, config: PolicyConfig | None = None) -> CogACTPolicy:
    """spvla's policy on the official release folder (strict load; real Llama-2 tokenizer from shared/)."""
    return load_policy(size.preset(), checkpoint=run.run_dir, device="cpu", unnorm_key=UNNORM_KEY, seed=SEED,
                       tokenizer_dir=shared / "models" / "llama2-tokenizer", dtype=dtype,
                       config=config or PolicyConfig())


class _Capture:
    """Records every stage of one ``predict_chunk`` call: wrappers on the vision backbone's stage methods and the
    DiT's ``forward_with_cfg`` (instance attributes, removed on exit), hooks on the projector and the decoder.
    Nothing is changed: each wrapper returns what it was given."""

    _VISION_METHODS = ("pixel_values", "dino_penultimate", "siglip_penultimate", "fused_patches")

    def __init__(self, policy: CogACTPolicy) -> None:
        self.policy = policy
        self.values: dict[str, list] = {}
        self._handles: list = []
        self._wrapped: list[tuple[object, str]] = []

    def _add(self, key: str, value: object) -> None:
        self.values.setdefault(key, []).append(value)

    def _wrap(self, owner: object, name: str, record: Callable) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            out = original(*args, **kwargs)
            record(args, out)
            return out

        setattr(owner, name, wrapper)
        self._wrapped.append((owner, name))

    def __enter__(self) -> _Capture:
        model = self.policy.model
        vb = model.vision_backbone
        for name in self._VISION_METHODS:
            self._wrap(vb, name, lambda args, out, name=name: self._add(name, out))
        self._wrap(model.action_model.net, "forward_with_cfg",
                   lambda args, out: (self._add("eps_x", _np(args[0][0])), self._add("eps_t", _np(args[1][0])),
                                      self._add("eps", _np(out[0]))))
        decoder = model.llm_backbone.llm.model
        self._handles += [
            model.projector.register_forward_hook(lambda m, args, out: self._add("projector", out)),
            decoder.register_forward_pre_hook(self._on_llm_in, with_kwargs=True),
            decoder.register_forward_hook(lambda m, args, out: self._add("cognition", out.last_hidden_state[:, -1])),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        for owner, name in self._wrapped:
            delattr(owner, name)  # back to the class's method

    def _on_llm_in(self, module, args, kwargs) -> None:
        self._add("llm_inputs_embeds", kwargs["inputs_embeds"])
        self._add("position_ids", kwargs.get("position_ids"))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


@torch.inference_mode()
def spvla_stages(policy: CogACTPolicy, frame: np.ndarray, instruction: str, scale: float,
                 keep_ratio: float = 1.0) -> dict[str, np.ndarray]:
    """spvla's value of every stage the reference records (see tools/cogact_reference.py), all recorded from one
    ``predict_chunk`` call after ``reset()`` (so its noise is the seeded draw); ``actions`` un-normalises
    ``scale`` x its DDIM output. Extra keys: ``kept_indices``, ``position_ids`` (None unless pruning's
    ``preserve`` mode set them), ``chunk_actions`` (what ``predict_chunk`` returned)."""
    policy.reset()
    with _Capture(policy) as cap:
        out = policy.predict_chunk(frame, instruction, keep_ratio=keep_ratio)
    v = cap.values
    dino_px, siglip_px = v["pixel_values"][0]
    ddim = out.normalized_actions
    actions = unnormalize_actions(scale * ddim, policy.statistics, policy.config.gripper_threshold)
    prefix = policy.model.vision_backbone.num_dino_prefix_tokens
    return {
        "input_ids": np.asarray([policy.tokenizer.prompt_ids(instruction)], dtype=np.float32),
        "pixel_dino": _np(dino_px),
        "pixel_siglip": _np(siglip_px),
        "vision_dino": _np(v["dino_penultimate"][0][:, prefix:]),
        "vision_siglip": _np(v["siglip_penultimate"][0]),
        "projector_in": _np(v["fused_patches"][0]),
        "projector": _np(v["projector"][0]),
        "llm_inputs_embeds": _np(v["llm_inputs_embeds"][0]),
        "cognition": _np(v["cognition"][0]),
        "noise": v["eps_x"][0],
        "eps_t": np.asarray(v["eps_t"], dtype=np.float32),
        "eps": np.stack(v["eps"]),
        "ddim": ddim,
        "actions": actions[:, :GRIPPER],
        "gripper": actions[:, GRIPPER],
        "kept_indices": out.kept_indices,
        "position_ids": v["position_ids"][0],
        "chunk_actions": out.actions,
    }


def compare_frame(name: str, ours: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                  stages: Iterable[str] = STAGE_TOLERANCES) -> list[StageResult]:
    """Stage results in pipeline order; a shape mismatch is a failed stage (max_abs = inf)."""
    reference = dict(reference, actions=reference["actions"][:, :GRIPPER], gripper=reference["actions"][:, GRIPPER])
    results = []
    for stage in stages:
        a, b = np.asarray(ours[stage], dtype=np.float64), np.asarray(reference[stage], dtype=np.float64)
        b = b.reshape(a.shape) if a.size == b.size and stage in ("eps_t", "noise") else b
        same = a.shape == b.shape
        max_abs = (float(np.max(np.abs(a - b))) if a.size else 0.0) if same else float("inf")
        results.append(StageResult(name, stage, max_abs, float(np.max(np.abs(b))) if b.size else 0.0,
                                   STAGE_TOLERANCES[stage], tuple(b.shape)))
    return results


def results_table(results: Iterable[StageResult], judged: bool = True) -> tuple[list[str], list[list[object]]]:
    """Headers and rows for :func:`spvla_ros.bench.report_io.format_table` (without tolerance columns when the
    results are only reported, e.g. bf16 against fp32)."""
    results = list(results)
    headers = ["frame", "stage", "shape", "max_abs", "max|official|", "rel"]
    rows = [[r.frame, r.stage, "x".join(map(str, r.shape)), r.max_abs, r.max_ref, r.rel] for r in results]
    if judged:
        headers += ["tolerance", "ok"]
        rows = [[*row, r.tolerance.describe(), "yes" if r.ok else "NO"] for row, r in zip(rows, results, strict=True)]
    return headers, rows


def python_info() -> str:
    return f"{sys.version.split()[0]}, torch {torch.__version__}"
