"""The surprise gate and the trend extrapolators added for issue 11 (mode ``surprise``)."""

import math

import numpy as np
import pytest

from spvla_ros.core.extrapolation import (
    BestOfExtrapolator,
    DampedLinearExtrapolator,
    LinearExtrapolator,
    RepeatLastExtrapolator,
    make_extrapolator,
)
from spvla_ros.core.scheduler import ActionScheduler, Reason
from spvla_ros.core.scheduler_config import SchedulerConfig

# Everything in band, no intuitive-ratio requirement: only the surprise gate and the 6-in-a-row bound decide.
GATED = SchedulerConfig(
    speed_range=1.0, buffer_size=3, tau=0.0, v_min_fraction=0.0, v_max_fraction=1.0, intuitive_test="norm",
    fit_history="model", extrapolator="linear", max_consecutive_extrapolations=6, max_surprise_fraction=0.1,
)


def action(xyz, grip=1.0):
    return np.array([*xyz, 0.0, 0.0, 0.0, grip], dtype=float)


def run_model_steps(sched, rows):
    for r in rows:
        sched.commit(action(r), from_model=True)


def test_gate_off_by_default():
    assert SchedulerConfig().max_surprise is None
    assert SchedulerConfig(speed_range=2.0, max_surprise_fraction=0.25).max_surprise == pytest.approx(0.5)


def test_unknown_surprise_calls_the_model():
    s = ActionScheduler(GATED)
    run_model_steps(s, [[0.1, 0, 0]] * 3)  # the buffer fills only now: nothing was predicted yet
    assert math.isnan(s.last_surprise)
    d = s.decide()
    assert not d.extrapolate and d.reason is Reason.SURPRISE


def test_predictable_motion_opens_the_cheap_path_and_a_surprise_closes_it():
    s = ActionScheduler(GATED)
    ramp = [[0.1 + 0.01 * t, 0.0, 0.0] for t in range(4)]
    run_model_steps(s, ramp)
    assert s.last_surprise == pytest.approx(0.0, abs=1e-12)  # the linear trend predicted step 3 exactly
    assert s.decide().extrapolate
    extrapolated = s.extrapolate()
    np.testing.assert_allclose(extrapolated[:3], [0.14, 0.0, 0.0], atol=1e-12)
    s.commit(extrapolated, from_model=False)
    # the model then turns sharply: 0.3 away from the cheap prediction (> 0.1 = 0.1 * speed_range)
    s.commit(action([0.15, 0.3, 0.0]), from_model=True)
    assert s.last_surprise == pytest.approx(0.3, abs=1e-9)
    d = s.decide()
    assert not d.extrapolate and d.reason is Reason.SURPRISE


def test_surprise_is_measured_on_the_step_the_model_was_called_after_open_loop_steps():
    s = ActionScheduler(GATED)
    run_model_steps(s, [[0.2, 0, 0]] * 4)
    for _ in range(3):
        assert s.decide().extrapolate
        s.commit(s.extrapolate(), from_model=False)
    s.commit(action([0.2, 0.05, 0.0]), from_model=True)  # model 4 steps after its previous output
    assert s.last_surprise == pytest.approx(0.05, abs=1e-12)
    assert s.decide().extrapolate  # 0.05 <= 0.1


def test_open_loop_stays_bounded_even_when_nothing_surprises():
    s = ActionScheduler(GATED)
    run_model_steps(s, [[0.2, 0, 0]] * 4)
    for _ in range(6):
        s.commit(s.extrapolate(), from_model=False)
    assert s.decide().reason is Reason.MAX_CONSECUTIVE


def test_reset_forgets_the_surprise():
    s = ActionScheduler(GATED)
    run_model_steps(s, [[0.2, 0, 0]] * 4)
    s.reset()
    assert math.isnan(s.last_surprise)


def test_invalid_surprise_fraction_rejected():
    with pytest.raises(ValueError, match="max_surprise_fraction"):
        SchedulerConfig(max_surprise_fraction=-0.1)
    with pytest.raises(ValueError, match="max_surprise_fraction"):
        SchedulerConfig(max_surprise_fraction=float("nan"))


# ------------------------------------------------------------------ extrapolators
H = np.array([[0.0, 0.0, 0.0], [0.1, 0.2, -0.1], [0.3, 0.1, 0.0]])


def test_damped_linear_spans_repeat_last_to_linear():
    np.testing.assert_allclose(DampedLinearExtrapolator(0.0)(H), RepeatLastExtrapolator()(H))
    np.testing.assert_allclose(DampedLinearExtrapolator(1.0)(H), LinearExtrapolator()(H))
    np.testing.assert_allclose(DampedLinearExtrapolator(0.5)(H), H[-1] + 0.5 * (H[-1] - H[-2]))
    # sparse history: per-step trend times the steps ahead
    times = np.array([0.0, 2.0, 4.0])
    np.testing.assert_allclose(DampedLinearExtrapolator(0.5)(H, times, 7.0), H[-1] + 0.5 * (H[-1] - H[-2]) * 1.5)
    with pytest.raises(ValueError, match="trend_damping"):
        DampedLinearExtrapolator(1.5)
    with pytest.raises(ValueError, match="trend_damping"):
        SchedulerConfig(trend_damping=-0.1)


def test_best_of_learns_which_candidate_fits_this_motion():
    rng = np.random.default_rng(0)
    smooth = BestOfExtrapolator((RepeatLastExtrapolator(), LinearExtrapolator()))
    assert smooth.chosen == 0  # no feedback yet: the first candidate
    for t in range(10):  # a ramp: the trend is exact, holding lags
        hist = np.array([[0.01 * (t + k), 0.0, 0.0] for k in range(3)])
        smooth.observe(hist, np.array([0.01 * (t + 3), 0.0, 0.0]))
    assert smooth.chosen == 1
    noisy = BestOfExtrapolator((RepeatLastExtrapolator(), LinearExtrapolator()))
    for _ in range(20):  # independent noise around a constant: the trend doubles the noise
        hist = 0.1 + 0.01 * rng.standard_normal((3, 3))
        noisy.observe(hist, 0.1 + 0.01 * rng.standard_normal(3))
    assert noisy.chosen == 0
    smooth.reset()
    assert smooth.chosen == 0 and smooth.observations == 0


def test_best_of_is_fed_by_the_scheduler_at_model_calls():
    cfg = GATED.with_changes(extrapolator="best_of")
    s = ActionScheduler(cfg)
    run_model_steps(s, [[0.1 + 0.02 * t, 0.0, 0.0] for t in range(8)])
    assert s._extrapolator.observations == 5  # steps 3..7 each scored once the history was full
    assert s._extrapolator.chosen == 1
    s.reset()
    assert s._extrapolator.observations == 0


def test_make_extrapolator_knows_every_name():
    assert isinstance(make_extrapolator("damped_linear", 3, 0.1, 0.3), DampedLinearExtrapolator)
    assert isinstance(make_extrapolator("best_of", 3, 0.1), BestOfExtrapolator)
