"""Record topics of a live graph into a rosbag2 (mcap by default), the raw CDR bytes as received.

Types come from the graph (the topic must have a publisher; a bounded wait covers start-up); the QoS
matches the publishers' (best effort for camera topics, reliable otherwise; transient local when every
publisher is, so a latched sample is recorded too) so nothing is refused, and the publishers' offered
profiles go into the metadata (``offered_qos_profiles``, see :mod:`spvla_ros.bag.bag_qos`) so that
``ros2 bag play`` replays each topic with them. Receive time (the node's clock) is the bag time; message
stamps stay as published.
"""

from __future__ import annotations

import time
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rosbags.rosbag2 import Writer

from spvla_ros.bag.bag_qos import bag_qos, subscription_qos
from spvla_ros.bag.make_bag import STORAGES
from spvla_ros.bag.typestore import rclpy_type, spvla_typestore

RECORD_DEPTH = 1000


class BagRecorder(Node):
    """Subscribes ``topic_names`` as soon as they appear and writes every message to ``out``."""

    def __init__(self, out: str | Path, topic_names: list[str], storage: str = "mcap", **node_kwargs) -> None:
        super().__init__("spvla_bag_recorder", **node_kwargs)
        self._store = spvla_typestore()
        self._writer = Writer(Path(out), version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._wanted = list(topic_names)
        self._conns: dict[str, object] = {}
        self.counts: dict[str, int] = dict.fromkeys(topic_names, 0)
        self._closed = False
        self._discover()
        self._timer = self.create_timer(0.1, self._discover)

    def _discover(self) -> None:
        known = dict(self.get_topic_names_and_types())
        for topic in self._wanted:
            if topic in self._conns or topic not in known:
                continue
            msgtype = known[topic][0]
            offers = [p.qos_profile for p in self.get_publishers_info_by_topic(topic)]
            if not offers:
                continue  # the type is known but the publisher is gone again: try later
            self._conns[topic] = self._writer.add_connection(
                topic, msgtype, typestore=self._store, offered_qos_profiles=[bag_qos(p) for p in offers])
            self.create_subscription(rclpy_type(msgtype), topic, lambda raw, t=topic: self._on_msg(t, raw),
                                     subscription_qos(offers, RECORD_DEPTH), raw=True)

    @property
    def all_subscribed(self) -> bool:
        return len(self._conns) == len(self._wanted)

    def _on_msg(self, topic: str, raw: bytes) -> None:
        if self._closed:
            return
        self._writer.write(self._conns[topic], self.get_clock().now().nanoseconds, raw)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag (mcap index, metadata.yaml); safe to call twice."""
        if not self._closed:
            self._closed = True
            self._writer.close()


def record(out: str | Path, topic_names: list[str], duration_s: float | None, storage: str = "mcap") -> dict:
    """Record until ``duration_s`` passes (None: until Ctrl-C / SIGTERM); returns message counts per topic."""
    import signal

    rclpy.init()
    node = BagRecorder(out, topic_names, storage)
    stop = {"flag": False}

    def _stop(*_):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while not stop["flag"] and (end is None or time.monotonic() < end):
            rclpy.spin_once(node, timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        counts = dict(node.counts)
        node.destroy_node()
        rclpy.try_shutdown()
    return counts
