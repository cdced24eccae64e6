"""The scheduling-modes write-up says what the benchmark JSON it cites says, and the shipped default is
the mode that JSON selected (regenerate both together: the command is in docs/scheduler_modes.md)."""

import json
import re

from spvla_ros.core.config_io import CONFIG_DIR
from spvla_ros.core.scheduler_modes import load_scheduler_modes

ROOT = CONFIG_DIR.parent
DOC = ROOT / "docs" / "scheduler_modes.md"
RESULT = ROOT / "docs" / "benchmarks" / "json" / "closed-loop-full.json"
ROW = re.compile(
    r"^\| \**(\w+)\**(?: \(default\))? \| \**([\d.]+)%\** \| \[[\d., ]+\] \| \**([\d.]+)\** \| \**([\d.]+)x\**"
)


def _eval_rows() -> dict[str, tuple[float, float, float]]:
    text = DOC.read_text().split("Evaluation split (reports):", 1)[1].split("![", 1)[0]
    return {m[1]: (float(m[2]), float(m[3]), float(m[4])) for m in map(ROW.match, text.splitlines()) if m}


def test_the_evaluation_table_matches_the_benchmark_json():
    payload = json.loads(RESULT.read_text())
    rows = _eval_rows()
    assert len(rows) >= 10, rows
    for name, (success, call_fraction, speedup) in rows.items():
        s = payload["methods"][name]
        assert success == round(100 * s["success_rate"], 1), name
        assert call_fraction == round(s["model_call_fraction"], 3), name
        assert speedup == round(s["speedup"], 2), name


def test_the_shipped_default_is_the_mode_the_benchmark_selected_on_the_tuning_split():
    selection = json.loads(RESULT.read_text())["mode_selection"]
    default = load_scheduler_modes().default
    assert selection["default_mode"] == default
    assert selection["winner"] == f"sp_vla_{default}" and selection["winner_qualified"]
    assert selection["default_equals_tuned"]


def test_the_claim_holds_in_the_json():
    """Default mode vs fixed skip k=2, 3 on the held-out split: higher speedup, success at least as high;
    and >= 3x fewer calls than every step with <= 1 point success loss."""
    methods = json.loads(RESULT.read_text())["methods"]
    mode = methods[f"sp_vla_{load_scheduler_modes().default}"]
    for k in (2, 3):
        skip = methods[f"fixed_skip_k{k}"]
        assert mode["speedup"] > skip["speedup"] and mode["success_rate"] >= skip["success_rate"]
    assert mode["speedup"] >= 3.0
    assert mode["success_rate"] >= methods["every_step"]["success_rate"] - 0.01
