"""SP-VLA action-aware model scheduler: decide per action step whether to call the VLA or extrapolate.

Usage at each action step::

    decision = sched.decide()
    action = sched.extrapolate() if decision.extrapolate else None
    if action is None:                     # model path (or the cheap path failed its validity check)
        action = call_model()
        sched.commit(action, from_model=True)
    else:
        sched.commit(action, from_model=False)

or simply ``sched.step(call_model)``. Actions are (7,) ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``
in the model's action units; the scheduler is unit-agnostic (see :mod:`scheduler_config` for the speed
convention). By default (paper) the history holds the executed actions, model outputs and extrapolations
alike; ``fit_history: model`` keeps only model outputs with their step indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from spvla_ros.core.extrapolation import ChunkExtrapolator, Extrapolator, make_extrapolator
from spvla_ros.core.scheduler_config import ACTION_DIM, TRANSLATION, SchedulerConfig


class Reason(str, Enum):
    """Why a decision was taken (published in the scheduler status)."""

    BUFFER_NOT_FULL = "buffer_not_full"
    MAX_CONSECUTIVE = "max_consecutive"
    SURPRISE = "surprise"
    SPEED_OUT_OF_BAND = "speed_out_of_band"
    FEW_INTUITIVE = "few_intuitive"
    EXTRAPOLATE = "extrapolate"
    INVALID_EXTRAPOLATION = "invalid_extrapolation"


@dataclass(frozen=True, slots=True)
class Decision:
    """One scheduling decision.

    Attributes:
        extrapolate: True for the cheap path, False for a model call.
        reason: why.
        speed: ``||a_xyz||`` of the last executed action, action units per step (NaN if the buffer is empty).
        intuitive_ratio: intuitive steps / buffer size, in [0, 1].
    """

    extrapolate: bool
    reason: Reason
    speed: float
    intuitive_ratio: float


@dataclass(frozen=True, slots=True)
class StepResult:
    """The action executed at one step and how it was obtained."""

    action: np.ndarray
    from_model: bool
    reason: Reason


class ActionScheduler:
    """Stateful SP-VLA scheduler over the last ``buffer_size`` executed actions."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self._config = config or SchedulerConfig()
        self._apply(self._config)
        self.reset()

    # ------------------------------------------------------------------ configuration
    @property
    def config(self) -> SchedulerConfig:
        return self._config

    def reconfigure(self, config: SchedulerConfig) -> None:
        """Swap in a new (already validated) config. A changed buffer size restarts the schedule."""
        old_n = self._config.buffer_size
        self._config = config
        self._apply(config)
        if config.buffer_size != old_n:
            self.reset()

    def _apply(self, config: SchedulerConfig) -> None:
        self._extrapolator = make_extrapolator(
            config.extrapolator, config.buffer_size, config.ridge_lambda, config.trend_damping
        )
        self._v_min = config.v_min_resolved
        self._v_max = config.v_max_resolved
        self._clip = config.clip_bound_resolved

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Restart the schedule (new episode or instruction): empty history, next step calls the model."""
        n = self._config.buffer_size
        self._fit = np.zeros((n, ACTION_DIM), dtype=np.float64)  # regression history, oldest first
        self._fit_t = np.zeros(n, dtype=np.float64)  # step index of each row
        self._fit_count = 0
        self._last: np.ndarray | None = None  # last executed action (carried rotation/gripper, speed band)
        self._t = 0  # index of the next step
        self._consecutive = 0
        self._surprise: float | None = None  # ||a_xyz - cheap prediction|| at the last model call
        if hasattr(self._extrapolator, "reset"):
            self._extrapolator.reset()

    @property
    def buffer(self) -> np.ndarray:
        """The regression history held, oldest first, shape (filled, 7). A copy.

        The last n executed actions (``fit_history: executed``, paper) or the last n model outputs (``model``).
        """
        n = self._config.buffer_size
        return self._fit[n - min(self._fit_count, n) :].copy()

    @property
    def consecutive_extrapolations(self) -> int:
        return self._consecutive

    @property
    def last_surprise(self) -> float:
        """``||a_xyz - p_xyz||`` at the last model call, action units per step (NaN until measured).

        ``p`` is what the cheap path would have executed at that step, from the history held then.
        """
        return math.nan if self._surprise is None else self._surprise

    # ------------------------------------------------------------------ decision (paper Eq. 1)
    def decide(self) -> Decision:
        """Decide the path for the next step from the history; no side effects."""
        n = self._config.buffer_size
        if self._fit_count < n or self._last is None:
            return Decision(False, Reason.BUFFER_NOT_FULL, self._last_speed(), 0.0)
        xyz = self._fit[:, TRANSLATION]
        if self._config.intuitive_test == "norm":
            intuitive = np.sqrt(np.einsum("ij,ij->i", xyz, xyz)) > self._v_min
        else:
            intuitive = np.all(np.abs(xyz) > self._v_min, axis=1)
        ratio = float(intuitive.sum()) / n
        speed = self._last_speed()
        if self._consecutive >= self._config.max_open_loop_steps:
            return Decision(False, Reason.MAX_CONSECUTIVE, speed, ratio)
        max_surprise = self._config.max_surprise
        if max_surprise is not None and (self._surprise is None or self._surprise > max_surprise):
            return Decision(False, Reason.SURPRISE, speed, ratio)
        if not self._v_min <= speed <= self._v_max:
            return Decision(False, Reason.SPEED_OUT_OF_BAND, speed, ratio)
        if not ratio > self._config.tau:
            return Decision(False, Reason.FEW_INTUITIVE, speed, ratio)
        return Decision(True, Reason.EXTRAPOLATE, speed, ratio)

    def _last_speed(self) -> float:
        if self._last is None:
            return float("nan")
        last = self._last[TRANSLATION]
        return float(np.sqrt(last @ last))

    # ------------------------------------------------------------------ cheap path (paper Eq. 2-4 + guards)
    def extrapolate(self, extrapolator: Extrapolator | None = None) -> np.ndarray | None:
        """Predict the next action from the history, or None when the result fails its validity check.

        Translation comes from the extrapolator; rotation and gripper are carried over from t-1. Guards:
        each axis' change from t-1 is capped at the largest per-step change seen in the history, then each
        axis is clipped to ``clip_bound``. Call only after :meth:`decide` said so (needs a full history).

        Args:
            extrapolator: predictor to use instead of the configured one, under the same guards
                (benchmarks compare baselines on the very same history this way).
        """
        if self._fit_count < self._config.buffer_size or self._last is None:
            raise RuntimeError("extrapolate() needs a full buffer; call decide() first")
        if extrapolator is None and isinstance(self._extrapolator, ChunkExtrapolator):
            return self._chunk_action()
        xyz = self._fit[:, TRANSLATION]
        last = self._last
        predict = extrapolator or self._extrapolator
        if self._config.fit_history == "executed":  # consecutive steps, predicting the next: precomputed
            pred = np.asarray(predict(xyz), dtype=np.float64)
            per_step_change = np.abs(np.diff(xyz, axis=0))
        else:
            pred = np.asarray(predict(xyz, self._fit_t, float(self._t)), dtype=np.float64)
            per_step_change = np.abs(np.diff(xyz, axis=0)) / np.diff(self._fit_t)[:, None]
        if self._config.cap_step_change:
            cap = per_step_change.max(axis=0)
            pred = last[TRANSLATION] + np.clip(pred - last[TRANSLATION], -cap, cap)
        pred = np.clip(pred, -self._clip, self._clip)
        if pred.shape != (3,) or not np.isfinite(pred).all():
            return None
        action = last.copy()
        action[TRANSLATION] = pred
        return action

    def _chunk_action(self) -> np.ndarray | None:
        """``extrapolator: chunk``: the newest chunk's row for this step (translation clipped), or None."""
        action = self._extrapolator.action_at(self._t)
        if action is None or action.shape != (ACTION_DIM,):
            return None
        action[TRANSLATION] = np.clip(action[TRANSLATION], -self._clip, self._clip)
        return action

    def offer_chunk(self, rows: np.ndarray) -> None:
        """A model chunk arrived, latency-compensated: ``rows[i]`` (n, 7) is the model's action for the ``i``-th
        step from the next one committed (the caller drops the rows whose time has passed, by the image stamp).

        Used by ``extrapolator: chunk`` only (a no-op otherwise). Its surprise is measured here: the xyz distance
        between the new chunk's row for the next step and the row the cheap path was following (None, so the
        gate calls the model, when the previous chunk did not reach this step).
        """
        if isinstance(self._extrapolator, ChunkExtrapolator):
            surprise = self._extrapolator.offer(rows, self._t)
            if self._config.max_surprise is not None:
                self._surprise = surprise

    # ------------------------------------------------------------------ bookkeeping
    def commit(self, action: np.ndarray, from_model: bool) -> None:
        """Record the action actually executed at this step (7,). Rejects NaN/Inf and wrong shapes."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
        if not np.isfinite(action).all():
            raise ValueError(f"action contains NaN or Inf: {action}")
        if from_model:
            self._learn_from_model(action)
        if from_model or self._config.fit_history == "executed":
            self._fit[:-1] = self._fit[1:]
            self._fit_t[:-1] = self._fit_t[1:]
            self._fit[-1] = action
            self._fit_t[-1] = self._t
            self._fit_count += 1
        self._last = action
        self._t += 1
        self._consecutive = 0 if from_model else self._consecutive + 1

    def _learn_from_model(self, action: np.ndarray) -> None:
        """At a model call: measure the surprise (how far the cheap path's action for this step is from the
        model's) and score an adaptive extrapolator on this step. Nothing to learn before a full history."""
        if self._fit_count < self._config.buffer_size or self._last is None:
            return
        if self._config.max_surprise is not None and not isinstance(self._extrapolator, ChunkExtrapolator):
            predicted = self.extrapolate()
            diff = predicted[TRANSLATION] - action[TRANSLATION] if predicted is not None else None
            self._surprise = None if diff is None else float(np.sqrt(diff @ diff))
        observe = getattr(self._extrapolator, "observe", None)
        if observe is not None:
            xyz = self._fit[:, TRANSLATION]
            if self._config.fit_history == "executed":
                observe(xyz, action[TRANSLATION])
            else:
                observe(xyz, action[TRANSLATION], self._fit_t, float(self._t))

    def step(self, call_model: Callable[[], np.ndarray]) -> StepResult:
        """One scheduled step: decide, extrapolate or call the model, commit, and return what was executed."""
        decision = self.decide()
        reason = decision.reason
        if decision.extrapolate:
            action = self.extrapolate()
            if action is not None:
                self.commit(action, from_model=False)
                return StepResult(action, False, reason)
            reason = Reason.INVALID_EXTRAPOLATION
        action = np.asarray(call_model(), dtype=np.float64)
        self.commit(action, from_model=True)
        return StepResult(action, True, reason)
