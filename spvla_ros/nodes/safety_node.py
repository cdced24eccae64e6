"""Safety node: the last gate before the robot (thin rclpy wrapper of :class:`spvla_ros.core.safety.SafetyLayer`).

In: ``geometry_msgs/TwistStamped`` on ``/spvla/cmd_twist``; ``std_msgs/Bool`` on ``/spvla/estop`` (True
latches the e-stop; False is ignored, only the ``~/reset_estop`` service releases it); optionally
``franka_msgs/FrankaRobotState`` on the franka_robot_state_broadcaster topic (pose, mode, errors).
Out (backend ``ros``): only what passes, jerk-limited at 1 kHz and published at ``publish_rate_hz`` on
``/spvla/safe_twist`` for a Cartesian-velocity controller (see docs/safety.md for what that controller
must do). Backend ``libfranka``: the same layer drives the arm directly through pylibfranka at 1 kHz in
a thread of this process. Status on ``/spvla/safety_status`` (``spvla/msg/SafetyStatus``, or
``diagnostic_msgs/DiagnosticStatus`` if the spvla interfaces are not built).

``dry_run`` (default true) commands nothing. Arming is explicit and logged: set ``dry_run`` false, or call
``~/arm`` (std_srvs/SetBool). ``~/recover`` (std_srvs/Trigger) clears a latched robot fault once the
robot is healthy, after asking franka_ros2's error recovery (``franka_msgs/action/ErrorRecovery``) or
libfranka's automatic recovery. Example::

    ros2 run spvla safety_node --ros-args --params-file config/safety.yaml -p dry_run:=false
"""

from __future__ import annotations

import math
import time

import numpy as np
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from spvla_ros.core.drop_counts import LogGate
from spvla_ros.core.safety import Intervention, RobotMode, SafetyConfig, SafetyLayer, SafetySnapshot
from spvla_ros.core.safety.config import SAFETY_NODE_NAME, SHUTDOWN_RAMP_TIMEOUT_S
from spvla_ros.core.safety.fr3_limits import FR3_MAX_ANG_VEL_RADPS, FR3_MAX_LIN_VEL_MPS
from spvla_ros.core.stamps import NS_PER_S, stamp_to_ns
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.params import ParamGroup, specs_from_dataclass
from spvla_ros.nodes.spin import spin_node
from spvla_ros.nodes.time_source import guard_time_source

try:  # built by rosidl as part of the spvla package (msg/SafetyStatus.msg)
    from spvla.msg import GripperCommand, SafetyStatus
except ImportError:  # interfaces not built: publish a DiagnosticStatus instead, relay no gripper command
    SafetyStatus = GripperCommand = None
try:  # provided by franka_ros2 (or built from ../shared/franka_msgs for tests)
    from franka_msgs.msg import FrankaRobotState
except ImportError:
    FrankaRobotState = None
try:
    from franka_msgs.action import ErrorRecovery
except ImportError:
    ErrorRecovery = None

SHUTTING_DOWN = "shutting down: arming refused"
BACKEND_ROS = "ros"
BACKEND_LIBFRANKA = "libfranka"
MAX_STEPS_PER_TICK = 100
"""At most this many 1 ms limiter steps per publish tick (a longer gap is not made up: ramps slow down)."""
BACKEND_JOIN_TIMEOUT_S = 5.0
"""Bound on the libfranka motion's ramp down and ``motion_finished`` at shutdown, s."""
FINAL_ZERO_ACK_TIMEOUT_S = 0.5
"""How long the final zero may take to be acknowledged by the (reliable) subscribers before exit, s."""
NOT_ARMED_LOG_PERIOD_S = 10.0
"""Commands held back in dry run: logged at most once per this period (the normal state until armed), s."""
SAFETY_FIELDS = tuple(
    f for f in SafetyConfig.__dataclass_fields__ if f != "control_period_s"
)
_RANGES = {
    "max_lin_vel_mps": (1e-6, FR3_MAX_LIN_VEL_MPS),
    "max_lin_vel_axis_mps": (1e-6, FR3_MAX_LIN_VEL_MPS),
    "max_ang_vel_radps": (1e-6, FR3_MAX_ANG_VEL_RADPS),
    "max_ang_vel_axis_radps": (1e-6, FR3_MAX_ANG_VEL_RADPS),
}


