"""The Franka Hand through pylibfranka, in a child process so its blocking calls cannot freeze the caller.

Why a process and not a thread: pylibfranka binds ``Gripper.move/grasp/homing/stop/read_once`` without
releasing the GIL (pylibfranka 0.21.3, measured: while a worker thread sat in ``read_once`` a 0.5 ms sleep
loop in the main thread woke every 16.7 ms, once per gripper state packet, instead of every 0.6 ms). A
1-2 s Franka Hand motion on a thread would therefore stall the gripper node's executor, its status and its
action timeout, and no ``stop()`` could be issued until the motion ended. In a child process the node
stays live; a goal that must be abandoned (timed out or preempted) is ended by terminating the child, and a
fresh child reconnects and calls ``Gripper.stop()`` before it takes the next goal (best effort: the hand
itself may finish a motion it has started).

The child runs :func:`serve_hand`; it imports nothing from ROS. Goals and results cross a
``multiprocessing`` pipe as plain tuples.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from typing import Any

from spvla_ros.core.gripper_commander import GRASP, GripperGoal

logger = logging.getLogger(__name__)

ResultCallback = Callable[[int, bool, str, "float | None"], None]
"""Called (from a reader thread) with (goal_id, success, error, width_m or None) for every goal."""

READY = "ready"
STOP_FIRST = "stop_first"
HOMING = "homing"


def _pylibfranka_gripper(robot_ip: str) -> Any:
    import pylibfranka

    return pylibfranka.Gripper(robot_ip)  # raises NetworkException if the hand is unreachable


def serve_hand(robot_ip: str, conn: Any, first: str | None, factory: Callable[[str], Any]) -> None:
    """Child process body: connect, optionally ``stop()``/``homing()`` first, then run goals one at a time.

    Receives ``(goal_id, kind, width_m, speed_mps, force_n, epsilon_inner_m, epsilon_outer_m)`` tuples
    (``None`` ends it); sends ``(READY, "")`` or ``(READY, error)`` once, then one
    ``(goal_id, success, error, width_m or None)`` per goal. Ignores SIGINT: Ctrl-C reaches the whole process
    group, and the parent ends this process itself (``None``, or EOF when the parent is gone).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        gripper = factory(robot_ip)
        if first == STOP_FIRST:
            gripper.stop()
        elif first == HOMING:
            gripper.homing()
    except Exception as err:  # noqa: BLE001 - libfranka raises Network/CommandException; reported to the parent
        conn.send((READY, f"{type(err).__name__}: {err}"))
        return
    conn.send((READY, ""))
    while True:
        try:
            goal = conn.recv()
        except EOFError:  # the parent is gone
            return
        if goal is None:
            return
        goal_id, kind, width, speed, force, eps_in, eps_out = goal
        try:
            if kind == GRASP:
                ok = bool(gripper.grasp(width, speed, force, eps_in, eps_out))
            else:
                ok = bool(gripper.move(width, speed))
            conn.send((goal_id, ok, "" if ok else f"{kind} returned false", float(gripper.read_once().width)))
        except Exception as err:  # noqa: BLE001 - Command/NetworkException: reported as a failed goal
            conn.send((goal_id, False, f"{type(err).__name__}: {err}", None))


