"""rqt's view of the parameters is honest (issue 17), over the real parameter services as rqt uses them.

Every numeric parameter's declared range (what ``ros2 param describe`` and rqt's sliders show) is checked
against the config validation: both ends of every range are set on a live node through
``~/set_parameters`` and accepted; a value the validation refuses lies outside the range (rclpy refuses
it with "out of range" before the node's callback runs). Pairs valid only together are set in one
non-atomic ``SetParameters`` request, as ``ros2 param load`` sends them.

Regressions pinned:
* ``min_keep_ratio`` 0, ``clip_bound`` 0 (also ``max_linear_speed_mps`` 0, ``v_pmax`` 0) inside the slider
  range, then refused by the validation;
* a range table reaching outside what the config accepts (a slider end the node refuses);
* ``v_min`` and ``v_max`` (``v_pmin`` and ``v_pmax``) changed in one non-atomic request ending half-applied:
  one applied, the other refused against the old partner value;
* a refused pair leaving either member changed; another parameter of the request blocked by the pair.
"""

from __future__ import annotations

import math

import pytest
import rclpy
from fake_policy import FakePolicy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, SetParameters
from rclpy.parameter import Parameter as RclpyParameter

from spvla_ros.core.command_stream import StreamConfig
from spvla_ros.core.gripper import GripperConfig
from spvla_ros.core.pruning.config import PruningConfig
from spvla_ros.core.safety.config import SafetyConfig
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.nodes import gripper_node, policy_node, safety_node, scheduler_node
from spvla_ros.nodes.params import ParamGroup

SPEC_FAMILIES = {
    "scheduler": (SchedulerConfig, scheduler_node.scheduler_specs, scheduler_node.SCHEDULER_PAIRS,
                  {"action_rate_hz": StreamConfig().action_rate_hz}),
    "stream": (StreamConfig, scheduler_node.stream_specs, (), {}),
    "scheduler_gripper": (GripperConfig, scheduler_node.gripper_specs, (), {}),
    "pruning": (PruningConfig, policy_node.pruning_specs, policy_node.PRUNING_PAIRS, {}),
    "hand": (GripperConfig, gripper_node.hand_specs, (), {}),
    "safety": (SafetyConfig, safety_node.safety_specs, (), {}),
}
OPEN_AT_ZERO = {"pruning": ("min_keep_ratio", "v_pmax"), "scheduler": ("clip_bound", "speed_range"),
                "stream": ("max_linear_speed_mps", "max_angular_speed_radps")}
"""Parameters whose validation wants > 0: 0 was inside their slider range before issue 17."""


def _value(ptype: int, v: float) -> ParameterValue:
    if ptype == ParameterType.PARAMETER_INTEGER:
        return ParameterValue(type=ptype, integer_value=int(v))
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(v))


def _param(name: str, ptype: int, v: float) -> Parameter:
    return Parameter(name=name, value=_value(ptype, v))


def _build(family: str, values: dict) -> None:
    cls, specs_fn, _, context = SPEC_FAMILIES[family]
    specs = specs_fn()
    ParamGroup(cls, specs, context).build({**{s.name: s.default for s in specs}, **values})


