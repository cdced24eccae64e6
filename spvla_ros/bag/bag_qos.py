"""QoS in spvla bags: ``offered_qos_profiles`` of the rosbag2 metadata, and the profiles topics are played with.

``ros2 bag play`` on a ROS install publishes every topic with a profile adapted from the offers the bag
records for it; with none it falls back to reliable + volatile. That default breaks spvla topics: the
nodes subscribe the instruction (and the policy status) transient local, which a volatile publisher
cannot serve, so a replayed instruction would never arrive. Hence every spvla bag records the offers:

* ``spvla-bag make-bag`` writes, per topic, the profile the spvla nodes use for it (:data:`TOPIC_QOS`,
  built from :mod:`spvla_ros.nodes.qos`);
* ``spvla-bag record`` writes what the recorded topic's publishers offered (from graph discovery, as
  ``ros2 bag record`` does: depth and history are not discoverable and read ``0`` / ``unknown`` there).

Durations use rosbag2's encoding: infinite is ``{sec: 2147483647, nsec: 4294967295}``.
"""

from __future__ import annotations

from rclpy.duration import Duration, Infinite
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from spvla_ros.core.stamps import ns_to_sec_nanosec
from spvla_ros.nodes import qos, topics

INFINITE_BAG_TIME = QosTime(sec=2147483647, nsec=4294967295)
"""rosbag2's (rmw's) encoding of an infinite duration."""
CLOCK_QOS = QoSProfile(depth=10)
"""``/clock`` as the player publishes it (reliable, volatile, keep last 10)."""

TOPIC_QOS: dict[str, QoSProfile] = {
    topics.IMAGE: qos.IMAGE_QOS,
    topics.IMAGE_COMPRESSED: qos.IMAGE_QOS,
    topics.INSTRUCTION: qos.INSTRUCTION_QOS,
    topics.POLICY_STATUS: qos.POLICY_STATUS_QOS,
    topics.INFERENCE_REQUEST: qos.REQUEST_QOS,
    topics.ACTION_CHUNK: qos.CHUNK_QOS,
    topics.CMD_TWIST: qos.COMMAND_QOS,
    topics.SAFE_TWIST: qos.COMMAND_QOS,
    topics.ESTOP: qos.COMMAND_QOS,
    topics.GRIPPER_COMMAND: qos.GRIPPER_QOS,
    topics.SAFE_GRIPPER_COMMAND: qos.GRIPPER_QOS,
    topics.SCHEDULER_STATUS: qos.STATUS_QOS,
    topics.SAFETY_STATUS: qos.STATUS_QOS,
    topics.GRIPPER_STATUS: qos.STATUS_QOS,
    topics.RECORDED_ACTION: qos.STATUS_QOS,
    topics.CLOCK: CLOCK_QOS,
}
"""The profile spvla publishes (and subscribes) each of its topics with."""


def topic_qos(topic: str) -> QoSProfile:
    """The spvla nodes' profile for ``topic``; status QoS (reliable, volatile, keep last 10) for others."""
    return TOPIC_QOS.get(topic, qos.STATUS_QOS)


def _bag_time(duration: Duration) -> QosTime:
    ns = duration.nanoseconds
    if ns >= Infinite.nanoseconds:  # what discovery reports for "no deadline"
        return INFINITE_BAG_TIME
    sec, nanosec = ns_to_sec_nanosec(ns)
    return QosTime(sec=sec, nsec=nanosec)


def bag_qos(profile: QoSProfile) -> Qos:
    """``profile`` as a rosbags ``Qos`` (one entry of ``offered_qos_profiles``)."""
    return Qos(
        history=QosHistory(int(profile.history)),
        depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability)),
        durability=QosDurability(int(profile.durability)),
        deadline=_bag_time(profile.deadline),
        lifespan=_bag_time(profile.lifespan),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=_bag_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def subscription_qos(offers: list[QoSProfile], depth: int) -> QoSProfile:
    """A profile that receives from every offer: best effort if any publisher is, transient local only if
    all are (then the latched sample is recorded too), keep last ``depth``."""
    best_effort = any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in offers)
    latched = bool(offers) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offers)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        liveliness=LivelinessPolicy.SYSTEM_DEFAULT,
    )
