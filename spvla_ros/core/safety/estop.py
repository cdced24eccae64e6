"""Software e-stop latch: once engaged, the output ramps to zero and stays there until an explicit reset.

This is a controlled stop (within the deceleration limits) of the command stream, not a replacement for
the robot's hardware emergency stop.
"""

from __future__ import annotations


class EStopLatch:
    """Engaged by any e-stop request; only :meth:`reset` releases it (a 'False' on the topic does not)."""

    def __init__(self) -> None:
        self.engaged = False

    def engage(self) -> bool:
        """Engage; returns True if it was not engaged before."""
        was = self.engaged
        self.engaged = True
        return not was

    def reset(self) -> None:
        """Release the latch (an explicit operator action)."""
        self.engaged = False
