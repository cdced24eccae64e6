"""Live one-line status of the graph: VLA Hz, command Hz, action steps by path, keep ratio, safety drops.

Rates are counted over a sliding window of received messages (receive wall time). The action steps are
the newest ``SchedulerStatus`` counters, each path with its share of all steps: ``model`` (a fresh model
action), ``extrap`` (the cheap path) and ``wait`` (no usable action: zero velocity, e.g. while the first
chunk is computed or a model call is late), so a graph that mostly waits cannot look like one that
mostly extrapolates. "dropped" is the safety node's ``drop_*`` intervention counters from its
``SafetyStatus`` (when that message type exists).
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from spvla.msg import ActionChunk, SchedulerStatus

from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.time_source import guard_time_source

RATE_WINDOW_S = 2.0
"""Window of the Hz figures, s."""
SAFETY_DROP_PREFIX = "drop_"
"""SafetyStatus intervention names counted as dropped commands (spvla_ros.core.safety.Intervention)..."""
SAFETY_NOT_DROPS = ("drop_not_armed",)
"""...except holding commands in dry run (every command while disarmed): that is not a rejected command."""


@dataclass
class GraphFigures:
    """What the status line shows (NaN = not known yet)."""

    vla_hz: float
    command_hz: float
    keep_ratio: float
    dropped_by_safety: float
    model_steps: int
    extrapolated_steps: int
    wait_steps: int
    dry_run: bool | None = None

    @property
    def steps(self) -> int:
        """Action steps so far, every path."""
        return self.model_steps + self.extrapolated_steps + self.wait_steps

    def pct(self, count: int) -> float:
        """``count`` as a percentage of all action steps (NaN before the first)."""
        return 100.0 * count / self.steps if self.steps else math.nan

    def line(self) -> str:
        def f(v: float, fmt: str) -> str:
            return "  -  " if not math.isfinite(v) else format(v, fmt)

        paths = " ".join(f"{name} {n} ({f(self.pct(n), '.0f')} %)" for name, n in (
            ("model", self.model_steps), ("extrap", self.extrapolated_steps), ("wait", self.wait_steps)))
        return (
            f"VLA {f(self.vla_hz, '5.2f')} Hz | cmd {f(self.command_hz, '6.1f')} Hz | "
            f"steps {paths} | keep {f(self.keep_ratio, '4.2f')} | "
            f"safety dropped {f(self.dropped_by_safety, '.0f')}"
            + (" (dry run: nothing sent)" if self.dry_run else "")
        )


class RateCounter:
    """Messages per second over the last ``window_s`` (monotonic receive times)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()
        self.total = 0

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)
        self.total += 1

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        return len(self._times) / self.window_s


class GraphMonitor(Node):
    """Subscribes the graph's outputs and keeps :class:`GraphFigures` up to date."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("spvla_monitor", **node_kwargs)
        guard_time_source(self)  # sim time: a /clock before the epoch must not end the node
        self.chunks = RateCounter()
        self.commands = RateCounter()
        self._status: SchedulerStatus | None = None
        self._keep = math.nan
        self._dropped = math.nan
        self._dry_run: bool | None = None
        self.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk, qos.CHUNK_QOS)
        self.create_subscription(TwistStamped, topics.CMD_TWIST, lambda _m: self.commands.tick(), qos.COMMAND_QOS)
        self.create_subscription(SchedulerStatus, topics.SCHEDULER_STATUS, self._on_status, qos.STATUS_QOS)
        try:
            from spvla.msg import SafetyStatus
        except ImportError:  # interfaces built before the safety message existed
            self.get_logger().warning("spvla/msg/SafetyStatus not available: safety drops not shown")
        else:
            self.create_subscription(SafetyStatus, topics.SAFETY_STATUS, self._on_safety, qos.STATUS_QOS)

    def _on_chunk(self, msg: ActionChunk) -> None:
        self.chunks.tick()
        self._keep = msg.keep_ratio

    def _on_status(self, msg: SchedulerStatus) -> None:
        self._status = msg

    def _on_safety(self, msg) -> None:
        pairs = zip(msg.intervention_names, msg.intervention_counts, strict=False)
        self._dropped = float(sum(n for name, n in pairs
                                  if name.startswith(SAFETY_DROP_PREFIX) and name not in SAFETY_NOT_DROPS))
        self._dry_run = bool(msg.dry_run)

    def figures(self) -> GraphFigures:
        s = self._status
        counts = (0, 0, 0) if s is None else (int(s.model_steps), int(s.extrapolated_steps), int(s.wait_steps))
        return GraphFigures(self.chunks.rate(), self.commands.rate(), self._keep, self._dropped, *counts,
                            dry_run=self._dry_run)
