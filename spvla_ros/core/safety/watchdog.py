"""Command watchdog: is the newest accepted command still fresh?"""

from __future__ import annotations

import math


class CommandWatchdog:
    """Tracks the arrival time of the newest accepted command.

    A command is stale when none arrived within ``timeout_s`` (s), or none ever arrived. Times are
    seconds on one monotonic clock, supplied by the caller (no clock is read here).
    """

    def __init__(self, timeout_s: float) -> None:
        if not math.isfinite(timeout_s) or timeout_s <= 0.0:
            raise ValueError(f"timeout_s must be finite and > 0, got {timeout_s}")
        self.timeout_s = timeout_s
        self._last_feed_s: float | None = None

    def feed(self, now_s: float) -> None:
        """Record that a valid command arrived at ``now_s``."""
        self._last_feed_s = now_s

    def clear(self) -> None:
        """Forget the last command (after a stop, a new command is needed before moving again)."""
        self._last_feed_s = None

    def is_stale(self, now_s: float) -> bool:
        """True if no command arrived within ``timeout_s`` before ``now_s`` (or ever)."""
        return self._last_feed_s is None or now_s - self._last_feed_s > self.timeout_s

    def age_s(self, now_s: float) -> float:
        """Seconds since the last command, ``inf`` if none."""
        return math.inf if self._last_feed_s is None else now_s - self._last_feed_s
