"""Counts of refused inputs by reason, and their rate-limited log lines, for the nodes (ROS-free).

A node that drops an input (a chunk with a bad stamp, a frame in a wrong encoding, ...) counts it here
under a short reason name and logs it at most once per :data:`DROP_LOG_PERIOD_S` *per reason* (a flood of
one reason never hides the first line of another); the status message carries the counts as parallel
arrays (``drop_names``, ``drop_counts``), so an operator sees why the arm is not moving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DROP_LOG_PERIOD_S = 1.0
"""At most one log line per reason per this period, s (every refusal is counted regardless)."""


class LogGate:
    """Thread-safe "may this key log now?": at most once per ``period_s`` per key, on a monotonic clock."""

    def __init__(self, period_s: float = DROP_LOG_PERIOD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_s: dict[str, float] = {}

    def due(self, key: str) -> bool:
        """True (and the key's period restarts) when ``key`` last logged ``period_s`` ago or never."""
        now = self._clock()
        with self._lock:
            last = self._last_s.get(key)
            if last is not None and now - last < self._period_s:
                return False
            self._last_s[key] = now
            return True


class DropCounts:
    """Thread-safe ``reason -> count`` since start, in first-seen order, with a per-reason log gate."""

    def __init__(self, reasons: tuple[str, ...] = (), log_gate: LogGate | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(reasons, 0)
        self._log_gate = log_gate or LogGate()

    def count(self, reason: str) -> int:
        """Add one drop for ``reason``; returns the new count for it."""
        with self._lock:
            n = self._counts.get(reason, 0) + 1
            self._counts[reason] = n
            return n

    def report(self, reason: str, message: str, log: Callable[[str], object]) -> int:
        """Count one drop for ``reason`` and pass ``"<message> [<reason>: <n> so far]"`` to ``log`` unless this
        reason logged less than the gate's period ago. Returns the new count."""
        n = self.count(reason)
        if self._log_gate.due(reason):
            log(f"{message} [{reason}: {n} so far]")
        return n

    def get(self, reason: str) -> int:
        with self._lock:
            return self._counts.get(reason, 0)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def as_lists(self) -> tuple[list[str], list[int]]:
        """``(names, counts)`` for a status message's parallel arrays."""
        with self._lock:
            return list(self._counts), list(self._counts.values())
