"""Wilson interval and per-method aggregation used by the closed-loop benchmark (no simulator needed)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from spvla_ros.eval.metaworld_harness import EpisodeResult
from spvla_ros.eval.stats import wilson_interval
from spvla_ros.eval.summary import summarize_by_method, summarize_episodes

Z95 = NormalDist().inv_cdf(0.975)


def test_wilson_all_failures_and_all_successes_closed_form() -> None:
    # k = 0: [0, z^2 / (n + z^2)];  k = n: [n / (n + z^2), 1]
    n = 10
    lo, hi = wilson_interval(0, n)
    assert lo == 0.0
    assert hi == pytest.approx(Z95**2 / (n + Z95**2))
    lo, hi = wilson_interval(n, n)
    assert hi == 1.0
    assert lo == pytest.approx(n / (n + Z95**2))


def test_wilson_matches_formula_and_is_symmetric() -> None:
    k, n = 7, 20
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    lo, hi = wilson_interval(k, n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    lo2, hi2 = wilson_interval(n - k, n)
    assert (lo2, hi2) == pytest.approx((1 - hi, 1 - lo))
    assert lo < p < hi


def test_wilson_narrows_with_more_trials_and_lower_confidence() -> None:
    w = lambda lo_hi: lo_hi[1] - lo_hi[0]  # noqa: E731
    assert w(wilson_interval(50, 100)) < w(wilson_interval(5, 10))
    assert w(wilson_interval(5, 10, 0.8)) < w(wilson_interval(5, 10, 0.95))


@pytest.mark.parametrize(
    ("k", "n", "conf"), [(-1, 10, 0.95), (11, 10, 0.95), (0, 0, 0.95), (1, 2, 1.0), (1, 2, 0.0), (1.0, 2, 0.9)]
)
def test_wilson_rejects_bad_input(k: object, n: object, conf: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(k, n, conf)  # type: ignore[arg-type]


def _ep(method: str, success: bool, steps: int, calls: int, task: str = "t", open_loop: int = 0) -> EpisodeResult:
    return EpisodeResult(task, 0, method, success, steps, calls, open_loop)


def test_summary_bookkeeping_is_exact_on_crafted_episodes() -> None:
    eps = [_ep("m", True, 100, 50, open_loop=1), _ep("m", False, 60, 10, open_loop=9), _ep("m", True, 40, 40)]
    s = summarize_episodes(eps)
    assert (s.episodes, s.successes) == (3, 2)
    assert s.success_rate == pytest.approx(2 / 3)
    assert s.model_call_fraction == pytest.approx(100 / 200)  # pooled: calls / steps
    assert s.speedup == pytest.approx(200 / 100)
    assert s.mean_episode_length == pytest.approx(200 / 3)
    assert s.model_calls_per_episode == pytest.approx(100 / 3)
    assert s.longest_open_loop == 9
    assert s.success_ci == pytest.approx(wilson_interval(2, 3))
    assert set(s.to_dict()) >= {"success_rate", "success_ci", "model_call_fraction", "speedup", "mean_episode_length"}


def test_summary_by_method_keeps_order_and_separates_methods() -> None:
    eps = [_ep("b", True, 10, 10), _ep("a", False, 10, 5), _ep("b", False, 30, 10)]
    out = summarize_by_method(eps)
    assert list(out) == ["b", "a"]
    assert out["b"].speedup == pytest.approx(2.0)
    assert out["a"].success_rate == 0.0


def test_summary_rejects_empty_and_callless_runs() -> None:
    with pytest.raises(ValueError, match="no episode"):
        summarize_episodes([])
    with pytest.raises(ValueError, match="no model call"):
        summarize_episodes([_ep("m", True, 10, 0)])
