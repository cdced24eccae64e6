"""Model action -> FR3 twist: scale, frame, rate and rotation conventions pinned by known motions."""

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from spvla_ros.core.action_mapping import (
    ActionMappingConfig,
    action_to_twist,
    matrix_to_rotvec,
    rpy_to_matrix,
)
from spvla_ros.core.config_io import CONFIG_DIR


def rotvec_to_matrix(v):
    angle = np.linalg.norm(v)
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def act(xyz=(0, 0, 0), rpy=(0, 0, 0), g=1.0):
    return np.array([*xyz, *rpy, g], dtype=float)


def test_bridge_translation_delta_becomes_base_frame_velocity():
    cfg = ActionMappingConfig(action_rate_hz=5.0)
    tw = action_to_twist(act(xyz=(0.01, -0.02, 0.004)), cfg)  # 1 cm in 0.2 s -> 5 cm/s
    np.testing.assert_allclose(tw.linear, [0.05, -0.1, 0.02])
    np.testing.assert_allclose(tw.angular, 0.0)


def test_pure_yaw_delta_becomes_angular_velocity_about_z():
    tw = action_to_twist(act(rpy=(0, 0, 0.1)), ActionMappingConfig(action_rate_hz=5.0))
    np.testing.assert_allclose(tw.angular, [0, 0, 0.5], atol=1e-12)


def test_rpy_delta_maps_to_the_rotation_vector_of_the_same_rotation():
    rpy = np.array([0.2, -0.3, 0.4])
    tw = action_to_twist(act(rpy=rpy), ActionMappingConfig(action_rate_hz=1.0))
    np.testing.assert_allclose(rotvec_to_matrix(tw.angular), rpy_to_matrix(rpy), atol=1e-9)
    # fixed-axis XYZ: roll about x first, then pitch about y, then yaw about z
    Rx = rpy_to_matrix([0.2, 0, 0])
    Ry = rpy_to_matrix([0, -0.3, 0])
    Rz = rpy_to_matrix([0, 0, 0.4])
    np.testing.assert_allclose(rpy_to_matrix(rpy), Rz @ Ry @ Rx, atol=1e-12)


def test_axis_angle_deltas_pass_through():
    cfg = ActionMappingConfig(action_rate_hz=2.0, rotation_format="axis_angle")
    tw = action_to_twist(act(rpy=(0.1, 0.2, 0.3)), cfg)
    np.testing.assert_allclose(tw.angular, [0.2, 0.4, 0.6])


def test_frame_rotation_and_sign_flips():
    # model frame rotated +90 deg about z in fr3_link0: model +x is base +y
    cfg = ActionMappingConfig(action_rate_hz=1.0, frame_rpy=(0, 0, np.pi / 2))
    np.testing.assert_allclose(action_to_twist(act(xyz=(0.1, 0, 0)), cfg).linear, [0, 0.1, 0], atol=1e-12)
    flip = ActionMappingConfig(action_rate_hz=1.0, translation_scale=(1, -1, 0.5))
    np.testing.assert_allclose(action_to_twist(act(xyz=(0.1, 0.1, 0.1)), flip).linear, [0.1, -0.1, 0.05])


def test_tool_frame_uses_the_measured_orientation():
    R_down = rpy_to_matrix([np.pi, 0, 0])  # EE z axis pointing down, as the FR3 home pose
    cfg = ActionMappingConfig(action_rate_hz=1.0, action_frame="tool")
    tw = action_to_twist(act(xyz=(0, 0, 0.05), rpy=(0, 0, 0.1)), cfg, R_base_ee=R_down)
    np.testing.assert_allclose(tw.linear, [0, 0, -0.05], atol=1e-12)  # approach along tool z = down
    np.testing.assert_allclose(tw.angular, [0, 0, -0.1], atol=1e-12)
    with pytest.raises(ValueError, match="R_base_ee"):
        action_to_twist(act(), cfg)


@pytest.mark.parametrize(
    "bad", [np.full(7, np.nan), np.zeros(6), np.r_[np.zeros(6), np.inf]]
)
def test_bad_actions_raise(bad):
    with pytest.raises(ValueError):
        action_to_twist(bad, ActionMappingConfig())


@pytest.mark.parametrize(
    "kwargs",
    [{"action_rate_hz": 0}, {"action_rate_hz": float("nan")}, {"action_frame": "world"},
     {"rotation_format": "quat"}, {"frame_rpy": (0, 0)}, {"translation_scale": (1, 1, float("inf"))}],
)
def test_bad_configs_raise(kwargs):
    with pytest.raises(ValueError):
        ActionMappingConfig(**kwargs)


def test_presets_load_and_state_their_rates():
    presets = yaml.safe_load((CONFIG_DIR / "action_mapping.yaml").read_text())
    configs = {name: ActionMappingConfig(**values) for name, values in presets.items()}
    assert configs["bridge"].action_rate_hz == 5.0 and configs["fractal"].action_rate_hz == 3.0


@settings(max_examples=100, deadline=None)
@given(st.tuples(*[st.floats(-np.pi / 2 + 0.01, np.pi / 2 - 0.01)] * 3))
def test_rotvec_roundtrip(rpy):
    R = rpy_to_matrix(np.array(rpy))
    np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(R)), R, atol=1e-7)
