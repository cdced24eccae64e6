"""``spvla-bench graph``: the running node graph, measured from outside (one process per node, as deployed).

Starts policy, scheduler and safety (dry run) as separate processes with ``config/spvla.yaml`` +
``config/demo.yaml``, replays camera frames in real time (frames restamped at publish), and measures
over ``--duration`` seconds after the first action chunk:

* ``command_rate_hz`` and ``command_jitter_ms_p99``: |interval - 1/command_rate| between received
  TwistStamped commands (receive wall time), 99th percentile;
* ``image_to_command_ms_p50`` / ``_p99``: receive time of the first command step that uses a fresh model
  chunk minus the stamp of the camera image the chunk was predicted from (same host clock);
* ``scheduler_cpu_percent``: CPU time of the scheduler node process / wall time (100 = one core);
  also ``policy_cpu_percent``.

Example::

    spvla-bench graph --duration 10 --json out/graph.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from spvla_ros.bench.report_io import format_table, machine_info, write_json

HELP = "node graph: command-rate jitter, image-to-command latency, scheduler-node CPU"
NS = 1_000_000_000
START_TIMEOUT_S = 90.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=10.0, help="measurement window after the first chunk [s]")
    parser.add_argument("--images", default=None, help="folder of camera frames (default: generated frames)")
    parser.add_argument("--preset", default="tiny", help="CogACT preset (default: tiny)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from spvla.msg import ActionChunk, SchedulerStatus

    from spvla_ros.bag.make_bag import Recording, frames_from_folder, generated_frames, write_bag
    from spvla_ros.nodes import bringup, qos, topics

    share = bringup.share_dir()
    values = {a.name: a.default for a in bringup.LAUNCH_ARGUMENTS}
    values.update(preset=args.preset, device=args.device, extra_params_file="config/demo.yaml")
    for name in ("params_file", "safety_params_file", "extra_params_file"):
        values[name] = str(share / values[name])
    tmp = Path(tempfile.mkdtemp(prefix="spvla_graph_bench_"))
    frames = frames_from_folder(args.images, (320, 240)) if args.images else generated_frames(40)
    write_bag(tmp / "frames", Recording(frames, 5.0))
    overrides = tmp / "overrides.yaml"
    overrides.write_text(yaml.safe_dump(bringup.overrides_yaml(values)))
    env = bringup.child_env(share)
    os.environ.setdefault(bringup.FASTDDS_ENV, env[bringup.FASTDDS_ENV])
    procs = {spec.executable: subprocess.Popen(
        [sys.executable, "-m", spec.module, *bringup.ros_args(spec, values, str(overrides))], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True) for spec in bringup.NODES}
    loops = int(np.ceil((args.duration + START_TIMEOUT_S) / (len(frames) / 5.0)))
    player = subprocess.Popen([sys.executable, "-m", "spvla_ros.bag.cli", "play", str(tmp / "frames"),
                               "--loops", str(loops), "--wait-s", str(START_TIMEOUT_S)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    rclpy.init()
    node = rclpy.create_node("spvla_graph_bench")
    cmd_times: list[int] = []
    latencies_ms: list[float] = []
    chunks = [0]
    measuring = [False]

    def on_cmd(_msg) -> None:
        if measuring[0]:
            cmd_times.append(time.monotonic_ns())

    def on_status(msg) -> None:
        img = msg.source_image_stamp.sec * NS + msg.source_image_stamp.nanosec
        if measuring[0] and msg.decision == "model" and msg.reason != "late_model_chunk" and img > 0:
            latencies_ms.append((time.time_ns() - img) / 1e6)

    def on_chunk(_msg) -> None:
        chunks[0] += 1

    node.create_subscription(TwistStamped, topics.CMD_TWIST, on_cmd, qos.COMMAND_QOS)
    node.create_subscription(SchedulerStatus, topics.SCHEDULER_STATUS, on_status, qos.STATUS_QOS)
    node.create_subscription(ActionChunk, topics.ACTION_CHUNK, on_chunk, qos.CHUNK_QOS)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while chunks[0] == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        if chunks[0] == 0:
            print("spvla-bench graph: no action chunk within the start-up bound", file=sys.stderr)
            return 1
        cpu0 = {name: _cpu_s(p.pid) for name, p in procs.items()}
        t0 = time.monotonic()
        measuring[0] = True
        while time.monotonic() - t0 < args.duration:
            rclpy.spin_once(node, timeout_sec=0.01)
        wall = time.monotonic() - t0
        cpu = {name: 100.0 * (_cpu_s(p.pid) - cpu0[name]) / wall for name, p in procs.items()}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        bringup._terminate([player, *procs.values()])

    params = yaml.safe_load((share / "config" / "spvla.yaml").read_text())["spvla_scheduler"]["ros__parameters"]
    period_ms = 1000.0 / params["command_rate_hz"]
    intervals_ms = np.diff(np.array(cmd_times)) / 1e6
    jitter = np.abs(intervals_ms - period_ms).tolist()
    figures = {
        "command_rate_hz": (len(cmd_times) - 1) / ((cmd_times[-1] - cmd_times[0]) / NS) if len(cmd_times) > 1
        else float("nan"),
        "command_jitter_ms_p50": _pct(jitter, 50),
        "command_jitter_ms_p99": _pct(jitter, 99),
        "image_to_command_ms_p50": _pct(latencies_ms, 50),
        "image_to_command_ms_p99": _pct(latencies_ms, 99),
        "fresh_model_steps": len(latencies_ms),
        "scheduler_cpu_percent": cpu["scheduler_node"],
        "policy_cpu_percent": cpu["policy_node"],
        "safety_cpu_percent": cpu["safety_node"],
        "duration_s": wall,
    }
    print(format_table(["figure", "value"], [[k, v] for k, v in figures.items()]))
    if args.json:
        write_json(args.json, {"figures": figures, "config": {"preset": args.preset, "device": args.device,
                                                              "command_rate_hz": params["command_rate_hz"],
                                                              "images": args.images or "generated"},
                               "machine": machine_info(),
                               "command": "spvla-bench graph " + " ".join(sys.argv[2:])})
    return 0
