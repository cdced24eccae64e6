"""Ridge extrapolation (paper Eq. 2-4) against closed-form cases, and the baselines."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spvla_ros.core.extrapolation import (
    LinearExtrapolator,
    RepeatLastExtrapolator,
    RidgeExtrapolator,
    make_extrapolator,
    ridge_extrapolate,
    ridge_weights,
)


def test_exactly_linear_trajectory_is_extrapolated_exactly_as_lambda_goes_to_zero():
    n = 6
    T = np.arange(n)[:, None]
    Y = 0.3 + 0.02 * T * np.array([1.0, -2.0, 0.5])  # a_T = a0 + T * slope
    expected = 0.3 + 0.02 * n * np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(ridge_extrapolate(Y, 0.0), expected, atol=1e-12)
    np.testing.assert_allclose(ridge_extrapolate(Y, 1e-9), expected, atol=1e-8)
    # with a real penalty the prediction is shrunk, so it is not exact any more
    assert not np.allclose(ridge_extrapolate(Y, 1.0), expected, atol=1e-4)


def test_weights_match_the_papers_normal_equations():
    n, lam = 6, 0.1
    X = np.stack([np.arange(n), np.ones(n)], axis=1)
    Y = np.random.default_rng(0).normal(size=(n, 3))
    beta = np.linalg.inv(X.T @ X + lam * np.eye(2)) @ X.T @ Y
    np.testing.assert_allclose(ridge_weights(n, lam) @ Y, np.array([n, 1.0]) @ beta, atol=1e-12)


def test_least_squares_weights_for_n2_are_linear_extrapolation():
    np.testing.assert_allclose(ridge_weights(2, 0.0), [-1.0, 2.0], atol=1e-12)


def test_constant_history_stays_constant_without_penalty():
    Y = np.tile([0.01, -0.02, 0.03], (6, 1))
    for extrapolator in (RidgeExtrapolator(6, 0.0), RepeatLastExtrapolator(), LinearExtrapolator()):
        np.testing.assert_allclose(extrapolator(Y), Y[-1], atol=1e-12)


def test_baselines():
    Y = np.array([[0.0, 0, 0], [1.0, 2, 3], [1.5, 2.5, 5]])
    np.testing.assert_array_equal(RepeatLastExtrapolator()(Y), [1.5, 2.5, 5])
    np.testing.assert_array_equal(LinearExtrapolator()(Y), [2.0, 3.0, 7])


@pytest.mark.parametrize(("n", "lam"), [(1, 0.1), (6, -1.0), (6, float("nan")), (6, float("inf"))])
def test_bad_ridge_parameters_raise(n, lam):
    with pytest.raises(ValueError):
        ridge_weights(n, lam)


def test_unknown_extrapolator_name_raises():
    with pytest.raises(ValueError, match="unknown extrapolator"):
        make_extrapolator("spline", 6, 0.1)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (6, 3), elements=st.floats(-1, 1)), st.floats(0, 10))
def test_ridge_is_linear_in_the_data(Y, lam):
    ex = RidgeExtrapolator(6, lam)
    np.testing.assert_allclose(ex(2.0 * Y), 2.0 * ex(Y), atol=1e-9)


def test_time_aware_ridge_equals_uniform_weights_on_uniform_steps():
    from spvla_ros.core.extrapolation import ridge_weights_at

    np.testing.assert_allclose(ridge_weights_at(np.arange(10, 16), 16, 0.1), ridge_weights(6, 0.1), atol=1e-12)


def test_sparse_linear_extrapolation_uses_the_step_gap():
    Y = np.array([[0.0, 0, 0], [0.3, 0.3, 0.3]])
    np.testing.assert_allclose(LinearExtrapolator()(Y, np.array([0.0, 3.0]), 5.0), [0.5, 0.5, 0.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=7), st.integers(1, 7), st.floats(0.0, 10.0),
       st.integers(0, 5000))
def test_closed_form_sparse_weights_match_the_numpy_solve(gaps, ahead, lam, start):
    from spvla_ros.core.extrapolation import ridge_weights_at, ridge_weights_at_steps

    times = np.cumsum([start, *gaps]).astype(float)
    t_next = times[-1] + ahead
    np.testing.assert_allclose(ridge_weights_at_steps(times.tolist(), t_next, lam),
                               ridge_weights_at(times, t_next, lam), rtol=0, atol=1e-12)
