"""``spvla-bringup``: start the spvla graph (policy, scheduler, safety; optional camera replay) without ROS launch.

The same graph as ``launch/bringup.launch.py`` (a test keeps the executables, parameter files and
arguments of the two equal): one process per node by default, or all nodes in this process on one
single-threaded executor with ``--composed`` (the policy's model still runs on its own worker thread).
Ctrl-C (or SIGTERM, SIGHUP) stops everything within a second, without tracebacks; an armed safety node
first ramps its output to zero and sends the final zero (at most ``SHUTDOWN_RAMP_TIMEOUT_S``). When a
node process dies, the others are stopped the same way, so the arm is brought to rest, not left moving.

Examples::

    spvla-bringup --preset tiny --device cpu                         # wait for a camera on /camera/image_raw
    spvla-bringup --replay frames.bag --exit-after-replay --status   # replay a bag as the camera
    spvla-bringup --checkpoint /data/CogACT-Base --preset cogact-base --device cuda --dry-run false
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import yaml

from spvla_ros.core.safety.config import SHUTDOWN_RAMP_TIMEOUT_S

PACKAGE = "spvla"
FASTDDS_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
FASTDDS_PROFILE = "fastdds_shm.xml"
SHUTDOWN_TIMEOUT_S = 1.0
"""Children get SIGINT, then SIGKILL if still alive after this long, s..."""
SAFETY_SHUTDOWN_TIMEOUT_S = SHUTDOWN_RAMP_TIMEOUT_S + SHUTDOWN_TIMEOUT_S
"""...except the safety node, which first ramps to zero and sends the final zero, s."""
STATUS_PERIOD_S = 1.0


@dataclass(frozen=True)
class LaunchArgument:
    """One deployment argument, shared by ``spvla-bringup`` (``--name-with-dashes``) and the launch file."""

    name: str
    default: str
    description: str


LAUNCH_ARGUMENTS = (
    LaunchArgument("params_file", "config/spvla.yaml", "ROS params file of the policy, scheduler and gripper nodes"),
    LaunchArgument("safety_params_file", "config/safety.yaml", "ROS params file of the safety node"),
    LaunchArgument("extra_params_file", "", "params file applied after the others (overrides); '' = none"),
    LaunchArgument("checkpoint", "", "CogACT checkpoint directory (official release layout); '' = random init"),
    LaunchArgument("preset", "tiny", "CogACT preset: tiny | cogact-base"),
    LaunchArgument("device", "cpu", "torch device of the policy: cpu | cuda"),
    LaunchArgument("dry_run", "true", "safety node in dry run: checks everything, commands nothing"),
    LaunchArgument("use_sim_time", "false", "all nodes follow /clock (deterministic bag replay)"),
    LaunchArgument("replay_bag", "", "rosbag2 to replay as the camera; '' = a real camera publishes"),
)
"""Defaults of file arguments are relative to the package share directory (the repo root in a checkout)."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    Attributes:
        executable: ``ros2 run spvla <executable>`` name (console entry / lib/spvla script).
        module: Python module with ``main()`` and the node class.
        node_name: the node's name (the key of its section in params files).
        params_files: launch arguments holding params files for this node, in order.
        parameters: launch arguments passed to the node as parameters of the same name.
    """

    executable: str
    module: str
    node_name: str
    params_files: tuple[str, ...]
    parameters: tuple[str, ...]


NODES = (
    NodeSpec("policy_node", "spvla_ros.nodes.policy_node", "spvla_policy", ("params_file", "extra_params_file"),
             ("checkpoint", "preset", "device", "use_sim_time")),
    NodeSpec("scheduler_node", "spvla_ros.nodes.scheduler_node", "spvla_scheduler",
             ("params_file", "extra_params_file"), ("use_sim_time",)),
    NodeSpec("safety_node", "spvla_ros.nodes.safety_node", "spvla_safety", ("safety_params_file", "extra_params_file"),
             ("dry_run", "use_sim_time")),
    NodeSpec("gripper_node", "spvla_ros.nodes.gripper_node", "spvla_gripper", ("params_file", "extra_params_file"),
             ("use_sim_time",)),
)
REPLAY = NodeSpec("spvla-bag", "spvla_ros.bag.cli", "spvla_bag_player", (), ())
"""Camera replay: ``spvla-bag play <replay_bag>`` (started only when ``replay_bag`` is given)."""
BOOL_PARAMETERS = ("dry_run", "use_sim_time")
SAFETY_EXECUTABLE = "safety_node"


def share_dir() -> Path:
    """Where launch/ and config/ are: the source checkout, else ``share/spvla`` of the install."""
    source = Path(__file__).resolve().parents[2]
    if (source / "config" / "spvla.yaml").is_file():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE))


def _bool(text: str) -> bool:
    low = str(text).strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spvla-bringup", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Examples::", 1)[1])
    for arg in LAUNCH_ARGUMENTS:
        p.add_argument("--" + arg.name.replace("_", "-"), default=arg.default, help=f"{arg.description} "
                       f"(default: {arg.default!r})")
    p.add_argument("--composed", action="store_true", help="run every node in this one process")
    p.add_argument("--replay-step", action="store_true",
                   help="replay deterministically step by step (implies --use-sim-time true)")
    p.add_argument("--replay-loops", type=int, default=1, help="play the replay bag this many times")
    p.add_argument("--exit-after-replay", action="store_true", help="stop the graph when the replay ends")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--status", action="store_true", help="print a live status line every second")
    return p


def resolve_args(args: argparse.Namespace) -> dict[str, str]:
    """Launch-argument values with file defaults made absolute; ``--replay-step`` forces sim time."""
    share = share_dir()
    values = {a.name: str(getattr(args, a.name)) for a in LAUNCH_ARGUMENTS}
    for name in ("params_file", "safety_params_file", "extra_params_file"):
        if values[name] and not Path(values[name]).is_absolute():
            cwd_path = Path.cwd() / values[name]
            values[name] = str(cwd_path if cwd_path.exists() else share / values[name])
        if values[name] and not Path(values[name]).is_file():
            raise SystemExit(f"spvla-bringup: {name} {values[name]} does not exist")
    if getattr(args, "replay_step", False):
        values["use_sim_time"] = "true"
    for name in BOOL_PARAMETERS:
        _bool(values[name])
    return values


def overrides_yaml(values: dict[str, str]) -> dict:
    """The per-node parameter overrides (launch arguments) as a ROS params-file mapping."""
    out = {}
    for spec in NODES:
        params = {}
        for name in spec.parameters:
            if name in BOOL_PARAMETERS:
                params[name] = _bool(values[name])
            else:
                params[name] = values[name]
        out[spec.node_name] = {"ros__parameters": params}
    return out


def ros_args(spec: NodeSpec, values: dict[str, str], overrides_file: str) -> list[str]:
    args = ["--ros-args"]
    for name in spec.params_files:
        if values[name]:
            args += ["--params-file", values[name]]
    return args + ["--params-file", overrides_file]


def replay_command(values: dict[str, str], step: bool, loops: int) -> list[str]:
    cmd = [sys.executable, "-m", REPLAY.module, "play", values["replay_bag"]]
    return cmd + (["--step"] if step else ["--loops", str(loops)])


def child_env(share: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault(FASTDDS_ENV, str(share / "config" / FASTDDS_PROFILE))
    return env


class _Stop:
    """Signal handler of this process: records the first stop signal."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""

    def __call__(self, signum: int, _frame: object) -> None:
        self.reason = self.reason or signal.Signals(signum).name
        self.requested = True


