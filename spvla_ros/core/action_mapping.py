"""Map a model action (per-step deltas in the dataset's frame and units) to an FR3 end-effector twist.

A CogACT action is ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` per action step, in the frame and units
of the dataset its checkpoint was trained on. An FR3 Cartesian-velocity controller wants a twist of the
end effector in the base frame ``fr3_link0``: linear velocity in m/s and angular velocity in rad/s.

Mapping, per step (all configurable, see ``config/action_mapping.yaml`` for dataset presets):

1. scale: ``d_xyz * translation_scale`` (to metres), ``d_rot * rotation_scale`` (to radians);
2. rotation delta to a rotation vector: ``rpy`` deltas are composed as fixed-axis X-Y-Z (roll about x,
   then pitch about y, then yaw about z: ``R = Rz(yaw) Ry(pitch) Rx(roll)``) and converted to axis-angle;
   ``axis_angle`` deltas already are one;
3. frame: ``base`` actions are rotated by ``R_frame`` (model action frame -> ``fr3_link0``);
   ``tool`` actions are expressed in the current end-effector frame and rotated by the measured
   ``R_base_ee`` (needs the robot state);
4. rate: a delta executed over one action step of ``1 / action_rate_hz`` seconds becomes a velocity by
   multiplying with ``action_rate_hz``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ROTATION_FORMATS = ("rpy", "axis_angle")
ACTION_FRAMES = ("base", "tool")


@dataclass(frozen=True)
class ActionMappingConfig:
    """How a model action becomes an FR3 twist.

    Args:
        action_rate_hz: action steps per second of the dataset (Bridge 5, Fractal 3), > 0.
        action_frame: ``base`` (deltas in a frame fixed to the robot base) or ``tool`` (deltas in the current
            end-effector frame).
        frame_rpy: fixed-axis roll, pitch, yaw [rad] of the model's action frame expressed in ``fr3_link0``
            (only for ``base``); zeros when the dataset's base frame is x forward, y left, z up like the FR3.
        translation_scale: per-axis factor from the model's translation units to metres (may flip signs).
        rotation_scale: per-axis factor from the model's rotation units to radians (may flip signs).
        rotation_format: ``rpy`` (roll-pitch-yaw deltas) or ``axis_angle`` (rotation-vector deltas).
        gripper_open_value: model gripper value meaning fully open (1.0 in CogACT's datasets).
    """

    action_rate_hz: float = 5.0
    action_frame: str = "base"
    frame_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rotation_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rotation_format: str = "rpy"
    gripper_open_value: float = 1.0
    frame_rotation: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not np.isfinite(self.action_rate_hz) or self.action_rate_hz <= 0:
            raise ValueError(f"action_rate_hz must be finite and > 0, got {self.action_rate_hz}")
        if self.action_frame not in ACTION_FRAMES:
            raise ValueError(f"action_frame must be one of {ACTION_FRAMES}, got {self.action_frame!r}")
        if self.rotation_format not in ROTATION_FORMATS:
            raise ValueError(f"rotation_format must be one of {ROTATION_FORMATS}, got {self.rotation_format!r}")
        for name in ("frame_rpy", "translation_scale", "rotation_scale"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (3,) or not np.isfinite(value).all():
                raise ValueError(f"{name} must be 3 finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if not np.isfinite(self.gripper_open_value):
            raise ValueError(f"gripper_open_value must be finite, got {self.gripper_open_value}")
        object.__setattr__(self, "frame_rotation", rpy_to_matrix(np.asarray(self.frame_rpy)))


@dataclass(frozen=True, slots=True)
class Twist:
    """End-effector twist in ``fr3_link0``: ``linear`` (3,) m/s, ``angular`` (3,) rad/s."""

    linear: np.ndarray
    angular: np.ndarray


def rpy_to_matrix(rpy: np.ndarray) -> np.ndarray:
    """Fixed-axis X-Y-Z roll-pitch-yaw [rad] -> rotation matrix ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (3, 3)."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> rotation vector (axis * angle) [rad], angle in [0, pi]."""
    cos_angle = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos_angle))
    if angle < 1e-9:
        return np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    if np.pi - angle < 1e-6:  # near pi: axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(R) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        axis[np.arange(3) != k] = np.copysign(axis[np.arange(3) != k], (R[k] + R[:, k])[np.arange(3) != k])
        return axis / np.linalg.norm(axis) * angle
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return w / (2.0 * np.sin(angle)) * angle


def rotation_delta_to_rotvec(delta: np.ndarray, rotation_format: str) -> np.ndarray:
    """A per-step rotation delta (3,) in ``rotation_format`` -> rotation vector [rad] in the same frame."""
    if rotation_format == "rpy":
        return matrix_to_rotvec(rpy_to_matrix(delta))
    if rotation_format == "axis_angle":
        return np.asarray(delta, dtype=float).copy()
    raise ValueError(f"rotation_format must be one of {ROTATION_FORMATS}, got {rotation_format!r}")


def action_to_twist(action: np.ndarray, config: ActionMappingConfig, R_base_ee: np.ndarray | None = None) -> Twist:
    """One model action (7,) -> the FR3 twist that executes it over one action step.

    Args:
        action: ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in the model's units per step (gripper ignored).
        config: the mapping.
        R_base_ee: measured end-effector orientation in ``fr3_link0`` (3, 3); required for ``tool`` actions.

    Raises:
        ValueError: wrong shape, NaN/Inf, or a ``tool`` action without ``R_base_ee``.
    """
    action = np.asarray(action, dtype=float)
    if action.shape != (7,):
        raise ValueError(f"action must have shape (7,), got {action.shape}")
    if not np.isfinite(action).all():
        raise ValueError(f"action contains NaN or Inf: {action}")
    d_xyz = action[:3] * np.asarray(config.translation_scale)
    rotvec = rotation_delta_to_rotvec(action[3:6] * np.asarray(config.rotation_scale), config.rotation_format)
    if config.action_frame == "tool":
        if R_base_ee is None:
            raise ValueError("tool-frame actions need the measured end-effector orientation R_base_ee")
        R = np.asarray(R_base_ee, dtype=float)
        if R.shape != (3, 3) or not np.isfinite(R).all():
            raise ValueError(f"R_base_ee must be a finite (3, 3) rotation, got shape {R.shape}")
    else:
        R = config.frame_rotation
    rate = config.action_rate_hz
    return Twist(linear=R @ d_xyz * rate, angular=R @ rotvec * rate)
