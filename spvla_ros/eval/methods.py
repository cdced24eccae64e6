"""Scheduling methods compared in closed loop: when to request a chunk, and what to execute at each step.

A method sees the chunks that have arrived (:class:`ChunkStore`) and, per control step, (1) says whether it
requests a new chunk from this step's observation (:meth:`ChunkMethod.plan`), then (2) picks the executed action
(:meth:`ChunkMethod.act`), or None to wait (zero translation). Actions are 7-vectors
``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in the model's action units (see
:mod:`spvla_ros.core.scheduler_config`). Reading a chunk always takes its row for the current step (row
``step - stamp``: latency compensation by the image stamp).

Kinds:
    ``every_step``   request at every step; execute the newest chunk's row (the synchronous reference at d = 0).
    ``fixed_chunk``  request at steps 0, k, 2k, ...; execute the newest chunk's row (k rows per call, then call).
    ``ensemble``     request every k steps (CogACT: k = 1); execute CogACT's adaptive ensemble of the rows the
                     last ``horizon`` chunks hold for this step (:func:`adaptive_ensemble`).
    ``sp_vla``       :class:`ActionScheduler` with a mode of ``config/scheduler_modes.yaml`` plus overrides: a
                     *model* decision requests a chunk and executes the newest chunk's row for the step; a *cheap*
                     decision executes the mode's extrapolator (``chunk``: the newest chunk's row, offered to
                     the scheduler as chunks arrive).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from spvla_ros.core.policy.ensemble import adaptive_ensemble
from spvla_ros.core.scheduler import ActionScheduler
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.core.scheduler_modes import SchedulerModes, load_scheduler_modes

METHOD_KINDS = ("every_step", "fixed_chunk", "ensemble", "sp_vla")
KEPT_CHUNKS = 16
"""Chunks a store keeps (enough for any ensemble horizon over 16-row chunks)."""


class ChunkStore:
    """The chunks that have arrived in one episode, oldest first, each ``(stamp step, rows (n, 7))``."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[int, np.ndarray]] = deque(maxlen=KEPT_CHUNKS)

    def add(self, stamp: int, rows: np.ndarray) -> None:
        """A chunk predicted from the observation at step ``stamp`` arrived; row i is for step ``stamp + i``."""
        if self._chunks and stamp < self._chunks[-1][0]:
            raise ValueError(f"chunk stamped {stamp} arrived after one stamped {self._chunks[-1][0]}")
        self._chunks.append((int(stamp), np.asarray(rows, dtype=np.float64)))

    def __len__(self) -> int:
        return len(self._chunks)

    def row_at(self, step: int) -> np.ndarray | None:
        """The newest chunk's row for ``step`` (a copy), or None (no chunk yet, or it ends before ``step``)."""
        if not self._chunks:
            return None
        stamp, rows = self._chunks[-1]
        i = step - stamp
        return rows[i].copy() if 0 <= i < rows.shape[0] else None

    def newest_from(self, step: int) -> np.ndarray:
        """The newest chunk's rows from ``step`` on (latency-compensated), shape (>= 0, 7)."""
        stamp, rows = self._chunks[-1]
        return rows[max(0, step - stamp):]

    def rows_at(self, step: int, horizon: int) -> np.ndarray:
        """What each of the newest ``horizon`` chunks predicted for ``step``, oldest first, shape (m <= horizon, 7)
        (chunks that end before ``step`` drop out)."""
        preds = [rows[step - stamp] for stamp, rows in list(self._chunks)[-horizon:] if 0 <= step - stamp < len(rows)]
        return np.array(preds).reshape(-1, self._chunks[-1][1].shape[1]) if preds else np.zeros((0, 0))


class ChunkMethod(Protocol):
    """A per-episode stateful scheduling method (see the module docstring for the call order)."""

    def reset(self) -> None:
        """Start a new episode."""

    def on_chunk(self, step: int, store: ChunkStore) -> None:
        """A chunk arrived at ``step`` (it is the newest in ``store``)."""

    def plan(self, step: int, store: ChunkStore) -> bool:
        """True to request a chunk from the observation at ``step``."""

    def act(self, step: int, store: ChunkStore) -> np.ndarray | None:
        """The executed action (7,) at ``step``, or None to wait."""


class EveryStep:
    """Request at every step; execute the newest chunk's row for the step."""

    def reset(self) -> None:
        pass

    def on_chunk(self, step: int, store: ChunkStore) -> None:
        pass

    def plan(self, step: int, store: ChunkStore) -> bool:
        return True

    def act(self, step: int, store: ChunkStore) -> np.ndarray | None:
        return store.row_at(step)


class FixedChunk(EveryStep):
    """Request every ``k``-th step (step 0 included); execute the newest chunk's row for the step."""

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"fixed_chunk needs an int k >= 1, got {k!r}")
        self.k = k

    def plan(self, step: int, store: ChunkStore) -> bool:
        return step % self.k == 0


