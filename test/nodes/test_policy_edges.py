"""Policy node at the edges (issue 15, items 3, 4, 5, 8): hostile stamps, a frame from the future, an
instruction change while a request is queued or in flight; every refusal is counted in PolicyStatus.

Regressions pinned: one camera frame stamped now + 1 h became the newest frame and 4 of 5 chunks in the
next 20 s came from it, with no log line; a chunk computed for the old instruction was published after
an instruction change (the scheduler then ran it); refusals were log lines only.
"""

from __future__ import annotations

import time

from builtin_interfaces.msg import Time
from fake_policy import FakePolicy
from rclpy.parameter import Parameter
from spvla.msg import PolicyStatus
from std_msgs.msg import String
from test_policy_node import _image, _request, _send_frame, _setup

from spvla_ros.core.instruction import instruction_digest
from spvla_ros.core.stamps import NS_PER_S
from spvla_ros.nodes import qos, topics

HOUR_S = 3600.0


def _now_s(node) -> float:
    return node.get_clock().now().nanoseconds / NS_PER_S


def _stamp(msg, sec: int, nanosec: int = 0):
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    return msg


def _drops(status: list[PolicyStatus]) -> dict[str, int]:
    return dict(zip(status[-1].drop_names, status[-1].drop_counts, strict=True)) if status else {}


def _status_sub(graph) -> list[PolicyStatus]:
    status: list[PolicyStatus] = []
    graph.nodes[1].create_subscription(PolicyStatus, topics.POLICY_STATUS, status.append, qos.POLICY_STATUS_QOS)
    return status


def test_a_frame_from_the_future_never_becomes_the_newest(graph) -> None:
    node, chunks, img_pub, req_pub = _setup(graph, FakePolicy())
    node.set_parameters([Parameter("max_frame_age_s", value=0.5)])
    node._instruction = "pick up the cup"
    status = _status_sub(graph)
    now = _now_s(node)
    img_pub.publish(_image(now + HOUR_S, value=(255, 0, 0)))  # one frame stamped an hour ahead
    graph.spin_for(0.2)
    req_pub.publish(_request(99, now + HOUR_S, 0.0))  # and a request stamped with it: not trusted that far
    graph.spin_for(0.2)
    assert node._frame is None
    for k in range(3):  # real frames keep coming; each request must be served with a real one
        t = _now_s(node)
        _send_frame(graph, node, img_pub, _image(t))
        req_pub.publish(_request(k + 1, t, 0.0))
        assert graph.spin_until(lambda k=k: len(chunks) == k + 1)
    stamps = [c.header.stamp.sec + c.header.stamp.nanosec * 1e-9 for c in chunks]
    assert all(abs(s - now) < 60.0 for s in stamps), f"a chunk came from the future frame: {stamps}"
    time.sleep(0.5)  # the held-back frame expires (max_frame_age_s) and is counted at the next frame
    img_pub.publish(_image(_now_s(node)))
    assert graph.spin_until(lambda: _drops(status).get("future_stamp", 0) == 1)


