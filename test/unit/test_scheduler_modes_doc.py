"""The scheduling-modes write-up says what the closed-loop benchmark JSON it cites says, and the shipped default
follows the rule that JSON applied (regenerate both together: the command is in docs/scheduler_modes.md)."""

import json
import re

from spvla_ros.core.config_io import CONFIG_DIR
from spvla_ros.core.scheduler_modes import load_scheduler_modes

ROOT = CONFIG_DIR.parent
DOC = ROOT / "docs" / "scheduler_modes.md"
RESULT = ROOT / "docs" / "benchmarks" / "json" / "closed-loop-full.json"
ROW = re.compile(
    r"^\| \**(\w+)\**(?: \([\w ]+\))? \| (\d+) \| \**([\d.]+)%\** \| \[([\d.]+), ([\d.]+)\] \| \**([\d.]+)\** \|"
    r" \**([\d.]+)x\**"
)


def _eval_rows() -> dict[tuple[str, int], tuple[float, ...]]:
    text = DOC.read_text().split("Evaluation split (reports):", 1)[1].split("![", 1)[0]
    return {(m[1], int(m[2])): tuple(float(m[i]) for i in range(3, 8)) for m in map(ROW.match, text.splitlines())
            if m}


def test_the_evaluation_tables_match_the_benchmark_json():
    payload = json.loads(RESULT.read_text())
    results = {(r["method"], r["delay_steps"]): r for r in payload["results"]}
    rows = _eval_rows()
    assert len(rows) >= 4 * 10, sorted(rows)
    assert {d for _, d in rows} == set(payload["delays"])
    for key, (success, lo, hi, call_fraction, speedup) in rows.items():
        r = results[key]
        assert success == round(100 * r["success"], 1), key
        assert (lo, hi) == (round(100 * r["success_ci95"][0], 1), round(100 * r["success_ci95"][1], 1)), key
        assert call_fraction == round(r["model_call_fraction"], 3), key
        assert speedup == round(r["speedup"], 2), key


def test_the_shipped_default_follows_the_selection_in_the_json():
    payload = json.loads(RESULT.read_text())
    selection = payload["mode_selection"]
    default = load_scheduler_modes().default
    assert selection["default_mode"] == default
    if selection["winner_qualified"]:  # a candidate met the rule on the tuning split: it must be the default
        assert selection["default_equals_winner"], selection["winner"]


def test_the_goal_verdict_in_the_text_is_the_json_verdict():
    payload = json.loads(RESULT.read_text())
    text = DOC.read_text()
    verdict = "**Goal met" if payload["goal"]["met"] else "**Goal not met"
    assert verdict in text
    for d, g in payload["goal"]["per_delay"].items():
        p = g["paired"]
        assert f"d = {d}: {p['wins']} wins, {p['losses']} losses (p = {p['p_value']:.3f})" in text
