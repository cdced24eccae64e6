"""SP-VLA token pruning on real images and real DINOv2 attention: cost, coverage, fidelity, overlays.

Every image is read as RGB and resized (squashed) to 224x224 with ``cv2.INTER_AREA``; the very same uint8
image feeds Canny and, ImageNet-normalized, the DINOv2 encoder (SDPA kernels). Per image:

- ``encoder_ms_plain`` / ``encoder_ms_with_attention``: one batch-1 forward without / with the last-layer
  attention capture (hooks + the softmax recompute of that layer), alternated in the same loop after
  warm-up; the figure is the median over all images and repeats.
  ``attention_overhead_fraction`` is the median of (with / plain) over same-round pairs minus 1, and
  ``attention_recompute_ms`` the median time of the last layer's softmax(QK^T) alone (the added math).
- ``selection_ms``: Canny patches + AccuAttn scoring + union/budget at the floor keep ratio, median.
- ``spatial_fraction`` / ``semantic_fraction`` / ``overlap_fraction``: patches that are spatial, semantic,
  both (before the budget), as fractions of the 256 patches, mean over images.
- per swept speed: the keep ratio and ``mean_keep_ratio`` (kept patches / 256, mean over images).
- ``feature_fidelity`` per keep ratio: cosine similarity between the mean of the kept patch features
  (last_hidden_state) and the mean of all patch features, for the method and for the same number of
  uniformly random patches (mean over ``--random-draws`` draws), mean over images.

Example::

    spvla-bench pruning --images ../shared/data/real_images --model ../shared/models/dinov2-vits14 \\
        --json pruning.json --figures figs/
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch

from spvla_ros.bench.report_io import format_table, machine_info, write_json
from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.pruning import (
    LastLayerAttention,
    PruningConfig,
    accumulated_attention,
    canny_patch_mask,
    keep_ratio_for_speed,
    select_tokens,
    semantic_mask,
)

HELP = "token pruning on real images + DINOv2: attention cost, selection time, coverage, fidelity, overlays"
IMAGE_SIZE = 224
IMAGE_MEAN = np.array([0.485, 0.456, 0.406])  # ImageNet (DINOv2 preprocessing)
IMAGE_STD = np.array([0.229, 0.224, 0.225])
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FIDELITY_KEEP_RATIOS = (0.9, 0.75, 0.5, 0.25)
SPEED_SWEEP_FRACTIONS = (0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0)
"""Swept speeds as multiples of v_pmin (0 .. 3 v_pmin: below, on and above the ramp for the defaults)."""
SELECTION_REPEATS = 20
ATTENTION_OVERHEAD_TARGET = 0.10  # encoder_ms_with_attention within 10% of encoder_ms_plain
SELECTION_MS_TARGET = 2.0
# overlay colours (RGB 0..1) and opacities
COLOUR_SEMANTIC = (1.0, 0.55, 0.0)  # orange
COLOUR_SPATIAL = (0.0, 0.75, 1.0)  # sky blue
COLOUR_BOTH = (0.85, 0.0, 0.85)  # magenta
COLOUR_FILL = (1.0, 1.0, 1.0)  # kept only to fill the budget
FILL_ALPHA = 0.4
DROPPED_ALPHA = 0.75
FIGURE_DPI = 110


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, help="folder of RGB images (png/jpg)")
    parser.add_argument("--model", required=True, help="local transformers Dinov2Model folder (no hub access)")
    parser.add_argument("--config", default=str(CONFIG_DIR / "pruning.yaml"), help="pruning YAML defaults")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--figures", default=None, help="write one overlay PNG per image into this folder")
    parser.add_argument("--max-figures", type=int, default=None, help="overlays for the first N images only")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per image and variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forwards per image and variant")
    parser.add_argument("--random-draws", type=int, default=100, help="random subsets per image and keep ratio")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")


def load_rgb_224(path: Path) -> np.ndarray:
    """(224, 224, 3) uint8 RGB: the image as the encoder (and Canny) see it."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


