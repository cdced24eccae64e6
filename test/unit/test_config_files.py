"""The YAML defaults under config/ and the core dataclasses stay equal."""

import dataclasses

import pytest
import yaml

from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.scheduler_config import SchedulerConfig


def test_scheduler_yaml_equals_dataclass_defaults():
    from_yaml = dataclass_from_yaml(SchedulerConfig, CONFIG_DIR / "scheduler.yaml")
    assert from_yaml == SchedulerConfig()
    keys = set(yaml.safe_load((CONFIG_DIR / "scheduler.yaml").read_text()))
    assert keys == {f.name for f in dataclasses.fields(SchedulerConfig) if f.init}


def test_unknown_yaml_key_is_an_error(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("tau: 0.3\nv_mn: 0.1\n")
    with pytest.raises(ValueError, match="v_mn"):
        dataclass_from_yaml(SchedulerConfig, p)
