"""``builtin_interfaces/Time`` from integer nanoseconds (the inverse of :func:`spvla_ros.core.stamps.stamp_to_ns`)."""

from __future__ import annotations

from builtin_interfaces.msg import Time

from spvla_ros.core.stamps import ns_to_sec_nanosec


def ns_to_time(ns: int) -> Time:
    """The message stamp for ``ns`` nanoseconds (``nanosec`` in [0, 1e9))."""
    sec, nanosec = ns_to_sec_nanosec(ns)
    return Time(sec=sec, nanosec=nanosec)
