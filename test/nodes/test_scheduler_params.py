"""Scheduler parameters are live and validated, set remotely through SetParameters as rqt does.

Regressions pinned: an invalid combination (v_min > v_max) taking effect; the old value not staying
after a rejection; an out-of-range tau accepted; a valid change needing a restart; the command timer
keeping its old period after command_rate_hz changes.
"""

from __future__ import annotations

import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, SetParameters
from rclpy.parameter import Parameter as RclpyParameter

from spvla_ros.core.scheduler_modes import load_scheduler_modes
from spvla_ros.nodes.scheduler_node import NODE_NAME, SchedulerNode


def _paper_node(graph):
    """The node in the paper's mode: v_min 0.25, v_max 0.75, tau 0.5 at speed_range 1.0."""
    return graph.add(SchedulerNode(context=graph.context,
                                   parameter_overrides=[RclpyParameter("mode", value="paper")]))


def _string(name: str, value: str) -> Parameter:
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))


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
    node = _paper_node(graph)
    client = _client(graph, SetParameters, "set_parameters")
    before = node.core.scheduler.config
    (result,) = _set(graph, client, _double("v_min", 0.9))  # default v_max is 0.75
    assert not result.successful
    assert "v_min" in result.reason and "v_max" in result.reason
    assert node.get_parameter("v_min").value == 0.25
    assert node.core.scheduler.config == before


def test_tau_outside_its_range_is_rejected(graph):
    node = _paper_node(graph)
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


# ------------------------------------------------------------------ scheduling modes
def test_node_starts_in_the_default_mode_with_its_values_shown_as_parameters(graph):
    modes = load_scheduler_modes()
    node = graph.add(SchedulerNode(context=graph.context))
    assert node.get_parameter("mode").value == modes.default
    expected = modes.config(modes.default, speed_range=node.get_parameter("speed_range").value)
    cfg = node.core.scheduler.config
    for field in ("tau", "buffer_size", "extrapolator", "intuitive_test", "fit_history",
                  "max_consecutive_extrapolations", "max_surprise"):
        assert getattr(cfg, field) == getattr(expected, field), field
    assert cfg.v_min_resolved == expected.v_min_resolved
    assert node.get_parameter("tau").value == expected.tau  # what rqt shows is what runs


def test_switching_mode_live_loads_it_and_hand_tuning_marks_custom(graph):
    node = graph.add(SchedulerNode(context=graph.context))
    client = _client(graph, SetParameters, "set_parameters")
    (result,) = _set(graph, client, _string("mode", "paper"))
    assert result.successful, result.reason
    paper = load_scheduler_modes().config("paper", speed_range=1.0)
    cfg = node.core.scheduler.config
    assert (cfg.tau, cfg.intuitive_test, cfg.fit_history, cfg.max_surprise) == (0.5, "per_axis", "executed", None)
    assert (cfg.v_min_resolved, cfg.v_max_resolved) == (paper.v_min_resolved, paper.v_max_resolved)
    assert node.get_parameter("extrapolator").value == "ridge"
    (result,) = _set(graph, client, _double("tau", 0.3))
    assert result.successful
    assert node.core.scheduler.config.tau == 0.3
    assert node.get_parameter("mode").value == "custom"


def test_speed_range_rescales_a_named_mode(graph):
    node = _paper_node(graph)
    client = _client(graph, SetParameters, "set_parameters")
    (result,) = _set(graph, client, _double("speed_range", 0.02))  # BridgeData: ~0.02 m per step
    assert result.successful, result.reason
    cfg = node.core.scheduler.config
    assert cfg.v_min_resolved == 0.25 * 0.02 and cfg.v_max_resolved == 0.75 * 0.02
    assert node.get_parameter("v_min").value == 0.25 * 0.02
    assert node.get_parameter("mode").value == "paper"


def test_unknown_mode_is_rejected_and_custom_start_keeps_the_file_values(graph):
    node = _paper_node(graph)
    client = _client(graph, SetParameters, "set_parameters")
    (result,) = _set(graph, client, _string("mode", "fastest"))
    assert not result.successful and "paper" in result.reason
    assert node.get_parameter("mode").value == "paper"
    custom = graph.add(SchedulerNode(context=graph.context, parameter_overrides=[
        RclpyParameter("mode", value="custom"), RclpyParameter("tau", value=0.2)]))
    assert custom.core.scheduler.config.tau == 0.2
