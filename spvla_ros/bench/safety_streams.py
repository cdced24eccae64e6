"""Adversarial command streams for the safety layer, and a runner that sends them to an FR3 (or franka-sim)
with the layer (through :class:`~spvla_ros.robot.franka_libfranka.LibfrankaVelocityBackend`) or without it
(a naive relay that writes the newest input every 1 ms, as a controller without a safety layer would).

Used by ``spvla-bench safety`` and by ``test/e2e/test_franka_sim.py``. Twists are [vx, vy, vz, wx, wy, wz]
in m/s and rad/s, FR3 base frame. Times are robot time (``state.time``: 1 ms per control cycle) when the
backend runs on it (``use_robot_time``), so stream timing and stop times do not stretch when the host is
loaded and franka-sim serves cycles late; the host's wall-clock figure is kept beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from spvla_ros.core.safety import SafetyConfig, SafetyLayer

NO_INPUT = None
"""What a stream returns while upstream is silent (stalled or dead)."""
FRAME_ID = "fr3_link0"
INPUT_PERIOD_S = 0.02
"""Most streams arrive at 50 Hz (a fast scheduler); the watchdog timeout is two of these."""
CONTROL_PERIOD_S = 0.001
STREAM_DURATION_S = 1.0
"""How long each stream is fed; the ramp down after it is extra."""
LIMIT_LIN_MPS = 3.0
LIMIT_ANG_RADPS = 2.5


def _twist(vx: float = 0.0, vy: float = 0.0, vz: float = 0.0, wx: float = 0.0, wy: float = 0.0,
           wz: float = 0.0) -> np.ndarray:
    return np.array([vx, vy, vz, wx, wy, wz], dtype=np.float64)


@dataclass(frozen=True)
class CommandStream:
    """A synthetic upstream.

    Attributes:
        name: short id (JSON key).
        input_period_s: how often it publishes, s.
        value: time since start (s) -> twist (6,), or ``NO_INPUT`` when upstream is silent.
        silent_from_s: time after which it never publishes again (killed upstream), s; ``inf`` if never.
    """

    name: str
    input_period_s: float
    value: Callable[[float], np.ndarray | None]
    silent_from_s: float = math.inf


def _step(t: float) -> np.ndarray:
    return _twist(vx=1.0) if 0.1 <= t < 0.4 else _twist()


def _sign_flip(t: float) -> np.ndarray:
    sign = 1.0 if int(round(t / CONTROL_PERIOD_S)) % 2 == 0 else -1.0
    return _twist(vy=sign * 1.0, wz=sign * 1.0)


def _nan_inf(t: float) -> np.ndarray:
    k = int(round(t / INPUT_PERIOD_S))
    bad = (math.nan, math.inf, -math.inf)
    if k % 4 == 3:
        return _twist(vz=bad[(k // 4) % 3], wx=0.0)
    return _twist(vz=-0.1)


def _spike(t: float) -> np.ndarray:
    k = int(round(t / INPUT_PERIOD_S))
    if k % 5 == 2:
        return _twist(vx=-10 * LIMIT_LIN_MPS, wz=10 * LIMIT_ANG_RADPS)
    return _twist(vx=-0.05)


def _stall(t: float) -> np.ndarray | None:
    return NO_INPUT if 0.3 <= t < 0.4 else _twist(vy=-0.1)


def _killed(t: float) -> np.ndarray | None:
    return NO_INPUT if t >= 0.3 else _twist(vx=0.2)


STREAMS = (
    CommandStream("step_1mps", INPUT_PERIOD_S, _step),
    CommandStream("sign_flip_every_ms", CONTROL_PERIOD_S, _sign_flip),
    CommandStream("nan_inf", INPUT_PERIOD_S, _nan_inf),
    CommandStream("spike_10x_limit", INPUT_PERIOD_S, _spike),
    CommandStream("stall_100ms", INPUT_PERIOD_S, _stall),
    CommandStream("killed_upstream", INPUT_PERIOD_S, _killed, silent_from_s=0.3),
)


def bench_safety_config(config: SafetyConfig | None = None) -> SafetyConfig:
    """The shipped defaults with the watchdog timeout at two input periods of these streams."""
    from dataclasses import replace

    from spvla_ros.core.safety import load_safety_config

    return replace(config or load_safety_config(), command_timeout_s=2 * INPUT_PERIOD_S)


@dataclass
class StreamResult:
    """Outcome of one stream, with or without the layer.

    Attributes:
        name: the stream.
        filtered: sent through the safety layer (True) or by the naive relay (False).
        commands: commands written (1 kHz), (N, 6).
        aborted: the motion was aborted by the robot (a reflex) or a command was refused.
        abort_message: libfranka's message.
        reflex: the abort came from the robot (``ControlException``), not from a client-side refusal.
        filter_s: time in the safety layer per cycle, s (empty for the relay).
        last_input_s: clock time of the last input before a silence that lasted to the end, s.
        rest_s: clock time of the first cycle from which the output stayed exactly zero, s.
        tick_times_s: clock time of each cycle (the layer's clock: robot time with ``use_robot_time``), s.
        wall_times_s: host monotonic time of each cycle, s.
        last_input_index: cycle of the last input before a final silence (-1 if n/a).
        rest_index: first cycle from which the output stayed exactly zero (-1 if n/a).
        counters: the layer's intervention counters after the run.
    """

    name: str
    filtered: bool
    commands: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    aborted: bool = False
    abort_message: str = ""
    reflex: bool = False
    filter_s: list[float] = field(default_factory=list)
    last_input_s: float = math.nan
    rest_s: float = math.nan
    tick_times_s: list[float] = field(default_factory=list)
    wall_times_s: list[float] = field(default_factory=list)
    last_input_index: int = -1
    rest_index: int = -1
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def stop_time_s(self) -> float:
        """Time from the last input (before a final silence) until the output was at rest, s (nan if n/a),
        on the layer's clock (robot time with ``use_robot_time``)."""
        return self.rest_s - self.last_input_s

    @property
    def stop_cycles(self) -> int:
        """Control cycles from the last input until the output was at rest (-1 if n/a)."""
        if self.rest_index < 0 or self.last_input_index < 0:
            return -1
        return self.rest_index - self.last_input_index

    @property
    def stop_time_wall_s(self) -> float:
        """:attr:`stop_time_s` measured on the host's wall clock, s (nan if n/a)."""
        if self.stop_cycles < 0 or self.rest_index >= len(self.wall_times_s):
            return math.nan
        return self.wall_times_s[self.rest_index] - self.wall_times_s[self.last_input_index]


class _Feeder:
    """Calls ``sink(twist, now_s)`` whenever the stream publishes."""

    def __init__(self, stream: CommandStream, sink: Callable[[np.ndarray, float], None]) -> None:
        self.stream, self.sink = stream, sink
        self.start_s: float | None = None
        self.next_input_s = 0.0
        self.last_input_s = math.nan
        self.last_input_index = -1
        self.ticks: list[float] = []

    def __call__(self, now_s: float) -> None:
        if self.start_s is None:
            self.start_s = now_s
        self.ticks.append(now_s)
        t = now_s - self.start_s
        if t < self.next_input_s or t >= STREAM_DURATION_S or t >= self.stream.silent_from_s:
            return
        self.next_input_s += self.stream.input_period_s
        twist = self.stream.value(t)
        if twist is not NO_INPUT:
            self.last_input_s = now_s
            self.last_input_index = len(self.ticks) - 1
            self.sink(twist, now_s)


def run_filtered(backend: object, stream: CommandStream) -> StreamResult:
    """Send ``stream`` through ``backend.layer`` (a LibfrankaVelocityBackend) for one motion."""
    layer: SafetyLayer = backend.layer
    ok, message = layer.arm()
    if not ok:
        raise RuntimeError(f"cannot arm the safety layer: {message}")
    feeder = _Feeder(stream, lambda twist, now: layer.submit(twist, 0.0, FRAME_ID, now))
    record = backend.run_motion(per_tick=feeder, max_duration_s=STREAM_DURATION_S)
    result = StreamResult(stream.name, True, np.array(record.commands).reshape(-1, 6), record.aborted,
                          record.abort_message, record.aborted, record.filter_s, tick_times_s=feeder.ticks,
                          wall_times_s=record.wall_time_s)
    result.counters = layer.snapshot(backend.clock()).counters
    if math.isfinite(stream.silent_from_s):
        result.last_input_s = feeder.last_input_s
        result.last_input_index = feeder.last_input_index
        result.rest_index = _rest_index(result.commands, feeder.ticks)
        result.rest_s = feeder.ticks[result.rest_index] if result.rest_index >= 0 else math.nan
    return result


def run_unfiltered(robot: object, stream: CommandStream) -> StreamResult:
    """Send ``stream`` to ``robot`` (a ``pylibfranka.Robot``) with no layer: each ms, the newest input."""
    import pylibfranka as pf

    result = StreamResult(stream.name, False)
    latest = [np.zeros(6)]
    feeder = _Feeder(stream, lambda twist, now: latest.__setitem__(0, twist))
    commands = []
    try:
        control = robot.start_cartesian_velocity_control(pf.ControllerMode.CartesianImpedance)
        start_s = None
        while True:
            state, _period = control.readOnce()
            now_s = state.time.to_sec()  # robot time, like the filtered run
            start_s = now_s if start_s is None else start_s
            feeder(now_s)
            done = now_s - start_s >= STREAM_DURATION_S
            twist = np.zeros(6) if done else latest[0]
            command = pf.CartesianVelocities(twist.tolist())
            command.motion_finished = done
            commands.append(twist)
            control.writeOnce(command)
            if done:
                break
    except pf.ControlException as err:  # the robot aborted the motion: a reflex
        result.aborted, result.reflex, result.abort_message = True, True, str(err)
    except (pf.CommandException, ValueError, RuntimeError) as err:  # refused before reaching the robot
        result.aborted, result.abort_message = True, f"{type(err).__name__}: {err}"
    result.commands = np.array(commands).reshape(-1, 6)
    result.tick_times_s = feeder.ticks
    return result


def _rest_index(commands: np.ndarray, ticks: list[float]) -> int:
    """First cycle from which every later command is exactly zero (-1 if never)."""
    moving = np.flatnonzero(np.any(commands != 0.0, axis=1))
    if len(ticks) != len(commands) or len(moving) == 0:
        return -1
    first_rest = int(moving[-1]) + 1
    return first_rest if first_rest < len(ticks) else -1


def stream_kinematics(commands: np.ndarray, period_s: float = CONTROL_PERIOD_S) -> dict[str, float]:
    """Peak linear/angular velocity, acceleration and jerk norms of a 1 kHz command sequence.

    The sequence is padded with zeros before and after (the robot starts and ends at rest), so a
    stream that does not start or end at zero shows up as a large acceleration.
    """
    padded = np.vstack([np.zeros((2, 6)), commands, np.zeros((2, 6))])
    acc = np.diff(padded, axis=0) / period_s
    jerk = np.diff(acc, axis=0) / period_s
    with np.errstate(invalid="ignore"):
        return {
            "max_lin_vel": float(np.nanmax(np.linalg.norm(padded[:, :3], axis=1))),
            "max_ang_vel": float(np.nanmax(np.linalg.norm(padded[:, 3:], axis=1))),
            "max_lin_acc": float(np.nanmax(np.linalg.norm(acc[:, :3], axis=1))),
            "max_ang_acc": float(np.nanmax(np.linalg.norm(acc[:, 3:], axis=1))),
            "max_lin_jerk": float(np.nanmax(np.linalg.norm(jerk[:, :3], axis=1))),
            "max_ang_jerk": float(np.nanmax(np.linalg.norm(jerk[:, 3:], axis=1))),
        }
