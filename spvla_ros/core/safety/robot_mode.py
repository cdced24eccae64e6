"""FR3 robot mode (the values of ``franka_msgs/FrankaRobotState.robot_mode`` and libfranka's RobotMode)
and the latch that stops commanding after a reflex, a user stop or any error flag."""

from __future__ import annotations

from enum import IntEnum


class RobotMode(IntEnum):
    """``FrankaRobotState.ROBOT_MODE_*`` (same order as ``franka::RobotMode``)."""

    OTHER = 0
    IDLE = 1
    MOVE = 2
    GUIDING = 3
    REFLEX = 4
    USER_STOPPED = 5
    AUTOMATIC_ERROR_RECOVERY = 6


FAULT_MODES = frozenset({RobotMode.REFLEX, RobotMode.USER_STOPPED})
"""Modes after which the robot has stopped by itself and must be recovered explicitly."""


class RobotFaultLatch:
    """Latches a robot fault until an explicit :meth:`recover` (never cleared by the robot state alone).

    A fault is a mode in :data:`FAULT_MODES` or any ``current_errors`` flag. :meth:`recover` succeeds only
    once the latest state is healthy again (the robot's own error recovery ran); otherwise the latch stays.
    """

    def __init__(self) -> None:
        self.latched = False
        self.reason = ""
        self._healthy_now = True

    def update(self, mode: RobotMode, error_names: tuple[str, ...]) -> bool:
        """Feed the latest robot state; returns True when this update latched a new fault."""
        faulty = mode in FAULT_MODES or bool(error_names)
        self._healthy_now = not faulty
        if faulty and not self.latched:
            self.latched = True
            self.reason = f"robot mode {mode.name}" + (f", errors {list(error_names)}" if error_names else "")
            return True
        return False

    def recover(self) -> bool:
        """Clear the latch if the latest robot state is healthy; returns whether it is clear now."""
        if self._healthy_now:
            self.latched = False
            self.reason = ""
        return not self.latched
