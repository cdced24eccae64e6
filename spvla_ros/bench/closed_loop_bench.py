"""Closed loop on Meta-World with a learned chunking policy under inference delay: which schedule keeps success?

Example::

    spvla-bench closed-loop --quick --json closed_loop.json --plot closed_loop.png
    spvla-bench closed-loop --json docs/benchmarks/json/closed-loop-full.json \
        --plot docs/benchmarks/closed-loop-full.png

The policy comes from ``spvla-bench train-policy`` (trained here when its cached weights are missing). Every
method runs on the same tasks, seeds and delays; success carries a 95% Wilson interval, and the chosen SP-VLA
mode is compared with fixed chunk execution episode by episode (exact McNemar test).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace

import torch

from spvla_ros.bench.report_io import format_table, machine_info, write_json
from spvla_ros.eval.bc_training import DEFAULT_CACHE_DIR, load_or_train
from spvla_ros.eval.closed_loop import DEFAULT_CONFIG, EVERY_STEP, load_closed_loop_config, run_closed_loop

HELP = ("closed-loop success vs model calls on Meta-World, learned chunking policy under inference delay: "
        "every step, fixed chunks, ensemble, SP-VLA modes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="closed-loop YAML (tasks, policy, methods)")
    parser.add_argument("--quick", action="store_true", help="CI-sized subset (the YAML's quick: section)")
    parser.add_argument("--tasks", nargs="+", default=None, help="evaluation tasks (default: eval_tasks of the YAML)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per evaluation task")
    parser.add_argument("--delays", type=int, nargs="+", default=None, help="inference delays [steps]")
    parser.add_argument("--obs-noise", type=float, default=None, help="observation noise std [m]")
    parser.add_argument("--action-noise", type=float, default=None, help="action noise std [action units]")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="cached policy weights")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--plot", default=None, help="write the success-vs-call-fraction frontiers to this PNG")


def format_results(rows: list[dict], delay: int) -> str:
    """The per-method table of one delay."""
    out = []
    for r in rows:
        if r["delay_steps"] != delay:
            continue
        lo, hi = r["success_ci95"]
        sts = r["steps_to_success"]
        out.append([r["method"], f"{100 * r['success']:.1f}%", f"[{100 * lo:.1f}, {100 * hi:.1f}]",
                    round(r["model_call_fraction"], 3), f"{r['speedup']:.2f}x", "-" if sts is None else round(sts, 1),
                    round(r["peak_jerk_mps3"]), round(r["wait_fraction"], 3)])
    headers = ["method", "success", "95% CI", "call frac", "speedup", "steps to success", "peak jerk m/s^3", "wait"]
    return format_table(headers, out)


def format_policy_success(by_task: dict, delays: list[int]) -> str:
    """Every-step success of the policy per task and delay (how good "the VLA" is)."""
    rows = [[task, *(f"{100 * by_task[task][d][EVERY_STEP]:.0f}%" for d in delays)] for task in by_task]
    return format_table(["task", *(f"d={d}" for d in delays)], rows)


def plot_frontiers(payload: dict, path: str) -> None:
    """Success (Wilson interval) vs model-call fraction, one panel per delay; fixed chunks joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delays = payload["delays"]
    fig, axes = plt.subplots(1, len(delays), figsize=(4.2 * len(delays), 4.4), sharey=True, squeeze=False)
    names = list(payload["method_specs"])
    colors = plt.get_cmap("tab20").colors
    markers = "os^Dv<>PX*hp"
    for ax, d in zip(axes[0], delays, strict=True):
        rows = {r["method"]: r for r in payload["results"] if r["delay_steps"] == d}
        fixed = sorted((r for n, r in rows.items() if payload["method_specs"][n]["kind"] == "fixed_chunk"),
                       key=lambda r: r["model_call_fraction"])
        ax.plot([r["model_call_fraction"] for r in fixed], [100 * r["success"] for r in fixed], "-", color="0.6",
                lw=1, zorder=1)
        for i, name in enumerate(names):
            r = rows[name]
            lo, hi = r["success_ci95"]
            y = 100 * r["success"]
            ax.errorbar(r["model_call_fraction"], y, yerr=[[max(0.0, y - 100 * lo)], [max(0.0, 100 * hi - y)]],
                        fmt=markers[i % len(markers)], color=colors[i % len(colors)], capsize=2, alpha=0.85,
                        label=name if d == delays[0] else None, zorder=2)
        ax.set_xscale("log")
        ax.set_title(f"delay d = {d} steps")
        ax.set_xlabel("model-call fraction (log)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("success rate [%] (95% Wilson)")
    fig.legend(loc="lower center", ncol=min(6, len(names)), fontsize=7)
    info = payload["machine"]
    fig.suptitle(f"Meta-World closed loop, learned chunking policy: {len(payload['eval_tasks'])} tasks x "
                 f"{payload['episodes_per_task']} episodes; {info['date_utc']} UTC, {info['processor']}", fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_closed_loop_config(args.config, quick=args.quick)
        changes: dict[str, object] = {}
        if args.tasks:
            changes["eval_tasks"] = tuple(args.tasks)
        if args.episodes is not None:
            changes["episodes"] = args.episodes
        if args.delays:
            changes["delays"] = tuple(args.delays)
        harness = {k: v for k, v in (("obs_noise_std", args.obs_noise), ("action_noise_std", args.action_noise))
                   if v is not None}
        if harness:
            changes["harness"] = replace(config.harness, **harness)
        config = replace(config, **changes)
    except ValueError as exc:
        print(f"closed-loop: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    policy, trained = load_or_train(config.policy_tasks, config.policy, args.cache_dir)
    t_policy = time.perf_counter() - t0
    # One thread: the batches are small, and on a loaded machine OpenMP's spinning threads cost 10x (measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(config.policy.threads)
    try:
        payload = run_closed_loop(config, policy)
    finally:
        torch.set_num_threads(threads)
    payload["wall_s"] = time.perf_counter() - t0
    payload["policy_wall_s"] = t_policy
    payload["policy_trained_now"] = trained
    payload["machine"] = machine_info()
    payload["command"] = "spvla-bench closed-loop " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    payload["quick"] = bool(args.quick)

    info = policy.train_info
    print(f"Meta-World closed loop: {len(config.eval_tasks)} eval tasks x {config.episodes} episodes at delays "
          f"{list(config.delays)} (default chosen on {len(config.tune_tasks)} other tasks x {config.tune_episodes}); "
          f"{payload['wall_s']:.0f} s ({'trained' if trained else 'cached'} policy {policy.digest}: "
          f"{t_policy:.0f} s; {info['parameters']} parameters, {info['demonstrations']} demonstrations)")
    print("\nevery-step success of the policy per evaluation task:")
    print(format_policy_success(payload["success_by_task"], list(config.delays)))
    selection = payload["mode_selection"]
    print(f"\nselection on the tuning split ({selection['rule']}):")
    print(format_table(["candidate", "mean success", "mean call frac", "within budget", "keeps success"],
                       [[c["method"], round(c["mean_success"], 3), round(c["mean_call_fraction"], 3),
                         c["within_call_budget"], c["keeps_success"]] for c in selection["candidates"]]))
    print(f"winner: {selection['winner']} (qualified: {selection['winner_qualified']}); default mode "
          f"{selection['default_mode']!r} is the winner: {selection['default_is_winner']}, equals its settings: "
          f"{selection['default_equals_winner']}")
    for d in config.delays:
        print(f"\nevaluation split, delay d = {d}:")
        print(format_results(payload["results"], d))
    print("\npaired comparisons on the evaluation split (same episodes; exact McNemar):")
    print(format_table(["method", "baseline", "matched by", "d", "wins", "losses", "p", "call frac (method, baseline)"],
                       [[p["method"], p["baseline"], p["matched_by"], p["delay_steps"], p["wins"], p["losses"],
                         round(p["p_value"], 4), f"{p['call_fraction'][0]:.3f}, {p['call_fraction'][1]:.3f}"]
                        for p in payload["paired"]]))
    goal = payload["goal"]
    print(f"\ngoal (>= 3x fewer calls, success within {config.selection.success_tolerance:.0%} of every step, "
          f"strictly better than the matched fixed chunk) for {goal['method']} at delays "
          f"{list(config.selection.delays)}: {'MET' if goal['met'] else 'NOT MET'}")
    for d, g in goal["per_delay"].items():
        print(f"  d={d}: call frac {g['model_call_fraction']:.3f} (budget ok: {g['within_call_budget']}), success "
              f"{100 * g['success']:.1f}% vs every step {100 * g['every_step_success']:.1f}% (ok: "
              f"{g['keeps_success']}), vs {g['matched_fixed_chunk']}: {g['paired']['wins']} wins / "
              f"{g['paired']['losses']} losses, p = {g['paired']['p_value']:.3f} (nearest call fraction: "
              f"{g['nearest_fixed_chunk']}, {g['paired_nearest']['wins']} / {g['paired_nearest']['losses']}, p = "
              f"{g['paired_nearest']['p_value']:.3f})")
    if args.json:
        write_json(args.json, payload)
    if args.plot:
        plot_frontiers(payload, args.plot)
    return 0
