"""``spvla-bench scheduler``: JSON keys, bookkeeping and honesty of the replay on real and crafted data."""

import json

import numpy as np
import pytest

from spvla_ros.bench.cli import main as bench_main
from spvla_ros.bench.scheduler_bench import replay
from spvla_ros.core.action_data import load_action_episodes, synthetic_episodes
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.core.scheduler_modes import load_scheduler_modes

REQUIRED_KEYS = {
    "model_call_fraction",
    "speedup",
    "extrap_rmse_xyz",
    "repeat_last_rmse_xyz",
    "linear_rmse_xyz",
    "overhead_us_p50",
    "overhead_us_p99",
    "sweep",
    "speed_range",
    "decide_us_p50",
    "decide_us_p99",
    "extrapolate_us_p50",
    "extrapolate_us_p99",
    "commit_us_p50",
    "commit_us_p99",
    "timing_extrapolated_fraction",
}


def test_bench_on_real_bridge_data_writes_the_issue_keys(bridge_npz, tmp_path, capsys):
    out, png = tmp_path / "out.json", tmp_path / "frontier.png"
    assert bench_main(["scheduler", "--data", str(bridge_npz), "--json", str(out), "--plot", str(png),
                       "--timing-repeats", "2", "--sweep"]) == 0
    payload = json.loads(out.read_text())
    assert payload.keys() >= REQUIRED_KEYS
    assert payload["steps"] == 250 and payload["episodes"] == 25
    assert 0 < payload["model_call_fraction"] <= 1
    assert payload["speedup"] == pytest.approx(1 / payload["model_call_fraction"])
    assert payload["overhead_us_p50"] <= payload["overhead_us_p99"]
    assert len(payload["sweep"]) > 10 and any(r["speedup"] > 1 for r in payload["sweep"])
    assert png.stat().st_size > 1000
    assert "speedup" in capsys.readouterr().out


def test_replay_bookkeeping_is_exact_on_a_crafted_run():
    # one episode, 10 identical intuitive steps: 6 model calls fill the buffer, then max 2 cheap steps, 1 call...
    cfg = SchedulerConfig(speed_range=1.0, max_consecutive_extrapolations=2, ridge_lambda=0.0)
    ep = np.tile([0.3, 0.3, 0.3, 0, 0, 0, 1.0], (10, 1))
    result, overhead = replay([ep], cfg)
    # steps 0-5 model, 6-7 cheap, 8 model, 9 cheap
    assert (result.steps, result.model_calls, result.extrapolated_steps) == (10, 7, 3)
    assert result.speedup == pytest.approx(10 / 7)
    assert result.rmse_xyz["ridge"] == pytest.approx(0.0, abs=1e-12)  # constant: exact
    assert result.rmse_xyz["repeat_last"] == 0.0
    assert overhead.shape == (10,) and np.all(overhead > 0)


def test_replay_compares_baselines_on_the_same_steps():
    # a ramp: linear and lambda=0 ridge are exact, repeat-last lags by one slope step
    cfg = SchedulerConfig(speed_range=2.0, v_min=0.0, v_max=10.0, tau=0.0, ridge_lambda=0.0, cap_step_change=False,
                          clip_bound=10.0)
    t = np.arange(12)[:, None]
    ep = np.hstack([0.3 + 0.01 * t * np.ones((12, 3)), np.zeros((12, 3)), np.ones((12, 1))])
    result, _ = replay([ep], cfg)
    assert result.extrapolated_steps > 0
    assert result.rmse_xyz["ridge"] == pytest.approx(0.0, abs=1e-9)
    assert result.rmse_xyz["linear"] == pytest.approx(0.0, abs=1e-9)
    assert result.rmse_xyz["repeat_last"] == pytest.approx(0.01 * np.sqrt(3), rel=1e-6)


