"""Token selection: union of semantic and spatial patches, trimmed or filled to the speed's budget.

Priority of a patch, best first (deterministic, documented tie-breaks):

1. tier: semantic AND spatial, then the patches in only one of the two sets, then neither;
2. in the middle tier the two cues take turns: the best semantic-only patch, the best spatial-only patch,
   the second-best semantic-only, the second-best spatial-only, ... ("best" = higher AccuAttn score), so a
   tight budget never starves either cue (semantic first on each turn);
3. in the other tiers, higher AccuAttn score first; equal scores: lower patch index first (everywhere).

The first ``token_budget(keep_ratio, P)`` patches of that order are kept, returned sorted (the original
row-major order of the encoder's patch tokens). So when the union fits the budget, all of it is kept and the
rest is filled by score; when it does not, the union is trimmed from the weakest end of both cues alike.
Budgets nest: a larger keep ratio keeps a superset. The result is never empty (the budget is at least 1)
and ``keep_ratio == 1`` keeps every patch.

The same indices apply to every backbone that shares the patch grid (CogACT concatenates DINOv2 and SigLIP
features patch-wise), see :func:`apply_token_selection`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spvla_ros.core.pruning.config import POSITION_ID_MODES, PruningConfig
from spvla_ros.core.pruning.keep_ratio import keep_ratio_for_speed, token_budget
from spvla_ros.core.pruning.semantic import normalized_scores, semantic_mask
from spvla_ros.core.pruning.spatial import canny_patch_mask

TIER_BOTH, TIER_ONE_CUE, TIER_NONE = 0, 1, 2


def selection_priority(semantic_scores: np.ndarray, spatial_mask: np.ndarray, config: PruningConfig) -> np.ndarray:
    """All patch indices (P,) int64, best first, by the module's tier / score / index order."""
    scores = normalized_scores(semantic_scores)
    spatial = _as_patch_mask(spatial_mask, scores.size)
    semantic = semantic_mask(scores, config)
    index = np.arange(scores.size)
    tier = np.full(scores.size, TIER_NONE, dtype=np.int64)
    tier[semantic ^ spatial] = TIER_ONE_CUE
    tier[semantic & spatial] = TIER_BOTH
    turn = np.zeros(scores.size, dtype=np.int64)  # alternation order inside the one-cue tier
    for offset, only in ((0, semantic & ~spatial), (1, spatial & ~semantic)):
        members = index[only][np.lexsort((index[only], -scores[only]))]  # best first, ties to lower index
        turn[members] = 2 * np.arange(members.size) + offset
    return np.lexsort((index, -scores, turn, tier)).astype(np.int64)  # last key is the primary one


def select_tokens(
    semantic_scores: np.ndarray, spatial_mask: np.ndarray, keep_ratio: float, config: PruningConfig
) -> np.ndarray:
    """Indices of the patch tokens to keep: sorted, unique, never empty, int64 of length ``round(r * P)``.

    Args:
        semantic_scores: (P,) AccuAttn of the patches (:func:`accumulated_attention`), >= 0, finite.
        spatial_mask: (P,) bool, True on spatial (edge) patches; a (rows, cols) grid is flattened row-major.
        keep_ratio: fraction of patches to keep, in (0, 1].
        config: semantic mode and thresholds.

    Raises:
        ValueError: mismatched sizes, NaN/Inf or negative scores, non-bool mask, keep_ratio outside (0, 1].
    """
    scores = normalized_scores(semantic_scores)
    budget = token_budget(keep_ratio, scores.size)
    if budget == scores.size:
        _as_patch_mask(spatial_mask, scores.size)  # same validation whatever the ratio
        return np.arange(scores.size, dtype=np.int64)
    return np.sort(selection_priority(scores, spatial_mask, config)[:budget])


@dataclass(frozen=True)
class TokenSelection:
    """One frame's pruning decision.

    Attributes:
        indices: (K,) int64 kept patch indices, sorted, row-major over the patch grid.
        position_ids: (K,) int64 positions of the kept tokens (``config.position_ids`` mode, from 0).
        keep_ratio: the speed's keep ratio, in (0, 1].
        semantic: (P,) bool semantic patches; spatial: (P,) bool spatial patches (before the budget).
    """

    indices: np.ndarray
    position_ids: np.ndarray
    keep_ratio: float
    semantic: np.ndarray
    spatial: np.ndarray


