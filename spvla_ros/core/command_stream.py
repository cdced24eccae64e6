"""From SP-VLA step decisions to a smooth end-effector velocity stream at command rate (ROS-free).

This is the logic of the scheduler node, driven by time only, so that a wall clock, a simulated
``/clock`` and a unit test all give the same stream for the same inputs.

Timeline (integer nanoseconds, so replays are bit-identical): the stream starts at ``t0`` (the first
:meth:`CommandStream.advance_to`). Command tick ``k`` is at ``t0 + round(k * 1e9 / command_rate_hz)``;
action step ``j`` starts at ``t0 + round(j * 1e9 / action_rate_hz)``. At the first tick of every step
the SP-VLA scheduler (:class:`~spvla_ros.core.scheduler.ActionScheduler`) decides the step's action:

* **extrapolate**: the ridge extrapolation of the buffer (paper Eq. 2-4);
* **model**: the action of the newest CogACT chunk for this step. A chunk predicted from the image taken
  at ``s`` holds the actions for ``s, s + 1 step, ...``; step ``j`` uses row ``round((t_j - s) * rate)``.
  The chunk is *fresh* if no earlier step used it, otherwise the step is counted as ``late_model_chunk``
  (the model was slower than one step and an older prediction of the same model is used);
* **wait**: no usable chunk (start, reset, model too slow for the whole chunk): zero velocity and
  nothing is committed to the buffer.

Model calls are *requested one step ahead*: right after step ``j`` is committed the decision for step
``j + 1`` is already known (it depends on the buffer only), so when it is "model" an
:class:`InferenceRequest` goes out at ``t_j`` and the model has a whole step to answer on the newest frame.

Within a step the velocity blends from the previous step's twist to the new one with a smoothstep over
``blend_fraction`` of the step, then holds. This keeps the commanded acceleration bounded; the price is a
displacement lag of ``blend_fraction / 2`` step times the velocity change, which the closed loop absorbs.
Each command is finally scaled down, direction kept, to ``max_linear_speed_mps`` / ``max_angular_speed_radps``.
Velocities are in the command frame (the FR3 base frame ``fr3_link0`` for ``base`` action mappings).

Gripper: the gripper value of every *executed* action (model or extrapolated: extrapolation carries it from
t-1) goes through :class:`~spvla_ros.core.gripper.GripperHysteresis` at the step start time; a step whose
value switches the hysteresis state reports it in ``StepReport.gripper``. Nothing else ever does, so a
noisy value or a carried-over one sends no extra command. A reset (new instruction) keeps the hand state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from spvla_ros.core.action_mapping import ActionMappingConfig, action_to_twist
from spvla_ros.core.gripper import GripperConfig, GripperHysteresis, GripperState
from spvla_ros.core.scheduler import ActionScheduler, Decision, Reason
from spvla_ros.core.scheduler_config import ACTION_DIM, SchedulerConfig
from spvla_ros.core.validation import require_finite

NS_PER_S = 1_000_000_000
MIN_COMMAND_RATE_HZ = 100.0
"""The stream must be at least this fast (issue 6: >= 100 Hz)."""

DECISION_MODEL = "model"
DECISION_EXTRAPOLATE = "extrapolate"
DECISION_WAIT = "wait"
REASON_LATE_CHUNK = "late_model_chunk"
REASON_NO_CHUNK = "no_chunk"


@dataclass(frozen=True)
class StreamConfig:
    """Timing and limits of the command stream.

    Args:
        action_rate_hz: SP-VLA decisions per second; the data rate of the checkpoint (Bridge: 5 Hz), > 0.
        command_rate_hz: velocity commands per second, >= 100 and >= action_rate_hz.
        blend_fraction: share of a step over which the velocity blends to the new step's value, [0, 1];
            0 = step change at the step start.
        max_linear_speed_mps: norm limit of the commanded linear velocity, m/s, in (0, 3.0] (FR3: 3.0).
        max_angular_speed_radps: norm limit of the commanded angular velocity, rad/s, in (0, 2.5] (FR3: 2.5).
        request_timeout_s: an unanswered inference request is sent again after this long, s, > 0.
    """

    action_rate_hz: float = 5.0
    command_rate_hz: float = 100.0
    blend_fraction: float = 0.5
    max_linear_speed_mps: float = 0.2
    max_angular_speed_radps: float = 0.5
    request_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        for name in (
            "action_rate_hz",
            "command_rate_hz",
            "blend_fraction",
            "max_linear_speed_mps",
            "max_angular_speed_radps",
            "request_timeout_s",
        ):
            require_finite(name, getattr(self, name))
        if self.action_rate_hz <= 0:
            raise ValueError(f"action_rate_hz must be > 0, got {self.action_rate_hz}")
        if self.command_rate_hz < MIN_COMMAND_RATE_HZ:
            raise ValueError(f"command_rate_hz must be >= {MIN_COMMAND_RATE_HZ}, got {self.command_rate_hz}")
        if self.command_rate_hz < self.action_rate_hz:
            raise ValueError(
                f"command_rate_hz ({self.command_rate_hz}) must be >= action_rate_hz ({self.action_rate_hz})"
            )
        if not 0.0 <= self.blend_fraction <= 1.0:
            raise ValueError(f"blend_fraction must be in [0, 1], got {self.blend_fraction}")
        if not 0.0 < self.max_linear_speed_mps <= 3.0:
            raise ValueError(f"max_linear_speed_mps must be in (0, 3.0] (FR3 limit), got {self.max_linear_speed_mps}")
        if not 0.0 < self.max_angular_speed_radps <= 2.5:
            raise ValueError(
                f"max_angular_speed_radps must be in (0, 2.5] (FR3 limit), got {self.max_angular_speed_radps}"
            )
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")

    def with_changes(self, **changes: object) -> StreamConfig:
        """A validated copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A CogACT prediction as the stream uses it.

    Attributes:
        actions: (rows, 7) float64, row j = action for ``image_stamp_ns + j`` action steps, model units per step.
        image_stamp_ns: time of the image it was predicted from, ns (stream clock).
        action_rate_hz: rate of the rows, Hz.
        request_id: the request it answers (0 = unsolicited).
        keep_ratio: visual-token keep ratio the model ran with.
        model_latency_s: model wall time, s.
    """

    actions: np.ndarray
    image_stamp_ns: int
    action_rate_hz: float
    request_id: int = 0
    keep_ratio: float = 1.0
    model_latency_s: float = float("nan")


def make_chunk(
    actions: np.ndarray,
    image_stamp_ns: int,
    action_rate_hz: float,
    request_id: int = 0,
    keep_ratio: float = 1.0,
    model_latency_s: float = float("nan"),
) -> Chunk:
    """Validate and build a :class:`Chunk`; raises ValueError on a wrong shape, NaN/Inf or a bad rate."""
    actions = np.array(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != ACTION_DIM:
        raise ValueError(f"chunk must have shape (rows >= 1, {ACTION_DIM}), got {actions.shape}")
    if not np.isfinite(actions).all():
        raise ValueError("chunk contains NaN or Inf")
    if not math.isfinite(action_rate_hz) or action_rate_hz <= 0:
        raise ValueError(f"chunk action_rate_hz must be finite and > 0, got {action_rate_hz}")
    return Chunk(actions, int(image_stamp_ns), float(action_rate_hz), int(request_id), float(keep_ratio),
                 float(model_latency_s))


@dataclass(frozen=True, slots=True)
class Command:
    """One velocity command: ``linear`` (3,) m/s and ``angular`` (3,) rad/s in the command frame."""

    stamp_ns: int
    step: int
    linear: np.ndarray
    angular: np.ndarray


@dataclass(frozen=True, slots=True)
class StepReport:
    """What happened at the start of one action step (becomes a SchedulerStatus message)."""

    stamp_ns: int
    step: int
    decision: str
    reason: str
    intuitive_ratio: float
    speed: float
    action: np.ndarray | None
    chunk_image_stamp_ns: int | None
    gripper: GripperState | None = None  # the hand state this step switched to, if it switched


@dataclass(frozen=True, slots=True)
class Request:
    """Ask the policy for a chunk on its newest frame; ``speed`` (model units per step) sets the keep ratio."""

    stamp_ns: int
    request_id: int
    for_step: int
    speed: float


@dataclass(slots=True)
class Advance:
    """Everything produced by one :meth:`CommandStream.advance_to`."""

    commands: list[Command]
    steps: list[StepReport]
    requests: list[Request]


@dataclass(slots=True)
class Counters:
    """Since start or the last reset."""

    model_steps: int = 0
    extrapolated_steps: int = 0
    wait_steps: int = 0
    late_chunk_steps: int = 0
    requests_sent: int = 0
    chunks_received: int = 0


def smoothstep(x: float) -> float:
    """3x^2 - 2x^3 on [0, 1], clamped outside: zero slope at both ends."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def limit_norm(v: np.ndarray, limit: float) -> np.ndarray:
    """Scale ``v`` down (direction kept) so that ``||v|| <= limit``."""
    norm = float(np.sqrt(v @ v))
    return v * (limit / norm) if norm > limit else v


