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
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter

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
) -> list[ParamSpec]:
    """ParamSpecs for ``fields`` of dataclass ``cls``, defaults from the dataclass unless given in ``defaults``.

    Raises:
        ValueError: an unknown field, a field without a docstring description, or one whose default is None
            and not given in ``defaults`` (ROS parameters cannot be None).
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
    return specs


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

    def declare(self, node: Node) -> Any:
        """Declare the parameters and build the config (raises ValueError if the YAML values are invalid)."""
        self.values = declare_all(node, list(self.specs.values()))
        return self.build(self.values)

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
