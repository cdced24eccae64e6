"""Semantic tokens: accumulated attention (AccuAttn) of the last vision-encoder layer.

AccuAttn of patch ``j`` is the attention it receives, averaged over heads and over all query tokens
(CLS/register tokens included as queries): ``mean_h mean_i A[h, i, j]``. Because every softmax row sums to 1,
the AccuAttn of all T tokens adds up to 1; the patch candidates keep their raw share (the rest went to the
prefix tokens). Prefix (CLS/register) tokens are never candidates: the caller keeps them unconditionally.
"""

from __future__ import annotations

import numpy as np
import torch

from spvla_ros.core.pruning.config import PruningConfig

ATTENTION_NDIMS = (3, 4)
MASS_TOLERANCE = 1e-12
"""Float round-off allowed when a cumulative attention share is compared with ``semantic_mass``."""


def accumulated_attention(attn: torch.Tensor | np.ndarray, num_prefix_tokens: int) -> np.ndarray:
    """AccuAttn of the patch tokens from one layer's attention probabilities.

    Args:
        attn: softmax attention, (heads, T, T) or (B, heads, T, T), rows = queries, columns = keys.
        num_prefix_tokens: leading non-patch tokens (DINOv2: 1 CLS (+ registers); SigLIP: 0).

    Returns:
        (P,) float64 with P = T - num_prefix_tokens for an unbatched or B = 1 input; (B, P) for B > 1.
        Mean over heads, mean over all T queries, prefix columns dropped (values are not renormalized).

    Raises:
        ValueError: wrong rank, non-square attention, bad prefix count, NaN/Inf or negative values.
    """
    t = torch.as_tensor(attn)
    if t.ndim not in ATTENTION_NDIMS:
        raise ValueError(f"attention must be (heads, T, T) or (B, heads, T, T), got shape {tuple(t.shape)}")
    if t.shape[-1] != t.shape[-2]:
        raise ValueError(f"attention must be square over tokens (T, T), got shape {tuple(t.shape)}")
    tokens = t.shape[-1]
    if isinstance(num_prefix_tokens, bool) or not isinstance(num_prefix_tokens, int):
        raise ValueError(f"num_prefix_tokens must be an int, got {num_prefix_tokens!r}")
    if not 0 <= num_prefix_tokens < tokens:
        raise ValueError(f"num_prefix_tokens must be in [0, {tokens}), got {num_prefix_tokens}")
    if not t.is_floating_point():
        raise ValueError(f"attention must be floating point probabilities, got dtype {t.dtype}")
    t = t.detach().to(device="cpu", dtype=torch.float32)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    per_key = t.mean(dim=1).mean(dim=1)  # (B, T): mean over heads, then over queries
    if not torch.isfinite(per_key).all():
        raise ValueError("attention contains NaN or Inf")
    if (per_key < 0).any():
        raise ValueError("attention contains negative values; pass softmax probabilities")
    scores = per_key[:, num_prefix_tokens:].numpy().astype(np.float64)
    return scores[0] if scores.shape[0] == 1 else scores


def normalized_scores(semantic_scores: np.ndarray) -> np.ndarray:
    """Scores as shares of their sum (P,), float64. An all-zero input gives the uniform share 1/P.

    Raises:
        ValueError: not 1-D, empty, NaN/Inf or negative.
    """
    scores = np.asarray(semantic_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"semantic scores must be a non-empty 1-D array (P,), got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("semantic scores contain NaN or Inf")
    if (scores < 0).any():
        raise ValueError("semantic scores must be >= 0 (attention probabilities)")
    total = scores.sum()
    if total <= 0:
        return np.full(scores.size, 1.0 / scores.size)
    return scores / total


def semantic_mask(semantic_scores: np.ndarray, config: PruningConfig) -> np.ndarray:
    """Semantic patches (P,) bool, by ``config.semantic_mode``.

    - ``threshold``: ``share_j * P > t_ks`` (share = normalized AccuAttn), i.e. more than ``t_ks`` times the
      uniform share. May select no patch (e.g. uniform attention with ``t_ks >= 1``); the selection then
      fills its budget by score.
    - ``mass``: the fewest highest-scoring patches whose shares add up to at least ``semantic_mass``;
      ties are broken by the lower patch index. Never empty.
    """
    share = normalized_scores(semantic_scores)
    count = share.size
    if config.semantic_mode == "threshold":
        return share * count > config.t_ks
    order = np.lexsort((np.arange(count), -share))  # descending share, then ascending index
    cumulative = np.cumsum(share[order])
    # first position where the running mass reaches the target (tolerance for float round-off)
    needed = int(np.searchsorted(cumulative, config.semantic_mass - MASS_TOLERANCE, side="left")) + 1
    mask = np.zeros(count, dtype=bool)
    mask[order[: min(needed, count)]] = True
    return mask
