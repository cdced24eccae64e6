"""The ``--status`` line (GraphMonitor) shows the action steps by path: model, extrapolated and wait apart.

Regressions pinned: "% extrapolated" computed over model + extrapolated steps only, so a graph that
commanded zero velocity (wait) on 79 % of its steps showed "63 % extrapolated" and looked healthy.
"""

from __future__ import annotations

import rclpy
from spvla.msg import SchedulerStatus

from spvla_ros.nodes import qos, topics
from spvla_ros.nodes.graph_monitor import GraphFigures, GraphMonitor


def test_line_shows_each_path_with_its_share_of_all_steps():
    line = GraphFigures(1.0, 100.0, 0.5, 0.0, model_steps=8, extrapolated_steps=13, wait_steps=79).line()
    assert "model 8 (8 %)" in line and "extrap 13 (13 %)" in line and "wait 79 (79 %)" in line
    assert "63" not in line  # 13 / (8 + 13): the old share that left the wait steps out


def test_monitor_reads_the_counters_of_the_newest_scheduler_status(graph):
    monitor = graph.add(GraphMonitor(context=graph.context))
    source = graph.add(rclpy.create_node("status_source", context=graph.context))
    pub = source.create_publisher(SchedulerStatus, topics.SCHEDULER_STATUS, qos.STATUS_QOS)
    assert graph.spin_until(lambda: pub.get_subscription_count() > 0)
    pub.publish(SchedulerStatus(model_steps=2, extrapolated_steps=3, wait_steps=15))
    assert graph.spin_until(lambda: monitor.figures().steps == 20)
    figures = monitor.figures()
    assert (figures.model_steps, figures.extrapolated_steps, figures.wait_steps) == (2, 3, 15)
    assert figures.pct(figures.wait_steps) == 75.0
    assert "wait 15 (75 %)" in figures.line()
