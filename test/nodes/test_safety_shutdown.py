"""A stop is a stop: the safety node, as a real process, armed and moving at 0.3 m/s, gets a real SIGINT or
SIGTERM (standalone, or through ``spvla-bringup``), or a sibling process dies under ``spvla-bringup``.

Regressions pinned (issue 15, item 1): rclpy's default handler invalidated the context before the node's
shutdown ran, so the last /spvla/safe_twist a subscriber saw was the moving one (0.27-0.34 m/s) and the
node exited 1 (``publisher's context is invalid``); killing the policy under ``spvla-bringup`` left
0.31 m/s as the last safe twist. Now the output ramps to zero within the acceleration bound while the
upstream keeps pushing, the last safe twist is exactly zero, and the process exits 0. Item 3 on the
process: commands with hostile headers (sec = -1, a year-2100 stamp wrapped negative in int32, nanosec at
its maximum) mid-stream are dropped, and the node keeps running and moving.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import yaml
from safe_twist_probe import (
    WAIT_S,
    SafeTwistProbe,
    assert_ramped_to_exact_zero,
    children,
    spawn,
)

from spvla_ros.core.safety import load_safety_config

ROOT = Path(__file__).resolve().parents[2]
SAFETY_YAML = ROOT / "config" / "safety.yaml"
MOVING_VX = 0.3
"""Upstream command, m/s (under the 0.5 m/s limit, so the output settles exactly at it)."""
PROBE_FRAME = "shutdown_probe_frame"
"""Under spvla-bringup the scheduler publishes zero twists too: the safety node is set to accept only
this frame, so the scheduler's are dropped (wrong frame) and the probe is the only upstream."""
HOSTILE_STAMPS = ((-1, 0), (4_102_444_800 - 2**32, 0), (0, 2**32 - 1), (2**31 - 1, 2**32 - 1))
"""(sec, nanosec): before the epoch; year 2100 wrapped negative in int32; nanosec max; the last int32 second."""

pytestmark = pytest.mark.slow


@pytest.fixture
def probe():
    p = SafeTwistProbe(PROBE_FRAME)
    yield p
    p.close()


def _limits() -> tuple[float, float]:
    config = load_safety_config()
    return config.max_lin_acc_mps2, config.control_period_s


def _safety_args() -> list[str]:
    return ["spvla_ros.nodes.safety_node", "--ros-args", "--params-file", str(SAFETY_YAML),
            "-p", "dry_run:=false", "-p", "workspace_requires_pose:=false", "-p", f"frame_id:={PROBE_FRAME}"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_standalone_safety_node_ends_at_exact_zero(probe: SafeTwistProbe, tmp_path: Path, sig: int) -> None:
    log = tmp_path / "safety.log"
    proc = spawn(_safety_args(), log)
    try:
        assert probe.wait_for_safety_node(), f"safety node did not come up:\n{log.read_text()}"
        assert probe.stream_until(lambda: probe.moving_at(MOVING_VX), MOVING_VX, WAIT_S), log.read_text()
        for stamp in HOSTILE_STAMPS:  # dropped and counted, nothing raises; the stream goes on
            probe.send(MOVING_VX, stamp)
        n = len(probe.received)
        assert probe.stream_until(lambda: len(probe.received) > n + 20, MOVING_VX, WAIT_S)
        assert proc.poll() is None, f"a hostile header killed the node:\n{log.read_text()}"
        assert probe.moving_at(MOVING_VX)
        t_signal = probe.signal_while_streaming(proc, proc.pid, sig, MOVING_VX)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text
    assert "dropped: drop_stale_stamp" in text, "hostile stamps must be logged"
    assert_ramped_to_exact_zero(probe.received, t_signal, *_limits(), MOVING_VX)


def _bringup(tmp_path: Path, *extra: str):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump({"spvla_safety": {"ros__parameters": {
        "frame_id": PROBE_FRAME, "workspace_requires_pose": False}}}))
    log = tmp_path / "bringup.log"
    return spawn(["spvla_ros.nodes.bringup", "--dry-run", "false", "--extra-params-file", str(overrides),
                  *extra], log), log


def _run_bringup_case(probe: SafeTwistProbe, tmp_path: Path, composed: bool, sig: int, kill_module: str | None):
    proc, log = _bringup(tmp_path, *(["--composed"] if composed else []))
    try:
        assert probe.wait_for(lambda: probe.policy_ready, 2 * WAIT_S), f"policy not ready:\n{log.read_text()}"
        assert probe.wait_for_safety_node(), f"safety node did not come up:\n{log.read_text()}"
        assert probe.stream_until(lambda: probe.moving_at(MOVING_VX), MOVING_VX, WAIT_S), log.read_text()
        target = proc.pid
        if kill_module is not None:
            deadline = time.monotonic() + WAIT_S
            while kill_module not in children(proc.pid):
                assert time.monotonic() < deadline, f"no {kill_module} child:\n{log.read_text()}"
                probe.spin_for(0.1)
            target = children(proc.pid)[kill_module]
        t_signal = probe.signal_while_streaming(proc, target, sig, MOVING_VX)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return t_signal, proc.returncode, log.read_text()


@pytest.mark.parametrize(("composed", "sig"), [(False, signal.SIGINT), (True, signal.SIGTERM)],
                         ids=["processes-SIGINT", "composed-SIGTERM"])
def test_bringup_stop_ends_at_exact_zero(probe: SafeTwistProbe, tmp_path: Path, composed: bool, sig: int) -> None:
    t_signal, rc, text = _run_bringup_case(probe, tmp_path, composed, sig, None)
    assert rc == 0, text
    assert "Traceback" not in text, text
    if not composed:
        assert "'safety_node': 0" in text, text
    assert_ramped_to_exact_zero(probe.received, t_signal, *_limits(), MOVING_VX)


def test_dead_sibling_under_bringup_ends_at_exact_zero(probe: SafeTwistProbe, tmp_path: Path) -> None:
    """The policy process is killed (SIGKILL, like a crash): the graph stops, the arm does not keep moving."""
    t_signal, rc, text = _run_bringup_case(probe, tmp_path, False, signal.SIGKILL, "spvla_ros.nodes.policy_node")
    assert rc == 1, text  # a node died: bring-up reports it
    assert "node process exited early" in text, text
    assert "'safety_node': 0" in text, text
    assert_ramped_to_exact_zero(probe.received, t_signal, *_limits(), MOVING_VX)