class Ensemble(FixedChunk):
    """CogACT's adaptive ensemble over the last ``horizon`` chunks' rows for the step, requests every ``k`` steps."""

    def __init__(self, k: int, horizon: int, alpha: float) -> None:
        super().__init__(k)
        if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= KEPT_CHUNKS:
            raise ValueError(f"ensemble horizon must be an int in [1, {KEPT_CHUNKS}], got {horizon!r}")
        if not np.isfinite(alpha):
            raise ValueError(f"ensemble alpha must be finite, got {alpha!r}")
        self.horizon = horizon
        self.alpha = float(alpha)

    def act(self, step: int, store: ChunkStore) -> np.ndarray | None:
        preds = store.rows_at(step, self.horizon)
        return adaptive_ensemble(preds, self.alpha)[0] if len(preds) else None


class Scheduled:
    """The SP-VLA scheduler (:class:`ActionScheduler`) deciding per step between a chunk request and its cheap path."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.scheduler = ActionScheduler(config)
        self._cheap: np.ndarray | None = None

    def reset(self) -> None:
        self.scheduler.reset()
        self._cheap = None

    def on_chunk(self, step: int, store: ChunkStore) -> None:
        self.scheduler.offer_chunk(store.newest_from(step))

    def plan(self, step: int, store: ChunkStore) -> bool:
        decision = self.scheduler.decide()
        self._cheap = self.scheduler.extrapolate() if decision.extrapolate else None
        return self._cheap is None  # a model decision, or a cheap path that failed its check

    def act(self, step: int, store: ChunkStore) -> np.ndarray | None:
        if self._cheap is not None:
            self.scheduler.commit(self._cheap, from_model=False)
            return self._cheap
        action = store.row_at(step)
        if action is not None:
            self.scheduler.commit(action, from_model=True)
        return action


@dataclass(frozen=True)
class MethodSpec:
    """A named method to evaluate.

    Args:
        name: label in tables and JSON (unique within a run).
        kind: one of :data:`METHOD_KINDS`.
        k: request period in steps for ``fixed_chunk`` and ``ensemble`` (>= 1); ignored otherwise.
        horizon: chunks blended by ``ensemble`` (CogACT: 7 on Bridge, 2 on Fractal).
        alpha: cosine-weight temperature of ``ensemble`` (CogACT: 0.1).
        scheduler: :class:`SchedulerConfig` field overrides for ``sp_vla``, applied on top of the mode.
        mode: scheduling mode of ``sp_vla`` (a name in ``config/scheduler_modes.yaml``), at the run's
            ``speed_range``; ``None`` means ``paper`` (``config/scheduler.yaml``).
    """

    name: str
    kind: str
    k: int = 1
    horizon: int = 7
    alpha: float = 0.1
    scheduler: Mapping[str, object] = field(default_factory=dict)
    mode: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"method name must be a non-empty string, got {self.name!r}")
        if self.kind not in METHOD_KINDS:
            raise ValueError(f"method {self.name!r}: kind must be one of {METHOD_KINDS}, got {self.kind!r}")
        try:
            self.build(SchedulerConfig())  # validates k, horizon, alpha, the mode and the overrides now
        except ValueError as exc:
            raise ValueError(f"method {self.name!r}: {exc}") from exc

    def scheduler_config(self, base: SchedulerConfig, modes: SchedulerModes | None = None) -> SchedulerConfig:
        """``base`` (the paper's rule at the run's speed range) with the mode's, then this method's overrides.

        ValueError on an unknown mode or field, or an invalid value.
        """
        overrides = dict(self.scheduler)
        if self.mode is not None:
            modes = modes or load_scheduler_modes()
            overrides = {**modes.overrides(self.mode), **overrides}
        try:
            return base.with_changes(**overrides)
        except TypeError as exc:  # unknown field name
            raise ValueError(f"bad scheduler overrides {overrides}: {exc}") from exc

    def build(self, base: SchedulerConfig, modes: SchedulerModes | None = None) -> ChunkMethod:
        """A fresh method instance; ``base`` and ``modes`` are used by ``sp_vla`` only."""
        if self.kind == "every_step":
            return EveryStep()
        if self.kind == "fixed_chunk":
            return FixedChunk(self.k)
        if self.kind == "ensemble":
            return Ensemble(self.k, self.horizon, self.alpha)
        return Scheduled(self.scheduler_config(base, modes))

    def describe(self) -> dict[str, object]:
        """The spec as a JSON-ready dict."""
        return {"kind": self.kind, "k": self.k, "horizon": self.horizon, "alpha": self.alpha, "mode": self.mode,
                "scheduler": dict(self.scheduler)}


def method_from_dict(data: Mapping[str, object]) -> MethodSpec:
    """A :class:`MethodSpec` from a YAML mapping ``{name, kind, k?, horizon?, alpha?, scheduler?, mode?}``."""
    allowed = {"name", "kind", "k", "horizon", "alpha", "scheduler", "mode"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown method keys {sorted(unknown)} in {dict(data)}; allowed: {sorted(allowed)}")
    return MethodSpec(
        name=data.get("name", ""),  # type: ignore[arg-type]
        kind=data.get("kind", ""),  # type: ignore[arg-type]
        k=data.get("k", 1),  # type: ignore[arg-type]
        horizon=data.get("horizon", 7),  # type: ignore[arg-type]
        alpha=data.get("alpha", 0.1),  # type: ignore[arg-type]
        scheduler=dict(data.get("scheduler") or {}),  # type: ignore[arg-type]
        mode=data.get("mode"),  # type: ignore[arg-type]
    )
