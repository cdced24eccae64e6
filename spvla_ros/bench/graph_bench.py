"""``spvla-bench graph``: the running node graph, measured from outside, started the way a user starts it.

Starts the graph with ``spvla-bringup`` (one process per node), or with ``--launch`` through
``ros2 launch spvla bringup.launch.py`` (needs the ROS 2 launch tools and the ament layout in the
prefix: ``make setup`` with ``../shared/ros2``, or a ROS install), both with ``config/demo.yaml`` and a
camera replay (frames restamped at publish). Measures:

* ``nodes_up_s``: start to every node (policy, scheduler, safety, gripper) visible in the ROS graph;
  ``policy_ready_s``: to the policy's latched ready status; ``first_chunk_s``: to the first action chunk;
* over ``--duration`` seconds after the first chunk: ``command_rate_hz`` and ``command_jitter_ms_p99``
  (|interval - 1/command_rate| between received TwistStamped commands, receive wall time, 99th
  percentile); ``image_to_command_ms_p50`` / ``_p99`` (receive time of the first command step that uses
  a fresh model chunk minus the stamp of the camera image the chunk was predicted from, same host clock);
  ``scheduler_cpu_percent`` (CPU time of the scheduler node process / wall time, 100 = one core), also
  ``policy_cpu_percent`` and ``safety_cpu_percent``;
* ``stop_s`` and ``exit_code``: SIGINT to the ``spvla-bringup`` / ``ros2 launch`` process until it exited.

Example::

    spvla-bench graph --duration 10 --json out/graph.json
    AMENT_PREFIX_PATH=$PWD/.venv spvla-bench graph --launch --json out/graph_launch.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from spvla_ros.bench.report_io import format_table, machine_info, write_json
from spvla_ros.core.stamps import NS_PER_S, stamp_to_ns

HELP = "node graph (spvla-bringup or ros2 launch): start-up, command-rate jitter, image-to-command latency, CPU"
START_TIMEOUT_S = 180.0
"""Bound on start-up until the first action chunk (loading CogACT on a loaded 2-core box: 15-60 s), s."""
STOP_TIMEOUT_S = 30.0
FRAME_RATE_HZ = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=10.0, help="measurement window after the first chunk [s]")
    parser.add_argument("--images", default=None, help="folder of camera frames (default: generated frames)")
    parser.add_argument("--preset", default="tiny", help="CogACT preset (default: tiny)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--launch", action="store_true",
                        help="start the graph with `ros2 launch spvla bringup.launch.py` instead of spvla-bringup")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process below ``root`` (from /proc)."""
    children: dict[int, list[int]] = {}
    cmdlines: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        pid = int(stat.parent.name)
        children.setdefault(ppid, []).append(pid)
        cmdlines[pid] = cmdline
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out[pid] = cmdlines.get(pid, "")
        todo += children.get(pid, [])
    return out


def _node_pids(root: int, specs) -> dict[str, int]:
    """Executable -> pid of each node process (``python -m <module>`` or ``lib/spvla/<executable>``)."""
    found = {}
    for pid, cmdline in _descendants(root).items():
        for spec in specs:
            if f"-m {spec.module} " in cmdline + " " or f"/lib/spvla/{spec.executable} " in cmdline + " ":
                found[spec.executable] = pid
    return found


def _graph_command(args: argparse.Namespace, bag: Path, frames: int, share: Path) -> list[str]:
    extra = str(share / "config" / "demo.yaml")
    if args.launch:
        ros2 = shutil.which("ros2") or str(Path(sys.prefix) / "bin" / "ros2")
        if not Path(ros2).is_file():
            raise SystemExit("spvla-bench graph --launch: no `ros2` CLI here (make setup installs it from "
                             "../shared/ros2; on a ROS install, source its setup file)")
        return [ros2, "launch", "spvla", "bringup.launch.py", f"replay_bag:={bag}", f"extra_params_file:={extra}",
                f"preset:={args.preset}", f"device:={args.device}"]
    loops = int(np.ceil((args.duration + START_TIMEOUT_S) / (frames / FRAME_RATE_HZ)))
    return [sys.executable, "-m", "spvla_ros.nodes.bringup", "--replay-bag", str(bag), "--replay-loops", str(loops),
            "--extra-params-file", extra, "--preset", args.preset, "--device", args.device]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job inherits SIGINT ignored


