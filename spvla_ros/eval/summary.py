"""Aggregates of closed-loop episodes per (method, delay): success with a Wilson interval, model-call fraction,
steps to success, peak commanded jerk; and paired comparisons of two methods on the same episodes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spvla_ros.eval.metaworld_harness import EpisodeResult
from spvla_ros.eval.stats import mcnemar_exact, wilson_interval

CONFIDENCE = 0.95
"""Level of every success interval (the JSON key says it: ``success_ci95``)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """Aggregate of one method at one delay over all its episodes.

    Attributes:
        method: method name.
        delay_steps: inference delay, steps.
        episodes, successes: counts.
        success: successes / episodes, in [0, 1].
        success_ci95: 95% Wilson interval of ``success``, [low, high].
        model_call_fraction: chunk requests / control steps, pooled over episodes, in (0, 1].
        speedup: control steps / requests, pooled (1 for every step).
        steps_to_success: mean control steps of the successful episodes (None without one).
        peak_jerk_mps3: mean over episodes of the episode's largest commanded jerk, m/s^3.
        wait_fraction: steps without a usable action / control steps.
        longest_open_loop: longest run of steps without a request in any episode.
    """

    method: str
    delay_steps: int
    episodes: int
    successes: int
    success: float
    success_ci95: tuple[float, float]
    model_call_fraction: float
    speedup: float
    steps_to_success: float | None
    peak_jerk_mps3: float
    wait_fraction: float
    longest_open_loop: int

    def to_dict(self) -> dict[str, object]:
        return {name: (list(v) if isinstance(v := getattr(self, name), tuple) else v) for name in self.__slots__}


def summarize_episodes(results: Sequence[EpisodeResult]) -> Summary:
    """Aggregate the episodes of one (method, delay) (ValueError if they mix several)."""
    if not results:
        raise ValueError("no episode to summarize")
    keys = {(r.method, r.delay_steps) for r in results}
    if len(keys) != 1:
        raise ValueError(f"episodes of several (method, delay) pairs: {sorted(keys)}")
    n = len(results)
    successes = sum(1 for r in results if r.success)
    steps = sum(r.steps for r in results)
    calls = sum(r.model_calls for r in results)
    if calls == 0:
        raise ValueError("no model call in any episode: the first step of an episode must request a chunk")
    won = [r.steps for r in results if r.success]
    return Summary(
        method=results[0].method,
        delay_steps=results[0].delay_steps,
        episodes=n,
        successes=successes,
        success=successes / n,
        success_ci95=wilson_interval(successes, n, CONFIDENCE),
        model_call_fraction=calls / steps,
        speedup=steps / calls,
        steps_to_success=float(np.mean(won)) if won else None,
        peak_jerk_mps3=float(np.mean([r.peak_jerk * r.jerk_scale for r in results])),
        wait_fraction=sum(r.wait_steps for r in results) / steps,
        longest_open_loop=max(r.longest_open_loop for r in results),
    )


def summarize(results: Sequence[EpisodeResult]) -> list[Summary]:
    """One summary per (method, delay), in the order they first appear."""
    keys = list(dict.fromkeys((r.method, r.delay_steps) for r in results))
    return [summarize_episodes([r for r in results if (r.method, r.delay_steps) == k]) for k in keys]


def success_by_task(results: Sequence[EpisodeResult]) -> dict[str, dict[int, dict[str, float]]]:
    """task -> delay -> {method: success rate} (per-task rows of the report)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for task in dict.fromkeys(r.task for r in results):
        for key in dict.fromkeys((r.method, r.delay_steps) for r in results if r.task == task):
            mine = [r.success for r in results if r.task == task and (r.method, r.delay_steps) == key]
            out.setdefault(task, {}).setdefault(key[1], {})[key[0]] = sum(mine) / len(mine)
    return out


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """Method A against method B on the very same episodes (task, seed) at one delay.

    Attributes:
        method, baseline: A and B.
        delay_steps: the delay.
        pairs: episodes compared.
        wins: A succeeded where B failed; losses: the reverse.
        p_value: two-sided exact McNemar p-value.
        success_difference: success(A) - success(B), in [-1, 1].
        call_fraction: model-call fractions of A and B.
    """

    method: str
    baseline: str
    delay_steps: int
    pairs: int
    wins: int
    losses: int
    p_value: float
    success_difference: float
    call_fraction: tuple[float, float]

    @property
    def strictly_better(self) -> bool:
        """A wins more pairs than it loses and McNemar rejects equality at 5%."""
        return self.wins > self.losses and self.p_value < 0.05

    def to_dict(self) -> dict[str, object]:
        d = {name: getattr(self, name) for name in self.__slots__}
        d["call_fraction"] = list(self.call_fraction)
        d["strictly_better"] = self.strictly_better
        return d


def paired_comparison(results: Sequence[EpisodeResult], method: str, baseline: str, delay_steps: int
                      ) -> PairedComparison:
    """Compare ``method`` with ``baseline`` at ``delay_steps`` on the episodes both ran (same task and seed)."""
    a = {(r.task, r.seed): r for r in results if r.method == method and r.delay_steps == delay_steps}
    b = {(r.task, r.seed): r for r in results if r.method == baseline and r.delay_steps == delay_steps}
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"no common episode of {method!r} and {baseline!r} at delay {delay_steps}")
    wins = sum(1 for k in common if a[k].success and not b[k].success)
    losses = sum(1 for k in common if b[k].success and not a[k].success)
    fa = summarize_episodes([a[k] for k in common]).model_call_fraction
    fb = summarize_episodes([b[k] for k in common]).model_call_fraction
    return PairedComparison(method, baseline, delay_steps, len(common), wins, losses, mcnemar_exact(wins, losses),
                            (wins - losses) / len(common), (fa, fb))
