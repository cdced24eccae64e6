"""Gripper node against franka_ros2-style action servers built from franka_msgs in this test: the goals
it sends, failures reported, a hung server timed out; and the safety node's veto."""

from __future__ import annotations

import math

import pytest
import rclpy
from rclpy.action import ActionServer, CancelResponse
from rclpy.parameter import Parameter

franka_action = pytest.importorskip("franka_msgs.action", reason="franka_msgs not built (needs ../shared)")
from spvla.msg import GripperCommand, GripperStatus  # noqa: E402

from spvla_ros.nodes import qos, topics  # noqa: E402
from spvla_ros.nodes.gripper_node import GripperNode  # noqa: E402


class FakeFrankaGripper:
    """Move/Grasp action servers that record goals; ``mode``: succeed | fail | hang (accept, never answer)."""

    def __init__(self, node, mode: str = "succeed") -> None:
        self.mode = mode
        self.goals: list[tuple[str, object]] = []
        self.cancelled = 0
        self.held = []
        self._servers = [
            ActionServer(node, franka_action.Move, "/franka_gripper/move", self._execute("move"),
                         handle_accepted_callback=self._accepted, cancel_callback=self._cancel),
            ActionServer(node, franka_action.Grasp, "/franka_gripper/grasp", self._execute("grasp"),
                         handle_accepted_callback=self._accepted, cancel_callback=self._cancel),
            ActionServer(node, franka_action.Homing, "/franka_gripper/homing", self._execute("homing")),
        ]

    def _accepted(self, handle) -> None:
        if self.mode == "hang":
            self.held.append(handle)  # never executed: no result ever comes
        else:
            handle.execute()

    def _cancel(self, _request) -> CancelResponse:
        self.cancelled += 1
        return CancelResponse.ACCEPT

    def _execute(self, kind: str):
        action = {"move": franka_action.Move, "grasp": franka_action.Grasp, "homing": franka_action.Homing}[kind]

        def run(handle):
            self.goals.append((kind, handle.request))
            result = action.Result()
            if self.mode == "fail":
                handle.abort()
                result.success, result.error = False, "no object between the fingers"
            else:
                handle.succeed()
                result.success = True
            return result

        return run


def _setup(graph, mode: str, timeout_s: float = 5.0, home_on_start: bool = False):
    node = graph.add(GripperNode(context=graph.context, parameter_overrides=[
        Parameter("backend", value="franka_ros2"), Parameter("action_timeout_s", value=timeout_s),
        Parameter("force_n", value=30.0), Parameter("speed_mps", value=0.05),
        Parameter("home_on_start", value=home_on_start)]))
    peer = graph.add(rclpy.create_node("franka_gripper_fake", context=graph.context))
    fake = FakeFrankaGripper(peer, mode)
    statuses: list[GripperStatus] = []
    peer.create_subscription(GripperStatus, topics.GRIPPER_STATUS, statuses.append, qos.STATUS_QOS)
    pub = peer.create_publisher(GripperCommand, topics.SAFE_GRIPPER_COMMAND, qos.GRIPPER_QOS)
    assert graph.spin_until(lambda: pub.get_subscription_count() > 0
                            and all(c.server_is_ready() for c in node._backend._clients.values()))
    return node, fake, pub, statuses


def test_close_then_open_send_grasp_then_move_with_the_configured_values(graph):
    node, fake, pub, statuses = _setup(graph, "succeed")
    pub.publish(GripperCommand(state="closed", model_value=0.02))
    assert graph.spin_until(lambda: node.commander.state == "closed")
    pub.publish(GripperCommand(state="open", model_value=0.97))
    assert graph.spin_until(lambda: node.commander.state == "open")
    (k1, grasp), (k2, move) = fake.goals
    assert (k1, k2) == ("grasp", "move")
    assert (grasp.width, grasp.speed, grasp.force) == (0.0, 0.05, 30.0)
    assert (grasp.epsilon.inner, grasp.epsilon.outer) == (0.005, 0.08)
    assert (move.width, move.speed) == (0.08, 0.05)
    assert graph.spin_until(lambda: statuses and statuses[-1].state == "open" and statuses[-1].succeeded == 2)


