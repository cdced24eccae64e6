"""No header value can raise in any node (issue 15, item 3): real messages with hostile headers are published
to the running safety, policy, gripper and scheduler nodes (one executor; a callback that raised would fail
the spin here), and the graph keeps working afterwards.

Hostile stamps: ``sec = -1``; 2100-01-01 serialised as int32 (wraps negative); ``nanosec`` at its
maximum; the int32 extremes. Frames: empty and 1 KiB of garbage. Regression pinned: ``sec = -1`` on a
TwistStamped crashed the safety node in ``rclpy.time.Time.from_msg``, and ``spvla-bringup`` then stopped
the whole graph.
"""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from fake_policy import FakePolicy
from geometry_msgs.msg import TwistStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from spvla.msg import ActionChunk, GripperCommand, GripperStatus, InferenceRequest

from spvla_ros.core.stamps import NS_PER_S
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.gripper_node import GripperNode
from spvla_ros.nodes.policy_node import PolicyNode
from spvla_ros.nodes.safety_node import SafetyNode

HOSTILE_STAMPS = (
    (-1, 0), (4_102_444_800 - 2**32, 0), (0, 2**32 - 1), (-(2**31), 0), (2**31 - 1, 2**32 - 1), (-(2**31), 2**32 - 1),
)
FRAME = "fr3_link0"


def _stamped(msg, sec: int, nanosec: int, frame_id: str = FRAME):
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    msg.header.frame_id = frame_id
    return msg


def test_hostile_headers_kill_nothing_and_the_graph_keeps_running(graph) -> None:
    safety = graph.add(SafetyNode(context=graph.context, parameter_overrides=[
        Parameter("workspace_requires_pose", value=False), Parameter("dry_run", value=False)]))
    policy_node = graph.add(PolicyNode(policy=FakePolicy(), context=graph.context))
    gripper = graph.add(GripperNode(context=graph.context))
    peer = graph.add(rclpy.create_node("hostile_peer", context=graph.context))
    pubs = {
        "twist": peer.create_publisher(TwistStamped, topics.CMD_TWIST, qos.COMMAND_QOS),
        "gripper": peer.create_publisher(GripperCommand, topics.GRIPPER_COMMAND, qos.GRIPPER_QOS),
        "safe_gripper": peer.create_publisher(GripperCommand, topics.SAFE_GRIPPER_COMMAND, qos.GRIPPER_QOS),
        "image": peer.create_publisher(Image, topics.IMAGE, qos.IMAGE_QOS),
        "compressed": peer.create_publisher(CompressedImage, topics.IMAGE_COMPRESSED, qos.IMAGE_QOS),
        "request": peer.create_publisher(InferenceRequest, topics.INFERENCE_REQUEST, qos.REQUEST_QOS),
    }
    try:
        from franka_msgs.msg import FrankaRobotState
    except ImportError:
        FrankaRobotState = None
    if FrankaRobotState is not None:
        pubs["state"] = peer.create_publisher(FrankaRobotState, topics.ROBOT_STATE, qos.STATUS_QOS)
    safe, chunks, gripper_status = [], [], []
    peer.create_subscription(TwistStamped, topics.SAFE_TWIST, safe.append, qos.COMMAND_QOS)
    peer.create_subscription(ActionChunk, topics.ACTION_CHUNK, chunks.append, qos.CHUNK_QOS)
    peer.create_subscription(GripperStatus, topics.GRIPPER_STATUS, gripper_status.append, qos.STATUS_QOS)
    assert graph.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()))
    policy_node._instruction = "pick up the cup"

    for sec, nanosec in HOSTILE_STAMPS:
        twist = _stamped(TwistStamped(), sec, nanosec)
        twist.twist.linear.x = 0.4
        pubs["twist"].publish(twist)
        pubs["gripper"].publish(_stamped(GripperCommand(state="closed"), sec, nanosec))
        pubs["safe_gripper"].publish(_stamped(GripperCommand(state="bogus\x00" * 20), sec, nanosec, "x" * 300))
        pubs["image"].publish(_stamped(Image(height=2**31, width=2**31, encoding="rgb8", step=1,
                                             data=b"\xff" * 1024), sec, nanosec))
        pubs["compressed"].publish(_stamped(CompressedImage(format="jpeg", data=b""), sec, nanosec))
        pubs["request"].publish(_stamped(InferenceRequest(request_id=2**64 - 1, speed=float("nan")), sec, nanosec))
        if FrankaRobotState is not None:
            state = _stamped(FrankaRobotState(robot_mode=255), sec, nanosec)
            state.o_t_ee.pose.position.x = float("nan")
            pubs["state"].publish(state)
        graph.spin_for(0.05)
    graph.spin_for(0.3)

    snap = safety.layer.snapshot(0.0)
    assert snap.counters["drop_stale_stamp"] + snap.counters["drop_future_stamp"] >= len(HOSTILE_STAMPS) - 1
    assert not any(abs(m.twist.linear.x - 0.4) < 1e-9 for m in safe), "a hostile command passed"
    if FrankaRobotState is not None:
        assert snap.counters["drop_bad_pose"] == len(HOSTILE_STAMPS)  # NaN pose ignored, never used
    assert chunks == []

    # The graph still works: a valid frame and request give a chunk; a valid gripper command is handled.
    now_ns = peer.get_clock().now().nanoseconds
    sec, nanosec = now_ns // NS_PER_S, now_ns % NS_PER_S
    px = np.zeros((4, 6, 3), np.uint8)
    pubs["image"].publish(_stamped(Image(height=4, width=6, encoding="rgb8", step=18, data=px.tobytes()),
                                   sec, nanosec))
    graph.spin_for(0.05)
    pubs["request"].publish(_stamped(InferenceRequest(request_id=1, speed=0.0), sec, nanosec))
    assert graph.spin_until(lambda: len(chunks) == 1), (policy_node.drops.as_lists(), policy_node._frame.header,
                                                        policy_node._waiting)
    pubs["safe_gripper"].publish(_stamped(GripperCommand(state="open"), sec, nanosec))
    assert graph.spin_until(lambda: any(s.sent >= 1 for s in gripper_status))
    if FrankaRobotState is None:
        twist = _stamped(TwistStamped(), sec, nanosec)
        twist.twist.linear.x = 0.1
        pubs["twist"].publish(twist)
        assert graph.spin_until(lambda: safe and safe[-1].twist.linear.x > 0.0)
    assert gripper.commander.counts.sent >= 1


