"""Publish a rosbag2 into a live graph: in real time, or step by step (deterministic).

Start: the player first waits (bounded) until the policy node reports ``ready`` on its latched
``/spvla/policy_status`` (loading CogACT takes 15-60 s on a loaded CPU box, longer for a 7B checkpoint),
then until the camera topic has a subscriber: frames sent before the model can answer are lost.

* **real time** (default): messages go out at their recorded spacing (``rate`` x). Header stamps are
  rewritten to the wall clock at publish time (``restamp``), because the graph runs on the wall clock;
  ``clock_hz > 0`` instead keeps the bag stamps and publishes ``/clock`` (run the graph with
  ``use_sim_time``).
* **step** (``--step``): the graph runs on ``/clock`` (``use_sim_time: true``) and time only moves when
  the player says so. For each frame at bag time ``t``: publish the messages stamped ``t``, wait
  ``settle_s`` (delivery of the frame), publish ``/clock = t``, then wait until the scheduler reports a
  status stamped ``>= t`` with no inference pending (the policy has answered). Every input the scheduler
  sees, and when it sees it, is then a function of the bag only, so two replays give identical
  command streams, however slow the model or the machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock
from spvla.msg import PolicyStatus, SchedulerStatus

from spvla_ros.bag.bag_qos import topic_qos
from spvla_ros.bag.typestore import rclpy_type
from spvla_ros.core.stamps import NS_PER_S, stamp_to_ns
from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.time_msg import ns_to_time

POLL_S = 0.002
CLOCK_RESEND_S = 0.5
READY_LOG_PERIOD_S = 5.0
"""While waiting for the policy, say so this often, s."""


@dataclass(frozen=True, slots=True)
class BagMessage:
    topic: str
    msgtype: str
    stamp_ns: int
    raw: bytes


def read_bag(path: str | Path, topic_filter: set[str] | None = None) -> list[BagMessage]:
    """Every message of the bag (optionally of some topics), in time order."""
    out = []
    with Reader(Path(path)) as reader:
        conns = [c for c in reader.connections if topic_filter is None or c.topic in topic_filter]
        for conn, stamp, raw in reader.messages(connections=conns):
            out.append(BagMessage(conn.topic, conn.msgtype, int(stamp), bytes(raw)))
    out.sort(key=lambda m: m.stamp_ns)
    return out


class BagPlayer(Node):
    """Publishes the messages of one bag; see the module docstring for the modes."""

    def __init__(self, messages: list[BagMessage], **node_kwargs) -> None:
        super().__init__("spvla_bag_player", **node_kwargs)
        if not messages:
            raise ValueError("the bag has no messages to play")
        self._messages = messages
        self._types = {m.topic: rclpy_type(m.msgtype) for m in messages}
        self._pubs = {t: self.create_publisher(cls, t, topic_qos(t)) for t, cls in self._types.items()}
        self._clock_pub = self.create_publisher(Clock, topics.CLOCK, 10)
        self._last_status: SchedulerStatus | None = None
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(SchedulerStatus, topics.SCHEDULER_STATUS, self._on_status, reliable)
        self.policy_status: PolicyStatus | None = None
        self.create_subscription(PolicyStatus, topics.POLICY_STATUS, self._on_policy_status, qos.POLICY_STATUS_QOS)
        self.published = 0

    def _on_status(self, msg: SchedulerStatus) -> None:
        self._last_status = msg

    def _on_policy_status(self, msg: PolicyStatus) -> None:
        self.policy_status = msg

    @property
    def policy_ready(self) -> bool:
        """The policy node's newest (latched) status says it serves inference requests."""
        return self.policy_status is not None and self.policy_status.ready

    def wait_for_policy_ready(self, timeout_s: float) -> bool:
        """Bounded wait until the policy node reports ready; logs progress every ``READY_LOG_PERIOD_S``.

        Returns:
            True when ready, False after ``timeout_s`` (wall time, s) without a ready status.
        """
        start = time.monotonic()
        next_log = start + READY_LOG_PERIOD_S
        while not self.policy_ready:
            now = time.monotonic()
            if now - start >= timeout_s:
                return False
            if now >= next_log:
                next_log += READY_LOG_PERIOD_S
                self.get_logger().info(f"waiting for the policy to be ready ({topics.POLICY_STATUS}): "
                                       f"{now - start:.0f} s of at most {timeout_s:g} s")
            self._spin(0.05)
        self.get_logger().info(f"policy ready after {time.monotonic() - start:.1f} s "
                               f"({self.policy_status.preset} on {self.policy_status.device})")
        return True

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds`` (wall time)."""
        self._spin(seconds)

    def _spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            rclpy.spin_once(self, timeout_sec=0.0)
            if time.monotonic() >= end:
                return
            time.sleep(POLL_S)

    def wait_for_subscribers(self, topic: str, timeout_s: float, count: int = 1) -> bool:
        """Bounded wait until ``topic`` has ``count`` subscribers (volatile topics lose what is sent before)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.count_subscribers(topic) >= count:
                return True
            self._spin(0.05)
        return self.count_subscribers(topic) >= count

    def _publish(self, m: BagMessage, restamp_ns: int | None) -> None:
        if restamp_ns is None:
            self._pubs[m.topic].publish(m.raw)  # serialized bytes as recorded
        else:
            msg = deserialize_message(m.raw, self._types[m.topic])
            if hasattr(msg, "header"):
                msg.header.stamp = ns_to_time(restamp_ns)
            self._pubs[m.topic].publish(msg)
        self.published += 1

    def play_realtime(self, rate: float = 1.0, clock_hz: float = 0.0, loops: int = 1) -> None:
        """Publish at the recorded spacing divided by ``rate``; ``clock_hz > 0``: bag stamps + /clock."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        t_first = self._messages[0].stamp_ns
        span = self._messages[-1].stamp_ns - t_first
        period_ns = self._frame_period_ns()
        for loop in range(loops):
            offset_ns = loop * (span + period_ns)
            start = time.monotonic()
            next_clock = 0.0
            for m in self._messages:
                due = (m.stamp_ns - t_first) / NS_PER_S / rate
                while (now := time.monotonic() - start) < due:
                    if clock_hz > 0 and now >= next_clock:
                        sim_ns = t_first + offset_ns + round(now * rate * NS_PER_S)
                        self._clock_pub.publish(Clock(clock=ns_to_time(sim_ns)))
                        next_clock += 1.0 / clock_hz
                    rclpy.spin_once(self, timeout_sec=0.0)
                    time.sleep(min(POLL_S, max(0.0, due - now)))
                if clock_hz > 0:
                    self._publish(m, None if loop == 0 else m.stamp_ns + offset_ns)
                else:
                    self._publish(m, self.get_clock().now().nanoseconds)

    def _frame_period_ns(self) -> int:
        stamps = sorted({m.stamp_ns for m in self._messages if m.topic in (topics.IMAGE, topics.IMAGE_COMPRESSED)})
        return stamps[1] - stamps[0] if len(stamps) > 1 else NS_PER_S // 10

    def play_steps(self, settle_s: float = 0.02, ack_timeout_s: float = 10.0, extra_steps: int = 1) -> int:
        """Deterministic replay (see the module docstring). Returns the number of clock steps.

        Raises:
            TimeoutError: the scheduler did not acknowledge a step within ``ack_timeout_s``.
        """
        groups: dict[int, list[BagMessage]] = {}
        for m in self._messages:
            groups.setdefault(m.stamp_ns, []).append(m)
        stamps = sorted(groups)
        period = self._frame_period_ns()
        stamps += [stamps[-1] + period * (i + 1) for i in range(extra_steps)]
        for t_ns in stamps:
            for m in groups.get(t_ns, []):
                self._publish(m, None)
            self._spin(settle_s)
            self._wait_ack(t_ns, ack_timeout_s, groups.get(t_ns, []))
        return len(stamps)

    def _wait_ack(self, t_ns: int, timeout_s: float, messages: list[BagMessage]) -> None:
        """Publish ``/clock = t`` and wait for the scheduler's acknowledgement. While waiting, the clock and
        this step's messages are re-sent every ``CLOCK_RESEND_S``: a best-effort frame or the first clock can
        be lost to discovery, and repeating them changes nothing in the graph (the stream only advances to
        times it has not reached; the policy keeps the newest frame by stamp)."""
        end = time.monotonic() + timeout_s
        resend = 0.0
        first = True
        while time.monotonic() < end:
            if time.monotonic() >= resend:
                if not first:
                    for m in messages:
                        self._publish(m, None)
                    self._spin(POLL_S)
                first = False
                self._clock_pub.publish(Clock(clock=ns_to_time(t_ns)))
                resend = time.monotonic() + CLOCK_RESEND_S
            rclpy.spin_once(self, timeout_sec=POLL_S)
            s = self._last_status
            if s is not None and stamp_to_ns(s.header.stamp) >= t_ns \
                    and not s.inference_pending:
                return
        raise TimeoutError(
            f"no scheduler status at t={t_ns / NS_PER_S:.3f} s without a pending inference within {timeout_s} s "
            "(is the graph running with use_sim_time:=true?)"
        )
