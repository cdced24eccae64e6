"""The Meta-World closed-loop harness on real MuJoCo physics with the scripted experts (small task set).

Needs ``metaworld`` (requirements/main-metaworld.txt); skipped with the reason when it is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("metaworld", reason="needs metaworld (pip install -r requirements/main-metaworld.txt)")

from spvla_ros.bench.cli import main as bench_main  # noqa: E402
from spvla_ros.core.scheduler_config import SchedulerConfig  # noqa: E402
from spvla_ros.eval.metaworld_harness import HarnessConfig, TaskEpisode, check_tasks, run_suite  # noqa: E402
from spvla_ros.eval.methods import MethodSpec  # noqa: E402

TASKS = ["reach-v3", "drawer-close-v3"]
SEEDS = [0, 1]
EXPERT = MethodSpec("every_step", "every_step")
SKIP3 = MethodSpec("fixed_skip_k3", "fixed_skip", k=3)
PAPER = MethodSpec("sp_vla_paper", "sp_vla")
BASE = SchedulerConfig(speed_range=1.0)


def _factories(*specs: MethodSpec) -> dict:
    return {s.name: (lambda s=s: s.build(BASE)) for s in specs}


def test_expert_every_step_solves_the_small_task_set() -> None:
    """Meta-World's scripted experts solve these tasks from every start (their own test suite asserts it)."""
    results = run_suite(TASKS, SEEDS, _factories(EXPERT), HarnessConfig(max_steps=200))
    assert len(results) == len(TASKS) * len(SEEDS)
    for r in results:
        assert r.success, r
        assert r.steps < 200  # success ended the episode
        assert r.model_calls == r.steps and r.longest_open_loop == 0


def test_fixed_skip_bookkeeping_in_the_harness_is_exact() -> None:
    (r,) = run_suite(["reach-v3"], [0], _factories(SKIP3), HarnessConfig(max_steps=200))
    assert r.model_calls == -(-r.steps // 3)
    assert r.longest_open_loop == (2 if r.steps >= 3 else r.steps - 1)


def test_episode_cap_and_recorded_model_actions() -> None:
    ep = TaskEpisode("reach-v3", 0)
    try:
        r = ep.run(SKIP3.build(BASE), "skip", HarnessConfig(max_steps=7, stop_on_success=False), record_actions=True)
    finally:
        ep.close()
    assert r.steps == 7 and r.model_calls == 3
    assert r.model_actions is not None and r.model_actions.shape == (3, 7)
    assert (abs(r.model_actions) <= 1.0).all()  # the expert output is clipped to the env's action box


def test_results_are_reproducible_under_a_seed_with_noise() -> None:
    cfg = HarnessConfig(max_steps=150, obs_noise_std=0.01, action_noise_std=0.1)
    a = run_suite(["reach-v3"], [3], _factories(EXPERT, PAPER), cfg, record_actions=True)
    b = run_suite(["reach-v3"], [3], _factories(EXPERT, PAPER), cfg, record_actions=True)
    for x, y in zip(a, b, strict=True):
        assert (x.success, x.steps, x.model_calls, x.longest_open_loop) == (
            y.success, y.steps, y.model_calls, y.longest_open_loop
        )
        assert (x.model_actions == y.model_actions).all()
    other = run_suite(["reach-v3"], [4], _factories(EXPERT), cfg, record_actions=True)
    assert other[0].model_actions.shape != a[0].model_actions.shape or (
        other[0].model_actions != a[0].model_actions
    ).any()


def test_unknown_task_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown Meta-World task"):
        check_tasks(["reach-v9"])


def test_bench_writes_every_method_and_mode_and_selects_a_winner(tmp_path: Path) -> None:
    cfg = tmp_path / "cl.yaml"
    cfg.write_text(
        "eval_tasks: [reach-v3]\ntune_tasks: [door-unlock-v3]\nepisodes: 1\ntune_episodes: 1\n"
        "harness: {max_steps: 150}\n"
        "methods:\n"
        "  - {name: every_step, kind: every_step}\n"
        "  - {name: fixed_skip_k2, kind: fixed_skip, k: 2}\n"
        "  - {name: fixed_skip_k3, kind: fixed_skip, k: 3}\n"
        "modes: [paper, surprise]\n"
        "tuning: {base_mode: surprise, grid: {max_consecutive_extrapolations: [1, 3]}}\n"
    )
    out = tmp_path / "out.json"
    plot = tmp_path / "out.png"
    assert bench_main(["closed-loop", "--config", str(cfg), "--json", str(out), "--plot", str(plot)]) == 0
    data = json.loads(out.read_text())
    assert list(data["methods"]) == [
        "every_step", "fixed_skip_k2", "fixed_skip_k3", "sp_vla_paper", "sp_vla_surprise", "sp_vla_tuned"
    ]
    for s in data["methods"].values():
        assert {"success_rate", "success_ci", "model_call_fraction", "speedup", "mean_episode_length"} <= set(s)
        assert 0 < s["model_call_fraction"] <= 1
        assert s["speedup"] == pytest.approx(1 / s["model_call_fraction"])
    assert data["methods"]["every_step"]["speedup"] == 1.0
    assert data["speed_range"] > 0
    assert len(data["tuning"]["candidates"]) == 2
    selection = data["mode_selection"]
    assert list(selection["tuning_split"]) == ["sp_vla_paper", "sp_vla_surprise", "sp_vla_tuned"]
    assert selection["winner"] in selection["tuning_split"]
    winner = selection["tuning_split"][selection["winner"]]
    if selection["winner_qualified"]:  # the fastest of those within tolerance of every-step success
        floor = data["tuning"]["every_step_on_tuning_split"]["success_rate"] - 0.01
        ok = [s["speedup"] for s in selection["tuning_split"].values() if s["success_rate"] >= floor]
        assert winner["speedup"] == pytest.approx(max(ok))
    assert selection["default_mode"] == "surprise"
    assert plot.stat().st_size > 0