def test_a_frame_slightly_ahead_of_the_clock_is_used_once_a_request_reaches_it(graph) -> None:
    """A replay publishes each frame just before it moves /clock to the frame's stamp: the frame is held
    back, then used by the request stamped at its time (no drop, deterministic)."""
    node, chunks, img_pub, req_pub = _setup(graph, FakePolicy())
    node._instruction = "pick up the cup"
    status = _status_sub(graph)
    t = _now_s(node)
    _stamp_ns = int(round((t + 0.2) * NS_PER_S))
    img_pub.publish(_stamp(_image(0.0), _stamp_ns // NS_PER_S, _stamp_ns % NS_PER_S))
    assert graph.spin_until(lambda: node._early is not None)
    assert node._frame is None  # not the newest frame yet
    req_pub.publish(_stamp(_request(1, 0.0, 0.0), _stamp_ns // NS_PER_S, _stamp_ns % NS_PER_S))
    assert graph.spin_until(lambda: len(chunks) == 1)
    assert chunks[0].header.stamp.sec * NS_PER_S + chunks[0].header.stamp.nanosec == _stamp_ns
    graph.spin_for(0.1)
    assert "future_stamp" not in _drops(status)


def test_hostile_stamps_are_dropped_and_counted_and_the_node_keeps_serving(graph) -> None:
    node, chunks, img_pub, req_pub = _setup(graph, FakePolicy())
    node._instruction = "pick up the cup"
    status = _status_sub(graph)
    for sec, nanosec in ((-1, 0), (4_102_444_800 - 2**32, 0), (-(2**31), 2**32 - 1)):
        img_pub.publish(_stamp(_image(0.0), sec, nanosec))
        req_pub.publish(_stamp(_request(99, 0.0, 0.0), sec, nanosec))
        graph.spin_for(0.05)
    img_pub.publish(_stamp(_image(0.0), 0, 2**32 - 1))  # nanosec at its maximum: 4.29 s after the epoch, valid
    graph.spin_for(0.05)
    assert graph.spin_until(lambda: _drops(status).get("negative_stamp", 0) >= 6)
    assert chunks == []
    t = _now_s(node)
    img_pub.publish(_image(t))
    graph.spin_for(0.05)
    req_pub.publish(_request(1, t, 0.0))
    assert graph.spin_until(lambda: len(chunks) == 1)  # still serving


def test_instruction_change_discards_queued_and_in_flight_work(graph) -> None:
    policy = FakePolicy(latency_s=0.4)
    node, chunks, img_pub, req_pub = _setup(graph, policy)
    status = _status_sub(graph)
    instr = graph.nodes[1].create_publisher(String, topics.INSTRUCTION, qos.INSTRUCTION_QOS)
    node._set_instruction("put the spoon in the pot")
    t = _now_s(node)
    img_pub.publish(_image(t))
    graph.spin_for(0.05)
    node._on_request(_request(1, t, 0.0))
    assert graph.spin_until(lambda: len(policy.calls) == 1)  # request 1 in flight
    node._on_request(_request(2, t, 0.0))  # request 2 queued
    instr.publish(String(data="open the drawer"))
    assert graph.spin_until(lambda: node._instruction == "open the drawer")
    graph.spin_for(1.0)  # request 1 finishes: its chunk must not go out; request 2 never runs
    assert chunks == [], [c.request_id for c in chunks]
    assert len(policy.calls) == 1
    assert node.jobs_replaced == 1
    assert graph.spin_until(lambda: _drops(status).get("instruction_changed", 0) == 1)
    t = _now_s(node)
    _send_frame(graph, node, img_pub, _image(t))
    node._on_request(_request(3, t, 0.0))
    assert graph.spin_until(lambda: len(chunks) == 1, timeout_s=5.0)
    assert chunks[0].request_id == 3
    assert chunks[0].instruction_digest == instruction_digest("open the drawer")
    assert policy.calls[-1][1] == "open the drawer"


def test_a_waiting_request_replaced_by_a_newer_one_is_counted(graph) -> None:
    node, chunks, img_pub, req_pub = _setup(graph, FakePolicy())
    node._instruction = "pick up the cup"
    status = _status_sub(graph)
    t = _now_s(node)
    req_pub.publish(_request(1, t, 0.0))  # no frame yet: waits
    assert graph.spin_until(lambda: node._waiting is not None)
    req_pub.publish(_request(2, t + 0.01, 0.0))  # replaces it: request 1 is never served
    assert graph.spin_until(lambda: _drops(status).get("no_frame", 0) == 1)
    img_pub.publish(_image(t))
    assert graph.spin_until(lambda: len(chunks) == 1)
    assert chunks[0].request_id == 2


def test_a_frame_promoted_ahead_of_the_clock_loses_to_a_frame_of_now(graph) -> None:
    """A frame and a request both stamped 0.5 s ahead (within max_frame_age_s): the frame is used for that
    request, but the next frame of now replaces it (counted), so it cannot hold the view."""
    node, chunks, img_pub, req_pub = _setup(graph, FakePolicy())
    node._instruction = "pick up the cup"
    status = _status_sub(graph)
    ahead = _now_s(node) + 0.5
    img_pub.publish(_image(ahead))
    assert graph.spin_until(lambda: node._early is not None)
    req_pub.publish(_request(1, ahead, 0.0))
    assert graph.spin_until(lambda: len(chunks) == 1)
    t = _now_s(node)
    _send_frame(graph, node, img_pub, _image(t))
    assert graph.spin_until(lambda: _drops(status).get("future_stamp", 0) == 1)
    req_pub.publish(_request(2, t, 0.0))
    assert graph.spin_until(lambda: len(chunks) == 2)
    assert abs(chunks[1].header.stamp.sec + chunks[1].header.stamp.nanosec / NS_PER_S - t) < 1e-3
