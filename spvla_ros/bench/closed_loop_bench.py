"""Closed-loop SP-VLA evaluation on Meta-World with scripted experts standing in for the VLA.

Example::

    spvla-bench closed-loop --quick --json closed_loop.json --plot closed_loop.png
    spvla-bench closed-loop --tasks reach-v3 push-v3 --episodes 5 --variants
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace

from spvla_ros.bench.report_io import format_table, machine_info, write_json
from spvla_ros.eval.closed_loop import DEFAULT_CONFIG, load_closed_loop_config, run_closed_loop

HELP = "closed-loop success vs model calls on Meta-World (expert as the VLA): every step, fixed skip, SP-VLA"

TABLE_KEYS = (
    "success_rate",
    "success_ci",
    "model_call_fraction",
    "speedup",
    "mean_episode_length",
    "model_calls_per_episode",
    "longest_open_loop",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="closed-loop YAML (tasks, methods, grid)")
    parser.add_argument("--tasks", nargs="+", default=None, help="evaluation tasks (default: eval_tasks of the YAML)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per evaluation task")
    parser.add_argument("--quick", action="store_true", help="CI-sized subset (the YAML's quick: section)")
    parser.add_argument("--variants", action="store_true", help="also run the YAML's extra SP-VLA variants")
    parser.add_argument("--obs-noise", type=float, default=None, help="observation noise std [m]")
    parser.add_argument("--action-noise", type=float, default=None, help="action noise std [action units]")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--plot", default=None, help="write the success-vs-speedup frontier to this PNG")


def format_methods_table(methods: dict[str, dict]) -> str:
    """The per-method table printed by the benchmark (and used by the report)."""
    rows = []
    for name, s in methods.items():
        lo, hi = s["success_ci"]
        rows.append(
            [
                name,
                f"{100 * s['success_rate']:.1f}%",
                f"[{100 * lo:.1f}, {100 * hi:.1f}]",
                s["model_call_fraction"],
                f"{s['speedup']:.2f}x",
                s["mean_episode_length"],
                s["model_calls_per_episode"],
                s["longest_open_loop"],
            ]
        )
    headers = ["method", "success", "95% CI", "call frac", "speedup", "ep len", "calls/ep", "max open loop"]
    return format_table(headers, rows)


def plot_frontier(payload: dict, path: str) -> None:
    """Success rate (with Wilson interval) vs speedup, one point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.get_cmap("tab20").colors
    markers = "os^Dv<>PX*hp"
    for i, (name, s) in enumerate(payload["methods"].items()):
        lo, hi = s["success_ci"]
        y = 100 * s["success_rate"]
        yerr = [[max(0.0, y - 100 * lo)], [max(0.0, 100 * hi - y)]]
        ax.errorbar(s["speedup"], y, yerr=yerr, fmt=markers[i % len(markers)], color=colors[i % len(colors)],
                    capsize=3, label=name, alpha=0.85)
    ax.set_xlabel("speedup (control steps / model calls)")
    ax.set_ylabel("success rate [%]")
    ax.set_title(f"Meta-World closed loop, {len(payload['eval_tasks'])} tasks x {payload['episodes_per_task']} ep")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    info = payload["machine"]
    fig.text(0.01, 0.01, f"{info['date_utc']} UTC, {info['processor']}, {payload['command']}", fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    config = load_closed_loop_config(args.config, quick=args.quick)
    changes: dict[str, object] = {}
    if args.tasks:
        changes["eval_tasks"] = tuple(args.tasks)
    if args.episodes is not None:
        changes["episodes"] = args.episodes
    harness_changes = {}
    if args.obs_noise is not None:
        harness_changes["obs_noise_std"] = args.obs_noise
    if args.action_noise is not None:
        harness_changes["action_noise_std"] = args.action_noise
    if harness_changes:
        changes["harness"] = replace(config.harness, **harness_changes)
    try:
        config = replace(config, **changes)
    except ValueError as exc:
        print(f"closed-loop: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    payload = run_closed_loop(config, with_variants=args.variants)
    payload["wall_s"] = time.perf_counter() - t0
    payload["machine"] = machine_info()
    payload["command"] = "spvla-bench closed-loop " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    payload["quick"] = bool(args.quick)

    print(
        f"Meta-World closed loop: {len(config.eval_tasks)} eval tasks x {config.episodes} episodes "
        f"(tuned on {len(config.tune_tasks)} other tasks x {config.tune_episodes}); "
        f"speed_range {payload['speed_range']:.3f} action units/step; {payload['wall_s']:.0f} s"
    )
    print(f"tuned SP-VLA overrides on mode {config.tuning.base_mode!r}: {payload['tuning']['best']} "
          f"(qualified: {payload['tuning']['best_qualified']})")
    selection = payload["mode_selection"]
    print(f"\nmode selection on the tuning split ({selection['rule']}):")
    print(format_methods_table(selection["tuning_split"]))
    print(f"winner: {selection['winner']} (qualified: {selection['winner_qualified']}); default mode "
          f"{selection['default_mode']!r} is the winner: {selection['default_is_winner']}, "
          f"equals the tuned settings: {selection['default_equals_tuned']}")
    print("\nevaluation split:")
    print(format_methods_table(payload["methods"]))
    if args.json:
        write_json(args.json, payload)
    if args.plot:
        plot_frontier(payload, args.plot)
    return 0