@pytest.mark.parametrize("family", sorted(SPEC_FAMILIES))
def test_every_range_end_is_accepted_by_the_validation(family):
    _, specs_fn, pairs, _ = SPEC_FAMILIES[family]
    specs = {s.field: s for s in specs_fn()}
    far = {}  # a pair member is checked with its partner at the far end of the partner's range
    for low, high in pairs:
        far[low] = (specs[high].name, specs[high].value_range[1])
        far[high] = (specs[low].name, specs[low].value_range[0])
    for spec in specs.values():
        if spec.value_range is None:
            continue
        lo, hi = spec.value_range
        assert lo < hi, spec.name
        for value in (lo, (lo + hi) / 2 if isinstance(lo, float) else (lo + hi) // 2, hi):
            extra = dict([far[spec.field]]) if spec.field in far else {}
            _build(family, {spec.name: value, **extra})  # raises ValueError when refused


@pytest.mark.parametrize("family", sorted(OPEN_AT_ZERO))
def test_a_value_the_validation_refuses_is_outside_the_range(family):
    _, specs_fn, pairs, _ = SPEC_FAMILIES[family]
    specs = {s.field: s for s in specs_fn()}
    partner_low = {high: specs[low].name for low, high in pairs}
    for field in OPEN_AT_ZERO[family]:
        spec = specs[field]
        extra = {partner_low[field]: 0.0} if field in partner_low else {}
        with pytest.raises(ValueError):
            _build(family, {spec.name: 0.0, **extra})
        lo = spec.value_range[0]
        assert lo > 0.0, f"{spec.name}: 0 is refused by the validation but inside the range {spec.value_range}"
        # rclpy lets values within its relative tolerance of an end through: 0 must not be one of them
        assert not math.isclose(0.0, lo, rel_tol=rclpy.node.Node.PARAM_REL_TOL)


# ------------------------------------------------------------------ live nodes, over the services


def _tool_clients(graph, node_name: str):
    tool = graph.add(rclpy.create_node(f"rqt_like_{node_name}", context=graph.context))
    set_client = tool.create_client(SetParameters, f"/{node_name}/set_parameters")
    describe = tool.create_client(DescribeParameters, f"/{node_name}/describe_parameters")
    assert graph.spin_until(lambda: set_client.service_is_ready() and describe.service_is_ready())
    return set_client, describe


def _call(graph, client, request):
    future = client.call_async(request)
    assert graph.spin_until(future.done), f"{client.srv_name} did not answer"
    return future.result()


def _set(graph, client, *params: Parameter):
    return _call(graph, client, SetParameters.Request(parameters=list(params))).results


def _scheduler(graph):
    return graph.add(scheduler_node.SchedulerNode(
        context=graph.context, parameter_overrides=[RclpyParameter("mode", value="custom")]))


def _policy(graph):
    return graph.add(policy_node.PolicyNode(policy=FakePolicy(), context=graph.context))


@pytest.mark.parametrize("make_node", [_scheduler, _policy], ids=["scheduler", "policy"])
def test_every_declared_range_end_is_set_over_the_service_and_outside_is_refused(graph, make_node):
    node = make_node(graph)
    set_client, describe = _tool_clients(graph, node.get_name())
    names = node.list_parameters([], 0).names
    descriptors = _call(graph, describe, DescribeParameters.Request(names=names)).descriptors
    ranged = {d.name: d for d in descriptors if not d.read_only and (d.floating_point_range or d.integer_range)}
    assert ranged, "no ranged parameter"
    partner = dict(node.PARAMETER_PAIRS) | {b: a for a, b in node.PARAMETER_PAIRS}
    lows = {a for a, _ in node.PARAMETER_PAIRS}
    original = {n: node.get_parameter(n).value for n in ranged}

    def end(d, which: int):
        r = (d.floating_point_range or d.integer_range)[0]
        return (r.from_value, r.to_value)[which]

    for name, d in ranged.items():
        for which in (0, 1):
            params = [_param(name, d.type, end(d, which))]
            if name in partner:  # the partner at the far end of its own range, in the same request
                p = ranged[partner[name]]
                params.append(_param(p.name, p.type, end(p, 1 if name in lows else 0)))
            results = _set(graph, set_client, *params)
            assert all(r.successful for r in results), (name, end(d, which), [r.reason for r in results])
            assert node.get_parameter(name).value == end(d, which)
        r = (d.floating_point_range or d.integer_range)[0]
        below = r.from_value - max(1.0, abs(r.from_value)) * 1e-3
        if d.integer_range:
            below = r.from_value - 1
        (result,) = _set(graph, set_client, _param(name, d.type, below))
        assert not result.successful and "out of range" in result.reason, (name, below, result.reason)
        restore = [RclpyParameter(n, value=v) for n, v in original.items()]
        assert node.set_parameters_atomically(restore).successful


def _double(name: str, v: float) -> Parameter:
    return _param(name, ParameterType.PARAMETER_DOUBLE, v)


def test_pruning_pair_in_one_request_is_applied_together_or_not_at_all(graph):
    node = _policy(graph)
    set_client, _ = _tool_clients(graph, node.get_name())
    assert (node._pruning_cfg.v_pmin, node._pruning_cfg.v_pmax) == (0.25, 0.75)
    # v_pmin 1.0 alone is refused against the old v_pmax 0.75; together with v_pmax 2.0 it is valid
    results = _set(graph, set_client, _double("v_pmin", 1.0), _double("v_pmax", 2.0))
    assert [r.successful for r in results] == [True, True], [r.reason for r in results]
    assert (node._pruning_cfg.v_pmin, node._pruning_cfg.v_pmax) == (1.0, 2.0)
    assert (node.get_parameter("v_pmin").value, node.get_parameter("v_pmax").value) == (1.0, 2.0)
    # invalid together (0.8 >= 0.5), though v_pmax 0.5 alone would have been valid with the old v_pmin
    results = _set(graph, set_client, _double("v_pmax", 0.5), _double("v_pmin", 0.8))
    assert [r.successful for r in results] == [False, False]
    assert "v_pmax" in results[0].reason and "v_pmin" in results[0].reason
    assert (node.get_parameter("v_pmin").value, node.get_parameter("v_pmax").value) == (1.0, 2.0)
    assert (node._pruning_cfg.v_pmin, node._pruning_cfg.v_pmax) == (1.0, 2.0)


def test_scheduler_pair_with_other_parameters_in_one_request(graph):
    node = _scheduler(graph)
    set_client, _ = _tool_clients(graph, node.get_name())
    cfg = node.core.scheduler.config
    assert (cfg.v_min_resolved, cfg.v_max_resolved) == (0.25, 0.75)
    # v_max first, below the old v_min: rclpy alone would refuse it and then apply v_min (half-applied)
    results = _set(graph, set_client, _double("v_max", 0.2), _double("tau", 1.5), _double("v_min", 0.1))
    assert [r.successful for r in results] == [True, False, True], [r.reason for r in results]
    assert "out of range" in results[1].reason  # tau is refused on its own; the pair is not held back by it
    cfg = node.core.scheduler.config
    assert (cfg.v_min_resolved, cfg.v_max_resolved, cfg.tau) == (0.1, 0.2, 0.5)


def test_in_process_set_parameters_sets_pairs_together(graph):
    node = _policy(graph)
    results = node.set_parameters([RclpyParameter("v_pmin", value=3.0), RclpyParameter("v_pmax", value=4.0)])
    assert [r.successful for r in results] == [True, True], [r.reason for r in results]
    assert (node._pruning_cfg.v_pmin, node._pruning_cfg.v_pmax) == (3.0, 4.0)
