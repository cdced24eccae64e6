"""``spvla-bag play`` starts when the policy is ready, not when a camera subscriber exists (issue 17).

A real ``spvla-bag play`` process against this test's stand-in policy: it subscribes the camera topic
from the start (as the policy node does, long before its model is loaded) and publishes the latched
``PolicyStatus`` the way the policy node does.

Regressions pinned:
* the player starting as soon as the camera topic has a subscriber: every frame sent while the model
  still loads (15-60 s on 2 cores) was lost ("no subscriber ... playing anyway", then nothing served);
* a player waiting forever, or failing without saying why, when no policy ever becomes ready.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from sensor_msgs.msg import Image
from spvla.msg import PolicyStatus

from spvla_ros.bag.make_bag import Recording, generated_frames, write_bag
from spvla_ros.nodes import qos, topics

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 8
NOT_READY_S = 3.0
"""How long the stand-in policy stays not ready while the player runs, s."""


def _bag(tmp_path: Path) -> Path:
    bag = tmp_path / "frames"
    write_bag(bag, Recording(generated_frames(FRAMES, 64, 48), rate_hz=10.0))
    return bag


def _play(bag: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "spvla_ros.bag.cli", "play", str(bag), "--start-delay-s", "0.5", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def test_player_waits_for_the_policy_ready_status_then_plays_every_frame(graph, tmp_path):
    policy = graph.add(rclpy.create_node("spvla_policy_standin", context=graph.context))
    received: list[float] = []
    policy.create_subscription(Image, topics.IMAGE, lambda _m: received.append(time.monotonic()), qos.IMAGE_QOS)
    status = policy.create_publisher(PolicyStatus, topics.POLICY_STATUS, qos.POLICY_STATUS_QOS)
    status.publish(PolicyStatus(ready=False, preset="tiny", device="cpu"))  # loading
    player = _play(_bag(tmp_path))  # the default bound on the wait (300 s)
    try:
        assert graph.spin_until(lambda: "spvla_bag_player" in policy.get_node_names() or received
                                or player.poll() is not None, timeout_s=30.0), "the player node never appeared"
        graph.spin_for(NOT_READY_S)
        assert received == [], "frames were played before the policy was ready (and lost)"
        assert player.poll() is None, player.communicate()
        ready_at = time.monotonic()
        status.publish(PolicyStatus(ready=True, preset="tiny", device="cpu"))
        assert graph.spin_until(lambda: player.poll() is not None or len(received) == FRAMES, timeout_s=30.0)
        graph.spin_until(lambda: player.poll() is not None, timeout_s=30.0)
        out, err = player.communicate(timeout=10)
    finally:
        if player.poll() is None:
            player.kill()
            player.wait()
    assert player.returncode == 0, out + err
    assert len(received) == FRAMES, f"{len(received)} of {FRAMES} frames arrived\n{out}{err}"
    assert received[0] > ready_at
    assert "policy ready after" in err and "playing anyway" not in err


def test_player_without_a_ready_policy_fails_with_the_reason(tmp_path):
    t0 = time.monotonic()
    player = _play(_bag(tmp_path), "--wait-ready-s", "2")
    try:
        out, err = player.communicate(timeout=60)
    finally:
        if player.poll() is None:
            player.kill()
    assert player.returncode == 4, out + err
    assert "the policy is not ready after 2 s" in err and topics.POLICY_STATUS in err
    assert "played" not in out
    assert time.monotonic() - t0 < 30.0
