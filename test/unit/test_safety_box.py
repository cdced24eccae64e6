"""The workspace box holds in closed loop: the layer's own output is integrated at 1 kHz and fed back as the
measured end-effector pose every 1 ms (a perfect robot), with the shipped limits (config/safety.yaml).

Regressions pinned (issue 15, item 2): the box was checked only when a command arrived, and an accepted
target was held for ``command_timeout_s`` without looking at the live pose. An upstream asking +x at the
axis limit that died at x = 0.623 (box x_max = 0.8) took the arm to x = 0.905. A command dropped for a
stale pose left the previous target running. Now the held target is re-clamped on every cycle, and a
stale pose zeroes it: in that scenario, and in 1000 seeded random ones (any direction, any speed up to
and past the limits, a change of command, upstream dying at any time), the arm never goes more than
2 mm outside the box.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spvla_ros.core.safety import Intervention, RobotMode, SafetyLayer, load_safety_config

FRAME = "fr3_link0"
DT = 0.001
INPUT_PERIOD_STEPS = 20
"""Upstream publishes every 20 ms (50 Hz), like a fast scheduler."""
MARGIN_M = 0.002
"""Acceptance: never more than 2 mm outside the box."""
RANDOM_CASES = 1000
SEED = 15
SHIPPED = load_safety_config()


def _outside_m(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """How far each position (..., 3) is outside the box [lo, hi], m (0 inside)."""
    return np.max(np.maximum(lo - p, 0.0) + np.maximum(p - hi, 0.0), axis=-1)


def _fly(layer: SafetyLayer, start_m: np.ndarray, command, alive) -> tuple[float, np.ndarray]:
    """Close the loop until upstream is dead and the output is at rest.

    Args:
        command: step index -> twist the upstream sends at that step.
        alive: (step index, position) -> whether upstream still publishes.

    Returns:
        (largest distance outside the box over the run in m, final position).
    """
    limit = int(10.0 / DT)
    path = np.empty((limit, 3))
    p = start_m.astype(np.float64).copy()
    dead = False
    for k in range(limit):
        t = k * DT
        layer.update_robot_state(RobotMode.MOVE, (), p, t)
        dead = dead or not alive(k, p)
        if not dead and k % INPUT_PERIOD_STEPS == 0:
            layer.submit(command(k), 0.0, FRAME, t)
        p = p + layer.step(t)[:3] * DT
        path[k] = p
        if dead and layer.at_rest:
            lo, hi = np.array(layer.config.workspace_min_m), np.array(layer.config.workspace_max_m)
            return float(_outside_m(path[: k + 1], lo, hi).max()), p
    raise AssertionError(f"not at rest after {limit} steps")


def _armed_layer(**overrides) -> SafetyLayer:
    layer = SafetyLayer(dataclasses.replace(SHIPPED, **overrides))
    assert layer.arm()[0]
    return layer


def test_issue_scenario_upstream_dies_heading_for_the_wall() -> None:
    """+x at the axis limit from inside, upstream dies at x = 0.623 with x_max = 0.8 (was: x = 0.905)."""
    layer = _armed_layer()
    config = layer.config
    assert config.workspace_max_m[0] == 0.8
    vx = np.array([config.max_lin_vel_axis_mps, 0, 0, 0, 0, 0])
    worst, final = _fly(layer, np.array([0.4, 0.0, 0.5]), lambda k: vx, lambda k, p: p[0] < 0.623)
    assert worst <= MARGIN_M, f"left the box by {worst * 1e3:.1f} mm (final x = {final[0]:.3f})"
    assert final[0] <= config.workspace_max_m[0] + MARGIN_M
    assert final[0] > 0.623  # it did move on after the last command: the held target ran, then was clamped
    assert layer.snapshot(0.0).counters[Intervention.CLAMP_WORKSPACE.value] >= 1


@pytest.mark.slow
@pytest.mark.parametrize(("horizon_s", "cases"), [(SHIPPED.workspace_horizon_s, RANDOM_CASES), (0.0, 200)],
                         ids=["shipped", "zero-horizon"])
def test_random_directions_speeds_and_deaths_never_leave_the_box(horizon_s: float, cases: int) -> None:
    """The shipped config (acceptance: 1000 cases), and a zero ``workspace_horizon_s`` (the braking bound
    alone must hold the box)."""
    rng = np.random.default_rng(SEED)
    config = dataclasses.replace(SHIPPED, workspace_horizon_s=horizon_s)
    lo, hi = np.array(config.workspace_min_m), np.array(config.workspace_max_m)
    worst_all, worst_case = 0.0, None
    reached_wall = 0
    for case in range(cases):
        start = rng.uniform(lo, hi)
        speeds = rng.uniform(0.0, 1.5, size=2) * config.max_lin_vel_mps  # up to and past the limit
        twists = []
        for speed in speeds:
            direction = rng.normal(size=3)
            twists.append(np.concatenate([speed * direction / np.linalg.norm(direction), rng.normal(size=3)]))
        switch_step = int(rng.uniform(0.0, 0.7) / DT)
        death_step = int(rng.uniform(0.0, 1.0) / DT)
        layer = _armed_layer(workspace_horizon_s=horizon_s)
        worst, final = _fly(layer, start, lambda k, t=twists, s=switch_step: t[0] if k < s else t[1],
                               lambda k, p, d=death_step: k < d)
        reached_wall += _outside_m(final, lo + 0.2, hi - 0.2) > 0  # ended near a wall (the box was tested)
        if worst > worst_all:
            worst_all, worst_case = worst, (case, start.tolist(), [t.tolist() for t in twists], switch_step,
                                            death_step)
    assert worst_all <= MARGIN_M, f"left the box by {worst_all * 1e3:.2f} mm in case {worst_case}"
    assert reached_wall > cases // 4, "too few cases ended near a wall to say anything about the box"


@pytest.mark.parametrize("requires_pose", [True, False])
def test_stale_pose_zeroes_the_held_target(requires_pose: bool) -> None:
    """Pose updates stop while a target is held: with ``workspace_requires_pose`` the arm ramps to rest
    within ``robot_state_timeout_s`` plus the ramp; without it (documented: no box), the target is kept."""
    layer = _armed_layer(workspace_requires_pose=requires_pose)
    p = np.array([0.4, 0.0, 0.5])
    t = 0.0
    for k in range(300):  # moving in +y at 0.2 m/s with a fresh pose
        t = k * DT
        layer.update_robot_state(RobotMode.MOVE, (), p, t)
        if k % INPUT_PERIOD_STEPS == 0:
            layer.submit(np.array([0.0, 0.2, 0, 0, 0, 0]), 0.0, FRAME, t)
        p = p + layer.step(t)[:3] * DT
    t_last_pose = t
    while t < t_last_pose + 0.3:  # commands keep coming, the pose does not
        t += DT
        if round(t / DT) % INPUT_PERIOD_STEPS == 0:
            layer.submit(np.array([0.0, 0.2, 0, 0, 0, 0]), 0.0, FRAME, t)
        out = layer.step(t)
    snap = layer.snapshot(t)
    if requires_pose:
        assert layer.at_rest and not out.any()
        assert snap.counters[Intervention.STOP_STALE_POSE.value] == 1
        assert snap.counters[Intervention.DROP_NO_POSE.value] > 0
        assert snap.state == "stopping"
    else:
        assert out[1] == pytest.approx(0.2)


def test_non_finite_pose_is_ignored_and_counted() -> None:
    layer = _armed_layer()
    layer.update_robot_state(RobotMode.MOVE, (), np.array([0.5, 0.0, 0.5]), 0.0)
    layer.update_robot_state(RobotMode.MOVE, (), np.array([np.nan, 0.0, 0.5]), 0.001)
    assert layer.snapshot(0.001).counters[Intervention.DROP_BAD_POSE.value] == 1
    assert layer.robot_state_fresh(0.001)
    assert not layer.robot_state_fresh(0.2)  # the NaN did not refresh the pose