def _terminate(procs: list[subprocess.Popen], timeouts_s: list[float] | None = None) -> list[int | None]:
    """SIGINT to every process still running, then SIGKILL to any still alive after its timeout."""
    timeouts_s = timeouts_s or [SHUTDOWN_TIMEOUT_S] * len(procs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    start = time.monotonic()
    for p, timeout_s in zip(procs, timeouts_s, strict=True):
        try:
            p.wait(timeout=max(0.0, start + timeout_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"spvla-bringup: {p.args[2] if len(p.args) > 2 else p.args} did not stop within {timeout_s} s: "
                  "killed", file=sys.stderr)
            p.kill()
            p.wait()
    return [p.returncode for p in procs]


def run_processes(values: dict[str, str], args: argparse.Namespace, stop: _Stop) -> int:
    share = share_dir()
    env = child_env(share)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="spvla_overrides_", delete=False) as f:
        yaml.safe_dump(overrides_yaml(values), f)
    procs: dict[str, subprocess.Popen] = {}
    # Own sessions: a terminal's Ctrl-C reaches only this process, which then stops the children once.
    for spec in NODES:
        cmd = [sys.executable, "-m", spec.module, *ros_args(spec, values, f.name)]
        procs[spec.executable] = subprocess.Popen(cmd, env=env, start_new_session=True)
    replay = None
    if values["replay_bag"]:
        replay = subprocess.Popen(replay_command(values, args.replay_step, args.replay_loops), env=env,
                                  start_new_session=True)
    monitor = _Monitor(args.status)
    rc = 0
    end = None if args.duration is None else time.monotonic() + args.duration
    try:
        while not stop.requested and (end is None or time.monotonic() < end):
            dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
            if dead:
                print(f"spvla-bringup: node process exited early: {dead}; stopping the graph", file=sys.stderr)
                rc = 1
                break
            if replay is not None and replay.poll() is not None:
                if replay.returncode != 0:
                    print(f"spvla-bringup: replay exited with {replay.returncode}", file=sys.stderr)
                    rc = rc or replay.returncode
                if args.exit_after_replay:
                    break
                replay = None
            monitor.spin(0.1)
    finally:
        monitor.close()
        # Everything is stopped at once: the safety node disarms and ramps to zero while the others exit.
        stopping = [(p, SHUTDOWN_TIMEOUT_S) for p in ([replay] if replay is not None else [])]
        stopping += [(p, SAFETY_SHUTDOWN_TIMEOUT_S if name == SAFETY_EXECUTABLE else SHUTDOWN_TIMEOUT_S)
                     for name, p in procs.items()]
        codes = _terminate([p for p, _ in stopping], [t for _, t in stopping])
        os.unlink(f.name)
    node_codes = dict(zip(procs, codes[-len(procs):], strict=True))
    print(f"spvla-bringup: node exit codes {node_codes}", file=sys.stderr, flush=True)
    if any(c not in (0, -signal.SIGINT) for c in node_codes.values()):
        rc = rc or 1
    return rc


def run_composed(values: dict[str, str], args: argparse.Namespace, stop: _Stop) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from spvla_ros.nodes.spin import wind_down

    share = share_dir()
    os.environ.setdefault(FASTDDS_ENV, str(share / "config" / FASTDDS_PROFILE))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="spvla_overrides_", delete=False) as f:
        yaml.safe_dump(overrides_yaml(values), f)
    files = []
    for spec in NODES:  # every node's files, the extra (override) file last
        files += [values[n] for n in spec.params_files if n != "extra_params_file" and values[n]]
    files = list(dict.fromkeys(files)) + ([values["extra_params_file"]] if values["extra_params_file"] else [])
    cli = ["--ros-args"] + [x for path in [*files, f.name] for x in ("--params-file", path)]
    rclpy.init(args=["spvla-bringup", *cli], signal_handler_options=SignalHandlerOptions.NO)
    executor = SingleThreadedExecutor()
    nodes = []
    replay = None
    rc = 0
    try:
        for spec in NODES:
            nodes.append(_node_class(spec.module)())
            executor.add_node(nodes[-1])
        if values["replay_bag"]:
            replay = subprocess.Popen(replay_command(values, args.replay_step, args.replay_loops),
                                      env=child_env(share), start_new_session=True)
        monitor = GraphMonitorLine(args.status, executor)
        end = None if args.duration is None else time.monotonic() + args.duration
        while not stop.requested and (end is None or time.monotonic() < end):
            try:
                executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - a node's callback raised: stop the graph, arm to rest first
                print(f"spvla-bringup: a node failed; stopping the graph:\n{traceback.format_exc()}",
                      file=sys.stderr, flush=True)
                rc = 1
                break
            monitor.maybe_print()
            if replay is not None and replay.poll() is not None:
                rc = replay.returncode
                if args.exit_after_replay:
                    break
                replay = None
        # Still spinning: the safety node ramps to zero and sends the final zero before anything goes.
        wind_down(executor, nodes, stop.reason if stop.requested else "graph stopped")
    finally:
        if replay is not None:
            _terminate([replay])
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=0.2)
        rclpy.try_shutdown()
        os.unlink(f.name)
    return rc