@pytest.mark.parametrize("stamp", HOSTILE_STAMPS)
def test_stamp_helpers_never_raise(stamp) -> None:
    from spvla_ros.core.stamps import stamp_refusal, stamp_to_ns

    ns = stamp_to_ns(Time(sec=stamp[0], nanosec=stamp[1]))
    stamp_refusal(ns, 0, 0.05, 0.5)  # any int gives a reason or None


def test_hostile_chunks_and_clocks_kill_nothing_in_the_scheduler(graph) -> None:
    """The scheduler's inputs (after the issue-19 merge): ActionChunk with every hostile stamp and garbage
    data, and /clock with hostile stamps on sim time; the stream keeps going, finite, and drops are counted."""
    import array

    from rosgraph_msgs.msg import Clock
    from spvla.msg import SchedulerStatus

    from spvla_ros.nodes.scheduler_node import SchedulerNode

    wall = graph.add(SchedulerNode(context=graph.context))
    peer = graph.add(rclpy.create_node("hostile_peer", context=graph.context))
    chunk_pub = peer.create_publisher(ActionChunk, topics.ACTION_CHUNK, qos.CHUNK_QOS)
    cmds, status = [], []
    peer.create_subscription(TwistStamped, topics.CMD_TWIST, cmds.append, qos.COMMAND_QOS)
    peer.create_subscription(SchedulerStatus, topics.SCHEDULER_STATUS, status.append, qos.STATUS_QOS)
    assert graph.spin_until(lambda: chunk_pub.get_subscription_count() > 0 and len(cmds) > 5)
    good = np.tile([0.01, 0, 0, 0, 0, 0, 1.0], (16, 1)).astype(np.float32).ravel()
    garbage = (
        (16, 7, good), (16, 7, np.full(16 * 7, np.nan, np.float32)), (2**31, 7, good), (0, 0, np.zeros(0, np.float32)),
        (16, 7, np.full(16 * 7, np.float32(3.4e38))),
    )
    for sec, nanosec in HOSTILE_STAMPS:
        for rows, cols, data in garbage:
            chunk = _stamped(ActionChunk(request_id=2**64 - 1, rows=rows, cols=cols, action_rate_hz=float("nan"),
                                         data=array.array("f", data.tobytes()), keep_ratio=float("inf")),
                             sec, nanosec)
            chunk_pub.publish(chunk)
            graph.spin_for(0.01)
    n = len(cmds)
    graph.spin_for(0.3)
    assert len(cmds) > n + 10, "the command stream stopped"
    assert all(np.isfinite([c.twist.linear.x, c.twist.linear.y, c.twist.linear.z, c.twist.angular.x,
                            c.twist.angular.y, c.twist.angular.z]).all() for c in cmds)
    assert graph.spin_until(lambda: status and sum(status[-1].drop_counts) >= len(HOSTILE_STAMPS))
    graph.executor.remove_node(wall)
    wall.destroy_node()
    graph.nodes.remove(wall)

    sim = graph.add(SchedulerNode(context=graph.context, parameter_overrides=[Parameter("use_sim_time", value=True)]))
    clock_pub = peer.create_publisher(Clock, topics.CLOCK, 10)
    assert graph.spin_until(lambda: clock_pub.get_subscription_count() > 0)
    for sec, nanosec in HOSTILE_STAMPS:
        clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
        graph.spin_for(0.02)
    now = 1_000 * NS_PER_S
    clock_pub.publish(Clock(clock=Time(sec=now // NS_PER_S)))
    assert graph.spin_until(lambda: sim.core.processed_until_ns == now)  # still following /clock


def test_a_clock_before_the_epoch_kills_no_node_on_sim_time(graph) -> None:
    """Under ``use_sim_time`` rclpy's TimeSource calls ``Time.from_msg`` on every /clock message, which raised
    on a negative ``sec`` and ended the safety, policy and gripper nodes (only the scheduler was guarded).
    Every node now skips such a message and keeps following the valid clock."""
    from rosgraph_msgs.msg import Clock

    sim = [Parameter("use_sim_time", value=True)]
    nodes = [
        graph.add(SafetyNode(context=graph.context, parameter_overrides=[*sim,
                  Parameter("workspace_requires_pose", value=False)])),
        graph.add(PolicyNode(policy=FakePolicy(), context=graph.context, parameter_overrides=sim)),
        graph.add(GripperNode(context=graph.context, parameter_overrides=sim)),
    ]
    peer = graph.add(rclpy.create_node("hostile_clock", context=graph.context))
    clock_pub = peer.create_publisher(Clock, topics.CLOCK, 10)
    assert graph.spin_until(lambda: clock_pub.get_subscription_count() >= len(nodes))
    for sec, nanosec in HOSTILE_STAMPS:
        clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
        graph.spin_for(0.02)
    now = 2_000 * NS_PER_S
    clock_pub.publish(Clock(clock=Time(sec=now // NS_PER_S)))
    assert graph.spin_until(lambda: all(n.get_clock().now().nanoseconds == now for n in nodes))
