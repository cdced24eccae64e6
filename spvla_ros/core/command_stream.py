"""From SP-VLA step decisions to a smooth end-effector velocity stream at command rate (ROS-free).

This is the logic of the scheduler node, driven by time only, so that a wall clock, a simulated
``/clock`` and a unit test all give the same stream for the same inputs.

Timeline (integer nanoseconds, so replays are bit-identical): the stream starts at ``t0`` (the first
:meth:`CommandStream.advance_to`). Command tick ``k`` is at ``t0 + round(k * 1e9 / command_rate_hz)``;
action step ``j`` starts at ``t0 + round(j * 1e9 / action_rate_hz)``. The timeline is the clock of the
stamps (ROS time: the wall clock, or ``/clock`` under sim time), so commands are stamped in the time the
safety node compares them with, and chunk rows are chosen against camera stamps. At the first tick of
every step the SP-VLA scheduler (:class:`~spvla_ros.core.scheduler.ActionScheduler`) decides the step's action:

* **extrapolate**: the mode's cheap path: the ridge extrapolation of the buffer (paper Eq. 2-4), another
  extrapolator of the history, or ``chunk``: the newest chunk's row for this step. Each new chunk is offered
  to the scheduler (:meth:`ActionScheduler.offer_chunk`) at the first step start after it lands, as its
  actions for this step and the following ones (chosen by the image stamp as below, resampled at another
  rate), and again after a live change of the scheduler parameters;
* **model**: the action of the newest CogACT chunk for this step (:meth:`CommandStream._chunk_action`).
  A chunk predicted from the image taken at ``s`` holds the actions for ``s, s + 1 chunk step, ...``
  (latency compensation: the row is chosen by the image stamp, not by the arrival time). When the chunk's
  rate equals ``action_rate_hz``, step ``j`` uses row ``round((t_j - s) * rate)``; a chunk at another rate
  is resampled (:func:`resample_rows`): the rows overlapping the step, each weighted by its overlap, so
  velocities and displacement are those of the chunk's own rate. The chunk is *fresh* if no earlier step
  used it, otherwise the step is counted as ``late_model_chunk`` (the model was slower than one step and
  an older prediction of the same model is used);
* **wait**: no usable chunk (start, reset, model too slow for the whole chunk): zero velocity and
  nothing is committed to the buffer.

Model requests (:meth:`CommandStream.poll_request`, also checked at every tick): one request is in flight
at a time, and a new one goes out as soon as (a) none is pending, (b) the schedule wants the model for
the next step (the decision depends on the buffer only, so it is known right after a commit), and (c) no
request went out yet during the current action step. With a model faster than one step this is today's
"one step ahead" request at the step start; with a model slower than one step, the next request leaves
the moment the previous answer lands (the node calls :meth:`poll_request` from the chunk callback), so the
model is never idle while the schedule wants it: requests at ``min(action_rate_hz, 1 / latency)``.

Chunks are refused (:meth:`CommandStream.on_chunk` returns the reason) when stamped before the epoch or more
than ``max_stamp_lead_s`` ahead of the stream clock, older than the chunk held, answering a request sent
before the last reset or clock jump (request-id watermark), or predicted for another instruction than the
current one (``instruction_digest``; before the first instruction any digest is accepted, after it an
empty digest is refused).

Clock jumps: :meth:`CommandStream.advance_to` produces at most ``max_catch_up_s`` of missed ticks; a longer
forward gap, or a step back by more than ``clock_jump_threshold_s``, re-anchors the timeline at the new time
(:meth:`CommandStream.rebase`): the missed ticks are skipped, the schedule restarts (held chunk, pending
request and buffer belong to the old time base), the velocity blends from the last command, and the jump
is reported in :attr:`Advance.jump`. Durations inside the stream (gripper dwell) run on a monotonic
stream time that a jump does not move.

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
from spvla_ros.core.stamps import NS_PER_S, stamp_refusal
from spvla_ros.core.validation import require_finite

MIN_COMMAND_RATE_HZ = 100.0
"""The stream must be at least this fast (issue 6: >= 100 Hz)."""
SAME_RATE_RTOL = 1e-6
"""A chunk rate within this relative tolerance of ``action_rate_hz`` is the same rate (float32 in the msg)."""

DECISION_MODEL = "model"
DECISION_EXTRAPOLATE = "extrapolate"
DECISION_WAIT = "wait"
REASON_LATE_CHUNK = "late_model_chunk"
REASON_NO_CHUNK = "no_chunk"

REFUSE_NOT_STARTED = "stream_not_started"
REFUSE_OLDER_THAN_HELD = "older_than_held"
REFUSE_OLD_REQUEST = "old_request"
REFUSE_OTHER_INSTRUCTION = "other_instruction"
REFUSE_NO_INSTRUCTION_DIGEST = "no_instruction_digest"
JUMP_FORWARD = "clock_jump_forward"
JUMP_BACKWARD = "clock_jump_backward"


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
        max_stamp_lead_s: a chunk whose image stamp is further ahead of the stream clock than this is refused
            (clock offset between the camera's host and this one), s, >= 0.
        max_catch_up_s: at most this much missed time is streamed in one go; a longer forward gap of the
            clock (a jump, a stalled process) skips to the present and restarts the schedule, s, > 0.
            Under sim time, /clock must advance in steps shorter than this.
        clock_jump_threshold_s: a step back of the clock by more than this (a /clock reset), or a wall-clock
            jump by more than this against the steady clock, re-anchors the stream, s, > 0.
    """

    action_rate_hz: float = 5.0
    command_rate_hz: float = 100.0
    blend_fraction: float = 0.5
    max_linear_speed_mps: float = 0.2
    max_angular_speed_radps: float = 0.5
    request_timeout_s: float = 2.0
    max_stamp_lead_s: float = 0.05
    max_catch_up_s: float = 1.0
    clock_jump_threshold_s: float = 0.1

    def __post_init__(self) -> None:
        for name in (
            "action_rate_hz",
            "command_rate_hz",
            "blend_fraction",
            "max_linear_speed_mps",
            "max_angular_speed_radps",
            "request_timeout_s",
            "max_stamp_lead_s",
            "max_catch_up_s",
            "clock_jump_threshold_s",
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
        if self.max_stamp_lead_s < 0:
            raise ValueError(f"max_stamp_lead_s must be >= 0, got {self.max_stamp_lead_s}")
        if self.max_catch_up_s <= 0:
            raise ValueError(f"max_catch_up_s must be > 0, got {self.max_catch_up_s}")
        if self.clock_jump_threshold_s <= 0:
            raise ValueError(f"clock_jump_threshold_s must be > 0, got {self.clock_jump_threshold_s}")

    def with_changes(self, **changes: object) -> StreamConfig:
        """A validated copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A CogACT prediction as the stream uses it.

    Attributes:
        actions: (rows, 7) float64, row j = action for ``image_stamp_ns + j`` chunk steps, model units per
            chunk step.
        image_stamp_ns: time of the image it was predicted from, ns (stream clock).
        action_rate_hz: rate of the rows, Hz.
        request_id: the request it answers (0 = unsolicited).
        keep_ratio: visual-token keep ratio the model ran with.
        model_latency_s: model wall time, s.
        instruction_digest: :func:`~spvla_ros.core.instruction.instruction_digest` of the instruction it was
            predicted for ("" = unknown).
    """

    actions: np.ndarray
    image_stamp_ns: int
    action_rate_hz: float
    request_id: int = 0
    keep_ratio: float = 1.0
    model_latency_s: float = float("nan")
    instruction_digest: str = ""


def make_chunk(
    actions: np.ndarray,
    image_stamp_ns: int,
    action_rate_hz: float,
    request_id: int = 0,
    keep_ratio: float = 1.0,
    model_latency_s: float = float("nan"),
    instruction_digest: str = "",
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
                 float(model_latency_s), str(instruction_digest))


def resample_rows(chunk: Chunk, step_start_ns: int, step_rate_hz: float) -> np.ndarray | None:
    """The action of one stream step ``[step_start, step_start + 1 / step_rate_hz)`` from a chunk at another rate.

    Row ``r`` covers ``[s + r / chunk_rate, s + (r + 1) / chunk_rate)`` (``s`` = image stamp) and its deltas
    are spread evenly over that time; the step gets each overlapping row's deltas times the overlapping share
    of the row, so the result is in model units per *stream* step and ``result * step_rate_hz`` is the row's
    own ``delta * chunk_rate`` velocity. Rotation deltas are summed the same way (exact for rotation-vector
    deltas about one axis, first order otherwise: they are small per step). The gripper value is the row at
    the step start. A step starting before ``s`` is read from ``s`` on (as the same-rate path clamps to row
    0); the part of a step beyond the last row contributes nothing (under-, never over-commanded).

    Returns:
        (7,) action, or None when the step starts after the chunk's last row.
    """
    rows = chunk.actions.shape[0]
    rate = chunk.action_rate_hz
    start = max(0, step_start_ns - chunk.image_stamp_ns) * rate / NS_PER_S  # in chunk rows
    first = math.floor(start)
    if first >= rows:
        return None
    end = start + rate / step_rate_hz
    action = np.zeros(ACTION_DIM)
    r = first
    while r < rows and r < end:
        share = min(end, r + 1) - max(start, r)
        action[:6] += share * chunk.actions[r, :6]
        r += 1
    action[6] = chunk.actions[first, 6]
    return action


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


@dataclass(frozen=True, slots=True)
class ClockJump:
    """The stream clock jumped from ``from_ns`` (last tick produced) to ``to_ns``; the timeline was re-anchored.

    ``kind`` is ``clock_jump_forward`` or ``clock_jump_backward``.
    """

    from_ns: int
    to_ns: int

    @property
    def kind(self) -> str:
        return JUMP_FORWARD if self.to_ns > self.from_ns else JUMP_BACKWARD


@dataclass(slots=True)
class Advance:
    """Everything produced by one :meth:`CommandStream.advance_to`."""

    commands: list[Command]
    steps: list[StepReport]
    requests: list[Request]
    jump: ClockJump | None = None


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
        self._mono_offset_ns = 0  # monotonic stream time = timeline time + this (unchanged by clock jumps)
        self._next_request_id = 1
        self._instruction_digest: str | None = None  # None: no instruction known yet
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
            self._chunk_offered = False  # a new cheap path (e.g. extrapolator: chunk) gets the held chunk
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
        self._chunk_offered = False  # the held chunk was offered to the scheduler's cheap path
        self._pending: Request | None = None
        self._request_step: int | None = None  # step during which the last request went out
        self._request_floor = self._next_request_id  # answers to requests below this id are dropped
        self._v_from = np.zeros(6)
        self._v_to = np.zeros(6)
        self._v_last = np.zeros(6)
        self.counters = Counters()

    def reset(self, instruction_digest: str | None = None) -> None:
        """New instruction/episode: empty buffer, forget chunks and requests; the next tick requests the model.

        Answers to requests sent before the reset are dropped from now on (request-id watermark), even when
        they carry the same instruction (A -> B -> A).

        Args:
            instruction_digest: digest of the new instruction; chunks for any other are refused from now on.
                None keeps the current one (or none: every digest accepted).
        """
        self.scheduler.reset()
        v_last = self._v_last
        self._reset_state()
        self._v_from = self._v_to = self._v_last = v_last  # blend from the current velocity, no step to zero
        if instruction_digest is not None:
            self._instruction_digest = instruction_digest

    @property
    def instruction_digest(self) -> str | None:
        """Digest of the current instruction, or None before the first one."""
        return self._instruction_digest

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

    def chunk_refusal(self, chunk: Chunk) -> str | None:
        """Why ``chunk`` must not be used now (a short reason name), or None (see the module docstring)."""
        if self._last_ns is None:
            return REFUSE_NOT_STARTED
        refusal = stamp_refusal(chunk.image_stamp_ns, self._last_ns, self._stream.max_stamp_lead_s)
        if refusal is not None:
            return refusal
        if 0 < chunk.request_id < self._request_floor:
            return REFUSE_OLD_REQUEST
        if self._instruction_digest is not None and chunk.instruction_digest != self._instruction_digest:
            return REFUSE_OTHER_INSTRUCTION if chunk.instruction_digest else REFUSE_NO_INSTRUCTION_DIGEST
        if self._chunk is not None and chunk.image_stamp_ns < self._chunk.image_stamp_ns:
            return REFUSE_OLDER_THAN_HELD
        return None

    def on_chunk(self, chunk: Chunk) -> str | None:
        """Take a new chunk (validated by :func:`make_chunk`). Returns None, or the reason it was refused."""
        refusal = self.chunk_refusal(chunk)
        if refusal is not None:
            return refusal
        self.counters.chunks_received += 1
        self._chunk, self._chunk_used, self._chunk_offered = chunk, False, False
        if self._pending is not None and chunk.request_id >= self._pending.request_id:
            self._pending = None
        return None

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

    def rebase(self, t_ns: int) -> ClockJump:
        """The clock jumped to ``t_ns``: re-anchor the timeline there and restart the schedule.

        The next tick is at ``t_ns`` and starts a new step; the held chunk, the pending request and the
        buffer (all from the old time base) are dropped, answers to earlier requests are refused, the
        velocity blends from the last command. Counters and the instruction are kept.
        """
        t_ns = int(t_ns)
        last = self._last_ns if self._last_ns is not None else t_ns
        jump = ClockJump(last, t_ns)
        counters = self.counters
        self._mono_offset_ns += last + round(NS_PER_S / self._stream.command_rate_hz) - t_ns
        self.reset()
        self.counters = counters
        self._anchor(t_ns, self._step + 1)
        return jump

    def _jump_of(self, t_ns: int) -> bool:
        last = self._last_ns
        if last is None:
            return False
        if t_ns > last:
            return t_ns - last > self._stream.max_catch_up_s * NS_PER_S
        return last - t_ns > self._stream.clock_jump_threshold_s * NS_PER_S

    def advance_to(self, t_ns: int) -> Advance:
        """Produce every command with a stamp <= ``t_ns`` not produced yet (the first call starts the stream).

        A forward gap longer than ``max_catch_up_s`` or a step back by more than ``clock_jump_threshold_s``
        re-anchors the stream at ``t_ns`` (:meth:`rebase`, reported in ``Advance.jump``); a smaller step back
        produces nothing until the clock passes the last tick again.
        """
        t_ns = int(t_ns)
        out = Advance([], [], [])
        if self._t0_ns is None:
            self._anchor(t_ns, 0)
        elif self._jump_of(t_ns):
            out.jump = self.rebase(t_ns)
        while (tick_ns := self._tick_ns(self._tick)) <= t_ns:
            step = self._step_of(tick_ns)
            if step != self._step:
                self._step = step
                self._step_start_ns = self._step_start(step)
                out.steps.append(self._start_step(tick_ns, step))
            self._last_ns = tick_ns
            request = self._request_if_due(tick_ns)
            if request is not None:
                out.requests.append(request)
            out.commands.append(self._command(tick_ns))
            self._tick += 1
        return out

    # ------------------------------------------------------------------ one action step
    def _start_step(self, now_ns: int, step: int) -> StepReport:
        if not self._chunk_offered and self._chunk is not None:
            self._offer_chunk(now_ns)
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
            switched = self.gripper.update(float(action[ACTION_DIM - 1]), (now_ns + self._mono_offset_ns) / NS_PER_S)
        self._v_from = self._v_last
        if action is None:
            self._v_to = np.zeros(6)
        else:
            twist = action_to_twist(action, self._mapping)
            self._v_to = np.concatenate([twist.linear, twist.angular])
        return StepReport(now_ns, step, path, reason, decision.intuitive_ratio, decision.speed,
                          None if action is None else action.copy(), chunk_stamp, switched)

    def _offer_chunk(self, now_ns: int) -> None:
        """Offer the held chunk's actions for this step and the next ones to a ``chunk`` cheap path."""
        self._chunk_offered = True
        if self.scheduler.config.extrapolator != "chunk":
            return
        rows = []
        step, start_ns = self._step, now_ns  # this step as the model path reads it (first tick), then step starts
        while (action := self._chunk_action(start_ns)) is not None:
            rows.append(action)
            step += 1
            start_ns = self._step_start(step)
        if rows:
            self.scheduler.offer_chunk(np.array(rows))

    def _chunk_action(self, now_ns: int) -> np.ndarray | None:
        """The newest chunk's action for the step starting at ``now_ns`` (model units per stream step), or None."""
        chunk = self._chunk
        if chunk is None:
            return None
        rate = self._stream.action_rate_hz
        if abs(chunk.action_rate_hz - rate) > SAME_RATE_RTOL * rate:
            return resample_rows(chunk, now_ns, rate)
        row = max(0, round((now_ns - chunk.image_stamp_ns) * chunk.action_rate_hz / NS_PER_S))
        if row >= chunk.actions.shape[0]:
            return None
        return chunk.actions[row].copy()

    # ------------------------------------------------------------------ requests
    def poll_request(self) -> Request | None:
        """A request to send now (stamped with the last tick), or None; call it when a chunk has landed."""
        if self._last_ns is None:
            return None
        return self._request_if_due(self._last_ns)

    def _request_if_due(self, now_ns: int) -> Request | None:
        pending = self._pending
        if pending is not None:
            if now_ns - pending.stamp_ns <= self._stream.request_timeout_s * NS_PER_S:
                return None
            self._pending = None  # unanswered: ask again (the policy may have dropped it)
        elif self._request_step == self._step:
            return None  # at most one request per action step: a faster model is not asked more often
        decision = self.scheduler.decide()
        if decision.extrapolate:
            return None
        speed = decision.speed
        request = Request(now_ns, self._next_request_id, self._step + 1, 0.0 if math.isnan(speed) else speed)
        self._next_request_id += 1
        self._pending = request
        self._request_step = self._step
        self.counters.requests_sent += 1
        return request

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
