"""Scheduler parameters are live and validated, set remotely through SetParameters as rqt does.

Regressions pinned: an invalid combination (v_min > v_max) taking effect; the old value not staying
after a rejection; an out-of-range tau accepted; a valid change needing a restart; the command timer
keeping its old period after command_rate_hz changes.
"""

from __future__ import annotations

import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, SetParameters

from spvla_ros.nodes.scheduler_node import NODE_NAME, SchedulerNode


def _double(name: str, value: float) -> Parameter:
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))


def _set(graph, client, *params):
    future = client.call_async(SetParameters.Request(parameters=list(params)))
    assert graph.spin_until(future.done), "SetParameters did not answer"
    return future.result().results


def _client(graph, srv_type, name):
    tool = graph.add(rclpy.create_node("rqt_like", context=graph.context))
    client = tool.create_client(srv_type, f"/{NODE_NAME}/{name}")
    assert graph.spin_until(lambda: client.service_is_ready())
    return client


def test_valid_change_applies_live(graph):
    node = graph.add(SchedulerNode(context=graph.context))
    client = _client(graph, SetParameters, "set_parameters")
    results = _set(graph, client, _double("v_min", 0.1), _double("v_max", 0.5), _double("tau", 0.3))
    assert all(r.successful for r in results), [r.reason for r in results]
    cfg = node.core.scheduler.config
    assert (cfg.v_min_resolved, cfg.v_max_resolved, cfg.tau) == (0.1, 0.5, 0.3)
    assert node.get_parameter("tau").value == 0.3


def test_v_min_above_v_max_is_rejected_with_a_reason_and_old_values_stay(graph):
    node = graph.add(SchedulerNode(context=graph.context))
    client = _client(graph, SetParameters, "set_parameters")
    before = node.core.scheduler.config
    (result,) = _set(graph, client, _double("v_min", 0.9))  # default v_max is 0.75
    assert not result.successful
    assert "v_min" in result.reason and "v_max" in result.reason
    assert node.get_parameter("v_min").value == 0.25
    assert node.core.scheduler.config == before


def test_tau_outside_its_range_is_rejected(graph):
    node = graph.add(SchedulerNode(context=graph.context))
    client = _client(graph, SetParameters, "set_parameters")
    (result,) = _set(graph, client, _double("tau", 1.5))
    assert not result.successful and "tau" in result.reason
    assert node.get_parameter("tau").value == 0.5


def test_stream_combination_rejected(graph):
    node = graph.add(SchedulerNode(context=graph.context))
    client = _client(graph, SetParameters, "set_parameters")
    (result,) = _set(graph, client, _double("action_rate_hz", 100.0))
    assert result.successful  # 100 Hz actions with 100 Hz commands is allowed
    (result,) = _set(graph, client, _double("command_rate_hz", 99.0))
    assert not result.successful  # below the 100 Hz floor (range)
    assert node.core.stream_config.command_rate_hz == 100.0


def test_command_rate_change_retimes_the_stream(graph):
    node = graph.add(SchedulerNode(context=graph.context))
    client = _client(graph, SetParameters, "set_parameters")
    (result,) = _set(graph, client, _double("command_rate_hz", 200.0))
    assert result.successful, result.reason
    assert node.core.stream_config.command_rate_hz == 200.0
    assert abs(node._timer.timer_period_ns - 5_000_000) < 1000


def test_descriptors_carry_description_and_continuous_range(graph):
    graph.add(SchedulerNode(context=graph.context))
    client = _client(graph, DescribeParameters, "describe_parameters")
    future = client.call_async(DescribeParameters.Request(names=["tau", "v_min", "buffer_size"]))
    assert graph.spin_until(future.done)
    tau, v_min, n = future.result().descriptors
    assert tau.description and tau.floating_point_range[0].step == 0.0
    assert (tau.floating_point_range[0].from_value, tau.floating_point_range[0].to_value) == (0.0, 1.0)
    assert v_min.floating_point_range[0].step == 0.0 and "speed" in v_min.description
    assert n.integer_range[0].from_value == 2
