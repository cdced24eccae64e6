"""A probe for tests with real node processes: an upstream that streams commands into /spvla/cmd_twist and
a subscriber that records every /spvla/safe_twist (importable by test modules: see pyproject's pythonpath)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from spvla.msg import PolicyStatus

from spvla_ros.core.stamps import NS_PER_S, stamp_to_ns
from spvla_ros.nodes import qos, topics

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0
"""Bound on waiting for a process to come up / to react, s (generous: the CI box has 2 loaded cores)."""
EXIT_WAIT_S = 15.0


@dataclass(frozen=True)
class Received:
    recv_s: float  # monotonic receive time, s
    stamp_s: float  # header stamp, s
    twist: np.ndarray  # (6,)


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_shm.xml"))
    return env


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    """``python -m <args>`` in its own session, output to ``log``."""
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=node_env(), cwd=ROOT, start_new_session=True)


def children(pid: int) -> dict[str, int]:
    """``{module: pid}`` of the ``python -m <module>`` children of ``pid`` (from /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"-m" in argv:
            out[argv[argv.index(b"-m") + 1].decode()] = int(entry.name)
    return out


class SafeTwistProbe:
    """Upstream publisher of /spvla/cmd_twist and recorder of /spvla/safe_twist, in this process."""

    def __init__(self, frame_id: str = "fr3_link0") -> None:
        self.frame_id = frame_id
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("safe_twist_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: list[Received] = []
        self.node.create_subscription(TwistStamped, topics.SAFE_TWIST, self._on_safe, qos.COMMAND_QOS)
        self.cmd_pub = self.node.create_publisher(TwistStamped, topics.CMD_TWIST, qos.COMMAND_QOS)
        self.policy_ready = False
        self.node.create_subscription(PolicyStatus, topics.POLICY_STATUS, self._on_policy_status,
                                      qos.POLICY_STATUS_QOS)

    def _on_policy_status(self, msg: PolicyStatus) -> None:
        self.policy_ready = bool(msg.ready)

    def _on_safe(self, msg: TwistStamped) -> None:
        t, r = msg.twist.linear, msg.twist.angular
        self.received.append(Received(time.monotonic(), stamp_to_ns(msg.header.stamp) / NS_PER_S,
                                      np.array([t.x, t.y, t.z, r.x, r.y, r.z])))

    def send(self, vx: float, stamp: tuple[int, int] | None = None) -> None:
        msg = TwistStamped()
        if stamp is None:
            msg.header.stamp = self.node.get_clock().now().to_msg()
        else:
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
        msg.header.frame_id = self.frame_id
        msg.twist.linear.x = vx
        self.cmd_pub.publish(msg)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.002)

    def stream_until(self, done: Callable[[], bool], vx: float, timeout_s: float, rate_hz: float = 50.0) -> bool:
        """Publish ``vx`` at ``rate_hz`` until ``done()`` (True) or the timeout (False)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if done():
                return True
            self.send(vx)
            self.spin_for(1.0 / rate_hz)
        return done()

    def wait_for(self, done: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if done():
                return True
            self.spin_for(0.05)
        return done()

    def wait_for_safety_node(self, timeout_s: float = WAIT_S) -> bool:
        return self.wait_for(lambda: self.cmd_pub.get_subscription_count() > 0, timeout_s)

    def moving_at(self, vx: float) -> bool:
        return bool(self.received) and self.received[-1].twist[0] >= vx - 1e-9

    def signal_while_streaming(self, proc: subprocess.Popen, pid: int, sig: int, vx: float) -> float:
        """Send ``sig`` to ``pid`` while the upstream keeps streaming ``vx`` until ``proc`` has exited, then
        collect what is still in flight; returns the monotonic time of the signal."""
        t_signal = time.monotonic()
        os.kill(pid, sig)
        if not self.stream_until(lambda: proc.poll() is not None, vx, EXIT_WAIT_S):
            proc.kill()
            proc.wait()
            raise AssertionError(f"{proc.args} did not exit within {EXIT_WAIT_S} s of {signal.Signals(sig).name}")
        self.spin_for(0.3)
        return t_signal

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.context.destroy()


def assert_ramped_to_exact_zero(received: list[Received], t_signal: float, max_lin_acc_mps2: float,
                                control_period_s: float, moving_vx: float) -> None:
    """The stream after the signal ramps down within the acceleration bound and its last twist is exactly 0.

    Between two messages the velocity may change by at most ``acc * (stamp difference + 2 periods)``: the
    node steps the limiter once per elapsed 1 ms period (rounded) and stamps at publish time.
    """
    assert received, "no /spvla/safe_twist at all"
    before = [m for m in received if m.recv_s < t_signal]
    after = [m for m in received if m.recv_s >= t_signal]
    assert before and before[-1].twist[0] >= moving_vx - 1e-9, "was not moving when the signal came"
    assert after, "nothing was published after the signal (the last command out was a moving one)"
    assert not received[-1].twist.any(), f"the last safe twist is {received[-1].twist.tolist()}, not exactly zero"
    ramp = [before[-1], *after]
    for a, b in zip(ramp, ramp[1:], strict=False):
        dv = float(np.linalg.norm(b.twist[:3] - a.twist[:3]))
        bound = max_lin_acc_mps2 * (max(b.stamp_s - a.stamp_s, 0.0) + 2 * control_period_s) + 1e-9
        assert dv <= bound, f"a step of {dv:.4f} m/s in {b.stamp_s - a.stamp_s:.4f} s (bound {bound:.4f})"