def select_for_frame(
    image: np.ndarray, semantic_scores: np.ndarray, speed: float, config: PruningConfig
) -> TokenSelection:
    """Full pruning step for one frame: keep ratio from speed, Canny patches, semantic patches, selection.

    Args:
        image: (H, W, 3) uint8 RGB, the image the encoder saw (224x224 -> 16x16 patches).
        semantic_scores: (P,) AccuAttn with P = (H/patch) * (W/patch).
        speed: ``||a_xyz||`` of the latest action, action units per step.
        config: pruning settings.
    """
    keep_ratio = keep_ratio_for_speed(speed, config.v_pmin, config.v_pmax, config.min_keep_ratio)
    spatial = canny_patch_mask(
        image, config.patch_size, config.canny_low, config.canny_high, config.min_edge_pixels
    ).ravel()
    scores = normalized_scores(semantic_scores)
    if scores.size != spatial.size:
        raise ValueError(
            f"image patch grid has {spatial.size} patches but the attention scores have {scores.size}: "
            "is the image the one the encoder saw, and num_prefix_tokens right?"
        )
    indices = select_tokens(scores, spatial, keep_ratio, config)
    return TokenSelection(
        indices=indices,
        position_ids=position_ids_for_selection(indices, config.position_ids),
        keep_ratio=keep_ratio,
        semantic=semantic_mask(scores, config),
        spatial=spatial,
    )


def apply_token_selection(features: torch.Tensor, indices: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Keep the selected patch tokens of patch features: (B, P, D) -> (B, K, D), order as in ``indices``.

    Args:
        features: (B, P, D) patch features only (drop CLS/register tokens first).
        indices: (K,) indices shared by the batch, or (B, K) one row per sample; int, in [0, P), K >= 1.
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 3:
        shape = tuple(features.shape) if hasattr(features, "shape") else type(features).__name__
        raise ValueError(f"features must be a torch tensor (B, P, D), got {shape}")
    idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.dtype.is_complex:
        raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.ndim not in (1, 2) or idx.shape[-1] == 0:
        raise ValueError(f"indices must be a non-empty (K,) or (B, K) array, got shape {tuple(idx.shape)}")
    patches = features.shape[1]
    if int(idx.min()) < 0 or int(idx.max()) >= patches:
        raise ValueError(f"indices must be in [0, {patches}), got range [{int(idx.min())}, {int(idx.max())}]")
    idx = idx.to(device=features.device, dtype=torch.long)
    if idx.ndim == 1:
        return features.index_select(1, idx)
    if idx.shape[0] != features.shape[0]:
        raise ValueError(f"(B, K) indices have B={idx.shape[0]} but features have B={features.shape[0]}")
    return torch.gather(features, 1, idx.unsqueeze(-1).expand(-1, -1, features.shape[2]))


def position_ids_for_selection(indices: np.ndarray, mode: str, start: int = 0) -> np.ndarray:
    """Position ids of the kept tokens, (K,) int64.

    ``renumber``: ``start + 0..K-1`` (contiguous, as the method's public code does); ``preserve``:
    ``start + indices`` (each token keeps its original patch position). ``start`` is the position of the
    first patch token in the sequence (e.g. after a BOS token in the language model).
    """
    if mode not in POSITION_ID_MODES:
        raise ValueError(f"position id mode must be one of {POSITION_ID_MODES}, got {mode!r}")
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a non-empty 1-D integer array, got {idx.dtype} {idx.shape}")
    base = np.arange(idx.size, dtype=np.int64) if mode == "renumber" else idx.astype(np.int64)
    return base + int(start)


def _as_patch_mask(mask: np.ndarray, num_patches: int) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise ValueError(f"spatial mask must be bool, got dtype {arr.dtype}")
    arr = arr.ravel()
    if arr.size != num_patches:
        raise ValueError(f"spatial mask has {arr.size} patches, semantic scores have {num_patches}")
    return arr
