"""The pylibfranka Franka Hand child process, with a fake ``Gripper`` (module-level, so the spawned child can
import it) that logs its calls to a file in the directory passed as ``robot_ip``.

Regressions pinned: a hung hand call never blocks the caller (pylibfranka holds the GIL in its calls, so
the hand runs in a child process); an abandoned goal ends its child and the fresh child calls ``stop()``
before anything else; a late result of an abandoned goal is dropped; a child that dies reports its goal
failed and the next goal gets a fresh child; a connection error is raised with its reason."""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path

import pytest

from spvla_ros.core.gripper import GripperConfig, GripperState
from spvla_ros.core.gripper_commander import GripperCommander
from spvla_ros.robot.franka_hand import FrankaHandProcess

WAIT_S = 10.0
HANG_WIDTH_M = 0.042
"""A move to this width hangs (the fake's stand-in for a hand that never answers)."""
DIE_WIDTH_M = 0.043
"""A move to this width kills the child process."""


class _State:
    width = 0.08


class FakeGripper:
    """pylibfranka.Gripper's surface; ``robot_ip`` is a directory: calls are appended to ``calls.log``."""

    def __init__(self, log_dir: str) -> None:
        self._log = Path(log_dir) / "calls.log"
        if (Path(log_dir) / "refuse").exists():
            raise ConnectionError("connection refused (fake)")
        self._width = 0.08
        self._record(f"connect {os.getpid()}")

    def _record(self, line: str) -> None:
        with self._log.open("a") as f:
            f.write(line + "\n")

    def stop(self) -> bool:
        self._record("stop")
        return True

    def homing(self) -> bool:
        self._record("homing")
        self._width = 0.08
        return True

    def move(self, width: float, speed: float) -> bool:
        self._record(f"move {width} {speed}")
        if width == HANG_WIDTH_M:
            time.sleep(60.0)
        if width == DIE_WIDTH_M:
            os._exit(3)
        self._width = width
        return True

    def grasp(self, width, speed, force, epsilon_inner, epsilon_outer) -> bool:
        self._record(f"grasp {width} {speed} {force} {epsilon_inner} {epsilon_outer}")
        self._width = 0.03
        return width - epsilon_inner < self._width < width + epsilon_outer

    def read_once(self) -> _State:
        state = _State()
        state.width = self._width
        return state


class _Results:
    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()

    def __call__(self, goal_id, success, error, width):
        self.q.put((goal_id, success, error, width))

    def get(self):
        return self.q.get(timeout=WAIT_S)


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def hand(tmp_path):
    results = _Results()
    proc = FrankaHandProcess(str(tmp_path), results, home_on_start=True, factory=FakeGripper)
    try:
        yield proc, results
    finally:
        proc.close()


def test_goals_run_in_the_child_with_their_values_and_widths_come_back(hand, tmp_path):
    proc, results = hand
    commander = GripperCommander(GripperConfig(speed_mps=0.05, force_n=30.0))
    close, _ = commander.request(GripperState.CLOSED, 0.0)
    proc.send(close)
    assert results.get() == (close.goal_id, True, "", 0.03)
    open_, _ = commander.request(GripperState.OPEN, 1.0)
    proc.send(open_)
    assert results.get() == (open_.goal_id, True, "", 0.08)
    calls = _calls(tmp_path)
    assert calls[0].startswith("connect") and calls[1:] == ["homing", "grasp 0.0 0.05 30.0 0.005 0.08",
                                                            "move 0.08 0.05"]


def test_a_hung_goal_never_blocks_and_its_cancel_restarts_the_child_with_stop_first(hand, tmp_path):
    proc, results = hand
    commander = GripperCommander(GripperConfig(open_width_m=HANG_WIDTH_M))
    hung, _ = commander.request(GripperState.OPEN, 0.0)
    t0 = time.monotonic()
    proc.send(hung)
    deadline = time.monotonic() + WAIT_S
    while f"move {HANG_WIDTH_M} 0.1" not in _calls(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.cancel(hung)  # as the node does on a timeout or a preemption
    assert time.monotonic() - t0 < 5.0
    grasp, _ = commander.request(GripperState.CLOSED, 1.0)
    proc.send(grasp)
    assert results.get() == (grasp.goal_id, True, "", 0.03)  # nothing ever came for the hung goal
    assert results.q.empty() and proc.restarts == 1
    calls = _calls(tmp_path)
    second_connect = [i for i, c in enumerate(calls) if c.startswith("connect")][1]
    assert calls[second_connect + 1:] == ["stop", "grasp 0.0 0.1 20.0 0.005 0.08"]


def test_a_finished_goal_is_not_cancelled(hand, tmp_path):
    proc, results = hand
    goal, _ = GripperCommander().request(GripperState.OPEN, 0.0)
    proc.send(goal)
    results.get()
    proc.cancel(goal)
    assert proc.restarts == 0 and "stop" not in _calls(tmp_path)


def test_a_dying_child_fails_its_goal_and_the_next_goal_gets_a_fresh_child(hand, tmp_path):
    proc, results = hand
    commander = GripperCommander(GripperConfig(open_width_m=DIE_WIDTH_M))
    doomed, _ = commander.request(GripperState.OPEN, 0.0)
    proc.send(doomed)
    goal_id, success, error, width = results.get()
    assert (goal_id, success, width) == (doomed.goal_id, False, None) and "exited (code 3)" in error
    grasp, _ = commander.request(GripperState.CLOSED, 1.0)
    proc.send(grasp)
    assert results.get()[:2] == (grasp.goal_id, True)
    assert proc.restarts == 1


def test_a_refused_connection_is_raised_with_its_reason(tmp_path):
    (tmp_path / "refuse").touch()
    with pytest.raises(RuntimeError, match="connection refused"):
        FrankaHandProcess(str(tmp_path), _Results(), factory=FakeGripper)
