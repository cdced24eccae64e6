"""Gripper: hysteresis inside the command stream (one command per switch, none from extrapolation) and
the Franka Hand goal bookkeeping (goals for states, preemption, results, timeouts)."""

from __future__ import annotations

import numpy as np
import pytest

from spvla_ros.core.command_stream import NS_PER_S, CommandStream, make_chunk
from spvla_ros.core.gripper import GripperConfig, GripperState
from spvla_ros.core.gripper_commander import GRASP, MOVE, UNKNOWN, GripperCommander
from spvla_ros.core.scheduler_config import SchedulerConfig

T0 = 1000 * NS_PER_S
STEP = NS_PER_S // 5
PERMISSIVE = SchedulerConfig(v_min=0.0, v_max=10.0, tau=0.0, max_consecutive_extrapolations=3, intuitive_test="norm")


def _stream_with_gripper_values(values, scheduler=PERMISSIVE, dwell_s=0.0):
    """Drive a stream whose model chunks carry ``values[j]`` as the gripper of step j (translation constant,
    so the permissive scheduler extrapolates whenever it may). Returns the step reports."""
    s = CommandStream(scheduler, gripper_config=GripperConfig(band=0.1, min_dwell_s=dwell_s))
    reports = []
    for j in range(len(values) + 1):
        out = s.advance_to(T0 + j * STEP)
        reports += out.steps
        for r in out.requests:
            rows = np.tile([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], (16, 1))
            rows[:, 6] = [values[min(len(values) - 1, j + k)] for k in range(16)]
            s.on_chunk(make_chunk(rows, r.stamp_ns, 5.0, r.request_id))
    return reports


def test_one_command_per_switch_and_none_from_noise_inside_the_band():
    rng = np.random.default_rng(0)
    noisy_open = list(0.9 + 0.05 * rng.standard_normal(10))
    near_threshold = list(0.5 + 0.08 * rng.standard_normal(10))  # inside the +-0.1 band
    closed = list(0.05 + 0.02 * rng.standard_normal(10))
    reports = _stream_with_gripper_values(noisy_open + near_threshold + closed + near_threshold)
    switches = [(r.step, r.gripper) for r in reports if r.gripper is not None]
    assert [g for _, g in switches] == [GripperState.OPEN, GripperState.CLOSED]
    assert switches[1][0] >= 20  # the close came with the first clearly-closed value, not in the band


def test_extrapolated_steps_carry_the_gripper_and_send_nothing():
    reports = _stream_with_gripper_values([1.0] * 30)
    paths = [r.decision for r in reports]
    assert "extrapolate" in paths and "model" in paths
    assert sum(r.gripper is not None for r in reports) == 1  # only the first decisive value


def test_dwell_time_blocks_chatter():
    flip = [1.0, 0.0] * 10  # alternates every 0.2 s step
    reports = _stream_with_gripper_values(flip, scheduler=PERMISSIVE.with_changes(tau=1.0), dwell_s=1.0)
    times = [r.stamp_ns / NS_PER_S for r in reports if r.gripper is not None]
    assert len(times) >= 2
    assert min(np.diff(times)) >= 1.0 - 1e-9


# ------------------------------------------------------------------ commander
CFG = GripperConfig(open_width_m=0.08, grasp_width_m=0.0, speed_mps=0.05, force_n=30.0, epsilon_inner_m=0.005,
                    epsilon_outer_m=0.08, action_timeout_s=2.0)


def test_goals_for_open_and_closed():
    c = GripperCommander(CFG)
    goal, cancel = c.request(GripperState.OPEN, 0.0)
    assert cancel is None and goal.kind == MOVE and (goal.width_m, goal.speed_mps) == (0.08, 0.05)
    assert c.on_result(goal.goal_id, True, width_m=0.0799)
    goal, _ = c.request(GripperState.CLOSED, 1.0)
    assert goal.kind == GRASP
    assert (goal.width_m, goal.force_n, goal.epsilon_inner_m, goal.epsilon_outer_m) == (0.0, 30.0, 0.005, 0.08)
    assert c.on_result(goal.goal_id, True, width_m=0.03)
    assert c.state == "closed" and c.width_m == 0.03 and c.counts.succeeded == 2 and c.counts.sent == 2


def test_same_state_twice_sends_once():
    c = GripperCommander(CFG)
    goal, _ = c.request(GripperState.OPEN, 0.0)
    assert c.request(GripperState.OPEN, 0.1) == (None, None)  # in flight
    c.on_result(goal.goal_id, True)
    assert c.request(GripperState.OPEN, 0.2) == (None, None)  # reached
    assert c.counts.sent == 1


def test_new_state_preempts_and_the_late_result_is_ignored():
    c = GripperCommander(CFG)
    first, _ = c.request(GripperState.CLOSED, 0.0)
    second, cancel = c.request(GripperState.OPEN, 0.5)
    assert cancel == first and second.target == GripperState.OPEN and c.counts.preempted == 1
    assert not c.on_result(first.goal_id, True)  # late: ignored
    assert c.state == UNKNOWN and c.in_flight == second


def test_failure_and_timeout_leave_the_state_unknown_and_are_counted():
    c = GripperCommander(CFG)
    goal, _ = c.request(GripperState.CLOSED, 0.0)
    assert c.on_result(goal.goal_id, False, "object missed")
    assert c.state == UNKNOWN and c.counts.failed == 1 and "object missed" in c.last_result
    goal, _ = c.request(GripperState.CLOSED, 1.0)  # retry is allowed: the state is unknown
    assert goal is not None
    assert c.check_timeout(2.9) is None
    assert c.check_timeout(3.0) == goal
    assert c.counts.timed_out == 1 and c.last_result == "timed_out" and c.in_flight is None
    assert not c.on_result(goal.goal_id, True)  # a result after the timeout changes nothing


@pytest.mark.parametrize("bad", [{"force_n": 0.0}, {"speed_mps": 0.2}, {"open_width_m": 0.09},
                                 {"action_timeout_s": 0.0}])
def test_hand_limits_are_enforced(bad):
    with pytest.raises(ValueError):
        GripperConfig(**bad)
