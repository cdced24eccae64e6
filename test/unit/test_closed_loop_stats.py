"""Wilson interval, McNemar test and per-(method, delay) aggregation of the closed-loop benchmark (no simulator)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from spvla_ros.eval.metaworld_harness import EpisodeResult
from spvla_ros.eval.stats import mcnemar_exact, wilson_interval
from spvla_ros.eval.summary import paired_comparison, summarize, summarize_episodes

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


def _ep(method: str, success: bool, steps: int, calls: int, task: str = "t", seed: int = 0, delay: int = 0,
        waits: int = 0, open_loop: int = 0, jerk: float = 0.0) -> EpisodeResult:
    return EpisodeResult(task, seed, method, delay, success, steps, calls, waits, open_loop, jerk, 2.0)


def test_summary_bookkeeping_is_exact_on_crafted_episodes() -> None:
    eps = [_ep("m", True, 100, 50, open_loop=1, jerk=1.0, waits=2), _ep("m", False, 60, 10, open_loop=9, jerk=3.0),
           _ep("m", True, 40, 40, jerk=2.0)]
    s = summarize_episodes(eps)
    assert (s.method, s.delay_steps, s.episodes, s.successes) == ("m", 0, 3, 2)
    assert s.success == pytest.approx(2 / 3)
    assert s.model_call_fraction == pytest.approx(100 / 200)  # pooled: calls / steps
    assert s.speedup == pytest.approx(200 / 100)
    assert s.steps_to_success == pytest.approx(70.0)  # successful episodes only
    assert s.peak_jerk_mps3 == pytest.approx(2.0 * 2.0)  # mean of per-episode peaks, times the env scale
    assert s.wait_fraction == pytest.approx(2 / 200)
    assert s.longest_open_loop == 9
    assert s.success_ci95 == pytest.approx(wilson_interval(2, 3))
    d = s.to_dict()
    assert {"success", "success_ci95", "model_call_fraction", "speedup", "delay_steps", "method"} <= set(d)
    assert d["success_ci95"] == list(s.success_ci95)
    assert summarize_episodes([_ep("m", False, 10, 10)]).steps_to_success is None


def test_summaries_keep_order_and_separate_methods_and_delays() -> None:
    eps = [_ep("b", True, 10, 10), _ep("a", False, 10, 5), _ep("b", False, 30, 10), _ep("b", True, 10, 5, delay=2)]
    out = summarize(eps)
    assert [(s.method, s.delay_steps) for s in out] == [("b", 0), ("a", 0), ("b", 2)]
    assert out[0].speedup == pytest.approx(2.0)
    assert out[1].success == 0.0


def test_summary_rejects_empty_mixed_and_callless_runs() -> None:
    with pytest.raises(ValueError, match="no episode"):
        summarize_episodes([])
    with pytest.raises(ValueError, match="no model call"):
        summarize_episodes([_ep("m", True, 10, 0)])
    with pytest.raises(ValueError, match="several"):
        summarize_episodes([_ep("m", True, 10, 1), _ep("m", True, 10, 1, delay=1)])


def test_mcnemar_exact_closed_form() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(7, 2) == pytest.approx(2 * (1 + 9 + 36) / 512) == mcnemar_exact(2, 7)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_paired_comparison_counts_discordant_pairs_on_common_episodes() -> None:
    a = [_ep("a", s, 10, 2, task="t", seed=i) for i, s in enumerate([True, True, True, False, True, True])]
    b = [_ep("b", s, 10, 5, task="t", seed=i) for i, s in enumerate([False, False, True, True, False, False])]
    p = paired_comparison([*a, *b, _ep("a", True, 10, 2, seed=99)], "a", "b", 0)
    assert (p.pairs, p.wins, p.losses) == (6, 4, 1)
    assert p.p_value == pytest.approx(mcnemar_exact(4, 1)) and not p.strictly_better  # 0.375: not significant
    assert p.success_difference == pytest.approx(3 / 6) and p.call_fraction == pytest.approx((0.2, 0.5))
    with pytest.raises(ValueError, match="no common episode"):
        paired_comparison(a, "a", "b", 0)
