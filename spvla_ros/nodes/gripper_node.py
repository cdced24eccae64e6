"""Gripper node: the Franka Hand side of the graph. Thin wrapper over
:class:`spvla_ros.core.gripper_commander.GripperCommander` (goals, preemption, results, timeouts).

In: ``spvla/msg/GripperCommand`` on ``/spvla/safe_gripper_command`` (relayed by the safety node only while
armed). Out: ``spvla/msg/GripperStatus`` on ``/spvla/gripper_status`` (on every change and at
``status_rate_hz``). Backends (read-only ``backend`` parameter):

* ``none``: no hand (demo, dry runs): every goal is logged and reported reached at once;
* ``franka_ros2``: franka_ros2's gripper action servers (``franka_msgs/action/Move``, ``Grasp``;
  ``Homing`` at start when ``home_on_start``). Results and rejections are reported; a goal without a
  result after ``action_timeout_s`` is cancelled and reported ``timed_out``; a new state while a goal is in
  flight cancels the old goal (``preempted``);
* ``libfranka``: ``pylibfranka.Gripper(robot_ip)`` in a child process (its blocking calls hold the GIL),
  same reporting; a timed-out or preempted goal ends that process and a fresh one calls ``Gripper.stop()``
  before the next goal.

Run: ``ros2 run spvla gripper_node --ros-args --params-file config/spvla.yaml -p backend:=franka_ros2``
"""

from __future__ import annotations

import math
import queue
import time

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from spvla.msg import GripperCommand, GripperStatus

from spvla_ros.core.gripper import GripperConfig, GripperState
from spvla_ros.core.gripper_commander import GRASP, GripperCommander, GripperGoal
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.params import ParamGroup, specs_from_dataclass
from spvla_ros.nodes.spin import spin_node
from spvla_ros.nodes.time_source import guard_time_source

NODE_NAME = "spvla_gripper"
BACKENDS = ("none", "franka_ros2", "libfranka")
HAND_FIELDS = ("open_width_m", "grasp_width_m", "speed_mps", "force_n", "epsilon_inner_m", "epsilon_outer_m",
               "action_timeout_s")
HAND_RANGES = {
    "open_width_m": (0.001, 0.08), "grasp_width_m": (0.0, 0.08), "speed_mps": (0.001, 0.1), "force_n": (1.0, 70.0),
    "epsilon_inner_m": (0.0, 0.08), "epsilon_outer_m": (0.0, 0.08), "action_timeout_s": (0.1, 60.0),
}


def hand_specs():
    return specs_from_dataclass(GripperConfig, HAND_FIELDS, HAND_RANGES)


class NoHandBackend:
    """No hand: every goal is reached at once (the width is the goal's)."""

    def __init__(self, node: GripperNode) -> None:
        self._node = node

    def send(self, goal: GripperGoal) -> None:
        self._node.get_logger().info(f"(no hand) {goal.kind} to {goal.width_m:.3f} m")
        self._node.report(goal.goal_id, True, "", goal.width_m)

    def tick(self, now_s: float) -> None:
        pass

    def cancel(self, goal: GripperGoal) -> None:
        pass

    def close(self) -> None:
        pass