def run(args: argparse.Namespace) -> int:
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from spvla.msg import ActionChunk, PolicyStatus, SchedulerStatus
    from tqdm import tqdm

    from spvla_ros.bag.make_bag import Recording, frames_from_folder, generated_frames, write_bag
    from spvla_ros.nodes import bringup, qos, topics

    share = bringup.share_dir()
    tmp = Path(tempfile.mkdtemp(prefix="spvla_graph_bench_"))
    frames = frames_from_folder(args.images, (320, 240)) if args.images else generated_frames(40)
    # ros2 launch plays the bag once: make it long enough for start-up and the window
    repeat = int(np.ceil((args.duration + START_TIMEOUT_S) * FRAME_RATE_HZ / len(frames))) if args.launch else 1
    write_bag(tmp / "frames", Recording(frames, FRAME_RATE_HZ), repeat=repeat)
    env = bringup.child_env(share)
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    os.environ.setdefault(bringup.FASTDDS_ENV, env[bringup.FASTDDS_ENV])
    cmd = _graph_command(args, tmp / "frames", len(frames), share)
    log = tmp / "graph.log"
    rclpy.init()
    node = rclpy.create_node("spvla_graph_bench")
    cmd_times: list[int] = []
    latencies_ms: list[float] = []
    chunks = [0]
    ready = [False]
    measuring = [False]

    def on_cmd(_msg) -> None:
        if measuring[0]:
            cmd_times.append(time.monotonic_ns())

    def on_status(msg) -> None:
        img = stamp_to_ns(msg.source_image_stamp)
        if measuring[0] and msg.decision == "model" and msg.reason != "late_model_chunk" and img > 0:
            latencies_ms.append((time.time_ns() - img) / 1e6)

    def on_chunk(_msg) -> None:
        chunks[0] += 1

    def on_policy(msg) -> None:
        ready[0] = ready[0] or msg.ready

    node.create_subscription(TwistStamped, topics.CMD_TWIST, on_cmd, qos.COMMAND_QOS)
    node.create_subscription(SchedulerStatus, topics.SCHEDULER_STATUS, on_status, qos.STATUS_QOS)
    node.create_subscription(ActionChunk, topics.ACTION_CHUNK, on_chunk, qos.CHUNK_QOS)
    node.create_subscription(PolicyStatus, topics.POLICY_STATUS, on_policy, qos.POLICY_STATUS_QOS)
    names = {spec.node_name for spec in bringup.NODES}
    t0 = time.monotonic()
    graph = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=_default_sigint)
    marks: dict[str, float] = {}
    stop_s, exit_code = float("nan"), None
    try:
        with tqdm(total=round(START_TIMEOUT_S), desc="start-up (bound)", unit="s", leave=False) as bar:
            while chunks[0] == 0 and time.monotonic() - t0 < START_TIMEOUT_S and graph.poll() is None:
                rclpy.spin_once(node, timeout_sec=0.05)
                now = time.monotonic() - t0
                if "nodes_up_s" not in marks and names <= {n for n, _ in node.get_node_names_and_namespaces()}:
                    marks["nodes_up_s"] = now
                if "policy_ready_s" not in marks and ready[0]:
                    marks["policy_ready_s"] = now
                bar.update(int(now) - bar.n)
        if chunks[0] == 0:
            print(f"spvla-bench graph: no action chunk within {START_TIMEOUT_S} s; log: {log}", file=sys.stderr)
            return 1
        marks["first_chunk_s"] = time.monotonic() - t0
        pids = _node_pids(graph.pid, bringup.NODES)
        cpu0 = {name: _cpu_s(pid) for name, pid in pids.items()}
        t1 = time.monotonic()
        measuring[0] = True
        with tqdm(total=round(args.duration), desc="measuring", unit="s", leave=False) as bar:
            while time.monotonic() - t1 < args.duration:
                rclpy.spin_once(node, timeout_sec=0.01)
                bar.update(int(time.monotonic() - t1) - bar.n)
        wall = time.monotonic() - t1
        cpu = {name: 100.0 * (_cpu_s(pid) - cpu0[name]) / wall for name, pid in pids.items()}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        if graph.poll() is None:
            t_stop = time.monotonic()
            graph.send_signal(signal.SIGINT)
            try:
                exit_code = graph.wait(timeout=STOP_TIMEOUT_S)
                stop_s = time.monotonic() - t_stop
            except subprocess.TimeoutExpired:
                os.killpg(graph.pid, signal.SIGKILL)
                graph.wait()

    params = yaml.safe_load((share / "config" / "spvla.yaml").read_text())["spvla_scheduler"]["ros__parameters"]
    period_ms = 1000.0 / params["command_rate_hz"]
    intervals_ms = np.diff(np.array(cmd_times)) / 1e6
    jitter = np.abs(intervals_ms - period_ms).tolist()
    figures = {
        "started_by": "ros2 launch" if args.launch else "spvla-bringup",
        **{k: marks.get(k, float("nan")) for k in ("nodes_up_s", "policy_ready_s", "first_chunk_s")},
        "command_rate_hz": (len(cmd_times) - 1) / ((cmd_times[-1] - cmd_times[0]) / NS_PER_S) if len(cmd_times) > 1
        else float("nan"),
        "command_jitter_ms_p50": _pct(jitter, 50),
        "command_jitter_ms_p99": _pct(jitter, 99),
        "image_to_command_ms_p50": _pct(latencies_ms, 50),
        "image_to_command_ms_p99": _pct(latencies_ms, 99),
        "fresh_model_steps": len(latencies_ms),
        "scheduler_cpu_percent": cpu.get("scheduler_node", float("nan")),
        "policy_cpu_percent": cpu.get("policy_node", float("nan")),
        "safety_cpu_percent": cpu.get("safety_node", float("nan")),
        "duration_s": wall,
        "stop_s": stop_s,
        "exit_code": exit_code,
    }
    print(format_table(["figure", "value"], [[k, v] for k, v in figures.items()]))
    if exit_code != 0:
        print(f"spvla-bench graph: the graph exited with {exit_code} after SIGINT; log: {log}", file=sys.stderr)
    if args.json:
        write_json(args.json, {"figures": figures, "config": {"preset": args.preset, "device": args.device,
                                                              "command_rate_hz": params["command_rate_hz"],
                                                              "images": args.images or "generated"},
                               "machine": machine_info(),
                               "command": "spvla-bench graph " + " ".join(sys.argv[2:])})
    return 0 if exit_code == 0 else 1
