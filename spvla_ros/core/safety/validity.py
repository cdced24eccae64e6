"""Checks and clamps on one incoming twist command, before it becomes the limiter's target.

A command is either dropped (with the reason) or accepted as a target twist inside every velocity bound
and the workspace box; each clamp that changed it is reported, so the layer can count it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from spvla_ros.core.safety.config import SafetyConfig
from spvla_ros.core.safety.fr3_limits import ANGULAR, LINEAR, TWIST_DIM
from spvla_ros.core.safety.limiter import NORM_TO_AXIS


class Intervention(str, Enum):
    """Every kind of intervention the safety layer counts (the value is the counter's name)."""

    # drops: the command is discarded, the previous target stays until the watchdog fires
    DROP_NON_FINITE = "drop_non_finite"
    DROP_BAD_SHAPE = "drop_bad_shape"
    DROP_STALE_STAMP = "drop_stale_stamp"
    DROP_FUTURE_STAMP = "drop_future_stamp"
    DROP_WRONG_FRAME = "drop_wrong_frame"
    DROP_NO_POSE = "drop_no_pose"
    DROP_BAD_POSE = "drop_bad_pose"  # a robot state whose end-effector position is not finite (pose ignored)
    DROP_NOT_ARMED = "drop_not_armed"
    DROP_GRIPPER_VETOED = "drop_gripper_vetoed"  # a gripper command while disarmed, in e-stop or in fault
    # clamps: the command passes, changed
    CLAMP_LIN_AXIS = "clamp_lin_axis"
    CLAMP_LIN_NORM = "clamp_lin_norm"
    CLAMP_ANG_AXIS = "clamp_ang_axis"
    CLAMP_ANG_NORM = "clamp_ang_norm"
    CLAMP_WORKSPACE = "clamp_workspace"
    # stops: the output ramps to zero (or is held at zero)
    STOP_WATCHDOG = "stop_watchdog"
    STOP_ESTOP = "stop_estop"
    STOP_ROBOT_FAULT = "stop_robot_fault"
    STOP_DISARM = "stop_disarm"
    STOP_STALE_POSE = "stop_stale_pose"  # armed with a target, but no fresh pose: the box cannot be checked


@dataclass(frozen=True)
class CheckedCommand:
    """Result of :func:`check_command`.

    Attributes:
        target: accepted twist (6,) in m/s and rad/s, base frame; ``None`` when the command is dropped.
        interventions: what was done to the command (one drop, or zero or more clamps).
    """

    target: np.ndarray | None
    interventions: tuple[Intervention, ...]


def check_command(
    config: SafetyConfig,
    twist: np.ndarray,
    stamp_age_s: float,
    frame_id: str,
    ee_position_m: np.ndarray | None,
) -> CheckedCommand:
    """Validate and clamp one command.

    Args:
        config: the limits.
        twist: requested [vx, vy, vz, wx, wy, wz], m/s and rad/s, base frame; shape (6,).
        stamp_age_s: arrival time minus the command's header stamp, s (negative: stamped in the future).
        frame_id: the command's header frame.
        ee_position_m: measured end-effector position (x, y, z) in the base frame, m; ``None`` if unknown.

    Returns:
        The target (or ``None``) and the interventions, in the order they were applied.
    """
    twist = np.asarray(twist, dtype=np.float64)
    if twist.shape != (TWIST_DIM,):
        return CheckedCommand(None, (Intervention.DROP_BAD_SHAPE,))
    if not np.isfinite(twist).all() or not np.isfinite(stamp_age_s):
        return CheckedCommand(None, (Intervention.DROP_NON_FINITE,))
    if config.frame_id and frame_id != config.frame_id:
        return CheckedCommand(None, (Intervention.DROP_WRONG_FRAME,))
    if stamp_age_s > config.max_stamp_age_s:
        return CheckedCommand(None, (Intervention.DROP_STALE_STAMP,))
    if -stamp_age_s > config.max_stamp_lead_s:
        return CheckedCommand(None, (Intervention.DROP_FUTURE_STAMP,))
    if ee_position_m is None and config.workspace_requires_pose:
        return CheckedCommand(None, (Intervention.DROP_NO_POSE,))

    done: list[Intervention] = []
    target = twist.copy()
    for part, axis_max, norm_max, axis_kind, norm_kind in (
        (LINEAR, config.max_lin_vel_axis_mps, config.max_lin_vel_mps,
         Intervention.CLAMP_LIN_AXIS, Intervention.CLAMP_LIN_NORM),
        (ANGULAR, config.max_ang_vel_axis_radps, config.max_ang_vel_radps,
         Intervention.CLAMP_ANG_AXIS, Intervention.CLAMP_ANG_NORM),
    ):
        clipped = np.clip(target[part], -axis_max, axis_max)
        if not np.array_equal(clipped, target[part]):
            done.append(axis_kind)
        norm = float(np.linalg.norm(clipped))
        if norm > norm_max:
            clipped = clipped * (norm_max / norm)
            done.append(norm_kind)
        target[part] = clipped

    if ee_position_m is not None:
        target[LINEAR], clamped = workspace_clamp(config, target[LINEAR], ee_position_m)
        if clamped:
            done.append(Intervention.CLAMP_WORKSPACE)
    return CheckedCommand(target, tuple(done))


def workspace_clamp(config: SafetyConfig, linear_mps: np.ndarray, ee_position_m: np.ndarray) -> tuple[np.ndarray, bool]:
    """Zero the components of a linear velocity target that would take the end effector out of the box.

    The check uses the predicted position: the horizon at the target velocity, plus a bound on the distance
    the jerk-limited limiter needs to stop once the target is zeroed (per axis, with ``v`` the target:
    ``v^2 / 2a`` for the ramp down, ``|v| a / 2j`` while the deceleration builds up, ``|v| a / j`` to take
    back an acceleration still building up toward ``v``, and one control period for the pose being one
    cycle old), so the arm stops inside the box even from full speed and with a zero horizon. Only
    components that move further out are zeroed; moving back inside stays allowed. The layer applies
    this to the held target on every control cycle with the freshest pose, and to each command as it
    arrives.

    Args:
        config: the limits and the box.
        linear_mps: target (vx, vy, vz), base frame, m/s; shape (3,), within the velocity bounds.
        ee_position_m: measured end-effector position (x, y, z), base frame, m; shape (3,), finite.

    Returns:
        (the clamped target, a copy; whether any component was zeroed).
    """
    acc_axis = config.max_lin_acc_mps2 * NORM_TO_AXIS
    lead_s = (config.workspace_horizon_s + 1.5 * acc_axis / (config.max_lin_jerk_mps3 * NORM_TO_AXIS)
              + config.control_period_s)
    inv_two_acc = 0.5 / acc_axis
    clamped = [0.0] * 3
    any_zeroed = False
    # Plain floats on 3 components (this runs every 1 kHz cycle; numpy calls on 3-vectors cost more).
    for i, (v, p, lo, hi) in enumerate(zip(np.asarray(linear_mps, dtype=np.float64).tolist(),
                                           np.asarray(ee_position_m, dtype=np.float64).tolist(),
                                           config.workspace_min_m, config.workspace_max_m, strict=True)):
        predicted = p + v * lead_s + v * abs(v) * inv_two_acc
        if (v < 0.0 and predicted < lo) or (v > 0.0 and predicted > hi):
            any_zeroed = True
        else:
            clamped[i] = v
    return np.array(clamped), any_zeroed
