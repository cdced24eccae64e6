"""The closed-loop experiment: derive the speed range, tune SP-VLA on one task split, evaluate on another.

Steps (all with the same harness settings):
1. run the expert every step on the tuning split and set ``speed_range`` to a percentile of the speeds
   ``||a_xyz||`` of its actions (:func:`speed_range_from_actions`);
2. grid-search :class:`SchedulerConfig` overrides on top of ``tuning.base_mode`` on the tuning split and
   pick the fastest candidate whose success stays within ``success_tolerance`` of every-step success there
   (else the most successful);
3. run every scheduling mode (``config/scheduler_modes.yaml``) on the tuning split too and select the
   winning mode by the same rule among the modes and the tuned candidate; report whether the YAML's
   default mode is that winner;
4. run every method (every step, fixed skip, every mode, SP-VLA tuned, optional variants) on the
   evaluation split, same tasks, seeds and episode budget.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml

from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.scheduler_config import SchedulerConfig, speed_range_from_actions
from spvla_ros.core.scheduler_modes import PAPER_MODE, SchedulerModes, load_scheduler_modes
from spvla_ros.eval.metaworld_harness import EpisodeResult, HarnessConfig, run_suite
from spvla_ros.eval.methods import MethodSpec, method_from_dict
from spvla_ros.eval.summary import MethodSummary, summarize_by_method, summarize_by_task

DEFAULT_CONFIG = CONFIG_DIR / "closed_loop.yaml"
DEFAULT_SCHEDULER_CONFIG = CONFIG_DIR / "scheduler.yaml"
EVERY_STEP = MethodSpec("every_step", "every_step")


@dataclass(frozen=True)
class TuningConfig:
    """Grid search of SP-VLA settings on the tuning split.

    Args:
        tuned_name: name of the tuned method in the results.
        base_mode: the scheduling mode the grid's overrides are applied on top of.
        success_tolerance: a candidate qualifies if its success rate >= every-step success - this, in [0, 1].
        grid: SchedulerConfig field -> values; the full product is searched (may be empty: one candidate,
            the base config).
    """

    tuned_name: str = "sp_vla_tuned"
    base_mode: str = PAPER_MODE
    success_tolerance: float = 0.01
    grid: Mapping[str, Sequence[object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.success_tolerance <= 1.0:
            raise ValueError(f"success_tolerance must be in [0, 1], got {self.success_tolerance!r}")
        for key, values in self.grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"tuning grid entry {key!r} must be a non-empty list, got {values!r}")
        for overrides in self.candidates():
            MethodSpec("candidate", "sp_vla", scheduler=overrides, mode=self.base_mode)  # validates

    def candidates(self) -> list[dict[str, object]]:
        """Every combination of the grid, in a fixed order; invalid combinations (v_min > v_max) dropped."""
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            overrides = dict(zip(keys, values, strict=True))
            try:
                MethodSpec("candidate", "sp_vla", scheduler=overrides, mode=self.base_mode)
            except ValueError:
                continue
            out.append(overrides)
        return out


@dataclass(frozen=True)
class ClosedLoopConfig:
    """Everything one closed-loop run needs (defaults in ``config/closed_loop.yaml``).

    Args:
        eval_tasks: Meta-World task names evaluated.
        tune_tasks: task names used for tuning and the speed range; disjoint from eval_tasks.
        episodes: episodes per evaluation task (seeds ``seed .. seed + episodes - 1``), >= 1.
        tune_episodes: episodes per tuning task, >= 1.
        seed: first seed.
        confidence: level of the Wilson interval, in (0, 1).
        harness: episode settings.
        speed_range_percentile: percentile of expert speeds that sets ``speed_range``, in (0, 100].
        methods: methods evaluated besides the modes and the tuned one.
        modes: scheduling modes evaluated as methods ``sp_vla_<mode>`` (empty: every mode of the modes file).
        variants: extra methods run only when asked (``--variants``).
        tuning: the grid search.
    """

    eval_tasks: tuple[str, ...]
    tune_tasks: tuple[str, ...]
    episodes: int = 10
    tune_episodes: int = 5
    seed: int = 0
    confidence: float = 0.95
    harness: HarnessConfig = field(default_factory=HarnessConfig)
    speed_range_percentile: float = 95.0
    methods: tuple[MethodSpec, ...] = ()
    modes: tuple[str, ...] = ()
    variants: tuple[MethodSpec, ...] = ()
    tuning: TuningConfig = field(default_factory=TuningConfig)

    def __post_init__(self) -> None:
        if not self.eval_tasks:
            raise ValueError("eval_tasks is empty")
        overlap = sorted(set(self.eval_tasks) & set(self.tune_tasks))
        if overlap:
            raise ValueError(f"tuning and evaluation tasks must be disjoint; both hold {overlap}")
        for name in ("episodes", "tune_episodes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if not 0.0 < self.speed_range_percentile <= 100.0:
            raise ValueError(f"speed_range_percentile must be in (0, 100], got {self.speed_range_percentile!r}")
        known_modes = load_scheduler_modes().names
        unknown = sorted(set(self.modes) - set(known_modes))
        if unknown:
            raise ValueError(f"unknown scheduling modes {unknown}; known: {list(known_modes)}")
        names = [m.name for m in (*self.methods, *self.mode_specs(), *self.variants)] + [self.tuning.tuned_name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"method names must be unique; repeated: {dupes}")

    def mode_specs(self) -> list[MethodSpec]:
        """One ``sp_vla`` method per evaluated mode, named ``sp_vla_<mode>``."""
        names = self.modes or load_scheduler_modes().names
        return [MethodSpec(f"sp_vla_{m}", "sp_vla", mode=m) for m in names]

    def seeds(self, tuning: bool = False) -> list[int]:
        n = self.tune_episodes if tuning else self.episodes
        return list(range(self.seed, self.seed + n))


def load_closed_loop_config(path: str | Path = DEFAULT_CONFIG, quick: bool = False) -> ClosedLoopConfig:
    """Read ``closed_loop.yaml``; with ``quick`` its ``quick:`` section replaces the keys it names."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    quick_section = data.pop("quick", {}) or {}
    tuning = dict(data.pop("tuning", {}) or {})
    if quick:
        for key, value in quick_section.items():
            if key == "grid":
                tuning["grid"] = value
            elif key in data:
                data[key] = value
            else:
                raise ValueError(f"{path}: unknown key {key!r} in quick:")
    known = {"eval_tasks", "tune_tasks", "episodes", "tune_episodes", "seed", "confidence", "harness",
             "speed_range_percentile", "methods", "modes", "variants"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    return ClosedLoopConfig(
        eval_tasks=tuple(data.get("eval_tasks") or ()),
        tune_tasks=tuple(data.get("tune_tasks") or ()),
        episodes=data.get("episodes", 10),
        tune_episodes=data.get("tune_episodes", 5),
        seed=data.get("seed", 0),
        confidence=data.get("confidence", 0.95),
        harness=HarnessConfig(**(data.get("harness") or {})),
        speed_range_percentile=data.get("speed_range_percentile", 95.0),
        methods=tuple(method_from_dict(m) for m in data.get("methods") or ()),
        modes=tuple(data.get("modes") or ()),
        variants=tuple(method_from_dict(m) for m in data.get("variants") or ()),
        tuning=TuningConfig(**tuning),
    )


def derive_speed_range(
    tasks: Sequence[str], seeds: Sequence[int], harness: HarnessConfig, percentile: float
) -> tuple[float, list[EpisodeResult]]:
    """Speed range from the expert's own actions (expert every step) on ``tasks``; also returns the episodes."""
    factories = {EVERY_STEP.name: lambda: EVERY_STEP.build(SchedulerConfig())}
    results = run_suite(tasks, seeds, factories, harness, record_actions=True)
    actions = np.concatenate([r.model_actions for r in results if r.model_actions is not None])
    return speed_range_from_actions(actions, percentile), results


@dataclass(frozen=True)
class TuningResult:
    """Outcome of the grid search: the chosen overrides and every candidate's tuning-split summary."""

    best: dict[str, object]
    reference: MethodSummary
    candidates: list[tuple[dict[str, object], MethodSummary]]
    qualified: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "best": self.best,
            "best_qualified": self.qualified,
            "every_step_on_tuning_split": self.reference.to_dict(),
            "candidates": [{"overrides": o, **s.to_dict()} for o, s in self.candidates],
        }


