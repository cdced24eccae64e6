"""Per-method aggregates of closed-loop episodes: success with a Wilson interval, call fraction, speedup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from spvla_ros.eval.metaworld_harness import EpisodeResult
from spvla_ros.eval.stats import wilson_interval


@dataclass(frozen=True, slots=True)
class MethodSummary:
    """Aggregate of one method over all its episodes.

    Attributes:
        episodes: number of episodes.
        successes: episodes the env reported success in.
        success_rate: successes / episodes, in [0, 1].
        success_ci: Wilson interval of success_rate at the run's confidence level, [low, high].
        model_call_fraction: model calls / control steps, pooled over episodes, in (0, 1].
        speedup: control steps / model calls, pooled (the model-call rate reduction; 1 for every-step).
        mean_episode_length: mean control steps per episode (success ends an episode).
        model_calls_per_episode: mean model calls per episode (what a longer episode costs in calls).
        longest_open_loop: the longest run of steps without a model call in any episode.
    """

    episodes: int
    successes: int
    success_rate: float
    success_ci: tuple[float, float]
    model_call_fraction: float
    speedup: float
    mean_episode_length: float
    model_calls_per_episode: float
    longest_open_loop: int

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["success_ci"] = list(self.success_ci)
        return d


def summarize_episodes(results: Sequence[EpisodeResult], confidence: float = 0.95) -> MethodSummary:
    """Aggregate the episodes of one method (all results are assumed to belong to it)."""
    if not results:
        raise ValueError("no episode to summarize")
    n = len(results)
    successes = sum(1 for r in results if r.success)
    steps = sum(r.steps for r in results)
    calls = sum(r.model_calls for r in results)
    if calls == 0:
        raise ValueError("no model call in any episode: the first step of an episode must call the model")
    return MethodSummary(
        episodes=n,
        successes=successes,
        success_rate=successes / n,
        success_ci=wilson_interval(successes, n, confidence),
        model_call_fraction=calls / steps,
        speedup=steps / calls,
        mean_episode_length=steps / n,
        model_calls_per_episode=calls / n,
        longest_open_loop=max(r.longest_open_loop for r in results),
    )


def summarize_by_method(results: Sequence[EpisodeResult], confidence: float = 0.95) -> dict[str, MethodSummary]:
    """Method name -> summary, in the order methods first appear."""
    names = list(dict.fromkeys(r.method for r in results))
    return {m: summarize_episodes([r for r in results if r.method == m], confidence) for m in names}


def summarize_by_task(
    results: Sequence[EpisodeResult], confidence: float = 0.95
) -> dict[str, dict[str, MethodSummary]]:
    """Method name -> task -> summary."""
    out: dict[str, dict[str, MethodSummary]] = {}
    for m in dict.fromkeys(r.method for r in results):
        mine = [r for r in results if r.method == m]
        tasks = dict.fromkeys(r.task for r in mine)
        out[m] = {t: summarize_episodes([r for r in mine if r.task == t], confidence) for t in tasks}
    return out
