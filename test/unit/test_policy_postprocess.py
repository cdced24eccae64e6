"""Un-normalization against hand-computed values, and the adaptive ensemble's weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spvla_ros.core.policy import AdaptiveEnsembler
from spvla_ros.core.policy.normalization import (
    ActionStatistics,
    identity_statistics,
    select_statistics,
    unnormalize_actions,
)

STATS = ActionStatistics(
    key="bridge_orig",
    q01=np.array([-0.02, -0.04, -0.03, -0.1, -0.2, -0.3, 0.0]),
    q99=np.array([0.02, 0.04, 0.05, 0.1, 0.2, 0.3, 1.0]),
    mask=np.array([True] * 6 + [False]),
)


def test_unnormalize_hand_computed() -> None:
    x = np.zeros((2, 7))
    x[0] = [-1.0, 1.0, 0.0, 0.5, -0.5, 2.0, 0.7]
    x[1] = [0.25, -3.0, -1.0, 0.0, 1.0, -0.25, 0.2]
    out = unnormalize_actions(x, STATS, gripper_threshold=0.5)
    # 0.5 * (x + 1) * (q99 - q01) + q01, x clipped to [-1, 1]
    assert out[0, 0] == pytest.approx(-0.02)  # x = -1 -> q01
    assert out[0, 1] == pytest.approx(0.04)  # x = 1 -> q99
    assert out[0, 2] == pytest.approx(0.01)  # midpoint of [-0.03, 0.05]
    assert out[0, 3] == pytest.approx(0.05)  # 0.75 * 0.2 - 0.1
    assert out[0, 4] == pytest.approx(-0.1)  # 0.25 * 0.4 - 0.2
    assert out[0, 5] == pytest.approx(0.3)  # 2.0 clipped to 1
    assert out[1, 0] == pytest.approx(0.005)  # 0.625 * 0.04 - 0.02
    assert out[1, 1] == pytest.approx(-0.04)  # -3 clipped to -1
    # gripper is unmasked: binarized only
    assert out[0, 6] == 1.0 and out[1, 6] == 0.0


def test_unnormalize_shape_check_and_identity() -> None:
    with pytest.raises(ValueError, match=r"\(T, 7\)"):
        unnormalize_actions(np.zeros((16, 6)), STATS, 0.5)
    ident = unnormalize_actions(np.full((1, 7), 0.3), identity_statistics(), 0.5)
    np.testing.assert_allclose(ident[0, :6], 0.3)
    assert ident[0, 6] == 0.0


def test_select_statistics_reads_mask_default_and_rate() -> None:
    raw = {"a": {"action": {"q01": [0.0] * 7, "q99": [1.0] * 7}, "control_frequency_hz": 15}}
    s = select_statistics(raw, None)
    assert s.key == "a" and s.mask.all() and s.control_frequency_hz == 15.0
    with pytest.raises(ValueError, match="no action q01/q99"):
        select_statistics({"b": {"proprio": {}}}, "b")


def test_ensemble_weights_hand_computed() -> None:
    ens = AdaptiveEnsembler(horizon=3, alpha=0.1)
    c1 = np.zeros((16, 7))
    c1[1] = [1, 0, 0, 0, 0, 0, 0]  # c1's prediction for step 2
    c2 = np.zeros((16, 7))
    c2[0] = [0, 1, 0, 0, 0, 0, 0]
    ens.update(c1)
    np.testing.assert_allclose(ens.last_weights, [1.0])
    out = ens.update(c2)
    # cos(c1[1], c2[0]) = 0, cos(c2[0], c2[0]) = 1 -> weights exp(0), exp(0.1), normalized
    w = np.array([1.0, math.exp(0.1)]) / (1.0 + math.exp(0.1))
    np.testing.assert_allclose(ens.last_weights, w)
    np.testing.assert_allclose(out, w[0] * c1[1] + w[1] * c2[0])


def test_ensemble_horizon_alpha_zero_and_reset() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(size=(16, 7)) for _ in range(5)]
    ens = AdaptiveEnsembler(horizon=2, alpha=0.0)
    for c in chunks:
        out = ens.update(c)
    assert ens.last_weights.size == 2  # only the last 2 chunks
    np.testing.assert_allclose(out, (chunks[3][1] + chunks[4][0]) / 2)
    ens.reset()
    np.testing.assert_allclose(ens.update(chunks[0]), chunks[0][0])


@pytest.mark.parametrize("bad", [np.zeros((16, 6)), np.zeros(7), np.full((16, 7), np.nan)])
def test_ensemble_rejects_bad_chunks(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        AdaptiveEnsembler(2, 0.1).update(bad)


@pytest.mark.parametrize(("horizon", "alpha"), [(0, 0.1), (17, 0.1), (2.0, 0.1), (2, float("inf"))])
def test_ensemble_rejects_bad_settings(horizon, alpha) -> None:
    with pytest.raises(ValueError):
        AdaptiveEnsembler(horizon, alpha)
