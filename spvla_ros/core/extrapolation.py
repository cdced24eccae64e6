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

Each extrapolator has two entry points with one implementation: ``predict(rows, times, t_next)`` on rows of
Python floats, which the scheduler calls at control rate (no numpy dispatch on 3-vectors: a few
microseconds), and ``__call__(history, times, t_next)`` on numpy arrays (the :data:`Extrapolator` form).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Extrapolator = Callable[..., np.ndarray]
"""``(history (n, 3), times (n,) | None = None, t_next: float | None = None) -> (3,)``."""
Rows = Sequence[Sequence[float]]
"""A history as rows of Python floats, oldest first; only the translation ``row[0:3]`` is read."""


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


def ridge_weights_at_steps(times: Sequence[float], t_next: float, ridge_lambda: float) -> list[float]:
    """:func:`ridge_weights_at` in closed form on Python floats (the 2x2 normal equations solved by hand).

    Equal to :func:`ridge_weights_at` to rounding (1e-12 on step indices up to thousands); a few
    microseconds instead of a numpy solve, so the scheduler can call it at every cheap step.
    """
    t0 = float(times[0])
    rel = [float(t) - t0 for t in times]
    s1 = math.fsum(rel)
    s2 = math.fsum(t * t for t in rel)
    a, c = s2 + ridge_lambda, len(rel) + ridge_lambda
    det = a * c - s1 * s1
    ahead = float(t_next) - t0
    v0 = (ahead * c - s1) / det
    v1 = (a - ahead * s1) / det
    return [v0 * t + v1 for t in rel]


def _xyz(row: Sequence[float]) -> tuple[float, float, float]:
    return (row[0], row[1], row[2])


class _RowPredictor:
    """Base of the extrapolators: :meth:`predict` on rows of Python floats (the scheduler's fast path) and
    ``__call__`` on numpy arrays (the documented :data:`Extrapolator` form), one implementation for both."""

    def predict(self, rows: Rows, times: Sequence[float] | None = None,
                t_next: float | None = None) -> tuple[float, float, float]:
        raise NotImplementedError

    def __call__(self, history: np.ndarray, times: np.ndarray | None = None, t_next: float | None = None) -> np.ndarray:
        rows = np.asarray(history, dtype=np.float64).tolist()
        steps = None if times is None else [float(t) for t in times]
        return np.array(self.predict(rows, steps, None if t_next is None else float(t_next)))


class RidgeExtrapolator(_RowPredictor):
    """Paper's extrapolator with precomputed weights; one dot product per call (control-rate safe)."""

    name = "ridge"

    def __init__(self, n: int, ridge_lambda: float) -> None:
        self.weights = ridge_weights(n, ridge_lambda)
        self.ridge_lambda = ridge_lambda
        self._weights = tuple(self.weights.tolist())

    def predict(self, rows: Rows, times: Sequence[float] | None = None,
                t_next: float | None = None) -> tuple[float, float, float]:
        weights = self._weights if times is None else ridge_weights_at_steps(times, t_next, self.ridge_lambda)
        x = y = z = 0.0
        for w, row in zip(weights, rows, strict=True):
            x += w * row[0]
            y += w * row[1]
            z += w * row[2]
        return (x, y, z)


class RepeatLastExtrapolator(_RowPredictor):
    """Baseline: the next action equals the last one (zero-order hold)."""

    name = "repeat_last"

    def predict(self, rows: Rows, times: Sequence[float] | None = None,
                t_next: float | None = None) -> tuple[float, float, float]:
        return _xyz(rows[-1])


class LinearExtrapolator(_RowPredictor):
    """Baseline: constant first difference of the last two actions, ``2 a[-1] - a[-2]`` (per step)."""

    name = "linear"

    def predict(self, rows: Rows, times: Sequence[float] | None = None,
                t_next: float | None = None) -> tuple[float, float, float]:
        a, b = rows[-1], rows[-2]
        if times is None:
            return (2.0 * a[0] - b[0], 2.0 * a[1] - b[1], 2.0 * a[2] - b[2])
        dt = float(times[-1]) - float(times[-2])
        ahead = float(t_next) - float(times[-1])
        return (a[0] + (a[0] - b[0]) / dt * ahead, a[1] + (a[1] - b[1]) / dt * ahead,
                a[2] + (a[2] - b[2]) / dt * ahead)


