"""``spvla_ros.nodes.spin``: the one ``main()`` body of every node (issue 15, item 1).

Regressions pinned: rclpy's default SIGINT handler invalidated the context before a node's shutdown code
ran (the last publish failed, exit 1); an exception from rclpy's ``take_message`` while a signal was being
handled (``RuntimeError: Unable to convert call argument '0' to Python object``) made the node exit 1; a
raising callback skipped the wind-down. Real signals to this process; the node's wind-down runs with a
valid context, in order, and publishes.
"""

from __future__ import annotations

import os
import signal

from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import String

from spvla_ros.nodes.spin import spin_node, spin_until_stopped


class _WindingNode(Node):
    """Raises a signal (or an error) from a timer; records its wind-down and publishes during it."""

    wind_down_timeout_s = 2.0

    def __init__(self, action, events: list[str]) -> None:
        super().__init__("spin_test_node")
        self.events = events
        self.pub = self.create_publisher(String, "/spin_test/out", 10)
        self._ticks = 0
        self._action = action
        self.create_timer(0.01, self._tick)

    def _tick(self) -> None:
        self._ticks += 1
        if self._ticks == 3:
            self._action()

    def begin_wind_down(self, reason: str) -> None:
        self.events.append(f"begin {reason}")

    def wind_down_done(self) -> bool:
        self.events.append("done?")
        return self.events.count("done?") > 2  # a few executor turns, like a ramp

    def end_wind_down(self) -> None:
        self.pub.publish(String(data="last"))  # the context is still valid here
        self.events.append("end")

    def destroy_node(self) -> None:
        self.events.append("destroyed")
        super().destroy_node()


def test_a_real_signal_winds_down_with_a_valid_context_and_exits_0() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        events: list[str] = []
        before = signal.getsignal(sig)
        rc = spin_node(lambda e=events, s=sig: _WindingNode(lambda: os.kill(os.getpid(), s), e), args=[])
        assert rc == 0
        assert events[0] == f"begin {signal.Signals(sig).name}"
        assert events[-2:] == ["end", "destroyed"]
        assert signal.getsignal(sig) == before  # handlers restored


def test_a_raising_callback_still_winds_down_and_exits_1() -> None:
    events: list[str] = []

    def fail() -> None:
        raise ValueError("bug in a callback")

    assert spin_node(lambda: _WindingNode(fail, events), args=[]) == 1
    assert events[0] == "begin error" and events[-2:] == ["end", "destroyed"]


class _Executor:
    """Stands in for an executor: runs ``steps`` in turn from spin_once."""

    def __init__(self, *steps) -> None:
        self.steps = list(steps)

    def spin_once(self, timeout_sec: float) -> None:
        self.steps.pop(0)()


class _Stop:
    def __init__(self) -> None:
        self.received: list[str] = []

    @property
    def requested(self) -> bool:
        return bool(self.received)


def test_an_error_while_stopping_is_part_of_the_shutdown() -> None:
    stop, logged = _Stop(), []

    def signal_then_take_message_fails() -> None:
        stop.received.append("SIGINT")
        raise RuntimeError("Unable to convert call argument '0' to Python object")

    assert spin_until_stopped(_Executor(lambda: None, signal_then_take_message_fails), stop, logged.append) is None
    assert "Unable to convert" in logged[0]

    err = RuntimeError("a real error")

    def raise_err() -> None:
        raise err

    assert spin_until_stopped(_Executor(raise_err), _Stop(), logged.append) is err

    def shut_down_elsewhere() -> None:
        raise ExternalShutdownException()

    assert spin_until_stopped(_Executor(shut_down_elsewhere), _Stop(), logged.append) is None