def select_best(
    reference: MethodSummary, candidates: Sequence[tuple[dict[str, object], MethodSummary]], tolerance: float
) -> tuple[dict[str, object], bool]:
    """Fastest candidate with success >= reference - tolerance (ties: higher success, then grid order);
    if none qualifies, the most successful one (ties: faster). Returns (overrides, qualified)."""
    if not candidates:
        raise ValueError("no tuning candidate")
    floor = reference.success_rate - tolerance - 1e-12
    ok = [(o, s) for o, s in candidates if s.success_rate >= floor]
    if ok:
        best = max(ok, key=lambda c: (round(c[1].speedup, 9), c[1].success_rate))
        return best[0], True
    best = max(candidates, key=lambda c: (c[1].success_rate, round(c[1].speedup, 9)))
    return best[0], False


def tune(
    config: ClosedLoopConfig, base: SchedulerConfig, reference: MethodSummary
) -> TuningResult:
    """Evaluate every grid candidate on the tuning split and select the best (see :func:`select_best`)."""
    overrides = config.tuning.candidates() or [{}]
    mode = config.tuning.base_mode
    specs = {f"candidate_{i}": MethodSpec(f"candidate_{i}", "sp_vla", scheduler=o, mode=mode)
             for i, o in enumerate(overrides)}
    factories = {name: (lambda s=spec: s.build(base)) for name, spec in specs.items()}
    results = run_suite(config.tune_tasks, config.seeds(tuning=True), factories, config.harness)
    summaries = summarize_by_method(results, config.confidence)
    candidates = [(o, summaries[name]) for name, o in zip(specs, overrides, strict=True)]
    best, qualified = select_best(reference, candidates, config.tuning.success_tolerance)
    return TuningResult(best, reference, candidates, qualified)


