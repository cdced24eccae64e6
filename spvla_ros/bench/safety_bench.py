"""``spvla-bench safety``: adversarial command streams against franka-sim, with and without the safety layer.

Starts franka-sim on 127.0.0.1 (``--enforce-motion-limits --enforce-comm-constraints``), homes the arm to
the ready pose, then sends every stream of :mod:`spvla_ros.bench.safety_streams` once through our
pylibfranka backend with the safety layer and once through a naive relay without it. Example::

    spvla-bench safety --json bench-safety.json

JSON keys: ``streams``, ``commands_sent``, ``reflexes`` (with the layer; must be 0),
``unfiltered_reflexes`` (same streams without the layer; must be > 0), ``max_lin_acc`` (m/s^2),
``max_lin_jerk`` (m/s^3), ``stop_time_s`` (last input of a killed upstream to output at rest, in robot
time: 1 ms per control cycle; the layer runs on the robot's clock here), ``stop_time_wall_s`` (the same on
the host's wall clock: it stretches with the host's load),
``filter_us_p99`` (safety layer per 1 kHz cycle), plus ``per_stream``, ``config`` and ``machine``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from spvla_ros.bench.report_io import format_table, machine_info, write_json
from spvla_ros.bench.safety_streams import (
    STREAMS,
    bench_safety_config,
    run_filtered,
    run_unfiltered,
    stream_kinematics,
)
from spvla_ros.core.safety import SafetyLayer
from spvla_ros.robot.sim_process import FrankaSimProcess, sim_unavailable_reason
from spvla_ros.robot.sim_server_localhost import LOOPBACK_HOST

HELP = "Adversarial twist streams into franka-sim through the safety layer (and without it, to prove failure)."
EXIT_UNAVAILABLE = 2
EXIT_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("--streams", nargs="*", default=None, choices=[s.name for s in STREAMS],
                        help="run only these streams (default: all)")
    parser.add_argument("--sim-log", type=Path, default=Path("build/franka-sim-bench.log"),
                        help="franka-sim's output goes here")


def run(args: argparse.Namespace) -> int:
    reason = sim_unavailable_reason()
    if reason:
        print(f"spvla-bench safety: cannot run: {reason}")
        return EXIT_UNAVAILABLE
    streams = [s for s in STREAMS if args.streams is None or s.name in args.streams]
    with FrankaSimProcess(args.sim_log):
        report = run_streams(streams)
    rows = [
        [p["stream"], p["reflex"], round(p["max_lin_acc"], 3), round(p["max_lin_jerk"], 1),
         p["unfiltered_reflex"], p["unfiltered_abort"][:70]]
        for p in report["per_stream"]
    ]
    print(format_table(["stream", "reflex", "max_lin_acc", "max_lin_jerk", "unfilt_reflex", "unfiltered abort"],
                       rows))
    print(f"\nreflexes {report['reflexes']} (with layer), unfiltered_reflexes {report['unfiltered_reflexes']}, "
          f"commands_sent {report['commands_sent']}, max_lin_acc {report['max_lin_acc']:.3f} m/s^2, "
          f"max_lin_jerk {report['max_lin_jerk']:.1f} m/s^3, stop_time_s {report['stop_time_s']:.3f} (robot time; "
          f"wall {report['stop_time_wall_s']:.3f}), "
          f"filter_us_p99 {report['filter_us_p99']:.1f}")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    ok = report["reflexes"] == 0 and report["unfiltered_reflexes"] > 0
    return 0 if ok else EXIT_FAILED


def run_streams(streams: list, robot_ip: str = LOOPBACK_HOST) -> dict:
    """Run ``streams`` against the robot at ``robot_ip`` (franka-sim must be running); returns the report."""
    from spvla_ros.robot.franka_libfranka import LibfrankaVelocityBackend

    config = bench_safety_config()
    backend = LibfrankaVelocityBackend(SafetyLayer(config), robot_ip, use_robot_time=True)
    per_stream, filter_s, all_commands = [], [], []
    stop_times, stop_times_wall = [], []
    for stream in streams:
        backend.home()
        filtered = run_filtered(backend, stream)
        if filtered.aborted:
            backend.recover()
        backend.home()
        unfiltered = run_unfiltered(backend.robot, stream)
        if unfiltered.aborted:
            backend.recover()
        kin = stream_kinematics(filtered.commands)
        filter_s += filtered.filter_s
        all_commands.append(filtered.commands)
        if math.isfinite(filtered.stop_time_s):
            stop_times.append(filtered.stop_time_s)
            stop_times_wall.append(filtered.stop_time_wall_s)
        per_stream.append({
            "stream": stream.name,
            "commands_sent": len(filtered.commands),
            "reflex": filtered.reflex,
            "abort_message": filtered.abort_message,
            **kin,
            "stop_time_s": filtered.stop_time_s,
            "stop_time_wall_s": filtered.stop_time_wall_s,
            "interventions": {k: v for k, v in filtered.counters.items() if v},
            "unfiltered_commands_sent": len(unfiltered.commands),
            "unfiltered_reflex": unfiltered.reflex,
            "unfiltered_abort": unfiltered.abort_message,
        })
        # Counters are cumulative over the layer's life; keep each stream's own numbers.
        backend.layer = SafetyLayer(config)
    backend.home()
    peak = {key: max(p[key] for p in per_stream) for key in ("max_lin_acc", "max_lin_jerk", "max_ang_acc",
                                                             "max_ang_jerk", "max_lin_vel", "max_ang_vel")}
    return {
        "streams": [s.name for s in streams],
        "commands_sent": int(sum(len(c) for c in all_commands)),
        "reflexes": int(sum(p["reflex"] for p in per_stream)),
        "unfiltered_reflexes": int(sum(p["unfiltered_reflex"] for p in per_stream)),
        "max_lin_acc": peak["max_lin_acc"],
        "max_lin_jerk": peak["max_lin_jerk"],
        "max_ang_acc": peak["max_ang_acc"],
        "max_ang_jerk": peak["max_ang_jerk"],
        "max_lin_vel": peak["max_lin_vel"],
        "max_ang_vel": peak["max_ang_vel"],
        "stop_time_s": max(stop_times) if stop_times else math.nan,
        "stop_time_wall_s": max(stop_times_wall) if stop_times_wall else math.nan,
        "filter_us_p99": float(np.percentile(np.array(filter_s) * 1e6, 99)) if filter_s else math.nan,
        "per_stream": per_stream,
        "config": dataclasses.asdict(config),
        "machine": machine_info(),
        "sim": "franka-sim 1.1.7 (mujoco), --enforce-motion-limits --enforce-comm-constraints, 127.0.0.1",
        "wall_time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