class FrankaRos2Backend:
    """franka_ros2 gripper action clients; never blocks a callback (futures + done callbacks).

    A goal cancelled before the server accepted it is cancelled as soon as its goal handle arrives. Homing
    (``home_on_start``) is sent once the Homing server is discovered, from the node's tick; a server that
    does not appear within ``action_timeout_s`` is logged as an error and homing is skipped.
    """

    def __init__(self, node: GripperNode, move_action: str, grasp_action: str, homing_action: str,
                 home_on_start: bool) -> None:
        from franka_msgs.action import Grasp, Homing, Move
        from rclpy.action import ActionClient

        self._node = node
        self._types = {"move": Move, GRASP: Grasp, "homing": Homing}
        self._clients = {"move": ActionClient(node, Move, move_action), GRASP: ActionClient(node, Grasp, grasp_action)}
        self._homing = ActionClient(node, Homing, homing_action)
        self._homing_deadline_s = time.monotonic() + node.commander.config.action_timeout_s if home_on_start else None
        self._handles: dict[int, object] = {}
        self._cancelled: set[int] = set()

    def tick(self, now_s: float) -> None:
        """Send the pending homing goal once its server is there (or give up at the deadline)."""
        if self._homing_deadline_s is None:
            return
        log = self._node.get_logger()
        if self._homing.server_is_ready():
            self._homing_deadline_s = None
            self._homing.send_goal_async(self._types["homing"].Goal()).add_done_callback(self._on_homing_response)
        elif now_s >= self._homing_deadline_s:
            self._homing_deadline_s = None
            log.error("homing skipped: the Homing action server did not appear within action_timeout_s")

    def _on_homing_response(self, future) -> None:
        handle = future.result()
        if not handle.accepted:
            self._node.get_logger().error("homing goal rejected")
            return
        handle.get_result_async().add_done_callback(self._on_homing_result)

    def _on_homing_result(self, future) -> None:
        result = future.result().result
        if result.success:
            self._node.get_logger().info("homing succeeded")
        else:
            self._node.get_logger().error(f"homing failed: {result.error or 'no reason given'}")

    def send(self, goal: GripperGoal) -> None:
        client = self._clients[goal.kind]
        if not client.server_is_ready():
            self._node.report(goal.goal_id, False, f"{goal.kind} action server not available")
            return
        msg = self._types[goal.kind].Goal()
        msg.width, msg.speed = goal.width_m, goal.speed_mps
        if goal.kind == GRASP:
            msg.force = goal.force_n
            msg.epsilon.inner, msg.epsilon.outer = goal.epsilon_inner_m, goal.epsilon_outer_m
        client.send_goal_async(msg).add_done_callback(lambda f, g=goal: self._on_goal_response(g, f))

    def _on_goal_response(self, goal: GripperGoal, future) -> None:
        handle = future.result()
        abandoned = goal.goal_id in self._cancelled
        self._cancelled.discard(goal.goal_id)
        if not handle.accepted:
            self._node.report(goal.goal_id, False, f"{goal.kind} goal rejected")
            return
        if abandoned:  # timed out or preempted while its acceptance was on the way
            handle.cancel_goal_async()
            return
        self._handles[goal.goal_id] = handle
        handle.get_result_async().add_done_callback(lambda f, g=goal: self._on_result(g, f))

    def _on_result(self, goal: GripperGoal, future) -> None:
        self._handles.pop(goal.goal_id, None)
        response = future.result()
        result = response.result
        self._node.report(goal.goal_id, bool(result.success), result.error or f"status {response.status}")

    def cancel(self, goal: GripperGoal) -> None:
        handle = self._handles.pop(goal.goal_id, None)
        if handle is not None:
            handle.cancel_goal_async()
        else:
            self._cancelled.add(goal.goal_id)

    def close(self) -> None:
        for client in (*self._clients.values(), self._homing):
            client.destroy()


class LibfrankaBackend:
    """pylibfranka ``Gripper`` in a child process (:class:`spvla_ros.robot.franka_hand.FrankaHandProcess`:
    its calls hold the GIL, so on a thread they would freeze this node); results come back through
    :meth:`GripperNode.report`. Cancelling a goal ends the child; a fresh one calls ``stop()`` first."""

    def __init__(self, node: GripperNode, robot_ip: str, home_on_start: bool, connect_timeout_s: float) -> None:
        from spvla_ros.robot.franka_hand import FrankaHandProcess

        self._hand = FrankaHandProcess(robot_ip, node.report, home_on_start=home_on_start,
                                       connect_timeout_s=connect_timeout_s)

    def tick(self, now_s: float) -> None:
        pass

    def send(self, goal: GripperGoal) -> None:
        self._hand.send(goal)

    def cancel(self, goal: GripperGoal) -> None:
        self._hand.cancel(goal)

    def close(self) -> None:
        self._hand.close()


