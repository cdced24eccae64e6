"""Counts of refused inputs by reason, for the nodes' status messages (ROS-free).

A node that drops an input (a chunk with a bad stamp, a frame in a wrong encoding, ...) counts it here
under a short reason name and logs it rate-limited; the status message carries the counts as parallel
arrays (``drop_names``, ``drop_counts``), so an operator sees why the arm is not moving.
"""

from __future__ import annotations

import threading


class DropCounts:
    """Thread-safe ``reason -> count`` since start, in first-seen order."""

    def __init__(self, reasons: tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(reasons, 0)

    def count(self, reason: str) -> int:
        """Add one drop for ``reason``; returns the new count for it."""
        with self._lock:
            n = self._counts.get(reason, 0) + 1
            self._counts[reason] = n
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
