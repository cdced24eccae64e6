"""One ``main()`` body for every node: init, spin until a stop signal, wind down, tear down in order.

rclpy's own signal handler shuts the context down the moment SIGINT arrives, before any shutdown code
of the node runs, so a last publish (the safety node's final zero) fails with "publisher's context is
invalid", and a message in flight can fail inside ``take_message``. Here rclpy installs no handler
(``SignalHandlerOptions.NO``); SIGINT, SIGTERM and SIGHUP only set a flag (:class:`StopSignals`). The spin
loop sees it within :data:`SPIN_POLL_S`, then every node that has a wind-down (:class:`WindsDown`: the
safety node ramps to zero and publishes the final zero) winds down *while the executor still runs*, so
e-stop, robot state and the publish timer keep working; only then are the nodes destroyed and the
context shut down. Further signals during the wind-down are counted, not obeyed (the wind-down is
bounded by :attr:`WindsDown.wind_down_timeout_s`; SIGKILL still works).

``spvla-bringup --composed`` uses :func:`wind_down` on its one executor with the same nodes.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

SPIN_POLL_S = 0.05
"""Longest the spin loop waits before it looks at the stop flag again, s."""
WIND_DOWN_POLL_S = 0.005
"""Executor wait while nodes wind down, s (the safety node publishes at 100 Hz)."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C, ``kill`` / a supervisor, a closed terminal: all mean "stop cleanly"."""


@runtime_checkable
class WindsDown(Protocol):
    """A node that must do something on the way out while its context is still valid."""

    wind_down_timeout_s: float
    """Bound on the wind-down, s; :meth:`end_wind_down` runs after it even if not done."""

    def begin_wind_down(self, reason: str) -> None:
        """Stop accepting work (e.g. disarm); ``reason`` is for the log (``SIGINT``, ``error``, ...)."""

    def wind_down_done(self) -> bool:
        """The wind-down has finished (e.g. the output is at rest and the final zero was published)."""

    def end_wind_down(self) -> None:
        """Last step, still with a valid context (e.g. an explicit zero if the ramp did not finish)."""


class StopSignals:
    """Installs handlers for :data:`STOP_SIGNALS` that record the signal.

    Until :attr:`interrupt` is set False (the node is built and about to spin), a signal also raises
    ``KeyboardInterrupt``, so Ctrl-C aborts a long start (a model load) at once, as usual; nothing has
    been commanded then (the executor has not run a callback yet).
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self.interrupt = True
        self._previous = {}
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received.append(signal.Signals(signum).name)
        if self.interrupt:
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        return bool(self.received)

    @property
    def reason(self) -> str:
        return self.received[0] if self.received else "shutdown"

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def wind_down(executor: SingleThreadedExecutor, nodes: Iterable[Node], reason: str) -> None:
    """Wind down every :class:`WindsDown` node in ``nodes`` while ``executor`` keeps spinning (bounded).

    A callback that raises meanwhile is logged and the spinning goes on: the ramp to zero must finish.
    """
    winding = [n for n in nodes if isinstance(n, WindsDown)]
    if not winding:
        return
    for node in winding:
        node.begin_wind_down(reason)
    deadline = time.monotonic() + max(n.wind_down_timeout_s for n in winding)
    while not all(n.wind_down_done() for n in winding) and time.monotonic() < deadline:
        try:
            executor.spin_once(timeout_sec=WIND_DOWN_POLL_S)
        except ExternalShutdownException:
            break  # the context is gone: nothing can be published any more
        except Exception:  # noqa: BLE001 - keep the ramp going; the error is reported
            winding[0].get_logger().error(f"error during the wind-down (continuing):\n{traceback.format_exc()}")
    for node in winding:
        node.end_wind_down()


def spin_until_stopped(executor: SingleThreadedExecutor, stop: StopSignals,
                       log: Callable[[str], None]) -> BaseException | None:
    """Spin until ``stop`` is requested; returns the error that ended the spin early, or None.

    An exception raised after a stop signal (e.g. rclpy's ``take_message`` on a message in flight, seen
    as ``RuntimeError: Unable to convert call argument '0' to Python object``) is part of the shutdown,
    not an error.
    """
    while not stop.requested:
        try:
            executor.spin_once(timeout_sec=SPIN_POLL_S)
        except ExternalShutdownException:
            return None
        except Exception as err:  # noqa: BLE001 - reported by the caller; the wind-down still runs
            if stop.requested:
                log(f"ignored during shutdown: {type(err).__name__}: {err}")
                return None
            return err
    return None


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node with ``make_node``, spin it until SIGINT/SIGTERM/SIGHUP, wind it down, tear down.

    Args:
        make_node: builds the node (after ``rclpy.init``).
        args: ROS command-line arguments (``--ros-args ...``); None for ``sys.argv``.

    Returns:
        The process exit code: 0 after a stop signal, 1 when a callback raised (after the wind-down).
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = StopSignals()
    executor = SingleThreadedExecutor()
    node = None
    error: BaseException | None = None
    try:
        try:
            node = make_node()
        except KeyboardInterrupt:
            return 0  # stopped while starting: nothing has run yet, nothing to wind down
        stop.interrupt = False
        executor.add_node(node)
        error = spin_until_stopped(executor, stop, node.get_logger().info)
        if error is not None:
            node.get_logger().error("".join(traceback.format_exception(error)))
        wind_down(executor, [node], "error" if error is not None else stop.reason)
    finally:
        if node is not None:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=0.5)
        rclpy.try_shutdown()
        stop.restore()
    return 0 if error is None else 1
