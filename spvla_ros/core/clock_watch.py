"""Jumps of a clock that should advance with a steady one (ROS system time against CLOCK_MONOTONIC; ROS-free).

The scheduler node streams in ROS time (its stamps are compared with the safety node's ROS clock, its chunk
rows with camera stamps), but its timer runs on the steady clock. Between two timer callbacks both clocks
should advance by the same amount; when the realtime clock is stepped (NTP, an operator setting the date,
a VM resumed) they differ by the step. Slewing (NTP's gradual correction, at most 500 ppm) never adds up to
a jump because each check compares only with the previous one.
"""

from __future__ import annotations

from spvla_ros.core.stamps import NS_PER_S


class ClockWatch:
    """Compare the advance of ``clock`` with the advance of ``steady`` between calls of :meth:`check`."""

    def __init__(self, threshold_s: float) -> None:
        """``threshold_s``: a difference larger than this is a jump, s, > 0."""
        if not threshold_s > 0:
            raise ValueError(f"threshold_s must be > 0, got {threshold_s}")
        self.threshold_ns = round(threshold_s * NS_PER_S)
        self._last: tuple[int, int] | None = None

    def check(self, steady_ns: int, clock_ns: int) -> int:
        """The jump of ``clock`` since the previous call, ns (positive: forward), or 0 when within the threshold."""
        last, self._last = self._last, (steady_ns, clock_ns)
        if last is None:
            return 0
        jump = (clock_ns - last[1]) - (steady_ns - last[0])
        return jump if abs(jump) > self.threshold_ns else 0
