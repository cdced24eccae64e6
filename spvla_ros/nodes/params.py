"""Config dataclasses <-> ROS 2 parameters: declare with descriptors, validate on set, rebuild on change.

A node lists the dataclass fields it exposes as :class:`ParamSpec` (built by :func:`specs_from_dataclass`,
which takes each description from the dataclass docstring's ``Args:`` entry). :func:`declare_all`
declares them with a descriptor carrying that description and a range (``FloatingPointRange`` with
``step=0.0``, i.e. continuous, or ``IntegerRange``), so rqt shows sliders and rclpy rejects out-of-range
values before any callback runs. :class:`ParamGroup` then turns parameter values back into the
dataclass; the node's on-set callback tries to build the candidate config and rejects the change with
the ``ValueError`` text as the reason (the old values stay), and its post-set callback swaps the new
config in. Dataclass fields that are ``None`` by default (derived values) are declared with a concrete
default given by the node.

Honest ranges: the node gives each numeric field the span its slider should cover; the declared range is
that span as the dataclass validation accepts it (:func:`accepted_range`): an end the validation refuses
is an open bound there (``min_keep_ratio`` in (0, 1]) and moves inward by :data:`OPEN_BOUND_INSET` of the
span, so rclpy's own range check refuses the bound itself (with "out of range") and every slider
position is a value the node accepts. A span end refused even then is a bug in the node's table and
raises at start. Fields valid only together (``v_min <= v_max``) are probed with the partner at the far
end of its own span: their slider positions are accepted where the partner's value allows them.

Pairs: rclpy calls the on-set callback once per parameter for a non-atomic ``set_parameters`` (the
service sets each parameter of the request alone, in order), so ``v_min`` and ``v_max`` changed in one
request could end half-applied. A node that mixes in :class:`PairedParameters` sets the members of a
pair that come in the same request together (atomically: both or neither), through its own
``set_parameters`` and its ``set_parameters`` service; ``set_parameters_atomically`` does that for any
set of parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rcl_interfaces.srv import SetParameters
from rclpy.exceptions import ParameterNotDeclaredException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_service import ParameterService

OPEN_BOUND_INSET = 1e-5
"""An open bound of the validation becomes a range end this share of ``max(|bound|, span)`` inside it (ten
times rclpy's relative tolerance at range ends, ``Node.PARAM_REL_TOL``, so rclpy refuses the bound itself)."""

ParamPairs = Sequence[tuple[str, str]]
"""``(low, high)`` parameter names valid only together (``low <= high`` or ``low < high``)."""

_TYPE_OF = {
    float: ParameterType.PARAMETER_DOUBLE,
    int: ParameterType.PARAMETER_INTEGER,
    bool: ParameterType.PARAMETER_BOOL,
    str: ParameterType.PARAMETER_STRING,
}


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter backed by a dataclass field.

    Attributes:
        name: full parameter name (``prefix`` + field name).
        field: dataclass field name.
        default: declared default (the YAML overrides it).
        description: shown by rqt / ``ros2 param describe``; should state units.
        value_range: ``(from, to)`` inclusive, for numbers; None for none.
        read_only: cannot change after start (paths, devices).
        is_tuple: the field is a tuple of floats (declared as a double array).
        none_value: parameter value that stands for the field's ``None`` (e.g. 0.0 = "no bound").
    """

    name: str
    field: str
    default: Any
    description: str
    value_range: tuple[float, float] | None = None
    read_only: bool = False
    is_tuple: bool = False
    none_value: Any = None

    @property
    def ros_type(self) -> int:
        if self.is_tuple:
            return ParameterType.PARAMETER_DOUBLE_ARRAY
        return _TYPE_OF[type(self.default)]

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(
            name=self.name, type=self.ros_type, description=self.description, read_only=self.read_only
        )
        if self.value_range is not None:
            lo, hi = self.value_range
            if self.ros_type == ParameterType.PARAMETER_DOUBLE:
                desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
            elif self.ros_type == ParameterType.PARAMETER_INTEGER:
                desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        return desc


def docstring_args(cls: type) -> dict[str, str]:
    """``Args:`` entries of a class docstring, name -> one-line description (continuation lines joined)."""
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    in_args = False
    current = None
    for line in doc.splitlines():
        if line.strip() == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if line and not line.startswith(" "):
            break  # next section
        m = re.match(r"^ {4}([A-Za-z_][A-Za-z0-9_]*(?:, [A-Za-z_][A-Za-z0-9_]*)*): ?(.*)$", line)
        if m:
            names = [n.strip() for n in m.group(1).split(",")]
            for n in names:
                out[n] = m.group(2).strip()
            current = names
        elif current and line.strip():
            for n in current:
                out[n] = f"{out[n]} {line.strip()}"
    return out


def specs_from_dataclass(
    cls: type,
    fields: Sequence[str],
    ranges: Mapping[str, tuple[float, float]],
    prefix: str = "",
    defaults: Mapping[str, Any] | None = None,
    read_only: Iterable[str] = (),
    none_values: Mapping[str, Any] | None = None,
    pairs: ParamPairs = (),
    context: Mapping[str, Any] | None = None,
) -> list[ParamSpec]:
    """ParamSpecs for ``fields`` of dataclass ``cls``, defaults from the dataclass unless given in ``defaults``.

    Args:
        ranges: field -> the span its slider should cover; declared as :func:`accepted_range` of it.
        pairs: ``(low, high)`` fields valid only together (field names, without ``prefix``).
        context: other constructor arguments the node always passes (e.g. ``action_rate_hz``), used when
            probing the validation.

    Raises:
        ValueError: an unknown field, a field without a docstring description, one whose default is None
            and not given in ``defaults`` (ROS parameters cannot be None), or a range the validation refuses.
    """
    defaults = dict(defaults or {})
    none_values = dict(none_values or {})
    read_only = set(read_only)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    docs = docstring_args(cls)
    hints = typing.get_type_hints(cls)
    specs = []
    for name in fields:
        if name not in by_name:
            raise ValueError(f"{cls.__name__} has no field {name!r}")
        if name not in docs:
            raise ValueError(f"{cls.__name__}.{name} has no description in the docstring's Args section")
        field = by_name[name]
        default = defaults.get(name, field.default)
        if default is None and name in none_values:
            default = none_values[name]
        if default is dataclasses.MISSING or default is None:
            raise ValueError(f"{cls.__name__}.{name} needs a concrete default for its ROS parameter")
        hint = hints[name]
        is_tuple = typing.get_origin(hint) is tuple
        if is_tuple:
            default = [float(v) for v in default]
        elif _allows_float(hint) and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)
        specs.append(
            ParamSpec(
                name=prefix + name,
                field=name,
                default=default,
                description=docs[name],
                value_range=ranges.get(name),
                read_only=name in read_only,
                is_tuple=is_tuple,
                none_value=none_values.get(name),
            )
        )
    probe = ParamGroup(cls, specs, context)
    by_field = {s.field: s for s in specs}
    partner_at = {}  # field -> (partner field, which end of the partner's span it is probed at)
    for low, high in pairs:
        partner_at[low] = (high, 1)
        partner_at[high] = (low, 0)
    for i, spec in enumerate(specs):
        if spec.value_range is None:
            continue
        base = {s.name: s.default for s in specs}
        if spec.field in partner_at:
            other, end = partner_at[spec.field]
            other_spec = by_field[other]
            if other_spec.value_range is not None:
                base[other_spec.name] = type(other_spec.default)(other_spec.value_range[end])
        specs[i] = dataclasses.replace(spec, value_range=accepted_range(spec, probe, base))
    return specs


def accepted_range(spec: ParamSpec, probe: ParamGroup, base: Mapping[str, Any]) -> tuple[float, float]:
    """``spec.value_range`` (the slider span) as ``probe``'s validation accepts it, the other values ``base``.

    An end the validation refuses is taken as an open bound and moved inward by :data:`OPEN_BOUND_INSET`
    (one step for integers).

    Raises:
        ValueError: an end is refused even after that (the span reaches outside what is valid).
    """
    lo, hi = spec.value_range

    def accepts(value: float) -> bool:
        try:
            probe.build({**base, spec.name: value})
        except (ValueError, TypeError):
            return False
        return True

    ends = []
    for end, inward in ((lo, 1), (hi, -1)):
        value = type(spec.default)(end)
        if not accepts(value):
            if isinstance(spec.default, int):
                value = value + inward
            else:
                inset = OPEN_BOUND_INSET * max(abs(value), hi - lo)
                value = round(value + inward * inset, -math.floor(math.log10(inset)))  # 3e-05, not 3.0...04e-05
            if not accepts(value):
                raise ValueError(f"{probe.cls.__name__}.{spec.field}: the range end {end} of the span {(lo, hi)} "
                                 "is refused by the validation; fix the node's range table")
        ends.append(value)
    return ends[0], ends[1]


def _allows_float(hint: object) -> bool:
    return hint is float or float in typing.get_args(hint)


def declare_all(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every spec on ``node`` (YAML / command-line overrides apply) and return name -> value."""
    values = {}
    for spec in specs:
        param = node.declare_parameter(spec.name, spec.default, spec.descriptor())
        values[spec.name] = param.value
    return values


class ParamGroup:
    """The parameters of one config dataclass: current values and how to build the dataclass from them."""

    def __init__(self, cls: type, specs: Sequence[ParamSpec], fixed: Mapping[str, Any] | None = None) -> None:
        self.cls = cls
        self.specs = {s.name: s for s in specs}
        self.fixed = dict(fixed or {})
        self.values: dict[str, Any] = {}

    def declare_values(self, node: Node) -> dict[str, Any]:
        """Declare the parameters on ``node``; keep and return their values (name -> value)."""
        self.values = declare_all(node, list(self.specs.values()))
        return self.values

    def declare(self, node: Node) -> Any:
        """Declare the parameters and build the config (raises ValueError if the YAML values are invalid)."""
        return self.build(self.declare_values(node))

    def build(self, values: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Any:
        """The dataclass for these parameter values (raises ValueError when invalid)."""
        kwargs = dict(self.fixed)
        for name, spec in self.specs.items():
            value = values[name]
            if spec.is_tuple:
                value = tuple(float(v) for v in value)
            elif spec.none_value is not None and value == spec.none_value:
                value = None
            kwargs[spec.field] = value
        kwargs.update(extra or {})
        return self.cls(**kwargs)

    def candidate(self, params: Sequence[Parameter]) -> dict[str, Any] | None:
        """Current values updated with those of ``params`` that belong here; None if none do."""
        mine = [p for p in params if p.name in self.specs]
        if not mine:
            return None
        values = dict(self.values)
        for p in mine:
            values[p.name] = list(p.value) if self.specs[p.name].is_tuple else p.value
        return values


def write_yaml_defaults(specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """name -> default, for comparing ``config/spvla.yaml`` with the declared parameters in tests."""
    return {s.name: s.default for s in specs}


def set_parameters_paired(node: Node, parameters: Sequence[Parameter], pairs: ParamPairs,
                          catch_undeclared: bool = False) -> list[SetParametersResult]:
    """rclpy's non-atomic ``set_parameters``, except that both members of a pair in ``parameters`` are set
    together (``set_parameters_atomically``: both or neither, each validated against the other's new value).

    Returns:
        One result per parameter, in order (the two members of a pair share theirs).

    Raises:
        ParameterNotDeclaredException: as rclpy's ``Node.set_parameters``, unless ``catch_undeclared`` (then
            that parameter's result fails with the reason, as rclpy's parameter service reports it).
    """
    partner = dict(pairs) | {b: a for a, b in pairs}
    results: list[SetParametersResult | None] = [None] * len(parameters)
    for i, param in enumerate(parameters):
        if results[i] is not None:
            continue
        group = [i] + [j for j in range(i + 1, len(parameters))
                       if results[j] is None and parameters[j].name == partner.get(param.name)][:1]
        try:
            result = node.set_parameters_atomically([parameters[j] for j in group])
        except ParameterNotDeclaredException as exc:
            if not catch_undeclared:
                raise
            result = SetParametersResult(successful=False, reason=str(exc))
        for j in group:
            results[j] = result
    return results


class _PairedParameterService(ParameterService):
    """rclpy's parameter services; ``set_parameters`` sets the pairs in a request together."""

    def __init__(self, node: Node, pairs: ParamPairs) -> None:
        self._pairs = tuple(pairs)
        super().__init__(node)

    def _set_parameters_callback(self, request: SetParameters.Request,
                                 response: SetParameters.Response) -> SetParameters.Response:
        params = [Parameter.from_parameter_msg(p) for p in request.parameters]
        response.results = set_parameters_paired(self._get_node(), params, self._pairs, catch_undeclared=True)
        return response


class PairedParameters:
    """Mixin for an rclpy ``Node`` subclass whose ``PARAMETER_PAIRS`` are valid only together.

    ``class SchedulerNode(PairedParameters, Node)``: a non-atomic ``set_parameters`` (in-process, or over
    the ``~/set_parameters`` service as ``ros2 param load`` and rqt send it) sets both members of a pair
    that are in the same request atomically, so ``v_min`` and ``v_max`` are never left half-applied. The
    other parameters of the request are set one by one, as rclpy does.
    """

    PARAMETER_PAIRS: ParamPairs = ()

    def __init__(self, node_name: str, *args: Any, start_parameter_services: bool = True, **kwargs: Any) -> None:
        super().__init__(node_name, *args, start_parameter_services=False, **kwargs)
        if start_parameter_services:
            self._paired_parameter_service = _PairedParameterService(self, self.PARAMETER_PAIRS)

    def set_parameters(self, parameter_list: list[Parameter]) -> list[SetParametersResult]:
        return set_parameters_paired(self, parameter_list, self.PARAMETER_PAIRS)
