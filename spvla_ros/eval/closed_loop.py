"""The closed-loop experiment: a learned chunking policy under inference delay, schedules side by side.

Steps (same harness settings, tasks, seeds and delays for every method):
1. the policy (:mod:`spvla_ros.eval.bc_policy`, behaviour-cloned from the scripted experts on every task of both
   splits) is loaded from its cache or trained; ``speed_range`` is the p95 of its demonstrations' speeds;
2. **tuning split**: the baselines and every SP-VLA candidate (the named modes, the variants, and the grid on top
   of ``selection.base_mode``) run at the selection delays; the winner is chosen by :func:`select_winner`
   (the issue's goal: at most ``max_call_fraction`` of the calls of every step with success within
   ``success_tolerance`` of it at every selection delay, then the highest success);
3. **evaluation split** (disjoint tasks): every method at every delay; the winner and the shipped default mode
   are compared pairwise (same episodes) with the best fixed-chunk baseline that calls the model at least as
   often, and with every step.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.core.scheduler_modes import SchedulerModes, load_scheduler_modes
from spvla_ros.eval.bc_policy import BCPolicyConfig, ChunkPolicy
from spvla_ros.eval.metaworld_harness import EpisodeResult, HarnessConfig, check_tasks, make_env, run_batch
from spvla_ros.eval.methods import MethodSpec, method_from_dict
from spvla_ros.eval.summary import Summary, paired_comparison, success_by_task, summarize

DEFAULT_CONFIG = CONFIG_DIR / "closed_loop.yaml"
DEFAULT_SCHEDULER_CONFIG = CONFIG_DIR / "scheduler.yaml"
EVERY_STEP = "every_step"


@dataclass(frozen=True)
class SelectionConfig:
    """How the shipped default is chosen on the tuning split.

    Args:
        delays: the delays (steps) a winner must hold at (the issue: d = 1 and d = 2).
        max_call_fraction: a candidate qualifies only with at most this model-call fraction at every selection
            delay (1/3: ">= 3x fewer model calls than every step"), in (0, 1].
        success_tolerance: ... and success >= every-step success - this at every selection delay, in [0, 1].
        base_mode: the scheduling mode the grid's overrides are applied on top of.
        grid: SchedulerConfig field -> values; every combination is a candidate ``sp_vla_grid_<i>``.
    """

    delays: tuple[int, ...] = (1, 2)
    max_call_fraction: float = 1.0 / 3.0
    success_tolerance: float = 0.02
    base_mode: str = "surprise"
    grid: Mapping[str, Sequence[object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.delays:
            raise ValueError("selection delays are empty")
        if not 0.0 < self.max_call_fraction <= 1.0:
            raise ValueError(f"max_call_fraction must be in (0, 1], got {self.max_call_fraction!r}")
        if not 0.0 <= self.success_tolerance <= 1.0:
            raise ValueError(f"success_tolerance must be in [0, 1], got {self.success_tolerance!r}")
        for key, values in self.grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"selection grid entry {key!r} must be a non-empty list, got {values!r}")

    def candidates(self) -> list[MethodSpec]:
        """Every valid combination of the grid as an ``sp_vla`` method, in a fixed order."""
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            try:
                spec = MethodSpec(f"sp_vla_grid_{len(out)}", "sp_vla", scheduler=dict(zip(keys, values, strict=True)),
                                  mode=self.base_mode)
            except ValueError:  # e.g. v_min above v_max
                continue
            out.append(spec)
        return out


@dataclass(frozen=True)
class ClosedLoopConfig:
    """Everything one closed-loop run needs (defaults in ``config/closed_loop.yaml``).

    Args:
        eval_tasks: Meta-World tasks reported on.
        tune_tasks: tasks the default is chosen on; disjoint from ``eval_tasks``. The policy learns both.
        episodes: episodes per evaluation task (seeds ``seed .. seed + episodes - 1``), >= 1.
        tune_episodes: episodes per tuning task, >= 1.
        seed: first seed.
        delays: inference delays evaluated, steps (each >= 0).
        harness: episode settings.
        policy: the learned policy.
        methods: baselines (every step, fixed chunk, ensemble, and ``sp_vla`` methods reported but never
            selected, e.g. the ``fixed_chunk`` mode), run on both splits.
        modes: scheduling modes run as ``sp_vla_<mode>`` (empty: every mode of ``config/scheduler_modes.yaml``).
        variants: more ``sp_vla`` methods (e.g. a mode with the ``chunk`` cheap path).
        selection: the choice of the default.
        policy_tasks: the tasks the policy learns (default: evaluation then tuning tasks). ``--quick`` runs on
            subsets of the splits with the full run's policy, so both share one trained policy.
    """

    eval_tasks: tuple[str, ...]
    tune_tasks: tuple[str, ...]
    episodes: int = 10
    tune_episodes: int = 5
    seed: int = 0
    delays: tuple[int, ...] = (0, 1, 2, 4)
    harness: HarnessConfig = field(default_factory=HarnessConfig)
    policy: BCPolicyConfig = field(default_factory=BCPolicyConfig)
    methods: tuple[MethodSpec, ...] = ()
    modes: tuple[str, ...] = ()
    variants: tuple[MethodSpec, ...] = ()
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    policy_tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.policy_tasks:
            object.__setattr__(self, "policy_tasks", (*self.eval_tasks, *self.tune_tasks))
        if not self.eval_tasks or not self.tune_tasks:
            raise ValueError("eval_tasks and tune_tasks must both be non-empty")
        overlap = sorted(set(self.eval_tasks) & set(self.tune_tasks))
        if overlap:
            raise ValueError(f"tuning and evaluation tasks must be disjoint; both hold {overlap}")
        for name in ("episodes", "tune_episodes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not self.delays or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in self.delays):
            raise ValueError(f"delays must be ints >= 0, got {self.delays!r}")
        missing = sorted(set(self.selection.delays) - set(self.delays))
        if missing:
            raise ValueError(f"selection delays {missing} are not among the evaluated delays {list(self.delays)}")
        if not any(m.name == EVERY_STEP and m.kind == "every_step" for m in self.methods):
            raise ValueError(f"methods must include {{name: {EVERY_STEP}, kind: every_step}} (the reference)")
        if not any(m.kind == "fixed_chunk" for m in self.methods):
            raise ValueError("methods must include at least one fixed_chunk baseline")
        known_modes = load_scheduler_modes().names
        unknown = sorted(set(self.modes) - set(known_modes))
        if unknown:
            raise ValueError(f"unknown scheduling modes {unknown}; known: {list(known_modes)}")
        names = [m.name for m in (*self.methods, *self.mode_specs(), *self.variants, *self.selection.candidates())]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"method names must be unique; repeated: {dupes}")
        if any(v.kind != "sp_vla" for v in self.variants):
            raise ValueError("variants are sp_vla methods (candidates of the selection)")
        unlearned = sorted((set(self.eval_tasks) | set(self.tune_tasks)) - set(self.policy_tasks))
        if unlearned:
            raise ValueError(f"tasks {unlearned} are not among the policy's tasks {list(self.policy_tasks)}")

    def mode_specs(self) -> list[MethodSpec]:
        """One ``sp_vla`` method per evaluated mode, named ``sp_vla_<mode>``."""
        names = self.modes or load_scheduler_modes().names
        return [MethodSpec(f"sp_vla_{m}", "sp_vla", mode=m) for m in names]

    def sp_vla_specs(self) -> list[MethodSpec]:
        """Every SP-VLA candidate of the selection: modes, variants, grid."""
        return [*self.mode_specs(), *self.variants, *self.selection.candidates()]

    def seeds(self, tuning: bool = False) -> list[int]:
        n = self.tune_episodes if tuning else self.episodes
        return list(range(self.seed, self.seed + n))


def load_closed_loop_config(path: str | Path = DEFAULT_CONFIG, quick: bool = False) -> ClosedLoopConfig:
    """Read ``closed_loop.yaml``; with ``quick`` its ``quick:`` section replaces the keys it names (``grid`` and
    ``selection_delays`` replace those of ``selection:``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    quick_section = data.pop("quick", {}) or {}
    selection = dict(data.pop("selection", {}) or {})
    policy_tasks = (*(data.get("eval_tasks") or ()), *(data.get("tune_tasks") or ()))
    if quick:
        for key, value in quick_section.items():
            if key == "grid":
                selection["grid"] = value
            elif key == "selection_delays":
                selection["delays"] = value
            elif key in data:
                data[key] = value
            else:
                raise ValueError(f"{path}: unknown key {key!r} in quick:")
    known = {"eval_tasks", "tune_tasks", "episodes", "tune_episodes", "seed", "delays", "harness", "policy",
             "methods", "modes", "variants"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    if "delays" in selection:
        selection["delays"] = tuple(selection["delays"])
    return ClosedLoopConfig(
        eval_tasks=tuple(data.get("eval_tasks") or ()),
        tune_tasks=tuple(data.get("tune_tasks") or ()),
        episodes=data.get("episodes", 10),
        tune_episodes=data.get("tune_episodes", 5),
        seed=data.get("seed", 0),
        delays=tuple(data.get("delays") or ()),
        harness=HarnessConfig(**(data.get("harness") or {})),
        policy=BCPolicyConfig(**(data.get("policy") or {})),
        methods=tuple(method_from_dict(m) for m in data.get("methods") or ()),
        modes=tuple(data.get("modes") or ()),
        variants=tuple(method_from_dict(m) for m in data.get("variants") or ()),
        selection=SelectionConfig(**selection),
        policy_tasks=tuple(policy_tasks),
    )


def run_grid(
    policy: ChunkPolicy,
    tasks: Sequence[str],
    seeds: Sequence[int],
    specs: Sequence[MethodSpec],
    delays: Sequence[int],
    harness: HarnessConfig,
    base: SchedulerConfig,
    modes: SchedulerModes,
    desc: str = "episodes",
    progress: bool = True,
) -> list[EpisodeResult]:
    """Every (method, delay) on every (task, seed); the envs of a task are built once and shared."""
    check_tasks(tasks)
    results: list[EpisodeResult] = []
    bar = tqdm(total=len(tasks) * len(specs) * len(delays) * len(seeds), desc=desc, unit="ep", disable=not progress)
    for task in tasks:
        envs = [make_env(task, s) for s in seeds]
        try:
            for spec in specs:
                make: Callable = lambda spec=spec: spec.build(base, modes)  # noqa: E731
                for d in delays:
                    results += run_batch(policy, task, envs, seeds, spec.name, make, d, harness)
                    bar.update(len(seeds))
        finally:
            for env in envs:
                env.close()
    bar.close()
    return results


def _by_key(summaries: Sequence[Summary]) -> dict[tuple[str, int], Summary]:
    return {(s.method, s.delay_steps): s for s in summaries}


def select_winner(
    summaries: Sequence[Summary], candidates: Sequence[str], selection: SelectionConfig
) -> dict[str, object]:
    """The selection rule on the tuning split.

    A candidate *qualifies* when at every selection delay its model-call fraction is <= ``max_call_fraction``
    and its success >= every-step success - ``success_tolerance``. The winner is the qualified candidate with the
    highest mean success over the selection delays (ties: fewer calls, then the order given). Without a qualified
    candidate, the same ranking among those within the call budget (else among all), reported as not qualified.
    """
    table = _by_key(summaries)
    rows = []
    for order, name in enumerate(candidates):
        mine = [table[(name, d)] for d in selection.delays]
        refs = [table[(EVERY_STEP, d)] for d in selection.delays]
        within_budget = all(s.model_call_fraction <= selection.max_call_fraction + 1e-12 for s in mine)
        keeps_success = all(s.success >= r.success - selection.success_tolerance - 1e-12
                            for s, r in zip(mine, refs, strict=True))
        rows.append({
            "method": name,
            "mean_success": float(np.mean([s.success for s in mine])),
            "mean_call_fraction": float(np.mean([s.model_call_fraction for s in mine])),
            "within_call_budget": within_budget,
            "keeps_success": keeps_success,
            "qualified": within_budget and keeps_success,
            "order": order,
        })
    pool = [r for r in rows if r["qualified"]] or [r for r in rows if r["within_call_budget"]] or rows
    best = max(pool, key=lambda r: (r["mean_success"], -r["mean_call_fraction"], -r["order"]))
    return {
        "rule": (f"qualified: call fraction <= {selection.max_call_fraction:.3f} and success >= every-step - "
                 f"{selection.success_tolerance} at delays {list(selection.delays)} on the tuning split; "
                 "winner: highest mean success (ties: fewer calls)"),
        "winner": best["method"],
        "winner_qualified": best["qualified"],
        "candidates": rows,
    }


def nearest_fixed_chunk(summaries: Sequence[Summary], fixed: Sequence[str], method: str, delay: int) -> str:
    """The fixed-chunk baseline whose model-call fraction is nearest to ``method``'s at ``delay`` (log scale)."""
    table = _by_key(summaries)
    mine = np.log(table[(method, delay)].model_call_fraction)
    return min(fixed, key=lambda f: abs(np.log(table[(f, delay)].model_call_fraction) - mine))


def matched_fixed_chunk(summaries: Sequence[Summary], fixed: Sequence[str], method: str, delay: int) -> str:
    """The fixed-chunk baseline to compare ``method`` with at ``delay``: the most successful one among those that
    call the model at least as often (ties: fewer calls); if none does, the one that calls most often."""
    table = _by_key(summaries)
    mine = table[(method, delay)].model_call_fraction
    pool = [table[(f, delay)] for f in fixed if table[(f, delay)].model_call_fraction >= mine - 1e-12]
    if pool:
        return max(pool, key=lambda s: (s.success, -s.model_call_fraction)).method
    return max((table[(f, delay)] for f in fixed), key=lambda s: s.model_call_fraction).method


def goal_check(
    results: Sequence[EpisodeResult], summaries: Sequence[Summary], method: str, fixed: Sequence[str],
    selection: SelectionConfig,
) -> dict[str, object]:
    """The issue's goal for ``method`` at each selection delay, on these results: call fraction <= the budget,
    success >= every step - tolerance, and strictly better (paired McNemar) than the matched fixed chunk (the
    most successful one calling at least as often). The fixed chunk at the nearest call fraction is reported
    beside it, outside the verdict."""
    table = _by_key(summaries)
    per_delay = {}
    for d in selection.delays:
        s, ref = table[(method, d)], table[(EVERY_STEP, d)]
        baseline = matched_fixed_chunk(summaries, fixed, method, d)
        paired = paired_comparison(results, method, baseline, d)
        nearest = nearest_fixed_chunk(summaries, fixed, method, d)
        per_delay[str(d)] = {
            "model_call_fraction": s.model_call_fraction,
            "success": s.success,
            "every_step_success": ref.success,
            "within_call_budget": s.model_call_fraction <= selection.max_call_fraction + 1e-12,
            "keeps_success": s.success >= ref.success - selection.success_tolerance - 1e-12,
            "matched_fixed_chunk": baseline,
            "beats_fixed_chunk": paired.strictly_better,
            "paired": paired.to_dict(),
            "nearest_fixed_chunk": nearest,
            "paired_nearest": paired_comparison(results, method, nearest, d).to_dict(),
        }
    met = all(v["within_call_budget"] and v["keeps_success"] and v["beats_fixed_chunk"] for v in per_delay.values())
    return {"method": method, "met": met, "per_delay": per_delay}


def episode_table(results: Sequence[EpisodeResult]) -> dict[str, object]:
    """Every episode, for paired analyses from the JSON: ``order`` lists (task, seed); per method and delay,
    ``success`` (0/1), ``steps`` and ``model_calls`` in that order."""
    order = list(dict.fromkeys((r.task, r.seed) for r in results))
    index = {k: i for i, k in enumerate(order)}
    table: dict[str, dict[str, dict[str, list[int]]]] = {}
    n = len(order)
    for r in results:
        row = table.setdefault(r.method, {}).setdefault(
            str(r.delay_steps), {"success": [0] * n, "steps": [0] * n, "model_calls": [0] * n})
        i = index[(r.task, r.seed)]
        row["success"][i], row["steps"][i], row["model_calls"][i] = int(r.success), r.steps, r.model_calls
    return {"order": [list(k) for k in order], "by_method": table}


def run_closed_loop(
    config: ClosedLoopConfig,
    policy: ChunkPolicy,
    scheduler_base: SchedulerConfig | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """The whole experiment on a trained ``policy``; returns a JSON-ready dict (see the module docstring)."""
    if tuple(policy.tasks) != config.policy_tasks:
        raise ValueError(f"the policy was trained on {list(policy.tasks)}, the run needs {list(config.policy_tasks)}")
    speed_range = float(policy.train_info["speed_range"])
    base = (scheduler_base or dataclass_from_yaml(SchedulerConfig, DEFAULT_SCHEDULER_CONFIG)).with_changes(
        speed_range=speed_range)
    modes = load_scheduler_modes()
    fixed = [m.name for m in config.methods if m.kind == "fixed_chunk"]
    candidates = config.sp_vla_specs()  # the methods' sp_vla entries are reported, never selected
    t0 = time.perf_counter()
    tuning_results = run_grid(policy, config.tune_tasks, config.seeds(tuning=True),
                              [*config.methods, *candidates], config.selection.delays, config.harness, base, modes,
                              "tuning split", progress)
    tuning_summaries = summarize(tuning_results)
    selection = select_winner(tuning_summaries, [c.name for c in candidates], config.selection)
    winner = next(c for c in candidates if c.name == selection["winner"])
    default_spec = MethodSpec(f"sp_vla_{modes.default}", "sp_vla", mode=modes.default)
    selection.update({
        "winner_spec": winner.describe(),
        "default_mode": modes.default,
        "default_is_winner": default_spec.name == winner.name,
        "default_equals_winner": default_spec.scheduler_config(base, modes) == winner.scheduler_config(base, modes),
    })
    t_tuning = time.perf_counter() - t0
    eval_specs = [*config.methods, *config.mode_specs(), *config.variants]
    if winner.name not in {s.name for s in eval_specs}:
        eval_specs.append(winner)
    if default_spec.name not in {s.name for s in eval_specs}:
        eval_specs.append(default_spec)
    results = run_grid(policy, config.eval_tasks, config.seeds(), eval_specs, config.delays, config.harness, base,
                       modes, "evaluation split", progress)
    summaries = summarize(results)
    paired = []
    for name in dict.fromkeys([winner.name, default_spec.name]):
        for d in config.delays:
            baselines = [matched_fixed_chunk(summaries, fixed, name, d), nearest_fixed_chunk(summaries, fixed, name, d),
                         EVERY_STEP]
            paired += [{**paired_comparison(results, name, b, d).to_dict(), "matched_by": why}
                       for b, why in zip(baselines, ("at_least_as_many_calls", "nearest_call_fraction", "reference"),
                                         strict=True)]
    return {
        "eval_tasks": list(config.eval_tasks),
        "tune_tasks": list(config.tune_tasks),
        "episodes_per_task": config.episodes,
        "tune_episodes_per_task": config.tune_episodes,
        "seeds": config.seeds(),
        "delays": list(config.delays),
        "harness": asdict(config.harness),
        "policy": {
            "digest": policy.digest,
            "config": asdict(policy.config),
            "tasks": list(policy.tasks),
            "train_info": policy.train_info,
        },
        "speed_range": speed_range,
        "scheduler_base": {f.name: getattr(base, f.name) for f in fields(base) if f.init},
        "method_specs": {s.name: s.describe() for s in eval_specs},
        "results": [s.to_dict() for s in summaries],
        "success_by_task": success_by_task(results),
        "episodes": episode_table(results),
        "tuning": {
            "method_specs": {s.name: s.describe() for s in [*config.methods, *candidates]},
            "results": [s.to_dict() for s in tuning_summaries],
            "success_by_task": success_by_task(tuning_results),
            "wall_s": t_tuning,
        },
        "mode_selection": selection,
        "paired": paired,
        "goal": goal_check(results, summaries, winner.name, fixed, config.selection),
        "goal_default": goal_check(results, summaries, default_spec.name, fixed, config.selection),
    }
