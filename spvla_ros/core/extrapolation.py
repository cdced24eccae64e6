"""Cheap-path action extrapolators used by the SP-VLA scheduler between model calls.

Every extrapolator maps a history of ``n`` translational actions, shape (n, 3), oldest first, to a
prediction of the next one, shape (3,). Units are those of the actions (e.g. metres per action step for
BridgeData deltas, or m/s for velocity actions); the extrapolators are unit-agnostic.

By default the history is the last ``n`` consecutive steps and the prediction is for the step after them
(the paper). When the history is sparse (e.g. only the model's own outputs, taken at irregular steps),
``times`` (n,) gives the step index of each row and ``t_next`` the step to predict.

The paper's default is ridge regression over time (SP-VLA, Eq. 2-4):
``X = [T, 1]`` with ``T = 0..n-1``, ``beta = (X^T X + lambda I)^-1 X^T Y`` and ``a_t = [n, 1] . beta``.
Because X depends only on ``n`` and ``lambda``, the whole regression collapses to a fixed weight vector
``w`` of length ``n`` with ``a_t = w @ Y``; :func:`ridge_weights` precomputes it once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Extrapolator = Callable[..., np.ndarray]
"""``(history (n, 3), times (n,) | None = None, t_next: float | None = None) -> (3,)``."""


def ridge_weights(n: int, ridge_lambda: float) -> np.ndarray:
    """Weights ``w`` (n,) such that ``w @ Y`` is the ridge prediction at ``T = n`` from ``Y`` at ``T = 0..n-1``.

    Args:
        n: number of past actions in the regression (buffer size), >= 2.
        ridge_lambda: L2 penalty on both slope and intercept (the paper regularizes ``beta`` as a whole), >= 0.
    """
    if n < 2:
        raise ValueError(f"ridge regression needs at least 2 samples, got n={n}")
    if not np.isfinite(ridge_lambda) or ridge_lambda < 0:
        raise ValueError(f"ridge_lambda must be finite and >= 0, got {ridge_lambda}")
    T = np.arange(n, dtype=np.float64)
    X = np.stack([T, np.ones(n)], axis=1)  # (n, 2)
    gram = X.T @ X + ridge_lambda * np.eye(2)
    return np.array([float(n), 1.0]) @ np.linalg.solve(gram, X.T)  # (n,)


def ridge_weights_at(times: np.ndarray, t_next: float, ridge_lambda: float) -> np.ndarray:
    """Ridge weights for samples at step indices ``times`` (n,) predicting step ``t_next``.

    Time is measured from ``times[0]``, so uniform ``times = 0..n-1`` with ``t_next = n`` gives
    :func:`ridge_weights` exactly.
    """
    T = np.asarray(times, dtype=np.float64) - float(times[0])
    X = np.stack([T, np.ones_like(T)], axis=1)
    gram = X.T @ X + ridge_lambda * np.eye(2)
    return np.array([float(t_next) - float(times[0]), 1.0]) @ np.linalg.solve(gram, X.T)


def ridge_extrapolate(history: np.ndarray, ridge_lambda: float) -> np.ndarray:
    """Ridge prediction of the next row of ``history`` (n, k) -> (k,). Convenience form of :func:`ridge_weights`."""
    history = np.asarray(history, dtype=np.float64)
    return ridge_weights(history.shape[0], ridge_lambda) @ history


class RidgeExtrapolator:
    """Paper's extrapolator with precomputed weights; one dot product per call (control-rate safe)."""

    name = "ridge"

    def __init__(self, n: int, ridge_lambda: float) -> None:
        self.weights = ridge_weights(n, ridge_lambda)
        self.ridge_lambda = ridge_lambda

    def __call__(self, history: np.ndarray, times: np.ndarray | None = None, t_next: float | None = None) -> np.ndarray:
        if times is None:
            return self.weights @ history
        return ridge_weights_at(times, t_next, self.ridge_lambda) @ history


class RepeatLastExtrapolator:
    """Baseline: the next action equals the last one (zero-order hold)."""

    name = "repeat_last"

    def __call__(self, history: np.ndarray, times: np.ndarray | None = None, t_next: float | None = None) -> np.ndarray:
        return history[-1].copy()


class LinearExtrapolator:
    """Baseline: constant first difference of the last two actions, ``2 a[-1] - a[-2]`` (per step)."""

    name = "linear"

    def __call__(self, history: np.ndarray, times: np.ndarray | None = None, t_next: float | None = None) -> np.ndarray:
        if times is None:
            return 2.0 * history[-1] - history[-2]
        slope = (history[-1] - history[-2]) / (float(times[-1]) - float(times[-2]))
        return history[-1] + slope * (float(t_next) - float(times[-1]))


EXTRAPOLATOR_NAMES = ("ridge", "repeat_last", "linear")


def make_extrapolator(name: str, n: int, ridge_lambda: float) -> Extrapolator:
    """Build an extrapolator by name (one of :data:`EXTRAPOLATOR_NAMES`) for a buffer of ``n`` actions."""
    if name == "ridge":
        return RidgeExtrapolator(n, ridge_lambda)
    if name == "repeat_last":
        return RepeatLastExtrapolator()
    if name == "linear":
        return LinearExtrapolator()
    raise ValueError(f"unknown extrapolator {name!r}; choose one of {EXTRAPOLATOR_NAMES}")
