"""SP-VLA scheduler: decision rule at every boundary, cheap path, guards, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spvla_ros.core.scheduler import ActionScheduler, Reason
from spvla_ros.core.scheduler_config import SchedulerConfig, speed_range_from_actions

# speed range 1.0 -> v_min 0.25, v_max 0.75 (per step, action units)
CFG = SchedulerConfig(speed_range=1.0, ridge_lambda=0.0, max_consecutive_extrapolations=100)


def action(xyz, rot=(0.1, 0.2, 0.3), grip=1.0):
    return np.array([*xyz, *rot, grip], dtype=float)


def filled(cfg, rows):
    s = ActionScheduler(cfg)
    for r in rows:
        s.commit(r, from_model=True)
    return s


def test_defaults_follow_the_paper():
    c = SchedulerConfig(speed_range=2.0)
    assert (c.buffer_size, c.tau, c.extrapolator) == (6, 0.5, "ridge")
    assert c.v_min_resolved == pytest.approx(0.5) and c.v_max_resolved == pytest.approx(1.5)


def test_model_is_called_until_the_buffer_is_full():
    s = ActionScheduler(CFG)
    fast = action([0.3, 0.3, 0.3])
    for i in range(6):
        d = s.decide()
        assert not d.extrapolate and d.reason is Reason.BUFFER_NOT_FULL, i
        s.commit(fast, from_model=True)
    assert s.decide().extrapolate


def test_speed_is_the_norm_and_the_upper_band_edge_is_inclusive():
    # (2, 3, 6) / 8 has norm 7/8 exactly in binary floating point; every axis > v_min = 0.2 (intuitive)
    xyz = np.array([2.0, 3.0, 6.0]) / 8
    cfg = CFG.with_changes(v_min=0.2, v_max=0.875)
    d = filled(cfg, [action(xyz)] * 6).decide()
    assert d.speed == 0.875 and d.extrapolate
    d = filled(cfg.with_changes(v_max=np.nextafter(0.875, 0)), [action(xyz)] * 6).decide()
    assert d.reason is Reason.SPEED_OUT_OF_BAND


def test_lower_speed_edge_is_inclusive():
    # speed == v_min exactly: along x only, |a_x| = 0.25 -> in band; but then y, z are 0: not intuitive.
    # use v_min = 0 tau=0 variant to isolate the speed band
    cfg = CFG.with_changes(v_min=0.3, tau=0.0)
    intuitive = action([0.31, 0.31, 0.31])  # speed 0.537
    edge = action([0.3, 0.0, 0.0])  # speed == v_min exactly, not intuitive
    s = filled(cfg, [intuitive] * 5 + [edge])
    assert s.decide().extrapolate  # 5/6 > 0 and v_min <= 0.3
    s = filled(cfg, [intuitive] * 5 + [action([0.2999999, 0, 0])])
    assert s.decide().reason is Reason.SPEED_OUT_OF_BAND


def test_ratio_equal_to_tau_is_not_enough():
    fast = action([0.3, 0.3, 0.3])  # intuitive, speed 0.52
    slow_axis = action([0.3, 0.3, 0.1])  # not intuitive (z <= v_min), speed 0.436 in band
    s = filled(CFG, [slow_axis] * 3 + [fast] * 3)  # ratio 3/6 == tau
    d = s.decide()
    assert d.intuitive_ratio == pytest.approx(0.5) and d.reason is Reason.FEW_INTUITIVE
    s = filled(CFG, [slow_axis] * 2 + [fast] * 4)  # 4/6 > tau
    assert s.decide().extrapolate


def test_intuitive_needs_every_axis_strictly_above_v_min():
    exactly = action([0.25, 0.25, 0.25])  # == v_min on each axis: not intuitive; speed 0.433 in band
    s = filled(CFG.with_changes(tau=0.0), [exactly] * 6)
    assert s.decide().intuitive_ratio == 0.0


def test_cheap_path_extrapolates_translation_and_carries_rotation_and_gripper():
    rows = [action([0.3 + 0.01 * t, 0.3, 0.3 - 0.01 * t], rot=(0.1 * t, 0, 0), grip=float(t % 2)) for t in range(6)]
    s = filled(CFG, rows)
    out = s.extrapolate()
    np.testing.assert_allclose(out[:3], [0.36, 0.3, 0.24], atol=1e-9)  # exact line, lambda = 0
    np.testing.assert_array_equal(out[3:], rows[-1][3:])


def test_constant_trajectory_stays_constant():
    s = filled(CFG, [action([0.3, 0.3, 0.3])] * 6)
    res = s.step(lambda: pytest.fail("model must not be called"))
    assert not res.from_model
    np.testing.assert_allclose(res.action, action([0.3, 0.3, 0.3]), atol=1e-12)


def test_step_change_is_capped_at_the_largest_change_in_the_buffer():
    # a strong penalty shrinks the ridge prediction of a constant history towards 0; the buffer's largest
    # change is 0 there, so the capped output must equal the last action
    rows = [action([0.3, 0.3, 0.3])] * 6
    uncapped = filled(CFG.with_changes(ridge_lambda=5.0, cap_step_change=False), rows).extrapolate()
    assert np.all(np.abs(uncapped[:3] - 0.3) > 1e-3)  # the penalized intercept biases the fit
    capped = filled(CFG.with_changes(ridge_lambda=5.0), rows).extrapolate()
    np.testing.assert_array_equal(capped[:3], [0.3, 0.3, 0.3])
    # with a real change in the buffer, the step is limited to that change per axis
    rows = [action([0.3, 0.3, 0.3])] * 5 + [action([0.32, 0.3, 0.3])]
    capped = filled(CFG.with_changes(ridge_lambda=5.0), rows).extrapolate()
    assert np.all(np.abs(capped[:3] - rows[-1][:3]) <= np.array([0.02, 0.0, 0.0]) + 1e-12)


def test_clip_bound_limits_every_axis():
    rows = [action([0.3 + 0.1 * t, 0.3, 0.3]) for t in range(6)]  # would go to 0.9
    s = filled(CFG.with_changes(clip_bound=0.6, v_max=10.0), rows)
    assert s.extrapolate()[0] == pytest.approx(0.6)


def test_model_call_is_forced_after_max_consecutive_extrapolations():
    s = filled(CFG.with_changes(max_consecutive_extrapolations=2), [action([0.3, 0.3, 0.3])] * 6)
    model = action([0.3, 0.3, 0.3])
    sources = [s.step(lambda: model).from_model for _ in range(6)]
    assert sources == [False, False, True, False, False, True]


def test_reset_restarts_the_schedule():
    s = filled(CFG, [action([0.3, 0.3, 0.3])] * 6)
    assert s.decide().extrapolate
    s.reset()
    assert s.decide().reason is Reason.BUFFER_NOT_FULL and s.buffer.shape == (0, 7)


def test_reconfigure_with_new_buffer_size_restarts_and_keeps_otherwise():
    s = filled(CFG, [action([0.3, 0.3, 0.3])] * 6)
    s.reconfigure(CFG.with_changes(tau=0.1))
    assert s.decide().extrapolate
    s.reconfigure(CFG.with_changes(buffer_size=4))
    assert s.decide().reason is Reason.BUFFER_NOT_FULL


@pytest.mark.parametrize(
    "changes",
    [
        {"v_min": 0.8, "v_max": 0.5},
        {"tau": 1.5},
        {"tau": -0.1},
        {"tau": float("nan")},
        {"buffer_size": 1},
        {"buffer_size": 6.0},
        {"speed_range": 0.0},
        {"speed_range": float("inf")},
        {"v_min": -0.1},
        {"ridge_lambda": -1.0},
        {"clip_bound": 0.0},
        {"extrapolator": "magic"},
        {"max_consecutive_extrapolations": 0},
    ],
)
def test_bad_configuration_raises(changes):
    with pytest.raises(ValueError):
        SchedulerConfig(**changes)


@pytest.mark.parametrize("bad", [np.full(7, np.nan), np.r_[np.zeros(6), np.inf], np.zeros(6), np.zeros((1, 7))])
def test_bad_actions_are_rejected(bad):
    s = ActionScheduler(CFG)
    with pytest.raises(ValueError):
        s.commit(bad, from_model=True)
    assert s.buffer.shape == (0, 7)  # nothing was recorded


def test_extrapolate_before_the_buffer_is_full_is_an_error():
    with pytest.raises(RuntimeError):
        ActionScheduler(CFG).extrapolate()


def test_speed_range_from_actions():
    acts = np.zeros((101, 7))
    acts[1:, 0] = np.arange(1, 101)  # speeds 1..100, one zero row excluded
    assert speed_range_from_actions(acts, 95.0) == pytest.approx(np.percentile(np.arange(1, 101), 95))
    with pytest.raises(ValueError):
        speed_range_from_actions(np.zeros((5, 7)))
    with pytest.raises(ValueError):
        speed_range_from_actions(np.full((5, 7), np.nan))


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, (12, 7), elements=st.floats(-5, 5)),
    st.floats(0.0, 1.0),
    st.floats(0.0, 5.0),
    st.sampled_from(["ridge", "repeat_last", "linear"]),
)
def test_output_is_always_finite_and_within_the_clip_bound(rows, tau, lam, name):
    cfg = SchedulerConfig(speed_range=1.0, tau=tau, ridge_lambda=lam, extrapolator=name, v_min=0.0, v_max=100.0)
    s = ActionScheduler(cfg)
    for r in rows:
        res = s.step(lambda r=r: r)
        assert np.isfinite(res.action).all()
        if not res.from_model:
            assert np.all(np.abs(res.action[:3]) <= cfg.clip_bound_resolved + 1e-12)


def test_norm_intuitive_test_counts_single_axis_motion():
    along_x = action([0.5, 0.0, 0.0])  # speed 0.5 in band; per-axis test fails on y, z
    assert not filled(CFG, [along_x] * 6).decide().extrapolate
    d = filled(CFG.with_changes(intuitive_test="norm"), [along_x] * 6).decide()
    assert d.extrapolate and d.intuitive_ratio == 1.0


def test_model_fit_history_never_approves_its_own_extrapolations():
    cfg = CFG.with_changes(fit_history="model", max_consecutive_extrapolations=100)
    s = filled(cfg, [action([0.3, 0.3, 0.3])] * 6)
    for _ in range(5):
        res = s.step(lambda: pytest.fail("not expected"))
        assert not res.from_model
    # the history still holds only the 6 model outputs
    assert s.buffer.shape == (6, 7)
    np.testing.assert_array_equal(s.buffer[:, :3], 0.3)


def test_model_fit_history_uses_true_step_indices():
    # model outputs on a ramp x = 0.3 + 0.01 t at t = 0..5; three cheap steps follow; the fit must keep
    # predicting the ramp at the current step index (lambda = 0: exact)
    cfg = CFG.with_changes(fit_history="model", cap_step_change=False)
    s = ActionScheduler(cfg)
    for t in range(6):
        s.commit(action([0.3 + 0.01 * t, 0.3, 0.3]), from_model=True)
    for t in range(6, 9):
        out = s.extrapolate()
        assert out[0] == pytest.approx(0.3 + 0.01 * t, abs=1e-12)
        s.commit(out, from_model=False)
    s.commit(action([0.3 + 0.01 * 9, 0.3, 0.3]), from_model=True)  # sparse: t = 1..5 and 9
    assert s.extrapolate()[0] == pytest.approx(0.3 + 0.01 * 10, abs=1e-12)


def test_open_loop_time_bound_in_seconds():
    cfg = CFG.with_changes(max_open_loop_s=0.5, action_rate_hz=5.0)  # 2.5 steps -> at most 2
    assert cfg.max_open_loop_steps == 2
    s = filled(cfg, [action([0.3, 0.3, 0.3])] * 6)
    sources = [s.step(lambda: action([0.3, 0.3, 0.3])).from_model for _ in range(6)]
    assert sources == [False, False, True, False, False, True]
    with pytest.raises(ValueError, match="action_rate_hz"):
        SchedulerConfig(max_open_loop_s=1.0)


@pytest.mark.parametrize("changes", [{"intuitive_test": "any"}, {"fit_history": "all"},
                                     {"max_open_loop_s": -1.0, "action_rate_hz": 5.0}, {"action_rate_hz": 0.0}])
def test_bad_variant_configuration_raises(changes):
    with pytest.raises(ValueError):
        SchedulerConfig(**changes)


def test_live_v_min_change_recounts_the_incremental_history():
    s = filled(CFG, [action([0.3, 0.3, 0.3])] * 6)
    assert s.decide().intuitive_ratio == 1.0
    s.reconfigure(CFG.with_changes(v_min=0.35, v_max=0.9))  # same buffer size: the history is kept
    assert s.decide().intuitive_ratio == 0.0 and s.buffer.shape == (6, 7)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (9, 7), elements=st.floats(-1, 1)), st.floats(0.0, 3.0), st.booleans())
def test_incremental_state_matches_the_equations_on_the_buffer(rows, lam, cap):
    """The ring buffer, running counts and float arithmetic give what paper Eq. 1-4 give on the held buffer
    (numpy, recomputed from scratch) to 1e-12."""
    from spvla_ros.core.extrapolation import ridge_weights

    cfg = CFG.with_changes(v_min=0.1, v_max=2.0, tau=0.0, ridge_lambda=lam, cap_step_change=cap, clip_bound=0.8)
    s = filled(cfg, rows)
    buf = s.buffer
    np.testing.assert_array_equal(buf, rows[-6:])
    d = s.decide()
    assert d.intuitive_ratio == np.mean(np.all(np.abs(buf[:, :3]) > 0.1, axis=1))
    assert d.speed == pytest.approx(np.linalg.norm(rows[-1, :3]), abs=1e-12)
    xyz = buf[:, :3]
    pred = ridge_weights(6, lam) @ xyz
    if cap:
        limit = np.abs(np.diff(xyz, axis=0)).max(axis=0)
        pred = xyz[-1] + np.clip(pred - xyz[-1], -limit, limit)
    np.testing.assert_allclose(s.extrapolate()[:3], np.clip(pred, -0.8, 0.8), rtol=0, atol=1e-12)
