"""PruningConfig validation, YAML defaults, and the speed -> keep ratio -> budget formulas."""

import dataclasses
import math

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from spvla_ros.core.config_io import CONFIG_DIR, dataclass_from_yaml
from spvla_ros.core.pruning import PruningConfig, keep_ratio_for_speed, token_budget


def test_pruning_yaml_equals_dataclass_defaults():
    assert dataclass_from_yaml(PruningConfig, CONFIG_DIR / "pruning.yaml") == PruningConfig()
    keys = set(yaml.safe_load((CONFIG_DIR / "pruning.yaml").read_text()))
    assert keys == {f.name for f in dataclasses.fields(PruningConfig) if f.init}


@pytest.mark.parametrize(
    ("changes", "quoted"),
    [
        ({"v_pmin": -0.1}, "-0.1"),
        ({"v_pmin": 0.5, "v_pmax": 0.5}, "0.5"),
        ({"v_pmax": float("nan")}, "nan"),
        ({"min_keep_ratio": 0.0}, "0.0"),
        ({"min_keep_ratio": 1.5}, "1.5"),
        ({"canny_low": 210.0}, "210.0"),
        ({"min_edge_pixels": 0}, "0"),
        ({"min_edge_pixels": 197}, "197"),
        ({"patch_size": 14.0}, "14.0"),
        ({"semantic_mode": "topk"}, "topk"),
        ({"t_ks": -1.0}, "-1.0"),
        ({"semantic_mass": 0.0}, "0.0"),
        ({"position_ids": "shift"}, "shift"),
    ],
)
def test_bad_config_values_are_rejected_and_quoted(changes, quoted):
    with pytest.raises(ValueError, match=quoted.replace(".", r"\.")):
        PruningConfig(**changes)


def test_with_changes_validates_and_keeps_original():
    cfg = PruningConfig()
    with pytest.raises(ValueError):
        cfg.with_changes(semantic_mass=2.0)
    assert cfg.with_changes(t_ks=2.0).t_ks == 2.0
    assert cfg.t_ks == PruningConfig().t_ks


V_PMIN, V_PMAX, FLOOR = 0.2, 0.6, 0.1


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        (0.0, 1.0),  # standing still: no pruning
        (V_PMIN, 1.0),  # the lower breakpoint itself: still no pruning
        (0.3, 0.75),  # a quarter up the ramp
        (0.4, 0.5),  # half-way
        (0.5, 0.25),
        (V_PMAX, FLOOR),  # ramp reaches 0 -> clamped to the floor
        (5.0, FLOOR),
    ],
)
def test_keep_ratio_piecewise_at_breakpoints(v, expected):
    assert keep_ratio_for_speed(v, V_PMIN, V_PMAX, FLOOR) == pytest.approx(expected)


def test_keep_ratio_is_continuous_at_v_pmin_and_clamped_at_floor():
    eps = 1e-9
    assert keep_ratio_for_speed(V_PMIN + eps, V_PMIN, V_PMAX, FLOOR) == pytest.approx(1.0, abs=1e-6)
    assert keep_ratio_for_speed(V_PMIN + eps, V_PMIN, V_PMAX, FLOOR) < 1.0
    # floor 0.5 is reached half-way up the ramp, not at v_pmax
    assert keep_ratio_for_speed(0.4, V_PMIN, V_PMAX, 0.5) == pytest.approx(0.5)
    assert keep_ratio_for_speed(0.45, V_PMIN, V_PMAX, 0.5) == pytest.approx(0.5)


@given(
    a=st.floats(0, 10, allow_nan=False),
    b=st.floats(0, 10, allow_nan=False),
    v_pmin=st.floats(0, 1),
    width=st.floats(1e-3, 2),
    floor=st.floats(0.01, 1),
)
def test_keep_ratio_monotone_and_bounded(a, b, v_pmin, width, floor):
    lo, hi = sorted((a, b))
    r_lo = keep_ratio_for_speed(lo, v_pmin, v_pmin + width, floor)
    r_hi = keep_ratio_for_speed(hi, v_pmin, v_pmin + width, floor)
    assert floor <= r_hi <= r_lo <= 1.0


@pytest.mark.parametrize(
    "args",
    [(float("nan"), 0.2, 0.6), (-0.1, 0.2, 0.6), (0.3, 0.6, 0.2), (0.3, 0.2, 0.2), (0.3, -1.0, 0.6), (True, 0.2, 0.6)],
)
def test_keep_ratio_bad_inputs(args):
    with pytest.raises(ValueError):
        keep_ratio_for_speed(*args)


def test_keep_ratio_bad_floor():
    with pytest.raises(ValueError, match="min_keep_ratio"):
        keep_ratio_for_speed(0.3, 0.2, 0.6, 0.0)


def test_token_budget_rounds_half_up_and_is_never_empty():
    assert token_budget(1.0, 256) == 256
    assert token_budget(0.5, 256) == 128
    assert token_budget(0.5, 5) == 3  # 2.5 rounds up (Python's round would give 2)
    assert token_budget(1e-9, 256) == 1
    for bad in (0.0, -0.1, 1.01, float("nan")):
        with pytest.raises(ValueError):
            token_budget(bad, 256)
    with pytest.raises(ValueError):
        token_budget(0.5, 0)


@given(r1=st.floats(1e-6, 1.0), r2=st.floats(1e-6, 1.0), p=st.integers(1, 1024))
def test_token_budget_monotone(r1, r2, p):
    lo, hi = sorted((r1, r2))
    assert 1 <= token_budget(lo, p) <= token_budget(hi, p) <= p
    assert abs(token_budget(hi, p) - hi * p) <= 0.5 + 1e-9 or token_budget(hi, p) == 1
    assert math.isclose(token_budget(1.0, p), p)