def select_mode(
    config: ClosedLoopConfig,
    base: SchedulerConfig,
    reference: MethodSummary,
    tuning: TuningResult,
    tuned: MethodSpec,
    modes: SchedulerModes,
) -> dict[str, object]:
    """Run every mode on the tuning split and pick the winner among them and the tuned candidate.

    Same rule as the grid (:func:`select_best`); ties go to a named mode. Also says whether the default
    mode of the modes file is the winner, and whether its settings equal the tuned ones.
    """
    mode_specs = config.mode_specs()
    factories = {s.name: (lambda s=s: s.build(base, modes)) for s in mode_specs}
    results = run_suite(config.tune_tasks, config.seeds(tuning=True), factories, config.harness)
    summaries = summarize_by_method(results, config.confidence)
    tuned_summary = next(summary for overrides, summary in tuning.candidates if overrides == tuning.best)
    candidates = [(s.name, summaries[s.name]) for s in mode_specs] + [(tuned.name, tuned_summary)]
    winner, qualified = select_best(reference, candidates, config.tuning.success_tolerance)
    default_name = f"sp_vla_{modes.default}"
    default_config = MethodSpec(default_name, "sp_vla", mode=modes.default).scheduler_config(base, modes)
    return {
        "rule": f"fastest with success >= every-step success - {config.tuning.success_tolerance} on the tuning split",
        "tuning_split": {name: s.to_dict() for name, s in candidates},
        "winner": winner,
        "winner_qualified": qualified,
        "default_mode": modes.default,
        "default_is_winner": winner == default_name,
        "default_equals_tuned": default_config == tuned.scheduler_config(base, modes),
    }


def run_closed_loop(
    config: ClosedLoopConfig,
    scheduler_base: SchedulerConfig | None = None,
    with_variants: bool = False,
    speed_range: float | None = None,
) -> dict[str, object]:
    """The whole experiment; returns a JSON-ready dict with ``methods`` (name -> summary dict)."""
    base = scheduler_base or dataclass_from_yaml(SchedulerConfig, DEFAULT_SCHEDULER_CONFIG)
    derived, expert_tuning = derive_speed_range(
        config.tune_tasks, config.seeds(tuning=True), config.harness, config.speed_range_percentile
    )
    speed_range = speed_range if speed_range is not None else derived
    if not (math.isfinite(speed_range) and speed_range > 0):
        raise ValueError(f"speed_range must be a finite number > 0, got {speed_range!r}")
    base = base.with_changes(speed_range=speed_range)
    reference = summarize_by_method(expert_tuning, config.confidence)[EVERY_STEP.name]
    tuning = tune(config, base, reference)
    tuned = MethodSpec(config.tuning.tuned_name, "sp_vla", scheduler=tuning.best, mode=config.tuning.base_mode)
    modes = load_scheduler_modes()
    selection = select_mode(config, base, reference, tuning, tuned, modes)
    specs = [*config.methods, *config.mode_specs(), tuned, *(config.variants if with_variants else ())]
    factories = {s.name: (lambda s=s: s.build(base)) for s in specs}
    results = run_suite(config.eval_tasks, config.seeds(), factories, config.harness)
    summaries = summarize_by_method(results, config.confidence)
    per_task = summarize_by_task(results, config.confidence)
    return {
        "eval_tasks": list(config.eval_tasks),
        "tune_tasks": list(config.tune_tasks),
        "episodes_per_task": config.episodes,
        "tune_episodes_per_task": config.tune_episodes,
        "seeds": config.seeds(),
        "harness": asdict(config.harness),
        "confidence": config.confidence,
        "speed_range": speed_range,
        "speed_range_derived": derived,
        "speed_range_percentile": config.speed_range_percentile,
        "scheduler_base": {f.name: getattr(base, f.name) for f in fields(base) if f.init},
        "method_specs": {s.name: {"kind": s.kind, "k": s.k, "mode": s.mode, "scheduler": dict(s.scheduler)}
                         for s in specs},
        "tuning": tuning.to_dict(),
        "mode_selection": selection,
        "methods": {m: s.to_dict() for m, s in summaries.items()},
        "per_task": {m: {t: s.to_dict() for t, s in d.items()} for m, d in per_task.items()},
    }
