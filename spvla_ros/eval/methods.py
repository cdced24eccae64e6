"""Scheduling methods compared in closed loop: who decides, per action step, whether the model is called.

Every method turns a ``call_model`` callable (returns the model's (7,) action for the current observation)
into the (7,) action executed at this step, and says whether the model was called. Actions are
``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in the model's action units (see
:mod:`spvla_ros.core.scheduler_config`).

Kinds:
    ``every_step``  call the model at every step (the reference).
    ``fixed_skip``  call at steps 0, k, 2k, ... and repeat the last action in between.
    ``sp_vla``      :class:`spvla_ros.core.scheduler.ActionScheduler` with a :class:`SchedulerConfig`
                    built from a named mode (``config/scheduler_modes.yaml``; default ``paper``) at the
                    run's ``speed_range``, plus the spec's overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from spvla_ros.core.scheduler import ActionScheduler
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.core.scheduler_modes import SchedulerModes, load_scheduler_modes

ModelCall = Callable[[], np.ndarray]

METHOD_KINDS = ("every_step", "fixed_skip", "sp_vla")


class ScheduleMethod(Protocol):
    """A per-episode stateful scheduling policy."""

    def reset(self) -> None:
        """Start a new episode: the next step calls the model."""

    def step(self, call_model: ModelCall) -> tuple[np.ndarray, bool]:
        """(executed action (7,), True iff the model was called at this step)."""


class EveryStep:
    """Call the model at every step."""

    def reset(self) -> None:
        pass

    def step(self, call_model: ModelCall) -> tuple[np.ndarray, bool]:
        return np.asarray(call_model(), dtype=np.float64), True


class FixedSkip:
    """Call the model every ``k``-th step (first step included); repeat the last model action in between."""

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"fixed_skip needs an int k >= 1, got {k!r}")
        self.k = k
        self.reset()

    def reset(self) -> None:
        self._t = 0
        self._last: np.ndarray | None = None

    def step(self, call_model: ModelCall) -> tuple[np.ndarray, bool]:
        called = self._t % self.k == 0 or self._last is None
        if called:
            self._last = np.asarray(call_model(), dtype=np.float64)
        self._t += 1
        return self._last.copy(), called


class SchedulerMethod:
    """The SP-VLA scheduler (:class:`ActionScheduler`) as a closed-loop method."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.scheduler = ActionScheduler(config)

    def reset(self) -> None:
        self.scheduler.reset()

    def step(self, call_model: ModelCall) -> tuple[np.ndarray, bool]:
        result = self.scheduler.step(call_model)
        return result.action, result.from_model


@dataclass(frozen=True)
class MethodSpec:
    """A named method to evaluate.

    Args:
        name: label in tables and JSON (unique within a run).
        kind: one of :data:`METHOD_KINDS`.
        k: model-call period in steps for ``fixed_skip`` (>= 1); ignored otherwise.
        scheduler: :class:`SchedulerConfig` field overrides for ``sp_vla``, applied on top of the mode.
        mode: scheduling mode of ``sp_vla`` (a name in ``config/scheduler_modes.yaml``), at the run's
            ``speed_range``; ``None`` means ``paper`` (``config/scheduler.yaml``).
    """

    name: str
    kind: str
    k: int = 1
    scheduler: Mapping[str, object] = field(default_factory=dict)
    mode: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"method name must be a non-empty string, got {self.name!r}")
        if self.kind not in METHOD_KINDS:
            raise ValueError(f"method {self.name!r}: kind must be one of {METHOD_KINDS}, got {self.kind!r}")
        if self.kind == "fixed_skip" and (isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1):
            raise ValueError(f"method {self.name!r}: k must be an int >= 1, got {self.k!r}")
        if self.kind == "sp_vla":
            self.scheduler_config(SchedulerConfig())  # validate the mode and the overrides now

    def scheduler_config(self, base: SchedulerConfig, modes: SchedulerModes | None = None) -> SchedulerConfig:
        """``base`` (the paper's rule at the run's speed range) with the mode's, then this method's overrides.

        ValueError on an unknown mode or field, or an invalid value.
        """
        overrides = dict(self.scheduler)
        if self.mode is not None:
            modes = modes or load_scheduler_modes()
            try:
                overrides = {**modes.overrides(self.mode), **overrides}
            except ValueError as exc:
                raise ValueError(f"method {self.name!r}: {exc}") from exc
        try:
            return base.with_changes(**overrides)
        except TypeError as exc:  # unknown field name
            raise ValueError(f"method {self.name!r}: bad scheduler overrides {overrides}: {exc}") from exc

    def build(self, base: SchedulerConfig, modes: SchedulerModes | None = None) -> ScheduleMethod:
        """A fresh method instance; ``base`` (the paper's config at the data-derived speed range) and
        ``modes`` are used by ``sp_vla`` only."""
        if self.kind == "every_step":
            return EveryStep()
        if self.kind == "fixed_skip":
            return FixedSkip(self.k)
        return SchedulerMethod(self.scheduler_config(base, modes))


def method_from_dict(data: Mapping[str, object]) -> MethodSpec:
    """A :class:`MethodSpec` from a YAML mapping ``{name, kind, k?, scheduler?, mode?}``; unknown keys are errors."""
    allowed = {"name", "kind", "k", "scheduler", "mode"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown method keys {sorted(unknown)} in {dict(data)}; allowed: {sorted(allowed)}")
    return MethodSpec(
        name=data.get("name", ""),  # type: ignore[arg-type]
        kind=data.get("kind", ""),  # type: ignore[arg-type]
        k=data.get("k", 1),  # type: ignore[arg-type]
        scheduler=dict(data.get("scheduler") or {}),  # type: ignore[arg-type]
        mode=data.get("mode"),  # type: ignore[arg-type]
    )
