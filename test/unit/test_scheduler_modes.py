"""Named scheduling modes (config/scheduler_modes.yaml): paper is the base, every mode is valid."""

import pytest

from spvla_ros.core.config_io import dataclass_from_yaml
from spvla_ros.core.scheduler_config import SchedulerConfig
from spvla_ros.core.scheduler_modes import SCHEDULER_FILE, SchedulerModes, load_scheduler_modes


def test_shipped_modes_load_and_paper_is_the_base_rule():
    modes = load_scheduler_modes()
    assert modes.default in modes.names
    paper = dataclass_from_yaml(SchedulerConfig, SCHEDULER_FILE)
    assert modes.config("paper") == paper
    for name in modes.names:
        cfg = modes.config(name, speed_range=0.02, action_rate_hz=5.0)
        assert cfg.speed_range == 0.02 and cfg.action_rate_hz == 5.0


def test_reference_rows_are_reproducible_as_modes():
    modes = load_scheduler_modes()
    assert modes.config("norm").intuitive_test == "norm"
    assert modes.config("norm_max3").max_consecutive_extrapolations == 3
    assert modes.config("model_fit").fit_history == "model"


def test_unknown_mode_lists_the_known_ones():
    with pytest.raises(ValueError, match="paper"):
        load_scheduler_modes().config("fastest")


def test_bad_mode_files_are_rejected():
    base = SchedulerConfig()
    with pytest.raises(ValueError, match="paper"):
        SchedulerModes(default="paper", modes={"paper": {"tau": 0.1}}, base=base)
    with pytest.raises(ValueError, match="default mode"):
        SchedulerModes(default="x", modes={"paper": {}}, base=base)
    with pytest.raises(ValueError, match="deployment"):
        SchedulerModes(default="paper", modes={"paper": {}, "m": {"speed_range": 2.0}}, base=base)
    with pytest.raises(ValueError, match="tau"):
        SchedulerModes(default="paper", modes={"paper": {}, "m": {"tau": 3.0}}, base=base)
    with pytest.raises(ValueError, match="no_such"):
        SchedulerModes(default="paper", modes={"paper": {}, "m": {"no_such": 1}}, base=base)
