"""Cartesian-velocity control of an FR3 through pylibfranka (Franka's own binding), fed by the safety layer.

Every 1 ms the loop reads the robot state (O_T_EE, robot mode, current errors), hands it to the
:class:`~spvla_ros.core.safety.SafetyLayer`, steps the layer once and writes its twist. Nothing else ever
reaches the robot, so the stream is always finite, bounded and jerk-limited, and it starts and ends at
zero velocity and acceleration. Upstream (a ROS node, a benchmark) only calls ``layer.submit`` from any
thread; ``per_tick`` lets a caller run code inside the loop (e.g. a synthetic command stream).

Clean stop: :meth:`LibfrankaVelocityBackend.request_stop` disarms the layer; the loop keeps writing the
ramp down and finishes the motion (``motion_finished``, on an exactly zero command) only once the output
is exactly at rest (velocity and acceleration zero). The safety node requests it on SIGINT/SIGTERM.
Errors: a ``ControlException`` (reflex) latches a fault in the layer; :meth:`recover` runs libfranka's
automatic error recovery and clears the latch when the robot reports a healthy state.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from spvla_ros.core.safety import RobotMode, SafetyLayer

O_T_EE_TRANSLATION = slice(12, 15)
"""O_T_EE is a column-major 4x4 list of 16; the translation (x, y, z) in m is [12:15]."""
FR3_READY_JOINT_POSITIONS_RAD = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)
"""Franka's usual "ready" pose: well away from singularities and joint limits, a good start for Cartesian motion."""
HOME_JOINT_ACC_RADPS2 = 0.5
"""Peak joint acceleration of a homing move, rad/s^2 (FR3 limit: 10)."""
HOME_MIN_DURATION_S = 0.5
QUINTIC_PEAK_ACC = 5.7735
"""Peak of the 2nd derivative of 10 t^3 - 15 t^4 + 6 t^5 on [0, 1] (10 / sqrt(3))."""
GIL_SWITCH_INTERVAL_S = 0.0005
"""Python's default 5 ms GIL slice would delay the 1 ms loop behind any other Python thread."""


def error_names(errors: object) -> tuple[str, ...]:
    """Names of the set flags of a ``pylibfranka.Errors`` (its ``str`` is a JSON list of names)."""
    if not errors:
        return ()
    try:
        return tuple(json.loads(str(errors)))
    except ValueError:
        return (str(errors),)


@dataclass
class MotionRecord:
    """What one motion did.

    Attributes:
        commands: twists written, (N, 6), m/s and rad/s, base frame.
        ee_positions: measured O_T_EE translation per cycle, (N, 3), m.
        robot_time_s: the robot's own time (``state.time``) per cycle, (N,), s: 1 ms per control cycle,
            whatever the host's load.
        wall_time_s: host monotonic time per cycle, (N,), s.
        filter_s: time spent in the safety layer per cycle (state update + step), (N,), s.
        aborted: the robot aborted the motion (a reflex or a rejected command).
        abort_message: libfranka's message when aborted.
        abort_errors: the robot's error flags after the abort.
    """

    commands: list[np.ndarray] = field(default_factory=list)
    ee_positions: list[np.ndarray] = field(default_factory=list)
    robot_time_s: list[float] = field(default_factory=list)
    wall_time_s: list[float] = field(default_factory=list)
    filter_s: list[float] = field(default_factory=list)
    aborted: bool = False
    abort_message: str = ""
    abort_errors: tuple[str, ...] = ()