def to_pixel_values(rgb: np.ndarray) -> torch.Tensor:
    """(1, 3, 224, 224) float32, ImageNet-normalized."""
    x = (rgb.astype(np.float64) / 255.0 - IMAGE_MEAN) / IMAGE_STD
    return torch.from_numpy(x.astype(np.float32).transpose(2, 0, 1)[None])


def timed_forwards(model: torch.nn.Module, x: torch.Tensor, repeats: int, warmup: int) -> dict:
    """Alternate plain and attention-capturing forwards in one loop (order flipped every round).

    Returns lists of ms under ``plain``, ``attn`` (forward with hooks + reading the attention) and
    ``recompute`` (reading the attention alone: the softmax(QK^T) of the last layer), plus the last outputs.
    """
    times: dict = {"plain": [], "attn": [], "recompute": []}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for variant in ("plain", "attn") if i % 2 == 0 else ("attn", "plain"):  # cancel drift
                t0 = time.perf_counter()
                if variant == "plain":
                    hidden = model(pixel_values=x).last_hidden_state
                else:
                    with LastLayerAttention(model) as capture:
                        model(pixel_values=x)
                    t1 = time.perf_counter()
                    attention = capture.attention
                t2 = time.perf_counter()
                if i >= warmup:
                    times[variant].append((t2 - t0) * 1e3)
                    if variant == "attn":
                        times["recompute"].append((t2 - t1) * 1e3)
    return times | {"hidden": hidden, "attention": attention, "prefix": capture.num_prefix_tokens}


def selection_time_ms(rgb: np.ndarray, attention: torch.Tensor, prefix: int, cfg: PruningConfig) -> float:
    """Median time of Canny + AccuAttn + selection at the floor keep ratio (the most pruning), ms."""
    times = []
    for _ in range(SELECTION_REPEATS):
        t0 = time.perf_counter()
        spatial = canny_patch_mask(rgb, cfg.patch_size, cfg.canny_low, cfg.canny_high, cfg.min_edge_pixels)
        scores = accumulated_attention(attention, prefix)
        select_tokens(scores, spatial.ravel(), cfg.min_keep_ratio, cfg)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def fidelity(features: np.ndarray, keep: np.ndarray, rng: np.random.Generator, draws: int) -> tuple[float, float]:
    """(method, random) cosine similarity of mean-pooled kept vs all patch features."""
    full = features.mean(axis=0)
    method = cosine(features[keep].mean(axis=0), full)
    count = features.shape[0]
    randoms = [cosine(features[rng.choice(count, keep.size, replace=False)].mean(axis=0), full) for _ in range(draws)]
    return method, float(np.mean(randoms))


