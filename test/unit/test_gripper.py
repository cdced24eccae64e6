"""Gripper hysteresis: noisy values never chatter; one command per real change; NaN never moves the hand."""

import numpy as np
import pytest

from spvla_ros.core.gripper import GripperConfig, GripperHysteresis, GripperState


def commands(values, dt=0.2, config=None, initial=None):
    h = GripperHysteresis(config or GripperConfig(), initial=initial)
    out = []
    for i, v in enumerate(values):
        c = h.update(v, i * dt)
        if c is not None:
            out.append((i, c))
    return out, h


def test_noise_around_the_threshold_sends_nothing():
    rng = np.random.default_rng(0)
    noisy = 0.5 + rng.uniform(-0.09, 0.09, size=500)  # inside the +-0.1 band
    out, _ = commands(noisy, initial=GripperState.OPEN)
    assert out == []


def test_one_command_per_real_change():
    seq = [1.0] * 5 + [0.0] * 5 + [1.0] * 5
    out, _ = commands(seq)
    assert out == [(0, GripperState.OPEN), (5, GripperState.CLOSED), (10, GripperState.OPEN)]


def test_noisy_close_then_open_gives_exactly_two_commands():
    rng = np.random.default_rng(1)
    seq = np.r_[np.full(20, 0.95), np.full(20, 0.05), np.full(20, 0.95)] + rng.normal(0, 0.03, 60)
    out, _ = commands(seq, initial=GripperState.OPEN)
    assert [c for _, c in out] == [GripperState.CLOSED, GripperState.OPEN]


def test_min_dwell_delays_a_quick_reversal():
    cfg = GripperConfig(min_dwell_s=1.0)
    seq = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # dt 0.2 s: reopen allowed at t >= 1.0 s (index 5)
    out, _ = commands(seq, config=cfg, initial=GripperState.OPEN)
    assert out == [(0, GripperState.CLOSED), (5, GripperState.OPEN)]


def test_carried_over_values_produce_no_extra_commands():
    # during extrapolation the scheduler repeats the gripper value of t-1
    seq = [0.0] + [0.0] * 30
    out, _ = commands(seq, initial=GripperState.OPEN)
    assert len(out) == 1


def test_nan_is_ignored_and_counted():
    out, h = commands([float("nan"), 0.0, float("inf"), 1.0, float("nan")], dt=1.0, initial=GripperState.OPEN)
    assert [c for _, c in out] == [GripperState.CLOSED, GripperState.OPEN]
    assert h.ignored_values == 3


def test_inverted_convention():
    out, _ = commands([1.0, 0.0], dt=1.0, config=GripperConfig(open_value_is_high=False))
    assert [c for _, c in out] == [GripperState.CLOSED, GripperState.OPEN]


@pytest.mark.parametrize(
    "kwargs",
    [{"band": -0.1}, {"open_width_m": 0.1}, {"speed_mps": 0}, {"force_n": 100}, {"threshold": float("nan")},
     {"action_timeout_s": 0}],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        GripperConfig(**kwargs)
