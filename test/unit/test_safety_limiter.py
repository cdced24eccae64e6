"""Property tests of the 1 kHz twist limiter (hypothesis).

Regressions pinned: output always finite; acceleration and jerk norms (1st/2nd differences at 1 kHz,
with the stream padded by rest before and after) within the configured bounds; no component passes the
largest target it was given; the output starts at zero and settles at exactly zero velocity and
acceleration once the target is zero.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spvla_ros.core.safety import SafetyConfig, TwistRateLimiter
from spvla_ros.core.safety.fr3_limits import ANGULAR, LINEAR

RTOL = 1e-9
CONFIGS = st.builds(
    SafetyConfig,
    max_lin_acc_mps2=st.floats(0.5, 9.0),
    max_lin_jerk_mps3=st.floats(10.0, 400.0),
    max_ang_acc_radps2=st.floats(0.5, 17.0),
    max_ang_jerk_radps3=st.floats(20.0, 400.0),
)
TWISTS = st.lists(st.floats(-0.5, 0.5), min_size=6, max_size=6).map(np.array)
# A schedule of (target, steps to hold it).
SCHEDULES = st.lists(st.tuples(TWISTS, st.integers(1, 300)), min_size=1, max_size=8)
SETTLE_LIMIT_STEPS = 20_000


def _run(config: SafetyConfig, schedule: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray, bool]:
    limiter = TwistRateLimiter(config)
    out, targets = [], []
    for target, steps in schedule:
        for _ in range(steps):
            out.append(limiter.step(target))
            targets.append(target)
    zero = np.zeros(6)
    for _ in range(SETTLE_LIMIT_STEPS):
        if limiter.at_rest:
            break
        out.append(limiter.step(zero))
        targets.append(zero)
    return np.array(out), np.array(targets), limiter.at_rest


def _norms(x: np.ndarray, part: slice) -> np.ndarray:
    return np.linalg.norm(x[:, part], axis=1)


@settings(max_examples=60, deadline=None)
@given(CONFIGS, SCHEDULES)
def test_limits_hold_and_stream_ends_at_rest(config: SafetyConfig, schedule: list) -> None:
    out, targets, at_rest = _run(config, schedule)
    assert np.isfinite(out).all()
    assert at_rest, "the limiter did not settle at exactly zero"
    padded = np.vstack([np.zeros((2, 6)), out, np.zeros((2, 6))])
    acc = np.diff(padded, axis=0) / config.control_period_s
    jerk = np.diff(acc, axis=0) / config.control_period_s
    assert _norms(acc, LINEAR).max() <= config.max_lin_acc_mps2 * (1 + RTOL)
    assert _norms(acc, ANGULAR).max() <= config.max_ang_acc_radps2 * (1 + RTOL)
    assert _norms(jerk, LINEAR).max() <= config.max_lin_jerk_mps3 * (1 + RTOL)
    assert _norms(jerk, ANGULAR).max() <= config.max_ang_jerk_radps3 * (1 + RTOL)
    # No component ever passes the largest |target| it was given so far.
    running_max = np.maximum.accumulate(np.abs(targets), axis=0)
    assert (np.abs(out) <= running_max + 1e-12).all()


@settings(max_examples=30, deadline=None)
@given(TWISTS)
def test_reaches_a_held_target_exactly(target: np.ndarray) -> None:
    config = SafetyConfig()
    limiter = TwistRateLimiter(config)
    for _ in range(5000):
        out = limiter.step(target)
    np.testing.assert_array_equal(out, target)
    np.testing.assert_array_equal(limiter.acceleration, np.zeros(6))


def test_first_output_is_one_jerk_step_from_rest() -> None:
    config = SafetyConfig()
    out = TwistRateLimiter(config).step(np.array([0.5, 0, 0, 0, 0, 0]))
    # From rest, the first step may only move by one jerk quantum: v = j_axis * dt^2.
    assert 0.0 < out[0] <= config.max_lin_jerk_mps3 * config.control_period_s**2
    assert not out[1:].any()


def test_bigger_jerk_limit_tracks_faster() -> None:
    """The limiter is not trivially slow: with a 4x jerk bound a step is followed sooner."""
    target = np.array([0.2, 0, 0, 0, 0, 0])
    steps = []
    for jerk in (50.0, 200.0):
        limiter = TwistRateLimiter(SafetyConfig(max_lin_jerk_mps3=jerk))
        n = 0
        while not np.array_equal(limiter.step(target), target):
            n += 1
        steps.append(n)
    assert steps[1] < steps[0]