def write_overlay(
    path: Path,
    rgb: np.ndarray,
    semantic: np.ndarray,
    spatial: np.ndarray,
    keep: np.ndarray,
    keep_ratio: float,
    cfg: PruningConfig,
    title: str,
) -> None:
    """Three panels: the image, the candidate sets (semantic / spatial / both), the patches kept at ``keep_ratio``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    grid = IMAGE_SIZE // cfg.patch_size
    sem, spa = semantic.reshape(grid, grid), spatial.reshape(grid, grid)
    kept = np.zeros(grid * grid, bool)
    kept[keep] = True
    kept = kept.reshape(grid, grid)

    def category_layer(mask_kept: np.ndarray | None) -> np.ndarray:
        layer = np.zeros((grid, grid, 4))
        for mask, colour in ((sem & ~spa, COLOUR_SEMANTIC), (spa & ~sem, COLOUR_SPATIAL), (sem & spa, COLOUR_BOTH)):
            layer[mask] = (*colour, FILL_ALPHA)
        if mask_kept is not None:
            layer[mask_kept & ~sem & ~spa] = (*COLOUR_FILL, FILL_ALPHA * 0.6)
            layer[~mask_kept] = (0.0, 0.0, 0.0, DROPPED_ALPHA)
        return layer

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), dpi=FIGURE_DPI)
    axes[0].imshow(rgb)
    axes[0].set_title("encoder input (224x224 RGB)", fontsize=9)
    axes[0].set_axis_off()
    panels = (
        (None, "candidates: semantic / spatial / both"),
        (kept, f"kept at keep ratio {keep_ratio:.2f}: {int(kept.sum())}/{grid * grid} patches (dark = pruned)"),
    )
    for ax, (mask_kept, label) in zip(axes[1:], panels, strict=True):
        ax.imshow(rgb, extent=(0, IMAGE_SIZE, IMAGE_SIZE, 0))
        ax.imshow(category_layer(mask_kept), extent=(0, IMAGE_SIZE, IMAGE_SIZE, 0), interpolation="nearest")
        for k in range(grid + 1):
            ax.axhline(k * cfg.patch_size, color="white", lw=0.3, alpha=0.5)
            ax.axvline(k * cfg.patch_size, color="white", lw=0.3, alpha=0.5)
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    handles = [
        Patch(color=COLOUR_SEMANTIC, label=f"semantic (AccuAttn, {cfg.semantic_mode})"),
        Patch(color=COLOUR_SPATIAL, label=f"spatial (Canny {cfg.canny_low:g}/{cfg.canny_high:g})"),
        Patch(color=COLOUR_BOTH, label="both"),
        Patch(facecolor=COLOUR_FILL, edgecolor="grey", label="kept to fill the budget"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from transformers import Dinov2Model

    cfg = dataclass_from_yaml(PruningConfig, args.config)
    image_paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not image_paths:
        raise SystemExit(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {args.images}")
    if args.repeats < 1 or args.warmup < 0 or args.random_draws < 1:
        raise SystemExit("--repeats and --random-draws must be >= 1, --warmup >= 0")
    model = Dinov2Model.from_pretrained(args.model, attn_implementation="sdpa", local_files_only=True).eval()
    rng = np.random.default_rng(args.seed)
    speeds = [f * cfg.v_pmin for f in SPEED_SWEEP_FRACTIONS]
    floor_speed = max(speeds)

    plain_all, attn_all, recompute_all, paired_ratio_all, selection_all, per_image = [], [], [], [], [], []
    kept_per_speed = {v: [] for v in speeds}
    fidelity_rows = {r: {"method": [], "random": []} for r in FIDELITY_KEEP_RATIOS}
    for path in image_paths:
        rgb = load_rgb_224(path)
        out = timed_forwards(model, to_pixel_values(rgb), args.repeats, args.warmup)
        plain_ms, attn_ms = out["plain"], out["attn"]
        plain_all += plain_ms
        attn_all += attn_ms
        recompute_all += out["recompute"]
        paired_ratio_all += [a / p for a, p in zip(attn_ms, plain_ms, strict=True)]
        prefix = out["prefix"]
        selection_all.append(selection_time_ms(rgb, out["attention"], prefix, cfg))
        scores = accumulated_attention(out["attention"], prefix)
        spatial = canny_patch_mask(rgb, cfg.patch_size, cfg.canny_low, cfg.canny_high, cfg.min_edge_pixels).ravel()
        semantic = semantic_mask(scores, cfg)
        patches = scores.size
        for v in speeds:
            ratio = keep_ratio_for_speed(v, cfg.v_pmin, cfg.v_pmax, cfg.min_keep_ratio)
            kept_per_speed[v].append(select_tokens(scores, spatial, ratio, cfg).size / patches)
        features = out["hidden"][0, prefix:].double().numpy()
        for ratio in FIDELITY_KEEP_RATIOS:
            method, random = fidelity(features, select_tokens(scores, spatial, ratio, cfg), rng, args.random_draws)
            fidelity_rows[ratio]["method"].append(method)
            fidelity_rows[ratio]["random"].append(random)
        per_image.append(
            {
                "image": path.name,
                "spatial_fraction": float(spatial.mean()),
                "semantic_fraction": float(semantic.mean()),
                "overlap_fraction": float((spatial & semantic).mean()),
                "encoder_ms_plain": float(np.median(plain_ms)),
                "encoder_ms_with_attention": float(np.median(attn_ms)),
                "selection_ms": selection_all[-1],
            }
        )
        if args.figures and (args.max_figures is None or len(per_image) <= args.max_figures):
            floor_ratio = keep_ratio_for_speed(floor_speed, cfg.v_pmin, cfg.v_pmax, cfg.min_keep_ratio)
            keep = select_tokens(scores, spatial, floor_ratio, cfg)
            write_overlay(
                Path(args.figures) / f"{path.stem}_pruning.png",
                rgb,
                semantic,
                spatial,
                keep,
                floor_ratio,
                cfg,
                f"{path.name}: DINOv2 ViT-S/14 last-layer AccuAttn + Canny, 16x16 patches",
            )

    plain_ms, attn_ms = float(np.median(plain_all)), float(np.median(attn_all))
    overhead = float(np.median(paired_ratio_all)) - 1.0  # same-round pairs: robust to load drift
    selection_ms = float(np.median(selection_all))
    sweep = [
        {
            "speed": v,
            "keep_ratio": keep_ratio_for_speed(v, cfg.v_pmin, cfg.v_pmax, cfg.min_keep_ratio),
            "mean_keep_ratio": float(np.mean(kept_per_speed[v])),
        }
        for v in speeds
    ]
    fidelity_out = []
    for ratio, rows in fidelity_rows.items():
        method, random = np.asarray(rows["method"]), np.asarray(rows["random"])
        fidelity_out.append(
            {
                "keep_ratio": ratio,
                "tokens": select_tokens(np.ones(patches), np.zeros(patches, bool), ratio, cfg).size,
                "method": float(method.mean()),
                "random": float(random.mean()),
                "method_beats_random": bool(method.mean() > random.mean()),
                "images_method_better": int((method > random).sum()),
            }
        )
    payload = {
        "machine": machine_info() | {"torch_threads": str(torch.get_num_threads()), "torch": torch.__version__},
        "model": str(args.model),
        "attn_implementation": model.config._attn_implementation,
        "images": [p.name for p in image_paths],
        "config": asdict(cfg),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "random_draws": args.random_draws,
        "speed_sweep": sweep,
        "spatial_fraction": float(np.mean([r["spatial_fraction"] for r in per_image])),
        "semantic_fraction": float(np.mean([r["semantic_fraction"] for r in per_image])),
        "overlap_fraction": float(np.mean([r["overlap_fraction"] for r in per_image])),
        "encoder_ms_plain": plain_ms,
        "encoder_ms_with_attention": attn_ms,
        "attention_overhead_fraction": overhead,
        "attention_recompute_ms": float(np.median(recompute_all)),
        "selection_ms": selection_ms,
        "selection_ms_max_image": float(np.max(selection_all)),
        "feature_fidelity": fidelity_out,
        "targets": {
            "attention_within_10pct": bool(overhead <= ATTENTION_OVERHEAD_TARGET),
            "selection_under_2ms": bool(selection_ms < SELECTION_MS_TARGET),
            "fidelity_above_random_every_ratio": all(r["method_beats_random"] for r in fidelity_out),
        },
        "per_image": per_image,
    }
    print(f"{len(image_paths)} images, {args.repeats} timed forwards each, torch threads {torch.get_num_threads()}")
    print(format_table(["speed", "keep_ratio", "mean_keep_ratio"], [list(r.values()) for r in sweep]))
    summary_keys = (
        "encoder_ms_plain",
        "encoder_ms_with_attention",
        "attention_overhead_fraction",
        "attention_recompute_ms",
        "selection_ms",
        "spatial_fraction",
        "semantic_fraction",
        "overlap_fraction",
    )
    print()
    print(format_table(["figure", "value"], [[key, payload[key]] for key in summary_keys]))
    print()
    print(
        format_table(
            ["keep_ratio", "tokens", "fidelity_method", "fidelity_random", "beats_random", "images_better"],
            [list(r.values()) for r in fidelity_out],
        )
    )
    print("targets:", payload["targets"])
    if args.json:
        write_json(args.json, payload)
    return 0