class CommandStream:
    """SP-VLA scheduler + chunk bookkeeping + interpolation, advanced by time (see the module docstring)."""

    def __init__(
        self,
        scheduler_config: SchedulerConfig | None = None,
        stream_config: StreamConfig | None = None,
        mapping_config: ActionMappingConfig | None = None,
        gripper_config: GripperConfig | None = None,
    ) -> None:
        self._stream = stream_config or StreamConfig()
        self.gripper = GripperHysteresis(gripper_config)
        self._mapping = self._mapping_for(mapping_config or ActionMappingConfig(), self._stream)
        self.scheduler = ActionScheduler(scheduler_config)
        self._t0_ns: int | None = None
        self._tick = 0  # next tick index relative to the anchor
        self._step_base = 0  # step index of the anchor
        self._step = -1  # current step (-1: none yet)
        self._step_start_ns = 0
        self._last_ns: int | None = None
        self._next_request_id = 1
        self._reset_state()

    # ------------------------------------------------------------------ configuration
    @staticmethod
    def _mapping_for(mapping: ActionMappingConfig, stream: StreamConfig) -> ActionMappingConfig:
        if mapping.action_frame != "base":
            raise ValueError(
                f"the scheduler node streams base-frame twists; action_frame {mapping.action_frame!r} needs the "
                "measured end-effector pose, which this node does not subscribe"
            )
        return replace(mapping, action_rate_hz=stream.action_rate_hz)

    @property
    def stream_config(self) -> StreamConfig:
        return self._stream

    @property
    def mapping_config(self) -> ActionMappingConfig:
        return self._mapping

    def reconfigure(
        self,
        scheduler_config: SchedulerConfig | None = None,
        stream_config: StreamConfig | None = None,
        mapping_config: ActionMappingConfig | None = None,
        gripper_config: GripperConfig | None = None,
    ) -> None:
        """Apply new (validated) configs live. A new rate re-anchors the timeline: the next tick starts a step."""
        if gripper_config is not None:
            self.gripper.config = gripper_config
        stream = stream_config or self._stream
        mapping = self._mapping_for(mapping_config or self._mapping, stream)
        if scheduler_config is not None:
            self.scheduler.reconfigure(scheduler_config)
        rates_changed = (stream.action_rate_hz, stream.command_rate_hz) != (
            self._stream.action_rate_hz,
            self._stream.command_rate_hz,
        )
        self._stream, self._mapping = stream, mapping
        if rates_changed and self._last_ns is not None:
            self._anchor(self._last_ns + round(NS_PER_S / stream.command_rate_hz), self._step + 1)

    def _anchor(self, t_ns: int, step: int) -> None:
        self._t0_ns, self._tick, self._step_base = t_ns, 0, step

    def _reset_state(self) -> None:
        self._chunk: Chunk | None = None
        self._chunk_used = False
        self._pending: Request | None = None
        self._request_now = True
        self._v_from = np.zeros(6)
        self._v_to = np.zeros(6)
        self._v_last = np.zeros(6)
        self.counters = Counters()

    def reset(self) -> None:
        """New instruction/episode: empty buffer, forget chunks and requests; the next tick requests the model."""
        self.scheduler.reset()
        v_last = self._v_last
        self._reset_state()
        self._v_from = self._v_to = v_last  # keep blending from the current velocity, towards zero

    # ------------------------------------------------------------------ inputs
    @property
    def pending_request(self) -> Request | None:
        return self._pending

    @property
    def last_chunk(self) -> Chunk | None:
        return self._chunk

    @property
    def processed_until_ns(self) -> int | None:
        """Stamp of the last command produced (None before the first)."""
        return self._last_ns

    @property
    def step(self) -> int:
        return self._step

    def on_chunk(self, chunk: Chunk) -> bool:
        """Take a new chunk (validated by :func:`make_chunk`). Returns False when it is older than the one held."""
        if self._chunk is not None and chunk.image_stamp_ns < self._chunk.image_stamp_ns:
            return False
        self.counters.chunks_received += 1
        self._chunk, self._chunk_used = chunk, False
        if self._pending is not None and chunk.request_id >= self._pending.request_id:
            self._pending = None
        return True

    # ------------------------------------------------------------------ time
    def _tick_ns(self, k: int) -> int:
        return self._t0_ns + round(k * NS_PER_S / self._stream.command_rate_hz)

    def _step_of(self, t_ns: int) -> int:
        """The largest step whose start is <= t_ns (exact in integer ns)."""
        step = self._step_base + math.floor((t_ns - self._t0_ns) * self._stream.action_rate_hz / NS_PER_S)
        while self._step_start(step + 1) <= t_ns:
            step += 1
        while step > self._step_base and self._step_start(step) > t_ns:
            step -= 1
        return step

    def _step_start(self, step: int) -> int:
        return self._t0_ns + round((step - self._step_base) * NS_PER_S / self._stream.action_rate_hz)

    def advance_to(self, t_ns: int) -> Advance:
        """Produce every command with a stamp <= ``t_ns`` not produced yet (the first call starts the stream)."""
        out = Advance([], [], [])
        if self._t0_ns is None:
            self._anchor(int(t_ns), 0)
        while (tick_ns := self._tick_ns(self._tick)) <= t_ns:
            step = self._step_of(tick_ns)
            if step != self._step:
                self._step = step
                self._step_start_ns = self._step_start(step)
                out.steps.append(self._start_step(tick_ns, step))
            self._maybe_request(tick_ns, out.requests)
            out.commands.append(self._command(tick_ns))
            self._last_ns = tick_ns
            self._tick += 1
        return out

    # ------------------------------------------------------------------ one action step
    def _start_step(self, now_ns: int, step: int) -> StepReport:
        decision: Decision = self.scheduler.decide()
        reason = decision.reason.value
        action = None
        path = DECISION_WAIT
        chunk_stamp = None
        if decision.extrapolate:
            action = self.scheduler.extrapolate()
            if action is not None:
                self.scheduler.commit(action, from_model=False)
                path = DECISION_EXTRAPOLATE
                self.counters.extrapolated_steps += 1
            else:
                reason = Reason.INVALID_EXTRAPOLATION.value
        if action is None:
            action = self._chunk_action(now_ns)
            if action is not None:
                if self._chunk_used:
                    reason = REASON_LATE_CHUNK
                    self.counters.late_chunk_steps += 1
                self._chunk_used = True
                chunk_stamp = self._chunk.image_stamp_ns
                self.scheduler.commit(action, from_model=True)
                path = DECISION_MODEL
                self.counters.model_steps += 1
            else:
                reason = REASON_NO_CHUNK
                self.counters.wait_steps += 1
        switched = None
        if action is not None:
            switched = self.gripper.update(float(action[ACTION_DIM - 1]), now_ns / NS_PER_S)
        self._v_from = self._v_last
        if action is None:
            self._v_to = np.zeros(6)
        else:
            twist = action_to_twist(action, self._mapping)
            self._v_to = np.concatenate([twist.linear, twist.angular])
        # Decide the next step now (it depends on the buffer only) and ask the model a step ahead,
        # unless a request is already out (its answer will serve the next step).
        self._request_now = self._pending is None and not self.scheduler.decide().extrapolate
        return StepReport(now_ns, step, path, reason, decision.intuitive_ratio, decision.speed,
                          None if action is None else action.copy(), chunk_stamp, switched)

    def _chunk_action(self, now_ns: int) -> np.ndarray | None:
        chunk = self._chunk
        if chunk is None:
            return None
        row = max(0, round((now_ns - chunk.image_stamp_ns) * chunk.action_rate_hz / NS_PER_S))
        if row >= chunk.actions.shape[0]:
            return None
        return chunk.actions[row].copy()

    def _maybe_request(self, now_ns: int, requests: list[Request]) -> None:
        pending = self._pending
        if pending is not None and now_ns - pending.stamp_ns > self._stream.request_timeout_s * NS_PER_S:
            pending = self._pending = None
            self._request_now = True
        if not self._request_now or pending is not None:
            return
        self._request_now = False
        speed = self.scheduler.decide().speed
        request = Request(now_ns, self._next_request_id, self._step + 1, 0.0 if math.isnan(speed) else speed)
        self._next_request_id += 1
        self._pending = request
        self.counters.requests_sent += 1
        requests.append(request)

    def _command(self, tick_ns: int) -> Command:
        period_ns = NS_PER_S / self._stream.action_rate_hz
        phase = (tick_ns - self._step_start_ns) / period_ns
        blend = self._stream.blend_fraction
        s = 1.0 if blend <= 0 else smoothstep(phase / blend)
        v = self._v_from + (self._v_to - self._v_from) * s
        linear = limit_norm(v[:3], self._stream.max_linear_speed_mps)
        angular = limit_norm(v[3:], self._stream.max_angular_speed_radps)
        self._v_last = np.concatenate([linear, angular])
        return Command(tick_ns, self._step, linear, angular)
