"""Scheduler node on a real graph, driven through its /clock callback (injected time, no sleeps).

Regressions pinned: a NaN or mis-shaped chunk reaching the command stream; commands not stamped on the
tick grid or not in the base frame; requests not sent for model steps; a new instruction not restarting
the schedule; status not acknowledging a chunk (the deterministic replay waits on it).
"""

from __future__ import annotations

import array

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TwistStamped
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from spvla.msg import ActionChunk, InferenceRequest, SchedulerStatus
from std_msgs.msg import String

from spvla_ros.core.instruction import instruction_digest
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.scheduler_node import SchedulerNode

NS = 1_000_000_000


def _t(ns: int) -> Time:
    return Time(sec=ns // NS, nanosec=ns % NS)


def _chunk(request_id: int, stamp_ns: int, value: float, instruction: str | None = None) -> ActionChunk:
    data = np.tile([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], (16, 1)).astype(np.float32)
    data[:, 0] = value
    msg = ActionChunk(request_id=request_id, rows=16, cols=7, data=array.array("f", data.ravel().tobytes()),
                      keep_ratio=1.0, action_rate_hz=5.0, source=ActionChunk.SOURCE_MODEL,
                      instruction_digest="" if instruction is None else instruction_digest(instruction))
    msg.header.stamp = _t(stamp_ns)
    return msg


def _setup(graph):
    node = graph.add(SchedulerNode(context=graph.context,
                                   parameter_overrides=[Parameter("use_sim_time", value=True)]))
    peer = graph.add(rclpy.create_node("peer", context=graph.context))
    got = {"cmd": [], "req": [], "status": []}
    peer.create_subscription(TwistStamped, topics.CMD_TWIST, got["cmd"].append, qos.COMMAND_QOS)
    peer.create_subscription(InferenceRequest, topics.INFERENCE_REQUEST, got["req"].append, qos.REQUEST_QOS)
    peer.create_subscription(SchedulerStatus, topics.SCHEDULER_STATUS, got["status"].append, qos.STATUS_QOS)
    ins = peer.create_publisher(String, topics.INSTRUCTION, qos.INSTRUCTION_QOS)
    assert graph.spin_until(lambda: node._cmd_pub.get_subscription_count() > 0
                            and node._request_pub.get_subscription_count() > 0
                            and node._status_pub.get_subscription_count() > 0)
    return node, got, ins


def test_stream_requests_and_acknowledges_chunks(graph):
    node, got, _ = _setup(graph)
    t0 = 1000 * NS
    node._on_clock(Clock(clock=_t(t0)))
    assert graph.spin_until(lambda: len(got["req"]) == 1 and len(got["cmd"]) == 1 and got["status"])
    assert got["status"][-1].decision == "wait" and got["status"][-1].inference_pending
    node._on_chunk(_chunk(got["req"][0].request_id, t0, 0.02))
    assert graph.spin_until(lambda: not got["status"][-1].inference_pending)
    node._on_clock(Clock(clock=_t(t0 + NS // 5)))
    assert graph.spin_until(lambda: len(got["cmd"]) == 21)
    stamps = [c.header.stamp.sec * NS + c.header.stamp.nanosec for c in got["cmd"]]
    assert set(np.diff(stamps).tolist()) == {NS // 100}
    assert {c.header.frame_id for c in got["cmd"]} == {"fr3_link0"}
    model = [s for s in got["status"] if s.decision == "model"]
    assert model and model[0].source_image_stamp == _t(t0)


def test_bad_chunks_are_dropped_and_never_reach_the_commands(graph):
    node, got, _ = _setup(graph)
    t0 = 1000 * NS
    node._on_clock(Clock(clock=_t(t0)))
    nan_chunk = _chunk(1, t0, float("nan"))
    short = _chunk(1, t0, 0.02)
    short.rows = 17  # rows*cols does not match the data
    node._on_chunk(nan_chunk)
    node._on_chunk(short)
    assert node.drops.get("bad_chunk") == 2
    for k in range(1, 11):  # 0.2 s per clock step: bursts stay inside the command QoS depth
        node._on_clock(Clock(clock=_t(t0 + k * NS // 5)))
        assert graph.spin_until(lambda k=k: len(got["cmd"]) == 1 + 20 * k)
    lin = np.array([[c.twist.linear.x, c.twist.linear.y, c.twist.linear.z] for c in got["cmd"]])
    assert np.isfinite(lin).all() and not lin.any()  # nothing usable arrived: zero velocity, waiting
    assert {s.decision for s in got["status"] if s.decision} == {"wait"}


def test_new_instruction_restarts_the_schedule(graph):
    node, got, ins = _setup(graph)
    t0 = 1000 * NS
    ins.publish(String(data="pick up the cup"))
    assert graph.spin_until(lambda: node._instruction == "pick up the cup")
    node._on_clock(Clock(clock=_t(t0)))
    node._on_chunk(_chunk(1, t0, 0.02, "pick up the cup"))
    node._on_clock(Clock(clock=_t(t0 + NS)))
    assert node.core.scheduler.buffer.shape[0] > 0
    ins.publish(String(data="put the cup down"))
    assert graph.spin_until(lambda: node._instruction == "put the cup down")
    assert node.core.scheduler.buffer.shape[0] == 0 and node.core.counters.model_steps == 0
