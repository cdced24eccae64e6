"""Load the YAML defaults under ``config/`` into the core dataclasses (unknown keys are an error)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

import yaml

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
"""``config/`` of a source checkout (installed copies live in ``share/spvla/config``)."""


def dataclass_from_yaml(cls: type[T], path: str | Path, section: str | None = None) -> T:
    """Build ``cls`` from a YAML mapping (optionally one top-level ``section`` of it).

    Raises:
        ValueError: the file is not a mapping, or it has keys that ``cls`` does not define.
    """
    data = yaml.safe_load(Path(path).read_text()) or {}
    if section is not None:
        data = data.get(section, {})
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} for {cls.__name__} (known: {sorted(fields)})")
    return cls(**data)
