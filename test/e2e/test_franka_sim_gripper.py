"""The libfranka gripper path against franka-sim's Franka Hand server (libfranka protocol, port 1338):
open, close on an object, width read back, and a failed grasp reported. Skips when franka-sim is absent."""

from __future__ import annotations

import logging
import queue

import pytest

from spvla_ros.core.gripper import GripperConfig, GripperState
from spvla_ros.core.gripper_commander import GripperCommander
from spvla_ros.robot.sim_process import FrankaSimProcess, sim_unavailable_reason

OBJECT_WIDTH_M = 0.03


class _Reports:
    """Stands in for the gripper node: collects the backend's results (any thread)."""

    def __init__(self) -> None:
        self.results: queue.Queue = queue.Queue()

    def report(self, goal_id, success, error="", width_m=None):
        self.results.put((goal_id, success, error, width_m))

    def get_logger(self):
        return logging.getLogger("gripper-test")


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    reason = sim_unavailable_reason()
    if reason:
        pytest.skip(f"franka-sim not available: {reason}")
    from spvla_ros.nodes.gripper_node import LibfrankaBackend

    log = tmp_path_factory.mktemp("franka_sim_gripper") / "franka-sim.log"
    with FrankaSimProcess(log, gripper_object_width_m=OBJECT_WIDTH_M):
        node = _Reports()
        backend = LibfrankaBackend(node, "127.0.0.1", home_on_start=False)
        try:
            yield node, backend
        finally:
            backend.close()


def _do(hand, commander, target, now):
    node, backend = hand
    goal, _ = commander.request(target, now)
    assert goal is not None
    backend.send(goal)
    goal_id, success, error, width = node.results.get(timeout=20.0)
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
