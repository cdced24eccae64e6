"""Configuration of the SP-VLA action scheduler (paper Eq. 1-4), validated at construction.

Speed convention (used everywhere in spvla): the *speed* of an action is the Euclidean norm of its
translational part ``||(a_x, a_y, a_z)||`` in the action's own units per action step (e.g. metres per
step for BridgeData deltas). The *intuitive* indicator is per axis, as the paper writes it: a step is
intuitive iff ``|a_x|``, ``|a_y|`` and ``|a_z|`` each exceed ``v_min``.

The speed range is ``[0, speed_range]``; by default ``v_min = 1/4`` and ``v_max = 3/4`` of it (paper).
For recorded data, :func:`speed_range_from_actions` derives ``speed_range`` as a high percentile of the
observed speeds, so the defaults mean the same thing on any robot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from spvla_ros.core.extrapolation import EXTRAPOLATOR_NAMES
from spvla_ros.core.validation import require_finite, require_int_at_least

INTUITIVE_TESTS = ("per_axis", "norm")
FIT_HISTORIES = ("executed", "model")
ACTION_DIM = 7
"""[dx, dy, dz, droll, dpitch, dyaw, gripper]."""
TRANSLATION = slice(0, 3)


@dataclass(frozen=True)
class SchedulerConfig:
    """SP-VLA scheduler settings.

    Args:
        buffer_size: n, how many executed actions are kept and regressed over (paper: 6).
        tau: the cheap path needs (intuitive steps in buffer) / n > tau, in [0, 1] (paper: 0.5).
        speed_range: top of the speed range, action units per step (> 0). Drives the v_min/v_max defaults.
        v_min: lower speed bound, action units per step; ``None`` means ``v_min_fraction * speed_range``.
        v_max: upper speed bound, action units per step; ``None`` means ``v_max_fraction * speed_range``.
        v_min_fraction: default v_min as a fraction of speed_range (paper: 1/4).
        v_max_fraction: default v_max as a fraction of speed_range (paper: 3/4).
        ridge_lambda: L2 penalty of the ridge regression (>= 0). Not given in the paper; 0.1 is ours.
        extrapolator: cheap-path predictor, one of ``ridge`` (paper), ``repeat_last``, ``linear``,
            ``damped_linear``, ``best_of``, ``chunk`` (the newest model chunk's row for the step, offered with
            :meth:`ActionScheduler.offer_chunk`; its surprise is the plan change each new chunk brings).
        trend_damping: share of the last change kept by ``damped_linear``, in [0, 1] (0 = repeat-last,
            1 = linear).
        clip_bound: per-axis bound on an extrapolated translational action, action units per step;
            ``None`` means ``speed_range``.
        cap_step_change: cap each axis' change from the last action at the largest change in the buffer.
        max_consecutive_extrapolations: force a model call after this many cheap steps in a row (>= 1).
            Default 5 = n - 1, so the buffer always holds at least one model output.
        intuitive_test: ``per_axis`` (paper: |a_x|, |a_y|, |a_z| all > v_min) or ``norm`` (||a_xyz|| > v_min,
            which also counts motion along one or two axes).
        fit_history: ``executed`` (paper: decide and regress over the last n executed actions, extrapolations
            included) or ``model`` (only over the last n model outputs, at their true step indices, so the
            rule never approves its own extrapolations).
        max_open_loop_s: bound on the time without a model call [s]; ``None`` for no bound beyond
            ``max_consecutive_extrapolations``. Needs ``action_rate_hz``.
        action_rate_hz: action steps per second, used only to turn ``max_open_loop_s`` into steps.
        max_surprise_fraction: surprise gate, as a fraction of ``speed_range``; ``None`` turns it off. At
            every model call the scheduler measures its *surprise*: ``||a_xyz - p_xyz||``, where ``p`` is what
            the cheap path would have executed at that step. The cheap path is allowed only while the last
            surprise is at most this fraction of ``speed_range`` (and known: before the first measurement
            the model is called).
    """

    # --- paper Eq. 1 ---
    buffer_size: int = 6
    tau: float = 0.5
    speed_range: float = 1.0
    v_min: float | None = None
    v_max: float | None = None
    v_min_fraction: float = 0.25
    v_max_fraction: float = 0.75
    # --- paper Eq. 2-4 ---
    ridge_lambda: float = 0.1
    extrapolator: str = "ridge"
    trend_damping: float = 0.5
    # --- guards (from the method's public code) ---
    clip_bound: float | None = None
    cap_step_change: bool = True
    max_consecutive_extrapolations: int = 5
    # --- variants measured in issue 11 (paper values are the defaults) ---
    intuitive_test: str = "per_axis"
    fit_history: str = "executed"
    max_open_loop_s: float | None = None
    action_rate_hz: float | None = None
    max_surprise_fraction: float | None = None
    # resolved values (filled in __post_init__)
    v_min_resolved: float = field(init=False, repr=False)
    v_max_resolved: float = field(init=False, repr=False)
    clip_bound_resolved: float = field(init=False, repr=False)
    max_open_loop_steps: int = field(init=False, repr=False)
    max_surprise: float | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        require_int_at_least("buffer_size", self.buffer_size, 2)
        require_finite("tau", self.tau)
        if not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {self.tau}")
        require_finite("speed_range", self.speed_range)
        if self.speed_range <= 0:
            raise ValueError(f"speed_range must be > 0, got {self.speed_range}")
        for name in ("v_min_fraction", "v_max_fraction"):
            value = getattr(self, name)
            require_finite(name, value)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        v_min = self.v_min_fraction * self.speed_range if self.v_min is None else self.v_min
        v_max = self.v_max_fraction * self.speed_range if self.v_max is None else self.v_max
        require_finite("v_min", v_min)
        require_finite("v_max", v_max)
        if v_min < 0:
            raise ValueError(f"v_min must be >= 0, got {v_min}")
        if v_min > v_max:
            raise ValueError(f"v_min ({v_min}) must not exceed v_max ({v_max})")
        require_finite("ridge_lambda", self.ridge_lambda)
        if self.ridge_lambda < 0:
            raise ValueError(f"ridge_lambda must be >= 0, got {self.ridge_lambda}")
        if self.extrapolator not in EXTRAPOLATOR_NAMES:
            raise ValueError(f"extrapolator must be one of {EXTRAPOLATOR_NAMES}, got {self.extrapolator!r}")
        require_finite("trend_damping", self.trend_damping)
        if not 0.0 <= self.trend_damping <= 1.0:
            raise ValueError(f"trend_damping must be in [0, 1], got {self.trend_damping}")
        if self.max_surprise_fraction is not None:
            require_finite("max_surprise_fraction", self.max_surprise_fraction)
            if self.max_surprise_fraction < 0:
                raise ValueError(f"max_surprise_fraction must be >= 0, got {self.max_surprise_fraction}")
        clip = self.speed_range if self.clip_bound is None else self.clip_bound
        require_finite("clip_bound", clip)
        if clip <= 0:
            raise ValueError(f"clip_bound must be > 0, got {clip}")
        m = self.max_consecutive_extrapolations
        require_int_at_least("max_consecutive_extrapolations", m, 1)
        if self.intuitive_test not in INTUITIVE_TESTS:
            raise ValueError(f"intuitive_test must be one of {INTUITIVE_TESTS}, got {self.intuitive_test!r}")
        if self.fit_history not in FIT_HISTORIES:
            raise ValueError(f"fit_history must be one of {FIT_HISTORIES}, got {self.fit_history!r}")
        steps = m
        if self.action_rate_hz is not None:
            require_finite("action_rate_hz", self.action_rate_hz)
            if self.action_rate_hz <= 0:
                raise ValueError(f"action_rate_hz must be > 0, got {self.action_rate_hz}")
        if self.max_open_loop_s is not None:
            require_finite("max_open_loop_s", self.max_open_loop_s)
            if self.max_open_loop_s <= 0:
                raise ValueError(f"max_open_loop_s must be > 0, got {self.max_open_loop_s}")
            if self.action_rate_hz is None:
                raise ValueError("max_open_loop_s needs action_rate_hz to convert seconds to steps")
            steps = min(m, int(math.floor(self.max_open_loop_s * self.action_rate_hz + 1e-9)))
        object.__setattr__(self, "max_open_loop_steps", steps)
        surprise = None if self.max_surprise_fraction is None else self.max_surprise_fraction * self.speed_range
        object.__setattr__(self, "max_surprise", surprise)
        object.__setattr__(self, "v_min_resolved", float(v_min))
        object.__setattr__(self, "v_max_resolved", float(v_max))
        object.__setattr__(self, "clip_bound_resolved", float(clip))

    def with_changes(self, **changes: object) -> SchedulerConfig:
        """A validated copy with some fields changed (raises ValueError and leaves ``self`` as it is)."""
        return replace(self, **changes)


def speed_range_from_actions(actions: np.ndarray, percentile: float = 95.0) -> float:
    """Top of the speed range of recorded actions: the ``percentile`` of ``||a_xyz||`` over non-zero steps.

    A percentile rather than the maximum keeps one outlier from stretching the bands. Steps with exactly
    zero translation (padding, episode starts in BridgeData) are excluded.

    Args:
        actions: (N, >=3) actions, translation first, action units per step.
        percentile: in (0, 100].
    """
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] < 3:
        raise ValueError(f"actions must have shape (N, >=3), got {actions.shape}")
    if not np.isfinite(actions[:, TRANSLATION]).all():
        raise ValueError("actions contain NaN or Inf")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    speeds = np.linalg.norm(actions[:, TRANSLATION], axis=1)
    speeds = speeds[speeds > 0]
    if speeds.size == 0:
        raise ValueError("no moving step in the actions: cannot derive a speed range")
    return float(np.percentile(speeds, percentile))