class DampedLinearExtrapolator(_RowPredictor):
    """The last action plus a damped trend: ``a[-1] + phi * (a[-1] - a[-2])`` per step ahead.

    ``phi = 0`` is repeat-last, ``phi = 1`` is :class:`LinearExtrapolator`. In between it keeps part of the
    latest change, which suits noisy teleoperated data where the full slope over-shoots and the hold lags.
    """

    name = "damped_linear"

    def __init__(self, trend_damping: float) -> None:
        if not np.isfinite(trend_damping) or not 0.0 <= trend_damping <= 1.0:
            raise ValueError(f"trend_damping must be in [0, 1], got {trend_damping}")
        self.trend_damping = float(trend_damping)

    def predict(self, rows: Rows, times: Sequence[float] | None = None,
                t_next: float | None = None) -> tuple[float, float, float]:
        a, b, phi = rows[-1], rows[-2], self.trend_damping
        if times is None:
            return (a[0] + phi * (a[0] - b[0]), a[1] + phi * (a[1] - b[1]), a[2] + phi * (a[2] - b[2]))
        scale = (float(t_next) - float(times[-1])) / (float(times[-1]) - float(times[-2]))
        return (a[0] + phi * (a[0] - b[0]) * scale, a[1] + phi * (a[1] - b[1]) * scale,
                a[2] + phi * (a[2] - b[2]) * scale)


class BestOfExtrapolator(_RowPredictor):
    """Predicts with whichever candidate has made the smallest recent error on this robot's own actions.

    The scheduler feeds back every model output through :meth:`observe` (the same history the cheap path
    would have used for that step); each candidate's squared error is averaged with exponential forgetting
    ``decay`` per observation, and the one with the lowest average predicts. Ties keep the first candidate,
    so before any feedback it behaves as ``candidates[0]``. Smooth motion (scripted or planned) favours a
    trend; noisy teleoperation favours holding the last action: this picks per deployment, online.
    """

    name = "best_of"

    def __init__(self, candidates: tuple[_RowPredictor, ...], decay: float = 0.8) -> None:
        if not candidates:
            raise ValueError("best_of needs at least one candidate")
        if not np.isfinite(decay) or not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.candidates = candidates
        self.decay = float(decay)
        self.mean_sq_error = [0.0] * len(candidates)
        self.observations = 0

    def reset(self) -> None:
        self.mean_sq_error = [0.0] * len(self.candidates)
        self.observations = 0

    @property
    def chosen(self) -> int:
        errors = self.mean_sq_error
        return errors.index(min(errors))

    def observe(
        self, history: np.ndarray, actual: np.ndarray, times: np.ndarray | None = None, t_next: float | None = None
    ) -> None:
        """Score every candidate on one step whose true action is now known (``actual`` (3,))."""
        steps = None if times is None else [float(t) for t in times]
        self.observe_rows(np.asarray(history, dtype=np.float64).tolist(),
                          _xyz(np.asarray(actual, dtype=np.float64).tolist()), steps,
                          None if t_next is None else float(t_next))

    def observe_rows(self, rows: Rows, actual: Sequence[float], times: Sequence[float] | None = None,
                     t_next: float | None = None) -> None:
        """:meth:`observe` on rows of Python floats (the scheduler's fast path)."""
        keep = 1.0 - self.decay
        for i, candidate in enumerate(self.candidates):
            p = candidate.predict(rows, times, t_next)
            dx, dy, dz = p[0] - actual[0], p[1] - actual[1], p[2] - actual[2]
            self.mean_sq_error[i] = self.decay * self.mean_sq_error[i] + keep * (dx * dx + dy * dy + dz * dz)
        self.observations += 1

    def predict(self, rows: Rows, times: Sequence[float] | None = None,
                t_next: float | None = None) -> tuple[float, float, float]:
        return self.candidates[self.chosen].predict(rows, times, t_next)


EXTRAPOLATOR_NAMES = ("ridge", "repeat_last", "linear", "damped_linear", "best_of")


def make_extrapolator(name: str, n: int, ridge_lambda: float, trend_damping: float = 0.5) -> Extrapolator:
    """Build an extrapolator by name (one of :data:`EXTRAPOLATOR_NAMES`) for a buffer of ``n`` actions.

    ``ridge_lambda`` is used by ``ridge`` only, ``trend_damping`` by ``damped_linear`` only.
    """
    if name == "ridge":
        return RidgeExtrapolator(n, ridge_lambda)
    if name == "repeat_last":
        return RepeatLastExtrapolator()
    if name == "linear":
        return LinearExtrapolator()
    if name == "damped_linear":
        return DampedLinearExtrapolator(trend_damping)
    if name == "best_of":
        return BestOfExtrapolator((RepeatLastExtrapolator(), LinearExtrapolator()))
    raise ValueError(f"unknown extrapolator {name!r}; choose one of {EXTRAPOLATOR_NAMES}")
