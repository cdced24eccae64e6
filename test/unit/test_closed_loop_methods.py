"""Scheduling methods, their YAML specs and the tuning selection rule (no simulator needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.core.scheduler_modes import load_scheduler_modes
from spvla_ros.eval.closed_loop import DEFAULT_CONFIG, TuningConfig, load_closed_loop_config, select_best
from spvla_ros.eval.metaworld_harness import HarnessConfig, env_to_scheduler_action, scheduler_to_env_action
from spvla_ros.eval.methods import EveryStep, FixedSkip, MethodSpec, method_from_dict
from spvla_ros.eval.summary import MethodSummary


class CountingModel:
    """A model stand-in returning a distinct action per call: call i -> [i, 0, 0, 0, 0, 0, 1]."""

    def __init__(self, action: np.ndarray | None = None) -> None:
        self.calls = 0
        self.action = action

    def __call__(self) -> np.ndarray:
        self.calls += 1
        if self.action is not None:
            return self.action.copy()
        return np.array([self.calls, 0, 0, 0, 0, 0, 1.0])


def _run(method, model, steps: int) -> tuple[list[np.ndarray], list[bool]]:
    method.reset()
    out = [method.step(model) for _ in range(steps)]
    return [a for a, _ in out], [c for _, c in out]


def test_every_step_calls_every_step() -> None:
    model = CountingModel()
    actions, called = _run(EveryStep(), model, 7)
    assert all(called) and model.calls == 7
    assert [a[0] for a in actions] == list(range(1, 8))


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_fixed_skip_calls_every_kth_step_and_repeats_the_last_model_action(k: int) -> None:
    steps = 17
    model = CountingModel()
    method = FixedSkip(k)
    actions, called = _run(method, model, steps)
    assert called == [t % k == 0 for t in range(steps)]
    assert model.calls == -(-steps // k)  # ceil
    assert [a[0] for a in actions] == [t // k + 1 for t in range(steps)]
    # reset restarts the period: the first step of the next episode calls the model
    _, called = _run(method, model, 2)
    assert called[0]


def test_fixed_skip_rejects_bad_k() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            FixedSkip(bad)  # type: ignore[arg-type]


def test_sp_vla_method_schedule_is_exact_on_a_constant_in_band_motion() -> None:
    """Constant action, speed in [v_min, v_max], every axis intuitive: fill n=6, then 5 cheap steps, 1 call, ..."""
    base = SchedulerConfig(speed_range=1.0)  # v_min 0.25, v_max 0.75; |0.3| per axis, speed 0.52
    action = np.array([0.3, 0.3, 0.3, 0, 0, 0, 1.0])
    model = CountingModel(action)
    method = MethodSpec("paper", "sp_vla").build(base)
    actions, called = _run(method, model, 18)
    expected = [True] * 6 + ([False] * 5 + [True]) * 2
    assert called == expected
    assert model.calls == 8
    np.testing.assert_allclose(np.array(actions), np.tile(action, (18, 1)), atol=1e-12)


def test_method_spec_validation_and_yaml_form() -> None:
    spec = method_from_dict({"name": "x", "kind": "sp_vla", "scheduler": {"tau": 0.0}})
    assert spec.scheduler_config(SchedulerConfig(speed_range=2.0)).tau == 0.0
    assert spec.scheduler_config(SchedulerConfig(speed_range=2.0)).speed_range == 2.0
    with pytest.raises(ValueError, match="kind"):
        MethodSpec("x", "sometimes")
    with pytest.raises(ValueError, match="bad scheduler overrides"):
        MethodSpec("x", "sp_vla", scheduler={"no_such_field": 1})
    with pytest.raises(ValueError, match="tau"):
        MethodSpec("x", "sp_vla", scheduler={"tau": 2.0})
    with pytest.raises(ValueError, match="unknown method keys"):
        method_from_dict({"name": "x", "kind": "every_step", "speed": 3})


def test_action_conversion_round_trip_and_clip() -> None:
    a = env_to_scheduler_action(np.array([0.1, -0.2, 0.3, 0.9]))
    np.testing.assert_array_equal(a, [0.1, -0.2, 0.3, 0, 0, 0, 0.9])
    np.testing.assert_array_equal(scheduler_to_env_action(a), [0.1, -0.2, 0.3, 0.9])
    np.testing.assert_array_equal(scheduler_to_env_action(np.array([3, -3, 0, 1, 1, 1, 2.0])), [1, -1, 0, 1])
    with pytest.raises(ValueError):
        env_to_scheduler_action(np.zeros(7))


def test_harness_config_rejects_bad_values() -> None:
    for kwargs in ({"max_steps": 0}, {"max_steps": 501}, {"obs_noise_std": -0.1}, {"action_noise_std": float("nan")}):
        with pytest.raises(ValueError):
            HarnessConfig(**kwargs)


def test_shipped_yaml_loads_with_disjoint_splits_and_all_methods() -> None:
    for quick in (False, True):
        cfg = load_closed_loop_config(DEFAULT_CONFIG, quick=quick)
        assert not set(cfg.eval_tasks) & set(cfg.tune_tasks)
        kinds = {m.kind for m in cfg.methods}
        assert kinds == {"every_step", "fixed_skip"}
        assert {m.k for m in cfg.methods if m.kind == "fixed_skip"} >= {2, 3}
        # every mode is reported, the paper's rule included, and the tuning starts from the default mode
        mode_names = [m.name for m in cfg.mode_specs()]
        assert "sp_vla_paper" in mode_names
        assert f"sp_vla_{load_scheduler_modes().default}" in mode_names
        assert cfg.tuning.base_mode == load_scheduler_modes().default
        assert cfg.tuning.candidates()
    full = load_closed_loop_config(DEFAULT_CONFIG)
    assert len(full.eval_tasks) >= 10
    for family in ("reach", "push", "pick-place", "door", "drawer"):
        assert any(t.startswith(family) for t in full.eval_tasks), family


def test_overlapping_splits_are_rejected(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("eval_tasks: [reach-v3]\ntune_tasks: [reach-v3]\n")
    with pytest.raises(ValueError, match="disjoint"):
        load_closed_loop_config(p)


def test_tuning_grid_drops_invalid_combinations() -> None:
    grid = TuningConfig(grid={"v_min_fraction": [0.0, 0.9], "v_max_fraction": [0.5, 1.0]})
    assert grid.candidates() == [
        {"v_min_fraction": 0.0, "v_max_fraction": 0.5},
        {"v_min_fraction": 0.0, "v_max_fraction": 1.0},
        {"v_min_fraction": 0.9, "v_max_fraction": 1.0},
    ]


def _summary(success: float, speedup: float) -> MethodSummary:
    return MethodSummary(10, round(10 * success), success, (0.0, 1.0), 1 / speedup, speedup, 50.0, 50 / speedup, 0)


def test_select_best_takes_the_fastest_within_tolerance_else_the_most_successful() -> None:
    ref = _summary(1.0, 1.0)
    cands = [({"a": 1}, _summary(1.0, 1.5)), ({"a": 2}, _summary(0.9, 3.0)), ({"a": 3}, _summary(1.0, 2.0))]
    assert select_best(ref, cands, 0.0) == ({"a": 3}, True)
    assert select_best(ref, cands, 0.1) == ({"a": 2}, True)
    bad = [({"a": 1}, _summary(0.5, 3.0)), ({"a": 2}, _summary(0.8, 1.2))]
    assert select_best(ref, bad, 0.05) == ({"a": 2}, False)