def test_synthetic_default_runs_without_shared_and_times_each_stage_without_the_sweep(tmp_path, capsys):
    out = tmp_path / "o.json"
    assert bench_main(["scheduler", "--json", str(out), "--timing-repeats", "2", "--no-sweep"]) == 0
    payload = json.loads(out.read_text())
    assert payload["data"].startswith("synthetic") and payload["sweep"] == []
    assert payload.keys() >= REQUIRED_KEYS
    # the cost is measured where the cheap path runs (issue 19: >= 30 % of the steps extrapolated)
    assert payload["timing_mode"] == load_scheduler_modes().default and payload["timing_extrapolated_fraction"] >= 0.3
    for stage in ("decide", "extrapolate", "commit"):
        assert 0 < payload[f"{stage}_min_us_p50"] <= payload[f"{stage}_us_p99"]
    assert payload["overhead_min_us_p99"] <= payload["overhead_us_p99"]
    printed = capsys.readouterr().out
    assert "total (decide+extrapolate+commit)" in printed and "sweep of tau x v_min x v_max not run" in printed


def test_stage_figures_bookkeeping():
    from spvla_ros.bench.scheduler_bench import stage_figures

    times = np.zeros((2, 3, 3))
    times[:, :, 0] = [[1.0, 2.0, 3.0], [4.0, 1.0, 1.0]]  # decide
    times[:, 1, 1] = [10.0, 20.0]  # only step 1 extrapolated
    times[:, :, 2] = 1.0
    f = stage_figures(times, np.array([False, True, False]))
    assert f["extrapolate_min_us_p50"] == 10.0 and f["extrapolate_us_p99"] == pytest.approx(19.9)
    assert f["overhead_min_us_p99"] == pytest.approx(np.percentile([2.0, 12.0, 2.0], 99))
    assert f["timing_extrapolated_fraction"] == pytest.approx(1 / 3)


def test_load_action_episodes_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_action_episodes(tmp_path / "missing.npz")
    np.savez(tmp_path / "nokey.npz", actions=np.zeros((4, 7)))
    with pytest.raises(ValueError, match="missing keys"):
        load_action_episodes(tmp_path / "nokey.npz")
    np.savez(tmp_path / "shape.npz", actions=np.zeros((4, 6)), episode=np.zeros(4, int))
    with pytest.raises(ValueError, match="actions must be"):
        load_action_episodes(tmp_path / "shape.npz")
    bad = np.zeros((4, 7))
    bad[1, 2] = np.nan
    np.savez(tmp_path / "nan.npz", actions=bad, episode=np.zeros(4, int))
    with pytest.raises(ValueError, match="NaN"):
        load_action_episodes(tmp_path / "nan.npz")
    np.savez(tmp_path / "mixed.npz", actions=np.zeros((4, 7)), episode=np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="contiguous"):
        load_action_episodes(tmp_path / "mixed.npz")


def test_synthetic_episodes_are_deterministic_and_finite():
    a, b = synthetic_episodes(seed=3), synthetic_episodes(seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(np.isfinite(x).all() and x.shape[1] == 7 for x in a)


def test_model_latency_bench_writes_its_figures(tmp_path, capsys):
    out, png = tmp_path / "lat.json", tmp_path / "lat.png"
    assert bench_main(["model-latency", "--latencies", "0.1,0.27", "--duration", "5", "--json", str(out),
                       "--plot", str(png)]) == 0
    payload = json.loads(out.read_text())
    assert [r["latency_s"] for r in payload["runs"]] == [0.1, 0.27]
    slow = payload["runs"][1]
    assert slow["model_duty_cycle"] > 0.95 and slow["late_row_fraction"] > 0 and payload["min_rate_ratio"] >= 0.9
    assert png.stat().st_size > 1000 and "late_row_frac" in capsys.readouterr().out


def test_a_chunk_offer_is_its_own_stage_outside_the_per_step_total():
    from spvla_ros.bench.scheduler_bench import stage_figures

    times = np.ones((2, 3, 4))
    times[:, :, 3] = [[0.0, 50.0, 0.0], [0.0, 60.0, 0.0]]  # one chunk offered, at step 1
    f = stage_figures(times, np.array([False, False, False]))
    assert f["overhead_us_p99"] == pytest.approx(3.0)  # decide + extrapolate + commit only
    assert f["chunk_offer_us_p50"] == pytest.approx(55.0) and f["chunk_offer_min_us_p50"] == 50.0
    assert f["overhead_with_chunk_offer_us_p99"] > 50.0
