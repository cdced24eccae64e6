"""rclpy fixtures: one Context per test, a single-threaded executor on it, bounded spinning."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

WAIT_S = 10.0
"""Bound on every wait in these tests, s."""


class Graph:
    """Nodes of one test on one executor; ``spin_until`` never waits longer than its timeout."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self.nodes = []

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return predicate()

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)


@pytest.fixture
def graph():
    context = Context()
    rclpy.init(context=context)
    g = Graph(context)
    try:
        yield g
    finally:
        for node in reversed(g.nodes):
            g.executor.remove_node(node)
            node.destroy_node()
        g.executor.shutdown(timeout_sec=1.0)
        rclpy.shutdown(context=context)
        context.destroy()
