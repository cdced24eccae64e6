"""Replay recorded actions through the SP-VLA scheduler with an oracle standing in for the VLA.

At each step the scheduler decides. A model call returns the recorded action (the oracle); an
extrapolated step is compared with the recorded action. Ridge, repeat-last and linear predictions are all
made from the very same buffer on the very same steps (the schedule is the configured one), so their
errors compare like for like. ``extrap_rmse_xyz`` is sqrt(mean ||pred_xyz - recorded_xyz||^2) over the
extrapolated steps, in the data's units (metres per step for BridgeData).

The speed range is derived from the data: the 95th percentile of ``||a_xyz||`` over moving steps
(:func:`speed_range_from_actions`), so ``v_min``/``v_max`` = 1/4 and 3/4 of it mean the same on any robot.

Cost per step (:func:`time_stages`): ``decide()``, ``extrapolate()`` (on the steps it runs) and ``commit()``,
timed separately with ``perf_counter_ns`` over ``--timing-repeats`` replays in the scheduling mode the node
runs by default (``config/scheduler_modes.yaml``; its share of extrapolated steps is reported: the issue's
target asks for >= 30 %). With ``extrapolator: chunk`` a model step also hands the scheduler its chunk
(``offer_chunk``): that happens once per chunk arrival (in the node, in the chunk callback, not in the
per-step path), so it is timed and reported as its own stage ``chunk_offer``, and the per-step total is given
without and with it. Two figures per stage: the raw samples (what a loaded machine gives, preemption by
other processes included) and, per step, the minimum over the repeats of that very same step (the
deterministic replay repeats it exactly: the step's own cost, without the other processes).

The tau x v_min x v_max sweep (and the frontier plot) run with ``--sweep`` only: they take a minute on a
few thousand steps; the headline figures come in seconds.

Example::

    spvla-bench scheduler --data ../shared/data/bridge_debug_25ep.npz --json out.json
    spvla-bench scheduler --data ../shared/data/bridge_debug_25ep.npz --sweep --plot frontier.png
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass

import numpy as np

from spvla_ros.bench.report_io import format_table, machine_info, write_json
from spvla_ros.core.action_data import load_action_episodes, synthetic_episodes
from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.extrapolation import HISTORY_EXTRAPOLATOR_NAMES, make_extrapolator
from spvla_ros.core.scheduler import ActionScheduler
from spvla_ros.core.scheduler_config import TRANSLATION, SchedulerConfig, speed_range_from_actions
from spvla_ros.core.scheduler_modes import load_scheduler_modes

HELP = "replay recorded actions through the scheduler (oracle model) and report speedup and error"
SPEED_PERCENTILE = 95.0
STATELESS_BASELINES = tuple(n for n in HISTORY_EXTRAPOLATOR_NAMES if n != "best_of")
"""Compared on the very same buffers; ``best_of`` learns online, so it is measured only when configured."""
FIXED_SKIP_KS = (2, 3)
ORACLE_CHUNK_ROWS = 16
"""Rows of the oracle chunk offered to a ``chunk`` cheap path in the timing replay (CogACT's chunk length)."""
BOOTSTRAP_RESAMPLES = 2000
SWEEP_TAU = (0.0, 1 / 6, 1 / 3, 0.5, 2 / 3)
SWEEP_V_MIN_FRACTION = (0.0, 0.05, 0.1, 0.25)
SWEEP_V_MAX_FRACTION = (0.75, 1.0, 2.0)
STAGES = ("decide", "extrapolate", "commit")
"""The per-step path; its sum is the ``overhead_us_*`` figure."""
OFFER_STAGE = "chunk_offer"
"""Handing a new chunk to ``extrapolator: chunk`` (once per model call), timed apart from the per-step path."""


@dataclass
class ReplayResult:
    """Figures of one replay of all episodes under one config."""

    steps: int
    model_calls: int
    extrapolated_steps: int
    model_call_fraction: float
    speedup: float
    rmse_xyz: dict[str, float]  # extrapolator name -> RMSE on the extrapolated steps (configured + baselines)
    sq_error_by_episode: dict[str, np.ndarray]  # name -> (episodes,) sum of ||error||^2 over extrapolated steps
    extrapolated_by_episode: np.ndarray  # (episodes,) extrapolated steps per episode


def replay(episodes: list[np.ndarray], config: SchedulerConfig) -> tuple[ReplayResult, np.ndarray]:
    """Replay ``episodes`` under ``config``; returns figures and per-step overhead in microseconds.

    The overhead is the in-process time of decide + extrapolate + commit per step (the oracle call is not
    counted: it stands in for the model).
    """
    sched = ActionScheduler(config)
    baselines = {
        name: make_extrapolator(name, config.buffer_size, config.ridge_lambda, config.trend_damping)
        for name in STATELESS_BASELINES
        if name != config.extrapolator
    }
    measured = (config.extrapolator, *baselines)
    # errors[name][episode] = list of (3,) errors on that episode's extrapolated steps
    errors: dict[str, list[list[np.ndarray]]] = {name: [] for name in measured}
    overhead_ns = []
    steps = model_calls = 0
    for episode in episodes:
        sched.reset()
        for name in measured:
            errors[name].append([])
        for recorded in episode:
            t0 = time.perf_counter_ns()
            decision = sched.decide()
            action = sched.extrapolate() if decision.extrapolate else None
            t1 = time.perf_counter_ns()
            if action is not None:  # baselines on the very same buffer, outside the timed section
                errors[config.extrapolator][-1].append(action[TRANSLATION] - recorded[TRANSLATION])
                for name, extrapolator in baselines.items():
                    pred = sched.extrapolate(extrapolator)
                    errors[name][-1].append(pred[TRANSLATION] - recorded[TRANSLATION])
            t2 = time.perf_counter_ns()
            if action is None:
                sched.commit(recorded, from_model=True)
                model_calls += 1
            else:
                sched.commit(action, from_model=False)
            overhead_ns.append((t1 - t0) + (time.perf_counter_ns() - t2))
            steps += 1
    extrapolated = steps - model_calls
    sq_by_episode = {
        name: np.array([float(np.sum(np.square(e))) if e else 0.0 for e in per_episode])
        for name, per_episode in errors.items()
    }
    counts = np.array([len(e) for e in errors[config.extrapolator]], dtype=int)
    rmse = {
        name: float(np.sqrt(sq.sum() / counts.sum())) if counts.sum() else float("nan")
        for name, sq in sq_by_episode.items()
    }
    result = ReplayResult(
        steps=steps,
        model_calls=model_calls,
        extrapolated_steps=extrapolated,
        model_call_fraction=model_calls / steps if steps else float("nan"),
        speedup=steps / model_calls if model_calls else float("inf"),
        rmse_xyz=rmse,
        sq_error_by_episode=sq_by_episode,
        extrapolated_by_episode=counts,
    )
    return result, np.asarray(overhead_ns, dtype=np.float64) / 1e3


def time_stages(episodes: list[np.ndarray], config: SchedulerConfig, repeats: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-stage cost of every step, replayed ``repeats`` times (oracle = the recorded action).

    With ``extrapolator: chunk`` every model step also offers the recorded next ``ORACLE_CHUNK_ROWS`` actions as
    the chunk (an oracle plan: right for the cost, meaningless for the error), timed as its own stage.

    Returns:
        ``(times_us, extrapolated)``: (repeats, steps, 4) microseconds of decide, extrapolate, commit and the
        chunk offer (extrapolate is 0 on model steps, the offer 0 where none was made), and the (steps,) mask
        of extrapolated steps.
    """
    sched = ActionScheduler(config)
    clock = time.perf_counter_ns
    steps = sum(len(e) for e in episodes)
    times = np.zeros((repeats, steps, 4), dtype=np.int64)
    extrapolated = np.zeros(steps, dtype=bool)
    chunked = config.extrapolator == "chunk"
    for r in range(repeats):
        i = 0
        for episode in episodes:
            sched.reset()
            for j, recorded in enumerate(episode):
                t0 = clock()
                decision = sched.decide()
                t1 = clock()
                action = sched.extrapolate() if decision.extrapolate else None
                t2 = clock()
                sched.commit(recorded if action is None else action, from_model=action is None)
                t3 = clock()
                offer = action is None and chunked and j + 1 < len(episode)
                if offer:
                    sched.offer_chunk(episode[j + 1 : j + 1 + ORACLE_CHUNK_ROWS])
                t4 = clock()
                times[r, i] = (t1 - t0, t2 - t1 if decision.extrapolate else 0, t3 - t2, t4 - t3 if offer else 0)
                extrapolated[i] = action is not None
                i += 1
    return times / 1e3, extrapolated


def stage_figures(times_us: np.ndarray, extrapolated: np.ndarray) -> dict[str, object]:
    """Percentiles per stage and of the per-step total, raw and min-over-repeats (see the module docstring)."""
    every = np.ones_like(extrapolated)
    offered = times_us[0, :, 3] > 0 if times_us.shape[2] > 3 else np.zeros_like(extrapolated)
    ran = {"decide": every, "extrapolate": times_us[0, :, 1] > 0, "commit": every, OFFER_STAGE: offered}
    path = len(STAGES)
    total, total_all = times_us[:, :, :path].sum(axis=2), times_us.sum(axis=2)
    best = times_us.min(axis=0)
    out: dict[str, object] = {
        "overhead_us_p50": float(np.percentile(total, 50)),
        "overhead_us_p99": float(np.percentile(total, 99)),
        "overhead_min_us_p50": float(np.percentile(best[:, :path].sum(axis=1), 50)),
        "overhead_min_us_p99": float(np.percentile(best[:, :path].sum(axis=1), 99)),
        "overhead_with_chunk_offer_us_p50": float(np.percentile(total_all, 50)),
        "overhead_with_chunk_offer_us_p99": float(np.percentile(total_all, 99)),
    }
    for k, stage in enumerate((*STAGES, OFFER_STAGE)[: times_us.shape[2]]):
        mask = ran[stage]
        raw, mins = times_us[:, mask, k], best[mask, k]
        for key, values in ((f"{stage}_us", raw), (f"{stage}_min_us", mins)):
            out[f"{key}_p50"] = float(np.percentile(values, 50)) if values.size else float("nan")
            out[f"{key}_p99"] = float(np.percentile(values, 99)) if values.size else float("nan")
    out["timing_steps"] = int(extrapolated.size)
    out["timing_extrapolated_fraction"] = float(extrapolated.mean()) if extrapolated.size else float("nan")
    return out


def replay_fixed_skip(episodes: list[np.ndarray], k: int) -> dict[str, object]:
    """Fixed skipping on recorded actions: the model (oracle) at steps 0, k, 2k, ... of every episode, its
    action repeated in between. Returns the figures of a ``modes`` row (its cheap path *is* repeat-last)."""
    sq = np.zeros(len(episodes))
    counts = np.zeros(len(episodes), dtype=int)
    steps = calls = 0
    for i, episode in enumerate(episodes):
        xyz = np.asarray(episode, dtype=np.float64)[:, TRANSLATION]
        held = xyz[(np.arange(len(xyz)) // k) * k]
        cheap = np.arange(len(xyz)) % k != 0
        sq[i] = float(np.sum(np.square(held[cheap] - xyz[cheap])))
        counts[i] = int(cheap.sum())
        steps += len(xyz)
        calls += len(xyz) - int(cheap.sum())
    return _mode_row("fixed_skip", steps, calls, "repeat_last", sq, sq, counts)


def _mode_row(kind: str, steps: int, calls: int, extrapolator: str, sq: np.ndarray, sq_repeat: np.ndarray,
              counts: np.ndarray) -> dict[str, object]:
    """One row of the ``modes`` table: speedup, RMSE of the cheap path and of repeat-last on the same steps,
    their ratio with a 95% bootstrap interval over episodes (``BOOTSTRAP_RESAMPLES``, fixed seed)."""
    n = int(counts.sum())
    rmse = float(np.sqrt(sq.sum() / n)) if n else float("nan")
    rmse_rep = float(np.sqrt(sq_repeat.sum() / n)) if n else float("nan")
    ratio = rmse / rmse_rep if n and rmse_rep > 0 else float("nan")
    ci = [float("nan"), float("nan")]
    if n and rmse_rep > 0:
        rng = np.random.default_rng(0)
        idx = rng.integers(0, len(sq), size=(BOOTSTRAP_RESAMPLES, len(sq)))
        num, den = sq[idx].sum(axis=1), sq_repeat[idx].sum(axis=1)
        ok = den > 0
        ratios = np.sqrt(num[ok] / den[ok])
        ci = [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]
    return {
        "kind": kind,
        "extrapolator": extrapolator,
        "model_call_fraction": calls / steps,
        "speedup": steps / calls,
        "extrapolated_steps": n,
        "extrap_rmse_xyz": rmse,
        "repeat_last_rmse_xyz": rmse_rep,
        "rmse_ratio_vs_repeat_last": ratio,
        "rmse_ratio_ci95": ci,
    }


def mode_rows(episodes: list[np.ndarray], speed_range: float) -> dict[str, dict[str, object]]:
    """Every scheduling mode of ``config/scheduler_modes.yaml`` and fixed skip k=2, 3, side by side.

    Modes with ``extrapolator: chunk`` are left out: a recorded replay has no model chunk (the recording as the
    chunk would be an oracle plan); ``spvla-bench closed-loop`` measures them with a learned policy.
    """
    modes = load_scheduler_modes()
    rows: dict[str, dict[str, object]] = {}
    for k in FIXED_SKIP_KS:
        rows[f"fixed_skip_k{k}"] = replay_fixed_skip(episodes, k)
    for name in modes.names:
        cfg = modes.config(name, speed_range=speed_range)
        if cfg.extrapolator == "chunk":
            continue
        r, _ = replay(episodes, cfg)
        rows[name] = _mode_row(
            "mode", r.steps, r.model_calls, cfg.extrapolator, r.sq_error_by_episode[cfg.extrapolator],
            r.sq_error_by_episode["repeat_last"], r.extrapolated_by_episode,
        )
        rows[name]["default"] = name == modes.default
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default="synthetic",
        help="npz with 'actions' (N,7) and 'episode' (N,), or 'synthetic' for generated trajectories",
    )
    parser.add_argument("--config", default=str(CONFIG_DIR / "scheduler.yaml"), help="scheduler YAML defaults")
    parser.add_argument("--speed-range", type=float, default=None, help="override the data-derived speed range")
    parser.add_argument("--timing-repeats", type=int, default=20, help="replays used for the overhead figures")
    parser.add_argument("--timing-mode", default=None,
                        help="scheduling mode timed per stage (default: the node's default mode)")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=False,
                        help="also run the tau x v_min x v_max sweep (a minute on a few thousand steps); "
                             "--no-sweep (the default) gives the headline figures in seconds")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--plot", default=None,
                        help="write the per-stage cost (and, with --sweep, the speedup/error frontier) to this PNG")


def run(args: argparse.Namespace) -> int:
    if args.data == "synthetic":
        episodes = synthetic_episodes()
        source = "synthetic (spvla_ros.core.action_data.synthetic_episodes, seed 0)"
    else:
        episodes = load_action_episodes(args.data)
        source = str(args.data)
    all_actions = np.concatenate(episodes)
    speed_range = args.speed_range or speed_range_from_actions(all_actions, SPEED_PERCENTILE)
    base = dataclass_from_yaml(SchedulerConfig, args.config).with_changes(speed_range=speed_range)

    result, _ = replay(episodes, base)
    modes = load_scheduler_modes()
    timing_mode = args.timing_mode or modes.default
    timing_cfg = modes.config(timing_mode, speed_range=speed_range)
    times_us, extrapolated = time_stages(episodes, timing_cfg, max(1, args.timing_repeats))
    timing = stage_figures(times_us, extrapolated)

    sweep = []
    for tau in SWEEP_TAU if args.sweep else ():
        for fmin in SWEEP_V_MIN_FRACTION:
            for fmax in SWEEP_V_MAX_FRACTION:
                cfg = base.with_changes(tau=tau, v_min=fmin * speed_range, v_max=fmax * speed_range)
                r, _ = replay(episodes, cfg)
                sweep.append(
                    {
                        "tau": tau,
                        "v_min": cfg.v_min_resolved,
                        "v_max": cfg.v_max_resolved,
                        "v_min_fraction": fmin,
                        "v_max_fraction": fmax,
                        "model_call_fraction": r.model_call_fraction,
                        "speedup": r.speedup,
                        "extrap_rmse_xyz": r.rmse_xyz[base.extrapolator],
                        "repeat_last_rmse_xyz": r.rmse_xyz["repeat_last"],
                        "linear_rmse_xyz": r.rmse_xyz["linear"],
                    }
                )

    payload = {
        "data": source,
        "episodes": len(episodes),
        "steps": result.steps,
        "speed_range": speed_range,
        "speed_range_rule": f"p{SPEED_PERCENTILE:g} of ||a_xyz|| over steps with non-zero translation",
        "config": asdict(base),
        "model_calls": result.model_calls,
        "extrapolated_steps": result.extrapolated_steps,
        "model_call_fraction": result.model_call_fraction,
        "speedup": result.speedup,
        "extrap_rmse_xyz": result.rmse_xyz[base.extrapolator],
        "repeat_last_rmse_xyz": result.rmse_xyz["repeat_last"],
        "linear_rmse_xyz": result.rmse_xyz["linear"],
        "ridge_beats_repeat_last": bool(result.rmse_xyz["ridge"] < result.rmse_xyz["repeat_last"]),
        **timing,
        "timing_mode": timing_mode,
        "timing_repeats": max(1, args.timing_repeats),
        "sweep": sweep,
        "modes": mode_rows(episodes, speed_range),
        "machine": machine_info(),
    }
    _print_report(payload, base)
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    if args.plot:
        _plot(sweep, times_us, extrapolated, payload, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _print_report(p: dict, config: SchedulerConfig) -> None:
    print(f"data: {p['data']}  ({p['episodes']} episodes, {p['steps']} steps)")
    print(
        f"speed range: {p['speed_range']:.4g} ({p['speed_range_rule']}); "
        f"v_min={config.v_min_resolved:.4g} v_max={config.v_max_resolved:.4g} tau={config.tau} "
        f"n={config.buffer_size} extrapolator={config.extrapolator}"
    )
    print(
        format_table(
            ["model_call_fraction", "speedup", "extrapolated", "ridge_rmse", "repeat_last_rmse", "linear_rmse"],
            [[p["model_call_fraction"], p["speedup"], p["extrapolated_steps"], p["extrap_rmse_xyz"],
              p["repeat_last_rmse_xyz"], p["linear_rmse_xyz"]]],
        )
    )

    if p["extrapolated_steps"]:
        verdict = "beats" if p["ridge_beats_repeat_last"] else "does NOT beat"
        ratio = p["repeat_last_rmse_xyz"] / p["extrap_rmse_xyz"] if p["extrap_rmse_xyz"] else float("nan")
        print(f"at the default schedule ridge {verdict} repeat-last (repeat-last RMSE / ridge RMSE = {ratio:.3f})")
    else:
        print("at the default schedule no step was extrapolated, so ridge and repeat-last cannot be compared")
    print(f"\ncost per step in mode {p['timing_mode']!r} ({p['timing_steps']} steps x {p['timing_repeats']} replays, "
          f"{100 * p['timing_extrapolated_fraction']:.0f} % extrapolated), microseconds; raw = every sample on "
          "this machine as loaded, min = per step the fastest of its repeats:")
    rows = [[stage, p[f"{stage}_us_p50"], p[f"{stage}_us_p99"], p[f"{stage}_min_us_p50"], p[f"{stage}_min_us_p99"]]
            for stage in (*STAGES, OFFER_STAGE)]
    rows.append(["total (decide+extrapolate+commit)", p["overhead_us_p50"], p["overhead_us_p99"],
                 p["overhead_min_us_p50"], p["overhead_min_us_p99"]])
    rows.append(["total with chunk_offer (raw)", p["overhead_with_chunk_offer_us_p50"],
                 p["overhead_with_chunk_offer_us_p99"], "", ""])
    print(format_table(["stage", "raw_p50", "raw_p99", "min_p50", "min_p99"], rows))
    print("\nscheduling modes and fixed skipping on the same episodes (ratio < 1: the cheap path beats repeat-last"
          " on its own steps; 95% bootstrap interval over episodes):")
    print(
        format_table(
            ["mode", "extrapolator", "speedup", "extrapolated", "extrap_rmse", "repeat_last_rmse", "ratio",
             "ratio_ci95"],
            [[name + (" (default)" if r.get("default") else ""), r["extrapolator"], r["speedup"],
              r["extrapolated_steps"], r["extrap_rmse_xyz"], r["repeat_last_rmse_xyz"],
              r["rmse_ratio_vs_repeat_last"], "[{:.3f}, {:.3f}]".format(*r["rmse_ratio_ci95"])]
             for name, r in p["modes"].items()],
        )
    )
    if not p["sweep"]:
        print("\n(sweep of tau x v_min x v_max not run: --sweep)")
        return
    print("\nsweep (tau x v_min x v_max), sorted by speedup:")
    rows = sorted(p["sweep"], key=lambda r: -r["speedup"])
    print(
        format_table(
            ["tau", "v_min", "v_max", "speedup", "model_call_fraction", "ridge_rmse", "repeat_last_rmse",
             "linear_rmse"],
            [[r["tau"], r["v_min"], r["v_max"], r["speedup"], r["model_call_fraction"], r["extrap_rmse_xyz"],
              r["repeat_last_rmse_xyz"], r["linear_rmse_xyz"]] for r in rows],
        )
    )


def _plot(sweep: list[dict], times_us: np.ndarray, extrapolated: np.ndarray, payload: dict, path: str) -> None:
    """Per-stage cost distributions, and the speedup/error frontier when the sweep ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if sweep else 1, figsize=(11.0 if sweep else 6.4, 4.4), squeeze=False)
    ax = axes[0, 0]
    ran = {"decide": slice(None), "extrapolate": times_us[0, :, 1] > 0, "commit": slice(None),
           OFFER_STAGE: times_us[0, :, 3] > 0}
    for k, stage in enumerate((*STAGES, OFFER_STAGE)):
        values = np.sort(times_us[:, ran[stage], k].ravel())
        if values.size:
            ax.plot(values, np.linspace(0, 1, values.size), label=stage)
    total = np.sort(times_us[:, :, : len(STAGES)].sum(axis=2).ravel())
    ax.plot(total, np.linspace(0, 1, total.size), "k", label="decide + extrapolate + commit")
    ax.axvline(20.0, color="r", ls=":", label="target p99 20 us")
    ax.set_xscale("log")
    ax.set_xlabel("microseconds per step (raw samples)")
    ax.set_ylabel("fraction of steps")
    ax.set_title(f"scheduler cost, mode {payload['timing_mode']} "
                 f"({100 * payload['timing_extrapolated_fraction']:.0f} % extrapolated)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if sweep:
        _plot_frontier(axes[0, 1], sweep, payload)
    m = payload["machine"]
    fig.text(0.01, 0.01, f"{payload['data']} | {m['date_utc']} UTC | {m['cpu_count']} CPUs | spvla-bench scheduler",
             fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_frontier(ax, sweep: list[dict], payload: dict) -> None:
    for key, label, marker in (
        ("extrap_rmse_xyz", payload["config"]["extrapolator"], "o"),
        ("repeat_last_rmse_xyz", "repeat_last", "s"),
        ("linear_rmse_xyz", "linear", "^"),
    ):
        pts = [(r["speedup"], r[key]) for r in sweep if np.isfinite(r[key])]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.scatter(xs, ys, label=label, marker=marker, alpha=0.7)
    ax.set_xlabel("speedup (steps / model calls)")
    ax.set_ylabel("RMSE of extrapolated xyz [data units/step]")
    ax.set_title("SP-VLA scheduler sweep: tau x v_min x v_max", fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
