"""Safety layer behaviour without ROS or a robot: config validation, checks, watchdog, e-stop, arming,
robot-fault latch, gripper debounce, counters.

Regressions pinned: nothing moves while disarmed (the default); NaN/Inf, wrong frame, stale or future
stamps and a missing pose are dropped and counted; clamps keep every bound; a stale command ramps to
zero within the deceleration limit and motion resumes only on a fresh command; e-stop latches (a second
arm is refused until reset); a reflex holds zero until an explicit recovery that the robot state allows;
configs above the FR3 limits are refused; config/safety.yaml matches the dataclass.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from spvla_ros.core.safety import Intervention, RobotMode, SafetyConfig, SafetyLayer, load_safety_config
from spvla_ros.core.safety.config import NODE_PARAMETERS, SAFETY_NODE_NAME, SAFETY_YAML
from spvla_ros.core.safety.validity import check_command
from spvla_ros.core.safety.watchdog import CommandWatchdog

FRAME = "fr3_link0"
INSIDE = np.array([0.5, 0.0, 0.5])  # inside the default workspace box
DT = 0.001


def _layer(**overrides: object) -> SafetyLayer:
    layer = SafetyLayer(SafetyConfig(**overrides))
    layer.update_robot_state(RobotMode.IDLE, (), INSIDE, 0.0)
    return layer


def _twist(**kw: float) -> np.ndarray:
    names = ("vx", "vy", "vz", "wx", "wy", "wz")
    return np.array([kw.get(n, 0.0) for n in names])


def _run(layer: SafetyLayer, t0: float, steps: int, pose: np.ndarray = INSIDE) -> tuple[np.ndarray, float]:
    out = []
    t = t0
    for _ in range(steps):
        t += DT
        layer.update_robot_state(RobotMode.MOVE, (), pose, t)
        out.append(layer.step(t))
    return np.array(out), t


# --- config ---
def test_yaml_keys_match_dataclass_and_defaults() -> None:
    import yaml

    params = yaml.safe_load(SAFETY_YAML.read_text())[SAFETY_NODE_NAME]["ros__parameters"]
    assert set(params) == {f.name for f in dataclasses.fields(SafetyConfig)} | set(NODE_PARAMETERS)
    assert params["dry_run"] is True  # commanding nothing is the shipped default
    assert load_safety_config() == SafetyConfig()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_lin_vel_mps", 3.5),
        ("max_lin_acc_mps2", 9.5),
        ("max_lin_jerk_mps3", 5000.0),
        ("max_ang_vel_radps", 2.6),
        ("max_ang_acc_radps2", 18.0),
        ("max_ang_jerk_radps3", 9000.0),
        ("max_lin_vel_mps", math.nan),
        ("max_lin_vel_mps", 0.0),
        ("command_timeout_s", -1.0),
        ("control_period_s", 0.002),
        ("workspace_min_m", (1.0, 0.0, 0.0)),
        ("workspace_max_m", (1.0, 1.0)),
    ],
)
def test_config_refuses_values_beyond_fr3_or_invalid(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SafetyConfig(**{field: value})


def test_load_refuses_unknown_key(tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("spvla_safety:\n  ros__parameters:\n    max_lin_vel_mps: 0.3\n    speed_of_light: 3.0e8\n")
    with pytest.raises(ValueError, match="speed_of_light"):
        load_safety_config(path)


# --- checks ---
@pytest.mark.parametrize(
    ("twist", "age", "frame", "pose", "reason"),
    [
        (_twist(vx=math.nan), 0.0, FRAME, INSIDE, Intervention.DROP_NON_FINITE),
        (_twist(wz=math.inf), 0.0, FRAME, INSIDE, Intervention.DROP_NON_FINITE),
        (np.zeros(5), 0.0, FRAME, INSIDE, Intervention.DROP_BAD_SHAPE),
        (_twist(vx=0.1), 0.0, "camera", INSIDE, Intervention.DROP_WRONG_FRAME),
        (_twist(vx=0.1), 1.0, FRAME, INSIDE, Intervention.DROP_STALE_STAMP),
        (_twist(vx=0.1), -1.0, FRAME, INSIDE, Intervention.DROP_FUTURE_STAMP),
        (_twist(vx=0.1), 0.0, FRAME, None, Intervention.DROP_NO_POSE),
    ],
)
def test_bad_commands_are_dropped_with_reason(twist, age, frame, pose, reason) -> None:
    checked = check_command(SafetyConfig(), twist, age, frame, pose)
    assert checked.target is None
    assert checked.interventions == (reason,)


def test_clamps_keep_axis_and_norm_bounds() -> None:
    config = SafetyConfig(max_lin_vel_axis_mps=0.4, max_lin_vel_mps=0.5, max_ang_vel_radps=0.8)
    checked = check_command(config, _twist(vx=2.0, vy=-2.0, vz=0.1, wx=5.0), 0.0, FRAME, INSIDE)
    lin, ang = checked.target[:3], checked.target[3:]
    assert np.abs(lin).max() <= 0.4 and np.linalg.norm(lin) <= 0.5 + 1e-12
    assert np.linalg.norm(ang) <= 0.8 + 1e-12
    assert {Intervention.CLAMP_LIN_AXIS, Intervention.CLAMP_LIN_NORM, Intervention.CLAMP_ANG_AXIS,
            Intervention.CLAMP_ANG_NORM} <= set(checked.interventions)
    # Direction is kept by the norm clamp.
    assert lin[0] > 0 > lin[1]


def test_workspace_zeroes_only_outward_components() -> None:
    config = SafetyConfig()
    at_top = np.array([0.5, 0.0, config.workspace_max_m[2] - 0.01])
    up = check_command(config, _twist(vx=0.1, vz=0.2), 0.0, FRAME, at_top)
    np.testing.assert_allclose(up.target[:3], [0.1, 0.0, 0.0])
    assert Intervention.CLAMP_WORKSPACE in up.interventions
    down = check_command(config, _twist(vz=-0.2), 0.0, FRAME, at_top)
    np.testing.assert_allclose(down.target[:3], [0.0, 0.0, -0.2])
    assert down.interventions == ()


# --- layer ---
def test_disarmed_by_default_nothing_moves() -> None:
    layer = _layer()
    checked = layer.submit(_twist(vx=0.2), 0.0, FRAME, 0.0)
    assert checked.target is None and Intervention.DROP_NOT_ARMED in checked.interventions
    out, _ = _run(layer, 0.0, 50)
    assert not out.any()
    assert layer.snapshot(0.05).state == "disarmed"
    assert not layer.wants_output


def test_watchdog_ramps_stale_command_to_zero_within_decel_limit() -> None:
    config = SafetyConfig(command_timeout_s=0.05)
    layer = _layer(command_timeout_s=0.05)
    assert layer.arm()[0]
    t = 0.0
    moving = []
    for _ in range(400):  # 0.4 s of fresh commands at 100 Hz
        if round(t / DT) % 10 == 0:
            layer.submit(_twist(vx=0.3), 0.0, FRAME, t)
        out, t = _run(layer, t, 1)
        moving.append(out[0])
    assert moving[-1][0] > 0.1
    stop, t_end = _run(layer, t, 2000)
    assert layer.snapshot(t_end).state == "stopping"
    assert layer.snapshot(t_end).counters[Intervention.STOP_WATCHDOG.value] == 1
    assert layer.at_rest
    # The ramp down respects the deceleration bound, and it only starts after the timeout.
    seq = np.vstack([moving, stop])
    acc = np.linalg.norm(np.diff(seq[:, :3], axis=0), axis=1) / DT
    assert acc.max() <= config.max_lin_acc_mps2 * (1 + 1e-9)
    # The last command arrived <= 10 ms before the silence: the cruise holds for >= 30 ms, then ramps down.
    np.testing.assert_array_equal(stop[: int(0.03 / DT), 0], moving[-1][0])
    assert stop[int(0.06 / DT), 0] < moving[-1][0]
    # A fresh command resumes motion.
    layer.submit(_twist(vx=0.1), 0.0, FRAME, t_end)
    out, _ = _run(layer, t_end, 20)
    assert out[-1][0] > 0.0


def test_estop_latches_until_reset_and_rearm() -> None:
    layer = _layer()
    layer.arm()
    layer.submit(_twist(vy=0.2), 0.0, FRAME, 0.0)
    _, t = _run(layer, 0.0, 200)
    layer.engage_estop()
    layer.engage_estop()
    assert layer.snapshot(t).counters[Intervention.STOP_ESTOP.value] == 1
    assert layer.arm() == (False, "e-stop engaged: reset it first")
    assert layer.submit(_twist(vy=0.2), 0.0, FRAME, t).target is None
    _, t = _run(layer, t, 2000)
    assert layer.at_rest and layer.snapshot(t).state == "estop"
    layer.reset_estop()
    assert layer.snapshot(t).state == "disarmed"  # reset alone does not move anything
    assert layer.arm()[0]


def test_robot_fault_holds_zero_until_recovery_allowed_by_robot() -> None:
    layer = _layer()
    layer.arm()
    layer.submit(_twist(vz=0.2), 0.0, FRAME, 0.0)
    _, t = _run(layer, 0.0, 100)
    assert layer.update_robot_state(RobotMode.REFLEX, ("cartesian_reflex",), INSIDE, t)
    assert not layer.step(t).any() and layer.at_rest
    assert layer.snapshot(t).state == "fault"
    assert "REFLEX" in layer.snapshot(t).robot_fault_reason
    ok, _ = layer.recover()
    assert not ok  # the robot still reports the reflex
    assert not layer.arm()[0]
    layer.update_robot_state(RobotMode.IDLE, (), INSIDE, t)
    assert layer.snapshot(t).state == "fault"  # a healthy state alone does not clear the latch
    assert layer.recover()[0]
    assert layer.arm()[0]


@pytest.mark.parametrize(("mode", "errors"), [(RobotMode.USER_STOPPED, ()), (RobotMode.MOVE, ("joint_reflex",))])
def test_user_stop_and_error_flags_latch_too(mode: RobotMode, errors: tuple) -> None:
    layer = _layer()
    assert layer.update_robot_state(mode, errors, INSIDE, 0.0)
    assert layer.snapshot(0.0).counters[Intervention.STOP_ROBOT_FAULT.value] == 1


def test_stale_robot_state_counts_as_no_pose() -> None:
    layer = _layer(robot_state_timeout_s=0.1)
    layer.arm()
    assert layer.submit(_twist(vx=0.1), 0.0, FRAME, 0.05).target is not None
    checked = layer.submit(_twist(vx=0.1), 0.0, FRAME, 0.5)
    assert checked.interventions == (Intervention.DROP_NO_POSE,)


def test_disarm_ramps_down_and_is_counted() -> None:
    layer = _layer()
    layer.arm()
    layer.submit(_twist(vx=0.2), 0.0, FRAME, 0.0)
    _, t = _run(layer, 0.0, 200)
    layer.disarm()
    assert layer.wants_output  # still ramping
    out, t = _run(layer, t, 2000)
    assert layer.at_rest and not layer.wants_output
    assert layer.snapshot(t).counters[Intervention.STOP_DISARM.value] == 1


# --- small parts ---
def test_watchdog() -> None:
    dog = CommandWatchdog(0.1)
    assert dog.is_stale(0.0) and dog.age_s(0.0) == math.inf
    dog.feed(1.0)
    assert not dog.is_stale(1.09) and dog.is_stale(1.11)
    with pytest.raises(ValueError):
        CommandWatchdog(0.0)


def test_gripper_commands_pass_only_when_armed_and_are_vetoed_and_counted_otherwise():
    from spvla_ros.core.safety import SafetyConfig, SafetyLayer
    from spvla_ros.core.safety.validity import Intervention

    layer = SafetyLayer(SafetyConfig(workspace_requires_pose=False))
    assert not layer.gripper_allowed()  # disarmed (dry run)
    assert layer.arm()[0]
    assert layer.gripper_allowed()
    layer.engage_estop()
    assert not layer.gripper_allowed()
    counts = layer.snapshot(0.0).counters
    assert counts[Intervention.DROP_GRIPPER_VETOED.value] == 2
