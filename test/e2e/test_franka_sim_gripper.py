"""The libfranka gripper path against franka-sim's Franka Hand server (libfranka protocol, TCP 1338):
open, close on an object, width read back, a failed grasp reported, a cancelled goal followed by a fresh
connection that works, and the gripper node (``backend: libfranka``) end to end. Skips when franka-sim is
absent.

franka-sim's hand (``franka_sim.gripper.backend.FrankaHandSim``, the default without ``--gripper-physics``)
is kinematic: a command sets the final width at once (speed not simulated, force not a limit), and a
``--gripper-object-width`` object stops the fingers. So timing (timeouts, stopping a motion half way) cannot
be exercised here; test/unit/test_franka_hand_process.py covers it with a hanging fake hand.
"""

from __future__ import annotations

import queue

import pytest

from spvla_ros.core.gripper import GripperConfig, GripperState
from spvla_ros.core.gripper_commander import GripperCommander
from spvla_ros.robot.sim_process import LOOPBACK_HOST, FrankaSimProcess, sim_unavailable_reason

OBJECT_WIDTH_M = 0.03
WAIT_S = 20.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    reason = sim_unavailable_reason()
    if reason:
        pytest.skip(f"franka-sim not available: {reason}")
    log = tmp_path_factory.mktemp("franka_sim_gripper") / "franka-sim.log"
    with FrankaSimProcess(log, gripper_object_width_m=OBJECT_WIDTH_M):
        yield


@pytest.fixture
def hand(sim):
    from spvla_ros.robot.franka_hand import FrankaHandProcess

    results: queue.Queue = queue.Queue()
    proc = FrankaHandProcess(LOOPBACK_HOST, lambda *r: results.put(r), connect_timeout_s=WAIT_S)
    try:
        yield proc, results
    finally:
        proc.close()


def _do(hand, commander, target, now):
    proc, results = hand
    goal, _ = commander.request(target, now)
    assert goal is not None
    proc.send(goal)
    goal_id, success, error, width = results.get(timeout=WAIT_S)
    assert goal_id == goal.goal_id
    commander.on_result(goal_id, success, error, width)
    return success, error, width


def test_open_then_close_on_an_object_reads_the_width_back(hand):
    commander = GripperCommander(GripperConfig(open_width_m=0.08, speed_mps=0.1, force_n=20.0))
    ok, error, width = _do(hand, commander, GripperState.OPEN, 0.0)
    assert ok, error
    assert width == pytest.approx(0.08, abs=2e-3)
    ok, error, width = _do(hand, commander, GripperState.CLOSED, 1.0)
    assert ok, error  # grasp_width 0 with epsilon_outer 0.08: any object counts
    assert width == pytest.approx(OBJECT_WIDTH_M, abs=2e-3)
    assert commander.state == "closed" and commander.counts.succeeded == 2


def test_grasp_outside_the_tolerance_is_reported_failed(hand):
    commander = GripperCommander(GripperConfig(grasp_width_m=0.06, epsilon_inner_m=0.001, epsilon_outer_m=0.001))
    _do(hand, commander, GripperState.OPEN, 0.0)
    ok, error, _ = _do(hand, commander, GripperState.CLOSED, 1.0)
    assert not ok and error
    assert commander.state == "unknown" and commander.counts.failed == 1


def test_a_cancelled_goal_is_followed_by_a_working_reconnection(hand):
    """Cancel ends the hand's process; the sim serves one client at a time, so this also pins that the
    fresh process gets the connection once the old one is gone (and its stop() is accepted)."""
    proc, results = hand
    commander = GripperCommander()
    goal, _ = commander.request(GripperState.CLOSED, 0.0)
    proc.send(goal)
    proc.cancel(goal)  # the kinematic hand may or may not have answered already: either way is fine
    commander.check_timeout(1e9)
    ok, error, width = _do(hand, commander, GripperState.OPEN, 1.0)
    assert ok, error
    assert width == pytest.approx(0.08, abs=2e-3)
    while not results.empty():  # nothing for the cancelled goal may arrive after the reconnection
        assert results.get_nowait()[0] != goal.goal_id


def test_gripper_node_with_the_libfranka_backend(sim):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from spvla.msg import GripperCommand

    from spvla_ros.nodes.gripper_node import GripperNode

    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    node = GripperNode(context=context, parameter_overrides=[
        Parameter("backend", value="libfranka"), Parameter("robot_ip", value=LOOPBACK_HOST)])
    executor.add_node(node)
    try:
        node._on_command(GripperCommand(state="open"))
        node._on_command(GripperCommand(state="closed"))  # preempts the open if it is still running
        for _ in range(int(WAIT_S / 0.05)):
            executor.spin_once(timeout_sec=0.05)
            if node.commander.state == "closed":
                break
        c = node.commander
        assert c.state == "closed" and c.last_result == "succeeded"
        assert c.width_m == pytest.approx(OBJECT_WIDTH_M, abs=2e-3)
    finally:
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.shutdown(context=context)
        context.destroy()
