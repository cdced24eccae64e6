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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np

from spvla_ros.core.extrapolation import Extrapolator, make_extrapolator
from spvla_ros.core.scheduler_config import ACTION_DIM, SchedulerConfig


class Reason(str, Enum):
    """Why a decision was taken (published in the scheduler status)."""

    BUFFER_NOT_FULL = "buffer_not_full"
    MAX_CONSECUTIVE = "max_consecutive"
    SURPRISE = "surprise"
    SPEED_OUT_OF_BAND = "speed_out_of_band"
    FEW_INTUITIVE = "few_intuitive"
    EXTRAPOLATE = "extrapolate"
    INVALID_EXTRAPOLATION = "invalid_extrapolation"


class Decision(NamedTuple):
    """One scheduling decision (immutable; a named tuple because it is built at every step).

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
    """Stateful SP-VLA scheduler over the last ``buffer_size`` executed actions.

    The state is kept incrementally, in Python floats (numpy dispatch on 3-vectors costs more than the
    arithmetic): a ring buffer of the regression history, a running count of its intuitive rows, the last
    action and its speed, and the decision for the next step (cached until the next commit). One step of
    decide + extrapolate + commit costs a few microseconds (``spvla-bench scheduler`` reports it per stage).
    """

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
        else:  # v_min or the intuitive test may have changed: recount the history under the new rule
            self._flags = deque((self._is_intuitive(r) for r in self._rows), maxlen=config.buffer_size)
            self._intuitive = sum(self._flags)
            self._decision = None

    def _apply(self, config: SchedulerConfig) -> None:
        self._extrapolator = make_extrapolator(
            config.extrapolator, config.buffer_size, config.ridge_lambda, config.trend_damping
        )
        self._n = config.buffer_size
        self._v_min = config.v_min_resolved
        self._v_max = config.v_max_resolved
        self._clip = config.clip_bound_resolved
        self._norm_test = config.intuitive_test == "norm"
        self._executed_history = config.fit_history == "executed"
        self._cap_step_change = config.cap_step_change

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Restart the schedule (new episode or instruction): empty history, next step calls the model."""
        n = self._n
        self._rows: deque[tuple[float, ...]] = deque(maxlen=n)  # regression history, oldest first, 7 floats each
        self._steps: deque[float] = deque(maxlen=n)  # step index of each row
        self._flags: deque[bool] = deque(maxlen=n)  # row is intuitive
        # |change| per step index between consecutive rows, per axis (n - 1 each): the step-change cap
        self._change_x: deque[float] = deque(maxlen=n - 1)
        self._change_y: deque[float] = deque(maxlen=n - 1)
        self._change_z: deque[float] = deque(maxlen=n - 1)
        self._intuitive = 0  # sum(self._flags)
        self._fit_count = 0
        self._last: tuple[float, ...] | None = None  # last executed action (carried rotation/gripper, speed band)
        self._last_speed = math.nan
        self._t = 0  # index of the next step
        self._consecutive = 0
        self._surprise: float | None = None  # ||a_xyz - cheap prediction|| at the last model call
        self._decision: Decision | None = None  # decide() for the next step, until the next commit
        if hasattr(self._extrapolator, "reset"):
            self._extrapolator.reset()

    @property
    def buffer(self) -> np.ndarray:
        """The regression history held, oldest first, shape (filled, 7). A copy.

        The last n executed actions (``fit_history: executed``, paper) or the last n model outputs (``model``).
        """
        return np.array(self._rows, dtype=np.float64).reshape(len(self._rows), ACTION_DIM)

    @property
    def consecutive_extrapolations(self) -> int:
        return self._consecutive

    @property
    def last_surprise(self) -> float:
        """``||a_xyz - p_xyz||`` at the last model call, action units per step (NaN until measured).

        ``p`` is what the cheap path would have executed at that step, from the history held then.
        """
        return math.nan if self._surprise is None else self._surprise

    def _is_intuitive(self, row: tuple[float, ...]) -> bool:
        v_min = self._v_min
        x, y, z = row[0], row[1], row[2]
        if self._norm_test:
            return math.sqrt(x * x + y * y + z * z) > v_min
        return abs(x) > v_min and abs(y) > v_min and abs(z) > v_min

    # ------------------------------------------------------------------ decision (paper Eq. 1)
    def decide(self) -> Decision:
        """Decide the path for the next step from the history; no side effects (cached until the next commit)."""
        decision = self._decision
        if decision is None:
            decision = self._decision = self._decide()
        return decision

    def _decide(self) -> Decision:
        n = self._n
        speed = self._last_speed
        if self._fit_count < n or self._last is None:
            return Decision(False, Reason.BUFFER_NOT_FULL, speed, 0.0)
        ratio = self._intuitive / n
        config = self._config
        if self._consecutive >= config.max_open_loop_steps:
            return Decision(False, Reason.MAX_CONSECUTIVE, speed, ratio)
        max_surprise = config.max_surprise
        if max_surprise is not None and (self._surprise is None or self._surprise > max_surprise):
            return Decision(False, Reason.SURPRISE, speed, ratio)
        if not self._v_min <= speed <= self._v_max:
            return Decision(False, Reason.SPEED_OUT_OF_BAND, speed, ratio)
        if not ratio > config.tau:
            return Decision(False, Reason.FEW_INTUITIVE, speed, ratio)
        return Decision(True, Reason.EXTRAPOLATE, speed, ratio)

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
        if self._fit_count < self._n or self._last is None:
            raise RuntimeError("extrapolate() needs a full buffer; call decide() first")
        xyz = self._cheap_xyz(extrapolator or self._extrapolator)
        if xyz is None:
            return None
        return np.array(xyz + self._last[3:])

    def _cheap_xyz(self, predictor: Extrapolator) -> tuple[float, float, float] | None:
        """The guarded translation of the cheap path from the history held, or None when not finite."""
        rows, last = self._rows, self._last
        steps = None if self._executed_history else self._steps
        t_next = None if steps is None else float(self._t)
        predict = getattr(predictor, "predict", None)
        if predict is not None:
            pred = predict(rows, steps, t_next)
        else:  # any Extrapolator callable on numpy arrays
            history = np.array([r[:3] for r in rows], dtype=np.float64)
            out = np.asarray(predictor(history) if steps is None else predictor(history, np.array(steps), t_next),
                             dtype=np.float64)
            if out.shape != (3,):
                return None
            pred = out.tolist()
        px, py, pz = pred[0], pred[1], pred[2]
        # Comparisons, not min()/max() (those cost 0.2 us a call); a NaN passes both and fails the check below.
        if self._cap_step_change:  # each axis' change from t-1 at most the largest per-step change held
            lx, ly, lz = last[0], last[1], last[2]
            cx, cy, cz = max(self._change_x), max(self._change_y), max(self._change_z)
            dx, dy, dz = px - lx, py - ly, pz - lz
            px = lx + (cx if dx > cx else -cx if dx < -cx else dx)
            py = ly + (cy if dy > cy else -cy if dy < -cy else dy)
            pz = lz + (cz if dz > cz else -cz if dz < -cz else dz)
        c = self._clip
        px = c if px > c else -c if px < -c else px
        py = c if py > c else -c if py < -c else py
        pz = c if pz > c else -c if pz < -c else pz
        if not (math.isfinite(px) and math.isfinite(py) and math.isfinite(pz)):
            return None
        return (px, py, pz)

    # ------------------------------------------------------------------ bookkeeping
    def commit(self, action: np.ndarray, from_model: bool) -> None:
        """Record the action actually executed at this step (7,). Rejects NaN/Inf and wrong shapes."""
        if type(action) is np.ndarray and action.dtype == np.float64 and action.shape == (ACTION_DIM,):
            row = tuple(action.tolist())
        else:
            array = np.asarray(action, dtype=np.float64)
            if array.shape != (ACTION_DIM,):
                raise ValueError(f"action must have shape ({ACTION_DIM},), got {array.shape}")
            row = tuple(array.tolist())
        if not all(map(math.isfinite, row)):
            raise ValueError(f"action contains NaN or Inf: {np.array(row)}")
        if from_model:
            self._learn_from_model(row)
        if from_model or self._executed_history:
            if len(self._rows) == self._n:
                self._intuitive -= self._flags[0]  # the oldest row leaves the ring
            flag = self._is_intuitive(row)
            if self._rows:
                prev = self._rows[-1]
                dt = float(self._t) - self._steps[-1]  # 1.0 for the executed history
                self._change_x.append(abs(row[0] - prev[0]) / dt)
                self._change_y.append(abs(row[1] - prev[1]) / dt)
                self._change_z.append(abs(row[2] - prev[2]) / dt)
            self._rows.append(row)
            self._steps.append(float(self._t))
            self._flags.append(flag)
            self._intuitive += flag
            self._fit_count += 1
        self._last = row
        x, y, z = row[0], row[1], row[2]
        self._last_speed = math.sqrt(x * x + y * y + z * z)
        self._t += 1
        self._consecutive = 0 if from_model else self._consecutive + 1
        self._decision = None

    def _learn_from_model(self, row: tuple[float, ...]) -> None:
        """At a model call: measure the surprise (how far the cheap path's action for this step is from the
        model's) and score an adaptive extrapolator on this step. Nothing to learn before a full history."""
        if self._fit_count < self._n or self._last is None:
            return
        if self._config.max_surprise is not None:
            predicted = self._cheap_xyz(self._extrapolator)
            if predicted is None:
                self._surprise = None
            else:
                dx, dy, dz = predicted[0] - row[0], predicted[1] - row[1], predicted[2] - row[2]
                self._surprise = math.sqrt(dx * dx + dy * dy + dz * dz)
        observe = getattr(self._extrapolator, "observe_rows", None)
        if observe is not None:
            steps = None if self._executed_history else self._steps
            observe(self._rows, row, steps, None if steps is None else float(self._t))

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