def test_a_failed_grasp_is_reported_with_its_reason(graph):
    node, fake, pub, statuses = _setup(graph, "fail")
    pub.publish(GripperCommand(state="closed", model_value=0.0))
    assert graph.spin_until(lambda: node.commander.counts.failed == 1)
    assert graph.spin_until(lambda: statuses and statuses[-1].failed == 1)
    assert statuses[-1].state == "unknown" and "no object" in statuses[-1].last_result


def test_a_hung_server_times_out_and_the_goal_is_cancelled(graph):
    node, fake, pub, statuses = _setup(graph, "hang", timeout_s=0.5)
    pub.publish(GripperCommand(state="closed", model_value=0.0))
    assert graph.spin_until(lambda: fake.held)
    assert graph.spin_until(lambda: node.commander.counts.timed_out == 1, timeout_s=5.0)
    assert graph.spin_until(lambda: fake.cancelled == 1)
    assert graph.spin_until(lambda: statuses and statuses[-1].last_result == "timed_out")
    assert not statuses[-1].in_flight and math.isnan(statuses[-1].width_m)


def test_home_on_start_sends_one_homing_goal_once_the_server_is_there(graph):
    node, fake, pub, statuses = _setup(graph, "succeed", home_on_start=True)
    assert graph.spin_until(lambda: [k for k, _ in fake.goals] == ["homing"])
    graph.spin_for(0.3)  # ticks keep running: still one
    assert [k for k, _ in fake.goals] == ["homing"] and node.commander.counts.sent == 0


def test_a_goal_abandoned_before_it_was_accepted_is_cancelled_on_acceptance(graph):
    """Regression: cancel() used to do nothing when the goal handle had not arrived yet, so a timed-out or
    preempted goal whose acceptance was slow kept running on the hand."""
    from rclpy.task import Future

    from spvla_ros.core.gripper import GripperState

    node, fake, pub, statuses = _setup(graph, "hang")
    goal, _ = node.commander.request(GripperState.CLOSED, 0.0)
    backend = node._backend
    backend.cancel(goal)  # before any goal response

    class Handle:
        accepted, cancelled = True, 0

        def cancel_goal_async(self):
            self.cancelled += 1

    handle, future = Handle(), Future()
    future.set_result(handle)
    backend._on_goal_response(goal, future)
    assert handle.cancelled == 1 and goal.goal_id not in backend._handles and not backend._cancelled


def test_safety_node_relays_only_while_armed_and_counts_vetoes(graph):
    from spvla.msg import SafetyStatus

    from spvla_ros.nodes.safety_node import SafetyNode

    safety = graph.add(SafetyNode(context=graph.context, parameter_overrides=[
        Parameter("workspace_requires_pose", value=False)]))
    peer = graph.add(rclpy.create_node("peer", context=graph.context))
    relayed: list[GripperCommand] = []
    status: list[SafetyStatus] = []
    peer.create_subscription(GripperCommand, topics.SAFE_GRIPPER_COMMAND, relayed.append, qos.GRIPPER_QOS)
    peer.create_subscription(SafetyStatus, topics.SAFETY_STATUS, status.append, qos.STATUS_QOS)
    pub = peer.create_publisher(GripperCommand, topics.GRIPPER_COMMAND, qos.GRIPPER_QOS)
    assert graph.spin_until(lambda: pub.get_subscription_count() > 0
                            and safety._gripper_pub.get_subscription_count() > 0)
    pub.publish(GripperCommand(state="closed"))  # dry run (disarmed): vetoed
    graph.spin_for(0.3)
    assert relayed == []
    assert safety.layer.arm()[0]
    pub.publish(GripperCommand(state="open"))
    assert graph.spin_until(lambda: len(relayed) == 1) and relayed[0].state == "open"

    def vetoes():
        if not status:
            return 0
        counts = dict(zip(status[-1].intervention_names, status[-1].intervention_counts, strict=True))
        return counts.get("drop_gripper_vetoed", 0)

    assert graph.spin_until(lambda: vetoes() == 1)