def _node_class(module_name: str) -> type:
    """The rclpy Node subclass defined in ``module_name`` (one per node module)."""
    from rclpy.node import Node

    module = importlib.import_module(module_name)
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Node) and c is not Node and c.__module__ == module.__name__]
    if len(classes) != 1:
        raise RuntimeError(f"{module_name} must define exactly one Node subclass, found {classes}")
    return classes[0]


class GraphMonitorLine:
    """Prints :class:`GraphMonitor` figures every second (added to an executor)."""

    def __init__(self, enabled: bool, executor) -> None:
        self.enabled = enabled
        self._next = time.monotonic() + STATUS_PERIOD_S
        self.node = None
        if enabled:
            from spvla_ros.nodes.graph_monitor import GraphMonitor

            self.node = GraphMonitor()
            executor.add_node(self.node)

    def maybe_print(self) -> None:
        if self.node is not None and time.monotonic() >= self._next:
            self._next += STATUS_PERIOD_S
            print(self.node.figures().line(), flush=True)


class _Monitor:
    """The status line in process mode: a small rclpy context of its own in this process."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        self._executor = SingleThreadedExecutor()
        self._line = GraphMonitorLine(True, self._executor)

    def spin(self, seconds: float) -> None:
        if not self.enabled:
            time.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._executor.spin_once(timeout_sec=0.02)
        self._line.maybe_print()

    def close(self) -> None:
        if self.enabled:
            import rclpy

            self._line.node.destroy_node()
            self._executor.shutdown(timeout_sec=0.2)
            rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = resolve_args(args)
    from spvla_ros.nodes.spin import STOP_SIGNALS

    stop = _Stop()
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    mode = "composed (one process)" if args.composed else "one process per node"
    print(f"spvla-bringup: {mode}; preset {values['preset']} on {values['device']}, dry_run {values['dry_run']}"
          + (f", replaying {values['replay_bag']}" if values["replay_bag"] else ""), flush=True)
    rc = run_composed(values, args, stop) if args.composed else run_processes(values, args, stop)
    print(f"spvla-bringup: stopped (exit {rc})", flush=True)
    if args.composed:  # torch is loaded in this process: skip its ~1 s interpreter teardown
        from spvla_ros.nodes.policy_node import exit_without_teardown

        exit_without_teardown(rc)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
