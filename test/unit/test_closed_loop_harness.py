"""The Meta-World closed-loop harness on real MuJoCo physics, the behaviour-cloning pipeline at toy size, and the
``spvla-bench train-policy`` / ``closed-loop`` commands end to end on a tiny config.

Needs ``metaworld`` (requirements/main-metaworld.txt); skipped with the reason when it is not installed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("metaworld", reason="needs metaworld (pip install -r requirements/main-metaworld.txt)")

from spvla_ros.bench.cli import main as bench_main  # noqa: E402
from spvla_ros.core.scheduler_config import SchedulerConfig  # noqa: E402
from spvla_ros.core.scheduler_modes import load_scheduler_modes  # noqa: E402
from spvla_ros.eval.bc_policy import BCPolicyConfig, ChunkPolicy, ChunkPolicyNet, policy_digest  # noqa: E402
from spvla_ros.eval.bc_training import (  # noqa: E402
    collect_demonstrations,
    load_or_train,
    load_policy_file,
    policy_file,
    train_policy,
)
from spvla_ros.eval.closed_loop import DEFAULT_CONFIG  # noqa: E402
from spvla_ros.eval.metaworld_harness import (  # noqa: E402
    HarnessConfig,
    check_tasks,
    make_env,
    reseed_env,
    run_batch,
)
from spvla_ros.eval.methods import MethodSpec  # noqa: E402

TOY = BCPolicyConfig(hidden_size=16, depth=1, num_heads=2, token_size=16, encoder_hidden=16, ddim_steps=2,
                     demos_per_task=1, demo_max_steps=150, train_steps=3, batch_size=8, warmup_steps=1)


def _random_policy(tasks: tuple[str, ...]) -> ChunkPolicy:
    torch.manual_seed(0)
    return ChunkPolicy(TOY, tasks, ChunkPolicyNet(TOY, len(tasks)), np.zeros(39), np.ones(39),
                       policy_digest(TOY, tasks), {"speed_range": 1.0})


@pytest.mark.parametrize("task", ["reach-v3", "door-open-v3"])
def test_reseeded_env_equals_a_fresh_one(task: str) -> None:
    """reseed_env repeats Meta-World's constructor: same start state and same physics afterwards."""
    shared = make_env(task, 0)
    for seed in (3, 1001):
        fresh = make_env(task, seed)
        reseed_env(shared, seed)
        a, b = fresh.reset()[0], shared.reset()[0]
        np.testing.assert_array_equal(a, b)
        for act in np.random.default_rng(seed).uniform(-1, 1, size=(10, 4)):
            np.testing.assert_array_equal(fresh.step(act)[0], shared.step(act)[0])
        fresh.close()
    shared.close()


def test_batch_bookkeeping_and_determinism_with_drift_and_noise() -> None:
    policy = _random_policy(("reach-v3",))
    envs = [make_env("reach-v3", s) for s in (0, 1)]
    cfg = HarnessConfig(max_steps=12, obs_noise_std=0.001, action_noise_std=0.1, drift_std=0.3)
    spec = MethodSpec("k4", "fixed_chunk", k=4)
    runs = [run_batch(policy, "reach-v3", envs, [0, 1], "k4", lambda: spec.build(SchedulerConfig()), 2, cfg)
            for _ in range(2)]
    assert runs[0] == runs[1]  # same seeds, same noise streams, same DDIM noise
    for r in runs[0]:
        assert r.steps == 12 and r.model_calls == 3 and r.wait_steps == 2 and r.delay_steps == 2
        assert r.peak_jerk > 0 and r.jerk_scale == pytest.approx(0.01 / 0.0125**3)
    with pytest.raises(ValueError, match="delay_steps"):
        run_batch(policy, "reach-v3", envs, [0, 1], "k4", lambda: spec.build(SchedulerConfig()), -1, cfg)
    with pytest.raises(ValueError, match="not trained on"):
        run_batch(policy, "push-v3", envs, [0, 1], "k4", lambda: spec.build(SchedulerConfig()), 0, cfg)


def test_harness_config_and_tasks_reject_bad_values() -> None:
    for bad in ({"max_steps": 0}, {"max_steps": 501}, {"obs_noise_std": -1.0}, {"drift_std": float("nan")},
                {"drift_correlation": 1.0}):
        with pytest.raises(ValueError):
            HarnessConfig(**bad)
    with pytest.raises(ValueError, match="unknown Meta-World task"):
        check_tasks(["no-such-task-v3"])


def test_demonstrations_are_expert_chunks_and_training_is_deterministic(tmp_path: Path) -> None:
    demos = collect_demonstrations(("reach-v3",), TOY, progress=False)
    assert demos.episodes == 1 and demos.obs.shape[1] == 39 and demos.chunks.shape[1:] == (16, 4)
    np.testing.assert_array_equal(demos.chunks[1:, 0], demos.chunks[:-1, 1])  # row i of t = row 0 of t + i
    np.testing.assert_array_equal(demos.chunks[-1], np.repeat(demos.chunks[-1, :1], 16, axis=0))  # end repeats
    a, b = (train_policy(("reach-v3",), TOY, progress=False) for _ in range(2))
    for (name, pa), pb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    policy, trained = load_or_train(("reach-v3",), TOY, tmp_path, progress=False)
    assert trained and policy_file(TOY, ("reach-v3",), tmp_path).exists()
    again, trained = load_or_train(("reach-v3",), TOY, tmp_path, progress=False)
    assert not trained and again.digest == policy.digest
    noise = np.random.default_rng(0).standard_normal((3, 16, 4))
    np.testing.assert_array_equal(policy.predict(np.zeros((3, 39)), np.zeros(3, int), noise),
                                  again.predict(np.zeros((3, 39)), np.zeros(3, int), noise))
    (tmp_path / "bad.pt").write_bytes(b"not a policy")
    with pytest.raises(ValueError, match="not a closed-loop policy"):
        load_policy_file(tmp_path / "bad.pt")


