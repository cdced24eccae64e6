"""CogACT's adaptive action ensemble over successive chunks.

Each new chunk predicts the next ``chunk_len`` actions. For the current step, the ensembler collects what each of
the last ``horizon`` chunks predicted for *this* step (the newest chunk's row 0, the previous chunk's row 1, ...),
weighs each prediction by ``exp(alpha * cos(pred, newest))`` (cosine similarity over all 7 dimensions), and
returns the normalized weighted mean.
"""

from __future__ import annotations

from collections import deque

import numpy as np

COSINE_EPS = 1e-7
"""Added to the norm product so an all-zero prediction gives similarity 0 instead of NaN (reference value)."""


def adaptive_ensemble(preds: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Blend predictions for one step, oldest first (m, action_dim), weighing each by ``exp(alpha * cos(pred,
    newest))``. Returns (blended action (action_dim,), normalised weights (m,))."""
    ref = preds[-1]
    cos = preds @ ref / (np.linalg.norm(preds, axis=1) * np.linalg.norm(ref) + COSINE_EPS)
    w = np.exp(alpha * cos)
    w /= w.sum()
    return w @ preds, w


class AdaptiveEnsembler:
    """Args:
    horizon: how many successive chunks are blended (CogACT: 7 on Bridge, 2 on Fractal), >= 1.
    alpha: temperature of the cosine weights (CogACT: 0.1); 0 gives a plain mean.
    chunk_len: rows per chunk (16).
    action_dim: columns per action (7).
    """

    def __init__(self, horizon: int, alpha: float, chunk_len: int = 16, action_dim: int = 7) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= chunk_len:
            raise ValueError(f"horizon must be an int in [1, chunk_len={chunk_len}], got {horizon!r}")
        if not np.isfinite(alpha):
            raise ValueError(f"alpha must be finite, got {alpha!r}")
        self.horizon = horizon
        self.alpha = float(alpha)
        self.chunk_len = chunk_len
        self.action_dim = action_dim
        self._chunks: deque[np.ndarray] = deque(maxlen=horizon)
        self.last_weights: np.ndarray = np.zeros(0)
        """Weights of the last :meth:`update`, oldest chunk first."""

    def reset(self) -> None:
        """Forget all chunks (start of an episode)."""
        self._chunks.clear()
        self.last_weights = np.zeros(0)

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Add the newest (chunk_len, action_dim) chunk; return the ensembled action for this step, (action_dim,)."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.shape != (self.chunk_len, self.action_dim):
            raise ValueError(f"chunk must have shape ({self.chunk_len}, {self.action_dim}), got {chunk.shape}")
        if not np.isfinite(chunk).all():
            raise ValueError("chunk contains NaN or Inf")
        self._chunks.append(chunk.copy())
        n = len(self._chunks)
        # the i-th oldest chunk was predicted n-1-i steps ago: its row n-1-i is its prediction for now
        preds = np.stack([c[n - 1 - i] for i, c in enumerate(self._chunks)])
        action, self.last_weights = adaptive_ensemble(preds, self.alpha)
        return action
