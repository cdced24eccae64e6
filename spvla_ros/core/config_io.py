"""Load the YAML defaults under ``config/`` into the core dataclasses (unknown keys are an error)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

import yaml

T = TypeVar("T")

PACKAGE = "spvla"


def find_config_dir(module_file: str | Path = __file__) -> Path:
    """``config/`` of the source checkout, else ``<prefix>/share/spvla/config`` of the install this module is in.

    Installs put the package in ``<prefix>/lib/pythonX.Y/site-packages/spvla_ros`` and the config files in
    ``<prefix>/share/spvla/config`` (colcon through CMakeLists.txt; a non-editable ``pip install`` through
    setup.py's ``data_files``). Found from this file's place, so the core needs no ROS lookup (ament index).
    """
    package_dir = Path(module_file).resolve().parents[1]  # .../spvla_ros
    source = package_dir.parent / "config"
    if source.is_dir() or len(package_dir.parents) < 4:
        return source
    installed = package_dir.parents[3] / "share" / PACKAGE / "config"  # site-packages, pythonX.Y, lib, prefix
    return installed if installed.is_dir() else source


CONFIG_DIR = find_config_dir()
"""``config/`` of a source checkout, or its installed copy ``share/spvla/config`` (:func:`find_config_dir`)."""


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
