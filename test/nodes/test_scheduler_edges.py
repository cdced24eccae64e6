"""Scheduler node at the edges: clock jumps, hostile chunk headers, an instruction change with work in flight.

Real messages on the real topics of a running node (a peer publishes /clock, ActionChunk, the instruction);
the wall-clock path runs its timer callback with injected clocks (a realtime-clock step cannot be made
on a shared CI machine).

Regressions pinned (issue 19.2, issue 15.3/15.4/15.5/15.8): a 60 s forward jump of the realtime clock
produced 6000 commands in one callback; a backward jump silenced the stream with no log; one chunk stamped
now + 1 h took over the scheduler; a negative stamp could raise; a chunk for the previous instruction
switched the gripper after an instruction change; refusals were not counted in the status.
"""

from __future__ import annotations

import array

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TwistStamped
from rclpy.clock import ClockType
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from spvla.msg import ActionChunk, GripperCommand, InferenceRequest, SchedulerStatus
from std_msgs.msg import String

from spvla_ros.core.instruction import instruction_digest
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.scheduler_node import SchedulerNode

NS = 1_000_000_000
T0 = 1000 * NS
STEP = NS // 5
TICK = NS // 100


def _t(ns: int) -> Time:
    return Time(sec=ns // NS, nanosec=ns % NS)


def _ns(stamp: Time) -> int:
    return stamp.sec * NS + stamp.nanosec


def _chunk(request_id: int, stamp_ns: int, gripper: float = 1.0, instruction: str = "") -> ActionChunk:
    data = np.tile([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, gripper], (16, 1)).astype(np.float32)
    msg = ActionChunk(request_id=request_id, rows=16, cols=7, data=array.array("f", data.ravel().tobytes()),
                      keep_ratio=1.0, action_rate_hz=5.0, source=ActionChunk.SOURCE_MODEL,
                      instruction_digest=instruction_digest(instruction) if instruction else "")
    msg.header.stamp = _t(stamp_ns) if stamp_ns >= 0 else Time(sec=-1, nanosec=0)
    return msg


class _CountingPublisher:
    """Stands in for the node's command publisher: counts what one callback publishes, forwards it."""

    def __init__(self, real) -> None:
        self.real, self.stamps = real, []

    def publish(self, msg) -> None:
        self.stamps.append(_ns(msg.header.stamp))
        self.real.publish(msg)

    def __getattr__(self, name):
        return getattr(self.real, name)


def _sim_graph(graph):
    """Scheduler on sim time; a peer with publishers for /clock, chunks, instruction and a status/gripper log."""
    node = graph.add(SchedulerNode(context=graph.context, parameter_overrides=[Parameter("use_sim_time", value=True)]))
    peer = graph.add(rclpy.create_node("peer", context=graph.context))
    got = {"req": [], "status": [], "grip": [], "cmd": []}
    peer.create_subscription(InferenceRequest, topics.INFERENCE_REQUEST, got["req"].append, qos.REQUEST_QOS)
    peer.create_subscription(SchedulerStatus, topics.SCHEDULER_STATUS, got["status"].append, qos.STATUS_QOS)
    peer.create_subscription(GripperCommand, topics.GRIPPER_COMMAND, got["grip"].append, qos.GRIPPER_QOS)
    peer.create_subscription(TwistStamped, topics.CMD_TWIST, got["cmd"].append, qos.COMMAND_QOS)
    pubs = {
        "clock": peer.create_publisher(Clock, "/clock", 10),
        "chunk": peer.create_publisher(ActionChunk, topics.ACTION_CHUNK, qos.CHUNK_QOS),
        "ins": peer.create_publisher(String, topics.INSTRUCTION, qos.INSTRUCTION_QOS),
    }
    assert graph.spin_until(lambda: node._request_pub.get_subscription_count() > 0
                            and node._status_pub.get_subscription_count() > 0
                            and node._gripper_pub.get_subscription_count() > 0
                            and pubs["clock"].get_subscription_count() > 0
                            and pubs["chunk"].get_subscription_count() > 0)
    return node, got, pubs


def _clock(graph, node, pubs, t_ns):
    pubs["clock"].publish(Clock(clock=_t(t_ns)))
    assert graph.spin_until(lambda: node.core.processed_until_ns == t_ns)  # times on the tick grid


def _answer_pending(graph, node, got, pubs, **chunk_kwargs) -> None:
    """Answer the node's pending request as the policy would (image stamp = request stamp)."""
    pending = node.core.pending_request
    if pending is None:
        return
    assert graph.spin_until(lambda: any(r.request_id == pending.request_id for r in got["req"]))
    pubs["chunk"].publish(_chunk(pending.request_id, pending.stamp_ns, **chunk_kwargs))
    assert graph.spin_until(lambda: node.core.pending_request is None
                            or node.core.pending_request.request_id != pending.request_id)


def test_wall_clock_jumps_neither_flood_nor_silence_the_stream(graph):
    node = graph.add(SchedulerNode(context=graph.context))
    assert node._timer.clock.clock_type == ClockType.STEADY_TIME  # a realtime step cannot stall the timer
    node._timer.cancel()  # the test runs the timer callback itself, with injected clocks
    pub = node._cmd_pub = _CountingPublisher(node._cmd_pub)
    clocks = {"steady": 5 * NS, "ros": T0}
    node._steady_now_ns = lambda: clocks["steady"]
    node._ros_now_ns = lambda: clocks["ros"]

    def tick(ros_jump_ns: int = 0) -> list[int]:
        clocks["steady"] += TICK
        clocks["ros"] += TICK + ros_jump_ns
        before = len(pub.stamps)
        node._on_timer()
        return pub.stamps[before:]

    for _ in range(50):
        assert len(tick()) == 1
    published = tick(ros_jump_ns=60 * NS)  # the realtime clock is stepped a minute ahead
    assert published == [clocks["ros"]]  # one command, stamped in the new ROS time (what the safety node reads)
    assert node.drops.get("clock_jump_forward") == 1
    assert [len(tick()) for _ in range(30)] == [1] * 30
    published = tick(ros_jump_ns=-120 * NS)  # ... and two minutes back
    assert published == [clocks["ros"]] and node.drops.get("clock_jump_backward") == 1
    assert [len(tick()) for _ in range(30)] == [1] * 30  # the stream goes on at once, not in two minutes
    names, counts = (list(v) for v in node.drops.as_lists())
    assert dict(zip(names, counts, strict=True)) == {"clock_jump_forward": 1, "clock_jump_backward": 1}
    # a stalled process (both clocks advance 5 s between callbacks) is a catch-up gap: no burst either
    clocks["steady"] += 5 * NS
    assert len(tick(ros_jump_ns=5 * NS)) == 1 and node.drops.get("clock_jump_forward") == 2


def test_sim_clock_jumps_and_negative_clock(graph):
    node, got, pubs = _sim_graph(graph)
    node._cmd_pub = pub = _CountingPublisher(node._cmd_pub)
    for k in range(6):
        _clock(graph, node, pubs, T0 + k * STEP)
    assert len(pub.stamps) == 1 + 5 * 20
    before = len(pub.stamps)
    _clock(graph, node, pubs, T0 + 60 * NS)
    assert len(pub.stamps) - before == 1 and node.drops.get("clock_jump_forward") == 1
    pubs["clock"].publish(Clock(clock=Time(sec=-1, nanosec=0)))  # garbage: ignored and counted, node alive
    assert graph.spin_until(lambda: node.drops.get("negative_clock") == 1)
    _clock(graph, node, pubs, T0 - 100 * NS)  # /clock reset (a bag loop): stream on at once
    assert node.drops.get("clock_jump_backward") == 1
    before = len(pub.stamps)
    _clock(graph, node, pubs, T0 - 100 * NS + STEP)
    assert len(pub.stamps) - before == 20
    assert graph.spin_until(lambda: got["status"] and "clock_jump_backward" in got["status"][-1].drop_names)


def test_future_and_negative_chunks_are_dropped_and_real_chunks_are_used(graph):
    node, got, pubs = _sim_graph(graph)
    _clock(graph, node, pubs, T0)
    assert graph.spin_until(lambda: len(got["req"]) == 1)
    pubs["chunk"].publish(_chunk(0, T0 + 3600 * NS))  # stamped an hour ahead
    assert graph.spin_until(lambda: node.drops.get("future_stamp") == 1)  # (chunk QoS: depth 1, one at a time)
    pubs["chunk"].publish(_chunk(0, -1))  # sec = -1 (or a year-2100 stamp wrapped negative)
    assert graph.spin_until(lambda: node.drops.get("negative_stamp") == 1)
    for k in range(1, 6):  # the real policy answers every request with the newest frame
        _answer_pending(graph, node, got, pubs)
        _clock(graph, node, pubs, T0 + k * STEP)
    assert graph.spin_until(lambda: any(s.step == 5 and s.decision for s in got["status"]))
    steps = {s.step: s for s in got["status"] if s.decision}
    assert [steps[k].decision for k in range(1, 6)] == ["model"] * 5
    assert all(T0 <= _ns(steps[k].source_image_stamp) < T0 + k * STEP for k in range(1, 6))
    last = got["status"][-1]
    drops = dict(zip(last.drop_names, last.drop_counts, strict=True))
    assert drops["future_stamp"] == 1 and drops["negative_stamp"] == 1


def test_chunk_for_the_old_instruction_never_runs_after_an_instruction_change(graph):
    node, got, pubs = _sim_graph(graph)
    pubs["ins"].publish(String(data="open the drawer"))
    assert graph.spin_until(lambda: node._instruction == "open the drawer")
    _clock(graph, node, pubs, T0)
    assert graph.spin_until(lambda: len(got["req"]) == 1)
    old = got["req"][0]
    pubs["ins"].publish(String(data="pick up the cup"))  # while request `old` is at the policy
    assert graph.spin_until(lambda: node._instruction == "pick up the cup")
    # the policy's answer for the old instruction would close the hand; so would an unsolicited one
    pubs["chunk"].publish(_chunk(old.request_id, T0, gripper=0.0, instruction="open the drawer"))
    assert graph.spin_until(lambda: node.drops.get("old_request") == 1)
    pubs["chunk"].publish(_chunk(0, T0, gripper=0.0, instruction="open the drawer"))
    assert graph.spin_until(lambda: node.drops.get("other_instruction") == 1)
    for k in range(1, 4):
        _clock(graph, node, pubs, T0 + k * STEP)
    graph.spin_for(0.2)
    assert got["grip"] == []
    assert {s.decision for s in got["status"] if s.step >= 1 and s.decision} == {"wait"}
    # back to the first instruction (A -> B -> A): the old answer is still refused by its request id
    pubs["ins"].publish(String(data="open the drawer"))
    assert graph.spin_until(lambda: node._instruction == "open the drawer")
    pubs["chunk"].publish(_chunk(old.request_id, T0, gripper=0.0, instruction="open the drawer"))
    assert graph.spin_until(lambda: node.drops.get("old_request") == 2)
    _clock(graph, node, pubs, T0 + 4 * STEP)
    _answer_pending(graph, node, got, pubs, gripper=1.0, instruction="open the drawer")
    assert graph.spin_until(lambda: node.core.last_chunk is not None)
    _clock(graph, node, pubs, T0 + 5 * STEP)
    assert graph.spin_until(lambda: len(got["grip"]) == 1)
    assert [g.state for g in got["grip"]] == [GripperCommand.STATE_OPEN]  # never closed by the old chunk