class GripperNode(Node):
    """See the module docstring."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        guard_time_source(self)  # sim time: a /clock before the epoch must not end the node
        ro = ParameterDescriptor(read_only=True)
        self._backend_name = self.declare_parameter("backend", "none", ParameterDescriptor(
            read_only=True, description=f"one of {BACKENDS}")).value
        robot_ip = self.declare_parameter("robot_ip", "172.16.0.2", ro).value
        move_action = self.declare_parameter("move_action", "/franka_gripper/move", ro).value
        grasp_action = self.declare_parameter("grasp_action", "/franka_gripper/grasp", ro).value
        homing_action = self.declare_parameter("homing_action", "/franka_gripper/homing", ro).value
        home_on_start = bool(self.declare_parameter("home_on_start", False, ro).value)
        status_rate_hz = float(self.declare_parameter("status_rate_hz", 10.0, ro).value)
        if self._backend_name not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self._backend_name!r}")
        if not math.isfinite(status_rate_hz) or status_rate_hz <= 0:
            raise ValueError(f"status_rate_hz must be > 0, got {status_rate_hz}")
        self._hand_params = ParamGroup(GripperConfig, hand_specs())
        config = self._hand_params.declare(self)
        self.commander = GripperCommander(config)
        self._results: queue.Queue[tuple[int, bool, str, float | None]] = queue.Queue()
        self._status_pub = self.create_publisher(GripperStatus, topics.GRIPPER_STATUS, qos.STATUS_QOS)
        self.create_subscription(GripperCommand, topics.SAFE_GRIPPER_COMMAND, self._on_command, qos.GRIPPER_QOS)
        if self._backend_name == "franka_ros2":
            self._backend = FrankaRos2Backend(self, move_action, grasp_action, homing_action, home_on_start)
        elif self._backend_name == "libfranka":
            self._backend = LibfrankaBackend(self, robot_ip, home_on_start, config.action_timeout_s)
        else:
            self._backend = NoHandBackend(self)
        self.create_timer(1.0 / status_rate_hz, self._on_tick)
        self.get_logger().info(f"Franka Hand backend {self._backend_name}")

    def report(self, goal_id: int, success: bool, error: str = "", width_m: float | None = None) -> None:
        """A backend's result (any thread): applied on the next tick, in the executor thread."""
        self._results.put((goal_id, success, error, width_m))

    def _on_command(self, msg: GripperCommand) -> None:
        try:
            target = GripperState(msg.state)
        except ValueError:
            self.get_logger().error(f"ignored gripper command with unknown state {msg.state!r}")
            return
        goal, cancel = self.commander.request(target, time.monotonic())
        if cancel is not None:
            self.get_logger().warning(f"{cancel.kind} goal {cancel.goal_id} preempted by a new {target.value} command")
            self._backend.cancel(cancel)
        if goal is not None:
            self._backend.send(goal)
        self._drain_and_publish()

    def _on_tick(self) -> None:
        now_s = time.monotonic()
        self._backend.tick(now_s)
        timed_out = self.commander.check_timeout(now_s)
        if timed_out is not None:
            self.get_logger().error(
                f"{timed_out.kind} goal {timed_out.goal_id} to {timed_out.target.value} timed out after "
                f"{self.commander.config.action_timeout_s:g} s: cancelled, hand state unknown")
            self._backend.cancel(timed_out)
        self._drain_and_publish(force=True)

    def _drain_and_publish(self, force: bool = False) -> None:
        changed = False
        while True:
            try:
                goal_id, success, error, width = self._results.get_nowait()
            except queue.Empty:
                break
            if self.commander.on_result(goal_id, success, error, width):
                changed = True
                log = self.get_logger().info if success else self.get_logger().error
                log(f"gripper goal {goal_id}: {self.commander.last_result}")
        if changed or force:
            self._publish_status()

    def _publish_status(self) -> None:
        c = self.commander
        msg = GripperStatus(backend=self._backend_name, state=c.state,
                            target="" if c.last_target is None else c.last_target.value,
                            in_flight=c.in_flight is not None, width_m=c.width_m, last_result=c.last_result,
                            sent=c.counts.sent, succeeded=c.counts.succeeded, failed=c.counts.failed,
                            timed_out=c.counts.timed_out, preempted=c.counts.preempted)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def destroy_node(self) -> None:
        self._backend.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return spin_node(GripperNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
