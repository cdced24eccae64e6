"""A ``/clock`` before the epoch must not end a node (sim time): rclpy's TimeSource raises on it.

With ``use_sim_time`` rclpy subscribes ``/clock`` for every node and calls ``Time.from_msg`` on each message,
which raises ``ValueError`` on a negative ``sec`` (garbage, or a year-2100 stamp wrapped in int32); the
exception leaves the executor and ends the node. :func:`guard_time_source` swaps in a TimeSource that skips
such a message (the node's clock keeps its last valid time; the node counts the message itself).
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.time_source import TimeSource
from rosgraph_msgs.msg import Clock

from spvla_ros.core.stamps import stamp_to_ns


class GuardedTimeSource(TimeSource):
    """rclpy's TimeSource, except that a ``/clock`` message before the epoch is ignored instead of raising."""

    def clock_callback(self, msg: Clock) -> None:
        if stamp_to_ns(msg.clock) >= 0:
            super().clock_callback(msg)


def guard_time_source(node: Node) -> None:
    """Replace the node's TimeSource (created by ``Node.__init__``) with a :class:`GuardedTimeSource`."""
    old = node._time_source  # noqa: SLF001 - rclpy offers no public way to choose the time source
    old.detach_node()
    node._time_source = GuardedTimeSource(node=node)  # noqa: SLF001
    node._time_source.attach_clock(node.get_clock())  # noqa: SLF001
