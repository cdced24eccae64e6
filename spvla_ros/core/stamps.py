"""Header stamps of untrusted messages as integer nanoseconds, checked against a clock (ROS-free).

A ``builtin_interfaces/Time`` can hold anything a publisher puts there: ``sec`` is int32, so a negative
second or a year-2100 stamp (which wraps negative in int32) arrives as is. rclpy's ``Time.from_msg``
raises ``ValueError`` on a negative ``sec``; nothing here raises on any header value. Every node that
compares a stamp with its clock goes through :func:`stamp_refusal`, so "too old" and "in the future"
mean the same thing in every node.
"""

from __future__ import annotations

import math

NS_PER_S = 1_000_000_000

REFUSE_NEGATIVE_STAMP = "negative_stamp"
REFUSE_FUTURE_STAMP = "future_stamp"
REFUSE_STALE_STAMP = "stale_stamp"


def stamp_to_ns(stamp: object) -> int:
    """``sec * 1e9 + nanosec`` of a ``builtin_interfaces/Time``-like object, as an int; never raises for ints.

    A negative ``sec`` gives a negative result (refused by :func:`stamp_refusal`), not an exception.
    """
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_sec_nanosec(ns: int) -> tuple[int, int]:
    """``(sec, nanosec)`` for a ``builtin_interfaces/Time`` (floor division: nanosec in [0, 1e9))."""
    ns = int(ns)
    return ns // NS_PER_S, ns % NS_PER_S


def stamp_refusal(stamp_ns: int, now_ns: int, max_future_s: float, max_age_s: float | None = None) -> str | None:
    """Why a stamp must not be used at ``now_ns``, or ``None`` when it may.

    Args:
        stamp_ns: the message's header stamp, ns (any int, :func:`stamp_to_ns`).
        now_ns: the receiving node's clock, ns, the same clock as the stamps (ROS time or sim time).
        max_future_s: tolerance for stamps ahead of ``now_ns``, s, >= 0 (clock offset between hosts).
        max_age_s: stamps older than this are stale, s; ``None`` = no age limit.

    Returns:
        ``"negative_stamp"`` (before the epoch: an int32 wrap or garbage), ``"future_stamp"``,
        ``"stale_stamp"`` or ``None``.
    """
    if stamp_ns < 0:
        return REFUSE_NEGATIVE_STAMP
    if not math.isfinite(max_future_s) or max_future_s < 0:
        raise ValueError(f"max_future_s must be finite and >= 0, got {max_future_s}")
    if stamp_ns - now_ns > max_future_s * NS_PER_S:
        return REFUSE_FUTURE_STAMP
    if max_age_s is not None and now_ns - stamp_ns > max_age_s * NS_PER_S:
        return REFUSE_STALE_STAMP
    return None