class FrankaHandProcess:
    """A pylibfranka ``Gripper`` in a child process (see the module docstring). No method blocks for longer
    than it takes to kill a child process, except the constructor, which waits for the first connection.

    Args:
        robot_ip: the robot's (or franka-sim's) address; the hand listens on TCP 1338 there.
        on_result: receives every goal's result, from a reader thread. A goal whose child died or could not
            connect is reported failed with the reason.
        home_on_start: run ``Gripper.homing()`` when the first child connects.
        connect_timeout_s: how long to wait for a child to connect [s].
        factory: builds the gripper in the child from ``robot_ip`` (tests pass a fake); must be picklable by
            reference (a module-level callable).

    Raises:
        RuntimeError: the first connection failed or timed out (the reason is in the message).
    """

    def __init__(self, robot_ip: str, on_result: ResultCallback, home_on_start: bool = False,
                 connect_timeout_s: float = 10.0, factory: Callable[[str], Any] = _pylibfranka_gripper) -> None:
        self._robot_ip = robot_ip
        self._on_result = on_result
        self._connect_timeout_s = connect_timeout_s
        self._factory = factory
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process that runs DDS threads
        self._lock = threading.Lock()
        self._running: set[int] = set()  # goals sent to the current child without a result yet
        self._proc: Any = None
        self._conn: Any = None
        self.restarts = 0
        proc, conn = self._spawn(HOMING if home_on_start else None)
        error = self._handshake(proc, conn)
        if error:
            raise RuntimeError(f"Franka Hand at {robot_ip}: {error}")
        self._proc, self._conn = proc, conn
        self._start_reader(proc, conn, handshake_done=True)

    def _spawn(self, first: str | None) -> tuple[Any, Any]:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=serve_hand, args=(self._robot_ip, child, first, self._factory),
                                 name="franka-hand", daemon=True)
        proc.start()
        child.close()
        return proc, parent

    def _handshake(self, proc: Any, conn: Any) -> str:
        """Wait for the child's READY; returns "" or why it failed (the child is then ended)."""
        try:
            if conn.poll(self._connect_timeout_s):
                _, error = conn.recv()
            else:
                error = f"no connection within {self._connect_timeout_s:g} s"
        except (EOFError, OSError):
            error = f"hand process exited before connecting (code {proc.exitcode})"
        if error:
            proc.kill()
            proc.join(timeout=2.0)
        return error

    def _start_reader(self, proc: Any, conn: Any, handshake_done: bool) -> None:
        threading.Thread(target=self._read, args=(proc, conn, handshake_done), name="franka-hand-results",
                         daemon=True).start()

    def _read(self, proc: Any, conn: Any, handshake_done: bool) -> None:
        error = "" if handshake_done else self._handshake(proc, conn)
        while not error:
            try:
                goal_id, success, message, width = conn.recv()
            except (EOFError, OSError):
                proc.join(timeout=1.0)  # reap it, for its exit code
                error = f"hand process exited (code {proc.exitcode})"
                break
            with self._lock:
                if proc is not self._proc:
                    return  # an abandoned child: its late results are dropped
                self._running.discard(goal_id)
            self._on_result(goal_id, success, message, width)
        with self._lock:
            if proc is not self._proc:
                return
            lost, self._running = sorted(self._running), set()
            self._proc = None  # the next send starts a fresh child
        logger.error("Franka Hand: %s", error)
        for goal_id in lost:
            self._on_result(goal_id, False, error, None)

    def send(self, goal: GripperGoal) -> None:
        """Hand ``goal`` to the child (a fresh one if the last one died); its result comes via ``on_result``."""
        with self._lock:
            if self._proc is None:
                self._replace(STOP_FIRST)
            self._running.add(goal.goal_id)
            try:
                self._conn.send((goal.goal_id, goal.kind, goal.width_m, goal.speed_mps, goal.force_n,
                                 goal.epsilon_inner_m, goal.epsilon_outer_m))
                return
            except OSError as err:
                self._running.discard(goal.goal_id)
                error = f"hand process unreachable: {err}"
        self._on_result(goal.goal_id, False, error, None)

    def cancel(self, goal: GripperGoal) -> None:
        """Abandon ``goal``: if the child may still be on it, end that child and start a fresh one that calls
        ``stop()`` before anything else. A goal that already has its result is left alone."""
        with self._lock:
            if goal.goal_id not in self._running or self._proc is None:
                return
            old, old_conn = self._proc, self._conn
            self._running.clear()
            self._replace(STOP_FIRST)
        old.kill()
        old.join(timeout=2.0)
        old_conn.close()

    def _replace(self, first: str) -> None:
        """Start a new child (caller holds the lock); its handshake runs on its reader thread."""
        self._proc, self._conn = self._spawn(first)
        self.restarts += 1
        self._start_reader(self._proc, self._conn, handshake_done=False)

    def close(self) -> None:
        """Let the child finish its current goal, then end it (bounded wait)."""
        with self._lock:
            proc, conn, self._proc = self._proc, self._conn, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            conn.send(None)
        proc.join(timeout=2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=1.0)
        conn.close()
