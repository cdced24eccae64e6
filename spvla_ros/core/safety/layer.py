"""The safety layer: the last gate between any upstream twist and the robot (no ROS, no robot I/O).

Upstream calls :meth:`SafetyLayer.submit` at its own rate; the robot side calls :meth:`SafetyLayer.step`
once per control period (1 kHz) and sends what it returns. The output is always finite, inside the
velocity bounds and jerk-limited (:mod:`~spvla_ros.core.safety.limiter`), and it ramps to zero within
the deceleration limits whenever motion is not allowed:

- disarmed (the default; :meth:`arm` is explicit), e-stop engaged (latched until :meth:`reset_estop`),
- the newest valid command is older than ``command_timeout_s`` (watchdog; resumes on a fresh command),
- the robot reported a fault (reflex, user stop, error flag): the robot has already stopped by itself, so
  the output is held at exactly zero until :meth:`recover`. E-stop and fault also disarm.

The workspace box is enforced on every control cycle, not only when a command arrives: :meth:`step`
re-clamps the held target against the freshest end-effector pose (including the braking distance), and
with ``workspace_requires_pose`` a pose older than ``robot_state_timeout_s`` zeroes the whole target.

Thread-safe: ``submit``/``step``/``update_robot_state`` may run in different threads. Times are seconds
on one monotonic clock chosen by the caller.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from spvla_ros.core.safety.config import SafetyConfig
from spvla_ros.core.safety.estop import EStopLatch
from spvla_ros.core.safety.fr3_limits import LINEAR, TWIST_DIM
from spvla_ros.core.safety.limiter import TwistRateLimiter
from spvla_ros.core.safety.robot_mode import RobotFaultLatch, RobotMode
from spvla_ros.core.safety.validity import CheckedCommand, Intervention, check_command, workspace_clamp
from spvla_ros.core.safety.watchdog import CommandWatchdog

STATE_DISARMED = "disarmed"
STATE_ARMED = "armed"
STATE_STOPPING = "stopping"  # armed, but the command or the pose is stale: ramping to zero
STATE_ESTOP = "estop"
STATE_FAULT = "fault"


@dataclass(frozen=True)
class SafetySnapshot:
    """What the layer is doing, for the status message.

    Attributes:
        state: one of ``disarmed``, ``armed``, ``stopping``, ``estop``, ``fault``.
        armed: motion is allowed (still subject to the watchdog).
        estop_engaged: the e-stop latch is set.
        robot_fault: a robot fault is latched; ``robot_fault_reason`` says which.
        command_stale: the watchdog sees no fresh command.
        command_age_s: seconds since the last valid command (``inf`` if none).
        target: twist the limiter tracks, (6,), m/s and rad/s, base frame.
        output: last output twist, (6,).
        at_rest: output velocity and acceleration are exactly zero.
        counters: intervention name -> count since start.
    """

    state: str
    armed: bool
    estop_engaged: bool
    robot_fault: bool
    robot_fault_reason: str
    command_stale: bool
    command_age_s: float
    target: np.ndarray
    output: np.ndarray
    at_rest: bool
    counters: dict[str, int]


class SafetyLayer:
    """Validity checks, watchdog, e-stop, robot-fault latch, arming and the 1 kHz limiter, composed."""

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._limiter = TwistRateLimiter(config)
        self._watchdog = CommandWatchdog(config.command_timeout_s)
        self._estop = EStopLatch()
        self._fault = RobotFaultLatch()
        self._armed = False
        self._target = np.zeros(TWIST_DIM)
        self._was_stale = True
        self._ee_position_m: np.ndarray | None = None
        self._ee_position_time_s = -np.inf
        self._box_clamping = False  # the held target is being clamped by the box (counted once per episode)
        self._pose_stopping = False  # the held target is zeroed for a stale pose (counted once per episode)
        self._counters = {kind.value: 0 for kind in Intervention}

    # --- operator actions ---
    def arm_refusal(self) -> str | None:
        """Why :meth:`arm` would be refused now, or ``None`` if it would succeed."""
        with self._lock:
            return self._arm_refusal_locked()

    def _arm_refusal_locked(self) -> str | None:
        if self._estop.engaged:
            return "e-stop engaged: reset it first"
        if self._fault.latched:
            return f"robot fault latched ({self._fault.reason}): recover first"
        return None

    def arm(self) -> tuple[bool, str]:
        """Allow motion. Refused while the e-stop or a robot fault is latched. Returns (ok, message)."""
        with self._lock:
            refusal = self._arm_refusal_locked()
            if refusal:
                return False, refusal
            if not self._armed:
                self._armed = True
                self._target[:] = 0.0
                self._watchdog.clear()  # a fresh command is needed before anything moves
            return True, "armed"

    def disarm(self) -> None:
        """Stop allowing motion; the output ramps to zero."""
        with self._lock:
            self._disarm_locked(Intervention.STOP_DISARM)

    def engage_estop(self) -> None:
        """Latch the e-stop: ramp to zero, disarm, refuse to arm until :meth:`reset_estop`."""
        with self._lock:
            if self._estop.engage():
                self._count(Intervention.STOP_ESTOP)
            self._disarm_locked(None)

    def reset_estop(self) -> None:
        """Release the e-stop latch (stays disarmed; :meth:`arm` again to move)."""
        with self._lock:
            self._estop.reset()

    def recover(self) -> tuple[bool, str]:
        """Clear a latched robot fault once the robot reports a healthy state. Returns (ok, message)."""
        with self._lock:
            if self._fault.recover():
                return True, "no robot fault latched"
            return False, f"robot still reports a fault ({self._fault.reason})"

    # --- inputs ---
    def submit(self, twist: np.ndarray, stamp_age_s: float, frame_id: str, now_s: float) -> CheckedCommand:
        """Offer one upstream command (see :func:`~spvla_ros.core.safety.validity.check_command`)."""
        with self._lock:
            checked = check_command(self.config, twist, stamp_age_s, frame_id, self._fresh_pose_locked(now_s))
            for kind in checked.interventions:
                self._count(kind)
            if checked.target is None:
                return checked
            if not self._armed:
                self._count(Intervention.DROP_NOT_ARMED)
                return CheckedCommand(None, (*checked.interventions, Intervention.DROP_NOT_ARMED))
            self._target = checked.target
            self._watchdog.feed(now_s)
            return checked

    def gripper_allowed(self) -> bool:
        """Whether a gripper command may pass now: armed, no e-stop, no robot fault. A refusal is counted
        as ``drop_gripper_vetoed`` (the hand keeps its state)."""
        with self._lock:
            ok = self._armed and not self._estop.engaged and not self._fault.latched
            if not ok:
                self._count(Intervention.DROP_GRIPPER_VETOED)
            return ok

    def update_robot_state(
        self, mode: RobotMode, error_names: tuple[str, ...], ee_position_m: np.ndarray | None, now_s: float
    ) -> bool:
        """Feed the latest robot state; returns True when it latched a new fault.

        Args:
            mode: robot mode.
            error_names: names of the set ``current_errors`` flags (empty when none).
            ee_position_m: measured end-effector position (x, y, z), base frame, m; ``None`` if unknown.
            now_s: time of this state, s.
        """
        with self._lock:
            if ee_position_m is not None:
                position = np.asarray(ee_position_m, dtype=np.float64)
                if position.shape == (3,) and np.isfinite(position).all():
                    self._ee_position_m = position.copy()
                    self._ee_position_time_s = now_s
                else:  # ignored: the last good pose ages and, once stale, stops the arm
                    self._count(Intervention.DROP_BAD_POSE)
            if self._fault.update(mode, error_names):
                self._count(Intervention.STOP_ROBOT_FAULT)
                self._disarm_locked(None)
                # The robot stopped itself: there is no motion left to ramp down, and nothing is accepted.
                self._limiter.reset()
                return True
            return False

    # --- output ---
    def step(self, now_s: float) -> np.ndarray:
        """Advance one control period; returns the twist to send now, (6,), m/s and rad/s, base frame."""
        with self._lock:
            if self._fault.latched:
                self._limiter.reset()
                return np.zeros(TWIST_DIM)
            stale = self._watchdog.is_stale(now_s)
            if self._armed and stale and not self._was_stale:
                self._count(Intervention.STOP_WATCHDOG)
            self._was_stale = stale
            target = self._target if self._armed and not stale else np.zeros(TWIST_DIM)
            return self._limiter.step(self._boxed_target_locked(target, now_s))

    @property
    def wants_output(self) -> bool:
        """True while commands must reach the robot: armed, or not yet at rest after a stop."""
        with self._lock:
            return self._armed or not self._limiter.at_rest

    def robot_state_fresh(self, now_s: float) -> bool:
        """A robot state with a pose arrived within ``robot_state_timeout_s``."""
        with self._lock:
            return now_s - self._ee_position_time_s <= self.config.robot_state_timeout_s

    @property
    def at_rest(self) -> bool:
        """Output velocity and acceleration are exactly zero."""
        with self._lock:
            return self._limiter.at_rest

    def snapshot(self, now_s: float) -> SafetySnapshot:
        """The current state, for publishing."""
        with self._lock:
            stale = self._watchdog.is_stale(now_s)
            if self._fault.latched:
                state = STATE_FAULT
            elif self._estop.engaged:
                state = STATE_ESTOP
            elif not self._armed:
                state = STATE_DISARMED
            else:
                state = STATE_STOPPING if stale or self._pose_stopping else STATE_ARMED
            return SafetySnapshot(
                state=state,
                armed=self._armed,
                estop_engaged=self._estop.engaged,
                robot_fault=self._fault.latched,
                robot_fault_reason=self._fault.reason,
                command_stale=stale,
                command_age_s=self._watchdog.age_s(now_s),
                target=self._target.copy(),
                output=self._limiter.velocity,
                at_rest=self._limiter.at_rest,
                counters=dict(self._counters),
            )

    # --- internals (lock held) ---
    def _fresh_pose_locked(self, now_s: float) -> np.ndarray | None:
        """The measured end-effector position if it is newer than ``robot_state_timeout_s``, else None."""
        if self._ee_position_m is None or now_s - self._ee_position_time_s > self.config.robot_state_timeout_s:
            return None
        return self._ee_position_m

    def _boxed_target_locked(self, target: np.ndarray, now_s: float) -> np.ndarray:
        """``target`` re-clamped to the workspace box with the freshest pose (every control cycle)."""
        if not target.any():
            self._box_clamping = self._pose_stopping = False
            return target
        pose = self._fresh_pose_locked(now_s)
        if pose is None:
            if not self.config.workspace_requires_pose:
                return target  # documented degradation: no robot state, no box
            if not self._pose_stopping:
                self._count(Intervention.STOP_STALE_POSE)
                self._pose_stopping = True
            return np.zeros(TWIST_DIM)
        self._pose_stopping = False
        linear, clamped = workspace_clamp(self.config, target[LINEAR], pose)
        if clamped and not self._box_clamping:
            self._count(Intervention.CLAMP_WORKSPACE)
        self._box_clamping = clamped
        if not clamped:
            return target
        boxed = target.copy()
        boxed[LINEAR] = linear
        return boxed

    def _disarm_locked(self, reason: Intervention | None) -> None:
        if self._armed and reason is not None:
            self._count(reason)
        self._armed = False
        self._target = np.zeros(TWIST_DIM)
        self._watchdog.clear()

    def _count(self, kind: Intervention) -> None:
        self._counters[kind.value] += 1