def test_bench_commands_write_the_issue_keys(tmp_path: Path) -> None:
    """train-policy then closed-loop on a toy config: every method at every delay, selection, paired tests."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data.pop("quick")
    data.update(eval_tasks=["reach-v3"], tune_tasks=["door-unlock-v3"], episodes=2, tune_episodes=1,
                delays=[0, 1], harness={"max_steps": 15}, policy={**data["policy"], **{
                    k: getattr(TOY, k) for k in ("hidden_size", "depth", "num_heads", "token_size",
                                                 "encoder_hidden", "ddim_steps", "demos_per_task",
                                                 "demo_max_steps", "train_steps", "batch_size", "warmup_steps")}})
    data["selection"].update(delays=[1], grid={"extrapolator": ["chunk"], "max_surprise_fraction": [0.2]})
    data.update(methods=[m for m in data["methods"] if m["name"] in ("every_step", "fixed_chunk_k4", "ensemble")],
                modes=["paper"], variants=data["variants"][-1:])
    cfg = tmp_path / "closed_loop.yaml"
    cfg.write_text(yaml.safe_dump(data))
    cache = tmp_path / "cache"
    assert bench_main(["train-policy", "--config", str(cfg), "--cache-dir", str(cache),
                       "--json", str(tmp_path / "train.json")]) == 0
    assert json.loads((tmp_path / "train.json").read_text())["trained_now"]
    out, png = tmp_path / "cl.json", tmp_path / "cl.png"
    assert bench_main(["closed-loop", "--config", str(cfg), "--cache-dir", str(cache), "--json", str(out),
                       "--plot", str(png)]) == 0
    payload = json.loads(out.read_text())
    assert not payload["policy_trained_now"] and png.stat().st_size > 0
    names = set(payload["method_specs"])
    assert {"every_step", "fixed_chunk_k4", "ensemble", "sp_vla_paper", "sp_vla_paper_chunk"} <= names
    assert f"sp_vla_{load_scheduler_modes().default}" in names  # the shipped default is always evaluated
    assert {p["matched_by"] for p in payload["paired"]} == {"at_least_as_many_calls", "nearest_call_fraction",
                                                            "reference"}
    episodes = payload["episodes"]
    assert episodes["order"] == [["reach-v3", 0], ["reach-v3", 1]]
    every = next(r for r in payload["results"] if r["method"] == "every_step" and r["delay_steps"] == 1)
    assert sum(episodes["by_method"]["every_step"]["1"]["success"]) == every["successes"]
    assert {(r["method"], r["delay_steps"]) for r in payload["results"]} == {(n, d) for n in names for d in (0, 1)}
    for row in payload["results"]:
        assert {"success", "success_ci95", "model_call_fraction", "speedup", "delay_steps", "method"} <= set(row)
        assert 0 <= row["success_ci95"][0] <= row["success"] <= row["success_ci95"][1] <= 1
    selection = payload["mode_selection"]
    assert selection["winner"] in {c["method"] for c in selection["candidates"]}
    assert payload["goal"]["per_delay"]["1"]["paired"]["pairs"] == 2
    assert set(payload["success_by_task"]["reach-v3"]["0"]) == names
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**data, "tune_tasks": ["reach-v3"]}))
    assert bench_main(["closed-loop", "--config", str(bad), "--cache-dir", str(cache)]) == 2


def test_shipped_config_loads_full_and_quick_with_one_policy() -> None:
    from spvla_ros.eval.closed_loop import load_closed_loop_config

    full, quick = load_closed_loop_config(), load_closed_loop_config(quick=True)
    assert len(full.eval_tasks) >= 10 and not set(full.eval_tasks) & set(full.tune_tasks)
    assert full.delays == (0, 1, 2, 4) and set(full.selection.delays) == {1, 2}
    assert quick.policy_tasks == full.policy_tasks and quick.policy == full.policy  # the same cached weights
    assert set(quick.eval_tasks) <= set(full.eval_tasks) and set(quick.tune_tasks) <= set(full.tune_tasks)
    kinds = {m.kind for m in full.methods}
    assert kinds == {"every_step", "fixed_chunk", "ensemble", "sp_vla"}
    assert not {m.name for m in full.methods} & {m.name for m in full.sp_vla_specs()}  # reported, never selected
    assert {m.k for m in full.methods if m.kind == "fixed_chunk"} >= {2, 4, 8, 16}
    assert any(v.scheduler.get("extrapolator") == "chunk" for v in full.variants)
    assert f"sp_vla_{load_scheduler_modes().default}" in {m.name for m in full.sp_vla_specs()}  # a candidate
    with pytest.raises(ValueError, match="disjoint"):
        replace(full, tune_tasks=full.eval_tasks[:1])