class LibfrankaVelocityBackend:
    """One FR3 (or franka-sim) under 1 kHz Cartesian velocity control.

    Args:
        layer: the safety layer that gates every command.
        robot_ip: the robot's (or franka-sim's) address.
        clock: monotonic clock, s; the layer's watchdog runs on it. The ROS node keeps the host's clock
            (its upstream is timed by it).
        use_robot_time: run the layer (and ``per_tick``) on the robot's own time instead (``state.time``,
            1 ms per control cycle): watchdog, stream timing and stop times then do not stretch with the
            host's load (benchmarks, tests; franka-sim serves cycles late on a loaded host).
    """

    def __init__(self, layer: SafetyLayer, robot_ip: str, clock: Callable[[], float] = time.monotonic,
                 use_robot_time: bool = False) -> None:
        import pylibfranka  # the binding is only needed when a robot is actually driven

        self._pf = pylibfranka
        self.layer = layer
        self._robot_time_s = 0.0
        self.clock = self._robot_clock if use_robot_time else clock
        self.robot = pylibfranka.Robot(robot_ip, pylibfranka.RealtimeConfig.kIgnore)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_record: MotionRecord | None = None
        self.read_state()

    # --- state ---
    def _robot_clock(self) -> float:
        """The robot's time of the newest state read, s."""
        return self._robot_time_s

    def read_state(self) -> object:
        """Read one robot state outside a motion and feed it to the layer; returns the pylibfranka state."""
        state = self.robot.read_once()
        self._feed_state(state)
        return state

    def _feed_state(self, state: object) -> None:
        self._robot_time_s = state.time.to_sec()
        mode = RobotMode(int(state.robot_mode.value))
        position = np.asarray(state.O_T_EE[O_T_EE_TRANSLATION], dtype=np.float64)
        self.layer.update_robot_state(mode, error_names(state.current_errors), position, self.clock())

    def ee_position(self) -> np.ndarray:
        """Measured end-effector (O_T_EE) translation, base frame, m; shape (3,)."""
        return np.asarray(self.robot.read_once().O_T_EE[O_T_EE_TRANSLATION], dtype=np.float64)

    # --- motion ---
    def home(self, goal_rad: tuple[float, ...] = FR3_READY_JOINT_POSITIONS_RAD) -> None:
        """Move to ``goal_rad`` (default: the ready pose) in a time scaled to the largest joint distance."""
        q = np.asarray(self.robot.read_once().q, dtype=np.float64)
        distance = float(np.max(np.abs(np.asarray(goal_rad) - q)))
        # Quintic peak acceleration is 5.77 * distance / T^2; keep it under HOME_JOINT_ACC_RADPS2.
        duration_s = max(HOME_MIN_DURATION_S, math.sqrt(QUINTIC_PEAK_ACC * distance / HOME_JOINT_ACC_RADPS2))
        self.move_to_joint_positions(goal_rad, duration_s)

    def move_to_joint_positions(self, goal_rad: tuple[float, ...], duration_s: float) -> None:
        """Move to ``goal_rad`` (7 joint angles, rad) along a quintic profile lasting ``duration_s`` s.

        Velocity and acceleration are zero at both ends. Not gated by the safety layer (an operator
        set-up move, like franka_ros2's move_to_start); keep ``duration_s`` long enough for the distance.
        """
        pf = self._pf
        control = self.robot.start_joint_position_control(pf.ControllerMode.JointImpedance)
        state, _ = control.readOnce()
        start = np.asarray(state.q_d, dtype=np.float64)
        delta = np.asarray(goal_rad, dtype=np.float64) - start
        elapsed_s = 0.0
        while True:
            tau = min(elapsed_s / duration_s, 1.0)
            blend = tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)
            command = pf.JointPositions((start + blend * delta).tolist())
            if tau >= 1.0:
                command.motion_finished = True
            control.writeOnce(command)
            if tau >= 1.0:
                break
            _state, period = control.readOnce()
            elapsed_s += period.to_sec()
        self.read_state()

    def run_motion(
        self, per_tick: Callable[[float], None] | None = None, max_duration_s: float | None = None
    ) -> MotionRecord:
        """Run one Cartesian-velocity motion in this thread until stopped (blocks).

        Args:
            per_tick: called with the clock time at the top of every cycle, before the layer steps.
            max_duration_s: request a stop after this long (the ramp down still completes).

        Returns:
            The record of the motion (also kept as :attr:`last_record`).
        """
        pf = self._pf
        record = MotionRecord()
        self.last_record = record
        self._stop.clear()
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        start_s = None
        try:
            control = self.robot.start_cartesian_velocity_control(pf.ControllerMode.CartesianImpedance)
            while True:
                state, _period = control.readOnce()
                self._robot_time_s = state.time.to_sec()
                now_s = self.clock()
                start_s = now_s if start_s is None else start_s  # the motion's first cycle
                if per_tick is not None:
                    per_tick(now_s)
                if max_duration_s is not None and now_s - start_s >= max_duration_s:
                    self._stop.set()
                if self._stop.is_set():
                    self.layer.disarm()
                t0 = time.perf_counter()
                self._feed_state(state)
                twist = self.layer.step(now_s)
                finished = self._stop.is_set() and self.layer.at_rest
                record.filter_s.append(time.perf_counter() - t0)
                command = pf.CartesianVelocities(twist.tolist())
                if finished:
                    command.motion_finished = True
                control.writeOnce(command)
                record.commands.append(twist)
                record.ee_positions.append(np.asarray(state.O_T_EE[O_T_EE_TRANSLATION], dtype=np.float64))
                record.robot_time_s.append(self._robot_time_s)
                record.wall_time_s.append(time.monotonic())
                if finished:
                    break
        except (pf.ControlException, pf.CommandException) as err:
            record.aborted = True
            record.abort_message = str(err)
            state = self.read_state()  # latches the fault in the layer
            record.abort_errors = error_names(state.last_motion_errors) or error_names(state.current_errors)
        finally:
            sys.setswitchinterval(previous_interval)
        return record

    def start(self, per_tick: Callable[[float], None] | None = None) -> None:
        """Run :meth:`run_motion` in a background thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("a motion is already running")
        self._thread = threading.Thread(target=self.run_motion, args=(per_tick,), name="libfranka-1khz", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the running motion to ramp down and finish."""
        self._stop.set()

    def join(self, timeout_s: float) -> bool:
        """Wait for the background motion to finish; returns True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """A background motion is running."""
        return self._thread is not None and self._thread.is_alive()

    def recover(self) -> tuple[bool, str]:
        """libfranka's automatic error recovery, then clear the layer's fault latch if the robot is healthy."""
        try:
            self.robot.automatic_error_recovery()
        except self._pf.FrankaException as err:
            return False, f"automatic_error_recovery failed: {err}"
        self.read_state()
        return self.layer.recover()