def safety_specs():
    """Parameter specs of the SafetyConfig fields (all read-only: limits never change under a moving arm)."""
    return specs_from_dataclass(SafetyConfig, SAFETY_FIELDS, _RANGES, read_only=SAFETY_FIELDS)


def _error_names(errors: object) -> tuple[str, ...]:
    """Set flags of a ``franka_msgs/Errors`` message (every bool field)."""
    return tuple(name for name in errors.get_fields_and_field_types() if getattr(errors, name) is True)


def _twist_msg(v: np.ndarray) -> Twist:
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z = (float(x) for x in v[:3])
    msg.angular.x, msg.angular.y, msg.angular.z = (float(x) for x in v[3:])
    return msg


class SafetyNode(Node):
    """See the module docstring."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(SAFETY_NODE_NAME, **node_kwargs)
        guard_time_source(self)  # sim time: a /clock before the epoch must not end the node
        self._params = ParamGroup(SafetyConfig, safety_specs())
        config = self._params.declare(self)
        ro = ParameterDescriptor(read_only=True)
        self._dry_run = bool(self.declare_parameter(
            "dry_run", True, ParameterDescriptor(description="true: command nothing; false: armed")).value)
        self._backend_name = self.declare_parameter("backend", BACKEND_ROS, ro).value
        robot_ip = self.declare_parameter("robot_ip", "127.0.0.1", ro).value
        publish_rate_hz = float(self.declare_parameter("publish_rate_hz", 100.0, ro).value)
        status_rate_hz = float(self.declare_parameter("status_rate_hz", 10.0, ro).value)
        if self._backend_name not in (BACKEND_ROS, BACKEND_LIBFRANKA):
            raise ValueError(f"backend must be {BACKEND_ROS!r} or {BACKEND_LIBFRANKA!r}, got {self._backend_name!r}")
        for name, rate in (("publish_rate_hz", publish_rate_hz), ("status_rate_hz", status_rate_hz)):
            if not math.isfinite(rate) or rate <= 0.0:
                raise ValueError(f"{name} must be > 0, got {rate}")

        self.layer = SafetyLayer(config)
        self._intervention_log_gate = LogGate()
        self._last_step_s = time.monotonic()
        self._published_zero = True
        self._winding_down = False
        self._desired_gripper = None  # newest GripperCommand received (relayed once on arming if vetoed)
        self._relayed_gripper_state: str | None = None
        self._frame_id = config.frame_id or "fr3_link0"
        self._safe_pub = self.create_publisher(TwistStamped, topics.SAFE_TWIST, qos.COMMAND_QOS)
        self._status_pub = self.create_publisher(SafetyStatus or _diagnostic_type(), topics.SAFETY_STATUS,
                                                 qos.STATUS_QOS)
        self.create_subscription(TwistStamped, topics.CMD_TWIST, self._on_command, qos.COMMAND_QOS)
        self.create_subscription(Bool, topics.ESTOP, self._on_estop, qos.COMMAND_QOS)
        if GripperCommand is not None:
            self._gripper_pub = self.create_publisher(GripperCommand, topics.SAFE_GRIPPER_COMMAND, qos.GRIPPER_QOS)
            self.create_subscription(GripperCommand, topics.GRIPPER_COMMAND, self._on_gripper, qos.GRIPPER_QOS)
        self.create_service(SetBool, "~/arm", self._on_arm)
        self.create_service(Trigger, "~/recover", self._on_recover)
        self.create_service(Trigger, "~/reset_estop", self._on_reset_estop)
        self._recovery_client = None
        self.backend = None
        if self._backend_name == BACKEND_LIBFRANKA:
            from spvla_ros.robot.franka_libfranka import LibfrankaVelocityBackend

            self.backend = LibfrankaVelocityBackend(self.layer, robot_ip)
            self.backend.start()
            self.get_logger().info(f"driving the robot at {robot_ip} through libfranka at 1 kHz")
        else:
            self._subscribe_robot_state()
            self.create_timer(1.0 / publish_rate_hz, self._on_publish_tick)
        self.create_timer(1.0 / status_rate_hz, self._publish_status)
        if SafetyStatus is None:
            self.get_logger().warning("spvla interfaces not built: status goes out as diagnostic_msgs/DiagnosticStatus")
        self.add_on_set_parameters_callback(self._validate_params)
        self.add_post_set_parameters_callback(self._apply_params)
        if not self._dry_run:
            self._set_armed(True)
        self.get_logger().info(f"safety node up: backend {self._backend_name}, "
                               f"{'DRY RUN (commands nothing)' if self._dry_run else 'ARMED'}")

    # --- robot state (backend ros) ---
    def _subscribe_robot_state(self) -> None:
        if FrankaRobotState is None:
            self.get_logger().warning(
                "franka_msgs not found: no robot state, so no pose (workspace box) and no reflex latch. "
                + ("Every command is dropped (workspace_requires_pose is true)."
                   if self.layer.config.workspace_requires_pose else "Commands pass without the workspace box.")
            )
            return
        self.create_subscription(FrankaRobotState, topics.ROBOT_STATE, self._on_robot_state, qos.STATUS_QOS)
        if ErrorRecovery is not None:
            from rclpy.action import ActionClient

            self._recovery_client = ActionClient(self, ErrorRecovery, "action_server/error_recovery")

    def _on_robot_state(self, msg: object) -> None:
        p = msg.o_t_ee.pose.position
        mode = RobotMode(int(msg.robot_mode)) if msg.robot_mode in RobotMode._value2member_map_ else RobotMode.OTHER
        if self.layer.update_robot_state(mode, _error_names(msg.current_errors), np.array([p.x, p.y, p.z]),
                                         time.monotonic()):
            self.get_logger().error(f"robot fault: {self.layer.snapshot(time.monotonic()).robot_fault_reason}; "
                                    "holding zero until ~/recover")
            self._sync_dry_run()

    # --- inputs ---
    def _on_command(self, msg: TwistStamped) -> None:
        # Integer nanoseconds: no header value can raise here (a negative or int32-wrapped stamp is just
        # very old, hence dropped as stale; rclpy's Time.from_msg would raise on it).
        stamp_age_s = (self.get_clock().now().nanoseconds - stamp_to_ns(msg.header.stamp)) / NS_PER_S
        t, r = msg.twist.linear, msg.twist.angular
        twist = np.array([t.x, t.y, t.z, r.x, r.y, r.z])
        checked = self.layer.submit(twist, stamp_age_s, msg.header.frame_id, time.monotonic())
        self._log_interventions(checked.interventions, stamp_age_s, msg.header.frame_id)

    def _log_interventions(self, done: tuple[Intervention, ...], stamp_age_s: float, frame_id: str) -> None:
        """Rate-limited log of a dropped or clamped command (every one is counted in SafetyStatus)."""
        if not done:
            return
        kind = done[-1]
        if kind is Intervention.DROP_NOT_ARMED:
            self.get_logger().info("commands held back: dry run (not armed); arm with ~/arm or dry_run:=false",
                                   throttle_duration_sec=NOT_ARMED_LOG_PERIOD_S)
            return
        detail = {
            Intervention.DROP_STALE_STAMP: f"stamp {stamp_age_s:.3f} s old",
            Intervention.DROP_FUTURE_STAMP: f"stamp {-stamp_age_s:.3f} s in the future",
            Intervention.DROP_WRONG_FRAME: f"frame {frame_id[:64]!r}, expected {self.layer.config.frame_id!r}",
            Intervention.DROP_NO_POSE: "no fresh robot pose (workspace box)",
        }.get(kind, "")
        if not self._intervention_log_gate.due(kind.value):  # once a second per kind; all are counted
            return
        verb = "dropped" if kind.value.startswith("drop_") else "clamped"
        self.get_logger().warning(f"command {verb}: {kind.value}" + (f" ({detail})" if detail else "")
                                  + "; see /spvla/safety_status for the counts")

    def _on_gripper(self, msg: object) -> None:
        """Relay a gripper command only while armed (no e-stop, no fault); otherwise veto and count it.

        The newest command is kept either way: one vetoed while disarmed is relayed once on arming (the
        scheduler sends a state only when it changes, so it would otherwise be lost for good).
        """
        self._desired_gripper = msg
        if self.layer.gripper_allowed():
            self._relay_gripper(msg)
        else:
            self.get_logger().warning(f"gripper command {msg.state!r} vetoed: not armed, e-stop or robot fault "
                                      "(relayed once the node is armed)")

    def _relay_gripper(self, msg: object) -> None:
        self._gripper_pub.publish(msg)
        self._relayed_gripper_state = msg.state

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            if not self.layer.snapshot(time.monotonic()).estop_engaged:
                self.get_logger().error("E-STOP engaged: ramping to zero, latched until ~/reset_estop")
            self.layer.engage_estop()
            self._sync_dry_run()
            self._publish_status()

    # --- arming ---
    def _set_armed(self, armed: bool) -> tuple[bool, str]:
        if armed:
            ok, message = (False, SHUTTING_DOWN) if self._winding_down else self.layer.arm()
            if ok:
                self.get_logger().warning("ARMED: commands now reach the robot")
                self._relay_held_gripper()
        else:
            self.layer.disarm()
            ok, message = True, "disarmed (dry run): ramping to zero"
            self.get_logger().warning("DISARMED (dry run)")
        if ok:
            self._dry_run = not armed
        return ok, message

    def _relay_held_gripper(self) -> None:
        """On arming: relay the newest gripper command if the hand has not been sent that state yet."""
        held = self._desired_gripper
        if held is not None and held.state != self._relayed_gripper_state and self.layer.gripper_allowed():
            self.get_logger().warning(f"relaying the gripper command held while disarmed: {held.state!r}")
            self._relay_gripper(held)

    def _arm_refusal(self) -> str | None:
        return SHUTTING_DOWN if self._winding_down else self.layer.arm_refusal()

    def _sync_dry_run(self) -> None:
        """After an e-stop or a fault disarmed the layer, make the dry_run parameter say so."""
        if not self._dry_run and not self.layer.snapshot(time.monotonic()).armed:
            self._dry_run = True
            self.set_parameters([Parameter("dry_run", value=True)])

    def _validate_params(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == "dry_run" and p.value is False and not self.layer.snapshot(time.monotonic()).armed:
                refusal = self._arm_refusal()
                if refusal:
                    return SetParametersResult(successful=False, reason=refusal)
        return SetParametersResult(successful=True)

    def _apply_params(self, params: list[Parameter]) -> None:
        for p in params:
            if p.name == "dry_run" and bool(p.value) == self._dry_run:
                continue
            if p.name == "dry_run":
                self._set_armed(not p.value)

    def _on_arm(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            refusal = self._arm_refusal()
            if refusal:
                response.success, response.message = False, refusal
                return response
        result = self.set_parameters([Parameter("dry_run", value=not request.data)])[0]
        response.success = result.successful
        response.message = ("armed" if request.data else "disarmed") if result.successful else result.reason
        return response

    def _on_recover(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.backend is not None:
            ok, message = self.backend.recover()
            if ok and not self.backend.running:
                self.backend.start()
        else:
            asked = ""
            if self._recovery_client is not None and self._recovery_client.server_is_ready():
                self._recovery_client.send_goal_async(ErrorRecovery.Goal())
                asked = "franka_ros2 error recovery requested; "
            ok, message = self.layer.recover()
            message = asked + message + ("" if ok else "; call again once the robot reports a healthy state")
        self.get_logger().info(f"recover: {message}")
        response.success, response.message = ok, message
        return response

    def _on_reset_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.layer.reset_estop()
        self.get_logger().warning("e-stop reset (still disarmed; arm explicitly to move)")
        response.success, response.message = True, "e-stop released; still disarmed"
        return response

    # --- output ---
    def _on_publish_tick(self) -> None:
        # One limiter step per elapsed control period; the twist is stamped with the ROS time of this
        # tick, so stamp differences match the steps taken (however late the publish itself is).
        stamp = self.get_clock().now()
        now_s = time.monotonic()
        period = self.layer.config.control_period_s
        steps = min(MAX_STEPS_PER_TICK, max(1, round((now_s - self._last_step_s) / period)))
        self._last_step_s = now_s if steps == MAX_STEPS_PER_TICK else self._last_step_s + steps * period
        wants = self.layer.wants_output
        for k in range(steps):
            twist = self.layer.step(now_s - (steps - 1 - k) * period)
        if wants or not self._published_zero:
            self._publish_twist(twist, stamp)
            self._published_zero = not twist.any()

    def _publish_twist(self, twist: np.ndarray, stamp=None) -> None:
        msg = TwistStamped()
        msg.header.stamp = (stamp or self.get_clock().now()).to_msg()
        msg.header.frame_id = self._frame_id
        msg.twist = _twist_msg(twist)
        self._safe_pub.publish(msg)

    def _publish_status(self) -> None:
        now_s = time.monotonic()
        snap = self.layer.snapshot(now_s)
        if SafetyStatus is None:
            self._status_pub.publish(_diagnostic(snap, self._dry_run))
            return
        msg = SafetyStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        msg.state = snap.state
        msg.dry_run = self._dry_run
        msg.armed = snap.armed
        msg.estop_engaged = snap.estop_engaged
        msg.robot_fault = snap.robot_fault
        msg.robot_fault_reason = snap.robot_fault_reason
        msg.command_stale = snap.command_stale
        msg.command_age_s = float(snap.command_age_s)
        msg.robot_state_ok = self.layer.robot_state_fresh(now_s)
        msg.target = _twist_msg(snap.target)
        msg.output = _twist_msg(snap.output)
        msg.intervention_names = list(snap.counters)
        msg.intervention_counts = [int(v) for v in snap.counters.values()]
        msg.interventions_total = int(sum(snap.counters.values()))
        self._status_pub.publish(msg)

    # --- wind-down (spvla_ros.nodes.spin.WindsDown): SIGINT, SIGTERM, a sibling's death, an error ---
    @property
    def wind_down_timeout_s(self) -> float:
        return BACKEND_JOIN_TIMEOUT_S if self.backend is not None else SHUTDOWN_RAMP_TIMEOUT_S

    def begin_wind_down(self, reason: str) -> None:
        """Disarm for good (arming is refused from now on): the output ramps to zero within the limits."""
        self._winding_down = True
        moving = not self.layer.at_rest
        self.layer.disarm()
        if self.backend is not None:
            self.backend.request_stop()
        self.get_logger().warning(f"stopping ({reason}): " + ("ramping to zero" if moving else "at rest"))

    def wind_down_done(self) -> bool:
        """At rest and the last twist sent was an exact zero (libfranka: the motion has finished)."""
        if self.backend is not None:
            return not self.backend.running
        return self.layer.at_rest and self._published_zero

    def end_wind_down(self) -> None:
        """Make sure the last twist out is an exact zero, and that it was delivered."""
        if self.backend is not None:
            if self.backend.running:
                self.get_logger().error(f"the libfranka motion did not finish within {BACKEND_JOIN_TIMEOUT_S} s; "
                                        "the robot stops it when the connection closes")
            return
        if not self.wind_down_done():
            self.get_logger().error(f"the ramp to zero did not finish within {SHUTDOWN_RAMP_TIMEOUT_S} s; "
                                    "sending zero now")
            self._publish_twist(np.zeros(6))
            self._published_zero = True
        if not self._safe_pub.wait_for_all_acked(Duration(seconds=FINAL_ZERO_ACK_TIMEOUT_S)):
            self.get_logger().warning("the final zero was not acknowledged by every subscriber")
        self.get_logger().info("stopped at rest (any twist sent last was an exact zero)")


def _diagnostic_type() -> type:
    from diagnostic_msgs.msg import DiagnosticStatus

    return DiagnosticStatus


def _diagnostic(snap: SafetySnapshot, dry_run: bool) -> object:
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    level = DiagnosticStatus.OK if snap.state in ("armed", "disarmed") else DiagnosticStatus.WARN
    if snap.state in ("estop", "fault"):
        level = DiagnosticStatus.ERROR
    values = {"dry_run": dry_run, "armed": snap.armed, "estop_engaged": snap.estop_engaged,
              "robot_fault": snap.robot_fault, "robot_fault_reason": snap.robot_fault_reason,
              "command_stale": snap.command_stale, "command_age_s": snap.command_age_s,
              "output": snap.output.tolist(), **snap.counters}
    return DiagnosticStatus(level=level, name=SAFETY_NODE_NAME, message=snap.state,
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


def main(args: list[str] | None = None) -> int:
    # SIGINT/SIGTERM/a sibling's death: the wind-down ramps to zero and sends the final zero (spin.py)
    return spin_node(SafetyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
