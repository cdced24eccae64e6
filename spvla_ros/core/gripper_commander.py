"""Franka Hand goals and their bookkeeping: what to send for a state, what is in flight, what came back.

ROS-free and clock-free (times are passed in, seconds): the gripper node's backends (franka_ros2 action
clients, pylibfranka) send the goals this module builds and report results and timeouts back to it.

Goals (Franka Hand semantics, shared by franka_ros2's ``franka_msgs/action/Move``/``Grasp`` and libfranka):

* *open*  -> ``move(open_width_m, speed_mps)``;
* *closed* -> ``grasp(grasp_width_m, speed_mps, force_n, epsilon_inner_m, epsilon_outer_m)``: with the
  default ``grasp_width_m = 0`` and ``epsilon_outer_m = 0.08`` any object between the fingers counts as a
  successful grasp.

One goal is in flight at a time. A new state while one is in flight preempts it (the backend cancels or
stops the old one; its late result is ignored). A goal without a result ``action_timeout_s`` after it was
sent is declared timed out; the hand state is then unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spvla_ros.core.gripper import GripperConfig, GripperState

MOVE = "move"
GRASP = "grasp"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class GripperGoal:
    """One Franka Hand goal.

    Attributes:
        goal_id: increasing id (results are matched on it).
        target: the hand state this goal reaches.
        kind: ``move`` or ``grasp``.
        width_m: target width [m].
        speed_mps: finger speed [m/s].
        force_n: grasp force [N] (grasp only).
        epsilon_inner_m, epsilon_outer_m: grasp tolerances [m] (grasp only).
        sent_s: time it was sent [s].
    """

    goal_id: int
    target: GripperState
    kind: str
    width_m: float
    speed_mps: float
    force_n: float
    epsilon_inner_m: float
    epsilon_outer_m: float
    sent_s: float


@dataclass
class GripperCounts:
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    preempted: int = 0


class GripperCommander:
    """Builds goals for requested states and tracks the one in flight (see the module docstring)."""

    def __init__(self, config: GripperConfig | None = None) -> None:
        self.config = config or GripperConfig()
        self.counts = GripperCounts()
        self.state: str = UNKNOWN
        self.in_flight: GripperGoal | None = None
        self.last_target: GripperState | None = None
        self.last_result = ""
        self.width_m = math.nan
        self._next_id = 1

    def request(self, target: GripperState, now_s: float) -> tuple[GripperGoal | None, GripperGoal | None]:
        """Ask for ``target``. Returns (goal to send or None, goal to cancel or None).

        Nothing is sent when ``target`` is already in flight, or already reached and nothing is in flight.
        """
        flying = self.in_flight
        if flying is not None and flying.target == target:
            return None, None
        if flying is None and self.state == target.value:
            return None, None
        preempted = None
        if flying is not None:
            preempted = flying
            self.counts.preempted += 1
            self.last_result = "preempted"
        goal = self._goal(target, now_s)
        self.in_flight = goal
        self.last_target = target
        self.counts.sent += 1
        return goal, preempted

    def _goal(self, target: GripperState, now_s: float) -> GripperGoal:
        c = self.config
        goal_id, self._next_id = self._next_id, self._next_id + 1
        if target == GripperState.OPEN:
            return GripperGoal(goal_id, target, MOVE, c.open_width_m, c.speed_mps, 0.0, 0.0, 0.0, now_s)
        return GripperGoal(goal_id, target, GRASP, c.grasp_width_m, c.speed_mps, c.force_n, c.epsilon_inner_m,
                           c.epsilon_outer_m, now_s)

    def on_result(self, goal_id: int, success: bool, error: str = "", width_m: float | None = None) -> bool:
        """A backend's result for ``goal_id``. Returns False (and changes nothing) when that goal is no
        longer in flight (preempted or timed out before its result came)."""
        flying = self.in_flight
        if flying is None or flying.goal_id != goal_id:
            return False
        self.in_flight = None
        if width_m is not None and math.isfinite(width_m):
            self.width_m = float(width_m)
        if success:
            self.counts.succeeded += 1
            self.state = flying.target.value
            self.last_result = "succeeded"
        else:
            self.counts.failed += 1
            self.state = UNKNOWN
            self.last_result = f"failed: {error or 'no reason given'}"
        return True

    def check_timeout(self, now_s: float) -> GripperGoal | None:
        """Declare the goal in flight timed out if it has had no result for ``action_timeout_s``; returns it
        (the backend cancels it), else None."""
        flying = self.in_flight
        if flying is None or now_s - flying.sent_s < self.config.action_timeout_s:
            return None
        self.in_flight = None
        self.counts.timed_out += 1
        self.state = UNKNOWN
        self.last_result = "timed_out"
        return flying
