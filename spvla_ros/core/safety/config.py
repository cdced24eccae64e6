"""Configuration of the safety layer, validated at construction (defaults in ``config/safety.yaml``).

Units: metres, radians, seconds. Velocities are end-effector twists in the FR3 base frame
(``fr3_link0``). Limits named ``*_axis_*`` bound each component; the others bound the Euclidean norm of
the linear or angular 3-vector, as the FR3's own limits do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from spvla_ros.core.config_io import CONFIG_DIR
from spvla_ros.core.safety.fr3_limits import (
    FR3_CONTROL_PERIOD_S,
    FR3_MAX_ANG_ACC_RADPS2,
    FR3_MAX_ANG_JERK_RADPS3,
    FR3_MAX_ANG_VEL_RADPS,
    FR3_MAX_LIN_ACC_MPS2,
    FR3_MAX_LIN_JERK_MPS3,
    FR3_MAX_LIN_VEL_MPS,
)

_FR3_BOUNDS = {
    "max_lin_vel_mps": FR3_MAX_LIN_VEL_MPS,
    "max_lin_vel_axis_mps": FR3_MAX_LIN_VEL_MPS,
    "max_lin_acc_mps2": FR3_MAX_LIN_ACC_MPS2,
    "max_lin_jerk_mps3": FR3_MAX_LIN_JERK_MPS3,
    "max_ang_vel_radps": FR3_MAX_ANG_VEL_RADPS,
    "max_ang_vel_axis_radps": FR3_MAX_ANG_VEL_RADPS,
    "max_ang_acc_radps2": FR3_MAX_ANG_ACC_RADPS2,
    "max_ang_jerk_radps3": FR3_MAX_ANG_JERK_RADPS3,
}


@dataclass(frozen=True)
class SafetyConfig:
    """Safety-layer settings.

    Args:
        max_lin_vel_mps: bound on ||v_linear||, m/s; (0, 3.0].
        max_lin_vel_axis_mps: bound on each of |vx|, |vy|, |vz|, m/s; (0, 3.0].
        max_ang_vel_radps: bound on ||v_angular||, rad/s; (0, 2.5].
        max_ang_vel_axis_radps: bound on each angular component, rad/s; (0, 2.5].
        max_lin_acc_mps2: bound on the linear acceleration norm of the output stream, m/s^2; (0, 9].
        max_lin_jerk_mps3: bound on the linear jerk norm of the output stream, m/s^3; (0, 4500].
        max_ang_acc_radps2: bound on the angular acceleration norm, rad/s^2; (0, 17].
        max_ang_jerk_radps3: bound on the angular jerk norm, rad/s^3; (0, 8500].
        control_period_s: period of the output stream (one limiter step), s. FR3: 0.001.
        command_timeout_s: a command older than this (by arrival time) is stale and the output ramps to
            zero, s; > 0. Default: two periods of the 5 Hz action rate.
        max_stamp_age_s: a command whose header stamp is older than this at arrival is dropped, s; > 0.
        max_stamp_lead_s: a command stamped more than this in the future is dropped, s; >= 0.
        frame_id: the only accepted ``header.frame_id`` of a command; empty accepts any frame.
        workspace_min_m: lower corner (x, y, z) of the allowed end-effector box, base frame, m.
        workspace_max_m: upper corner (x, y, z) of the box, m; each > the lower corner.
        workspace_horizon_s: the box is checked on ``p + v * horizon``; velocity components that would
            leave it are zeroed, s; >= 0.
        workspace_requires_pose: without a measured end-effector pose, drop every command (True) or
            skip the box check (False; only for a setup without robot state, e.g. a dry run).
        robot_state_timeout_s: robot state older than this counts as missing (pose unknown), s; > 0.
    """

    # --- velocity bounds (clamped on input) ---
    max_lin_vel_mps: float = 0.5
    max_lin_vel_axis_mps: float = 0.5
    max_ang_vel_radps: float = 1.0
    max_ang_vel_axis_radps: float = 1.0
    # --- smoothness of the output stream ---
    max_lin_acc_mps2: float = 2.0
    max_lin_jerk_mps3: float = 100.0
    max_ang_acc_radps2: float = 4.0
    max_ang_jerk_radps3: float = 200.0
    control_period_s: float = FR3_CONTROL_PERIOD_S
    # --- input freshness and frame ---
    command_timeout_s: float = 0.4
    max_stamp_age_s: float = 0.5
    max_stamp_lead_s: float = 0.05
    frame_id: str = "fr3_link0"
    # --- workspace ---
    workspace_min_m: tuple[float, float, float] = (0.2, -0.5, 0.05)
    workspace_max_m: tuple[float, float, float] = (0.8, 0.5, 0.9)
    workspace_horizon_s: float = 0.1
    workspace_requires_pose: bool = True
    # --- robot state ---
    robot_state_timeout_s: float = 0.1

    def __post_init__(self) -> None:
        for name, fr3_bound in _FR3_BOUNDS.items():
            value = getattr(self, name)
            _check_finite(name, value)
            if not 0.0 < value <= fr3_bound:
                raise ValueError(f"{name} must be in (0, {fr3_bound}] (FR3 limit), got {value}")
        for name in ("control_period_s", "command_timeout_s", "max_stamp_age_s", "robot_state_timeout_s"):
            value = getattr(self, name)
            _check_finite(name, value)
            if value <= 0.0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.control_period_s > FR3_CONTROL_PERIOD_S:
            raise ValueError(
                f"control_period_s must be <= {FR3_CONTROL_PERIOD_S} (the FR3 judges 1 ms steps), "
                f"got {self.control_period_s}"
            )
        for name in ("max_stamp_lead_s", "workspace_horizon_s"):
            value = getattr(self, name)
            _check_finite(name, value)
            if value < 0.0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name in ("workspace_min_m", "workspace_max_m"):
            value = getattr(self, name)
            is_xyz = isinstance(value, (list, tuple)) and len(value) == 3
            if not is_xyz or not all(_is_finite_number(v) for v in value):
                raise ValueError(f"{name} must be 3 finite numbers (x, y, z) in metres, got {value!r}")
        if not all(lo < hi for lo, hi in zip(self.workspace_min_m, self.workspace_max_m, strict=True)):
            raise ValueError(
                f"workspace_min_m must be < workspace_max_m on every axis, got "
                f"{self.workspace_min_m} and {self.workspace_max_m}"
            )
        for acc, jerk in (("max_lin_acc_mps2", "max_lin_jerk_mps3"), ("max_ang_acc_radps2", "max_ang_jerk_radps3")):
            # One jerk-limited step must fit inside the acceleration bound, or the limiter cannot settle.
            if getattr(self, jerk) * self.control_period_s > getattr(self, acc):
                raise ValueError(
                    f"{jerk} * control_period_s must be <= {acc}, got {getattr(self, jerk)} * "
                    f"{self.control_period_s} > {getattr(self, acc)}"
                )
        if not isinstance(self.frame_id, str):
            raise ValueError(f"frame_id must be a string, got {self.frame_id!r}")
        # Tuples, not lists, so the frozen config stays hashable and comparable (YAML gives lists).
        object.__setattr__(self, "workspace_min_m", tuple(float(v) for v in self.workspace_min_m))
        object.__setattr__(self, "workspace_max_m", tuple(float(v) for v in self.workspace_max_m))


def _is_finite_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _check_finite(name: str, value: object) -> None:
    if not _is_finite_number(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


SAFETY_YAML = CONFIG_DIR / "safety.yaml"
"""``config/safety.yaml`` of a source checkout, or its installed copy in ``share/spvla/config``."""
SAFETY_NODE_NAME = "spvla_safety"
"""The safety node's name: its section of the ROS params file."""
SHUTDOWN_RAMP_TIMEOUT_S = 3.0
"""Bound on the safety node's ramp to zero at shutdown, s (from full speed it takes about 0.5 s with the
shipped limits); ``spvla-bringup`` gives the safety process this long, plus its teardown, before SIGKILL."""
NODE_PARAMETERS = ("dry_run", "backend", "robot_ip", "publish_rate_hz", "status_rate_hz")
"""Safety-node parameters in the same file that are not :class:`SafetyConfig` fields."""


def load_safety_config(path: str | Path = SAFETY_YAML, **overrides: object) -> SafetyConfig:
    """Build a :class:`SafetyConfig` from the ROS params file (``spvla_safety: ros__parameters:``).

    Keys in :data:`NODE_PARAMETERS` are skipped; ``overrides`` win over the file.

    Raises:
        ValueError: the file has no such section, has unknown keys, or a value is invalid.
    """
    data = yaml.safe_load(Path(path).read_text()) or {}
    try:
        params = data[SAFETY_NODE_NAME]["ros__parameters"]
    except (KeyError, TypeError):
        raise ValueError(f"{path}: expected a '{SAFETY_NODE_NAME}: ros__parameters:' mapping") from None
    known = {f.name for f in fields(SafetyConfig)}
    values = {k: v for k, v in params.items() if k not in NODE_PARAMETERS}
    unknown = (set(values) | set(overrides)) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} for SafetyConfig (known: {sorted(known)})")
    return SafetyConfig(**{**values, **overrides})
