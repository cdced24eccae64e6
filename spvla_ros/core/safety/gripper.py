"""Gripper command debounce: a changed gripper command passes only once it has been held steadily."""

from __future__ import annotations

import math


class GripperDebouncer:
    """Passes a new gripper value only after it was requested unchanged for ``debounce_s`` seconds.

    Values are whatever the gripper command carries (e.g. 1.0 open, 0.0 closed, or a width in m). The
    first value ever requested passes at once. Times are seconds on one monotonic clock.
    """

    def __init__(self, debounce_s: float) -> None:
        if not math.isfinite(debounce_s) or debounce_s < 0.0:
            raise ValueError(f"debounce_s must be finite and >= 0, got {debounce_s}")
        self.debounce_s = debounce_s
        self.sent: float | None = None
        self._pending: float | None = None
        self._pending_since_s = 0.0

    def request(self, value: float, now_s: float) -> float | None:
        """Offer ``value`` at ``now_s``; returns the value to send now, or ``None`` (nothing new to send).

        Raises:
            ValueError: ``value`` is not finite.
        """
        if not math.isfinite(value):
            raise ValueError(f"gripper command must be finite, got {value}")
        if self.sent is None:
            self.sent = value
            return value
        if value == self.sent:
            self._pending = None
            return None
        if value != self._pending:
            self._pending, self._pending_since_s = value, now_s
        if now_s - self._pending_since_s >= self.debounce_s:
            self.sent, self._pending = value, None
            return value
        return None
