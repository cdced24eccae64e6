"""The parity harness itself (no official code, no shared/ needed): sizes map onto spvla presets, the stage
comparison judges what it says, progress lines parse, missing prerequisites give a clear reason."""

from __future__ import annotations

import numpy as np
import pytest

from spvla_ros.bench import cogact_parity as cp
from spvla_ros.core.policy.presets import COGACT_BASE


def test_sizes_are_cogact_base_with_fewer_blocks() -> None:
    ci = cp.CI_SIZE.preset()
    assert (ci.dino.num_layers, ci.siglip.num_layers, ci.llm.num_layers, ci.action_model_type) == (3, 3, 1, "DiT-S")
    assert ci.llm.hidden_size == COGACT_BASE.llm.hidden_size == 4096  # predict_action asserts a 4096 feature
    assert ci.llm.vocab_size == 32064 and ci.fused_vision_dim == COGACT_BASE.fused_vision_dim
    full = cp.FULL_SIZE.preset()
    assert (full.dino, full.siglip, full.dit) == (COGACT_BASE.dino, COGACT_BASE.siglip, COGACT_BASE.dit)
    assert full.llm.intermediate_size == COGACT_BASE.llm.intermediate_size
    assert "--vision-depth" not in cp.FULL_SIZE.reference_args()
    assert cp.CI_SIZE.reference_args()[:2] == ["--vision-depth", "3"]


def test_compare_frame_judges_each_stage() -> None:
    rng = np.random.default_rng(0)
    ref = {k: rng.normal(size=(2, 3)) for k in cp.STAGE_TOLERANCES if k != "gripper"}
    ref["actions"] = rng.normal(size=(16, 7))
    ours = {k: v.copy() for k, v in ref.items()}
    ours["actions"], ours["gripper"] = ref["actions"][:, :cp.GRIPPER], ref["actions"][:, cp.GRIPPER]
    ours["cognition"] = ref["cognition"] * (1 + 1e-6)  # round-off: within rel 1e-4
    ours["projector"] = ref["projector"] * 1.01  # a real difference
    ours["noise"] = ref["noise"] + 1e-7  # exact stages allow nothing
    ours["eps"] = ref["eps"][:1]  # wrong shape
    results = {r.stage: r for r in cp.compare_frame("x", ours, ref)}
    assert list(results) == list(cp.STAGE_TOLERANCES)
    assert results["cognition"].ok and results["input_ids"].ok and results["gripper"].ok
    assert not results["projector"].ok and not results["noise"].ok
    assert not results["eps"].ok and results["eps"].max_abs == float("inf")
    headers, rows = cp.results_table(results.values())
    assert len(rows) == len(results) and "rel" in headers


def test_progress_lines_parse() -> None:
    assert cp.parse_progress("PROGRESS 3/8 predict_action 224") == (3, 8, "predict_action 224")
    assert cp.parse_progress("PROGRESS 8/8 done") == (8, 8, "done")
    for line in ("INFO loading", "PROGRESS x/8 a", "PROGRESS", ""):
        assert cp.parse_progress(line) is None


def test_missing_prerequisites_name_what_is_missing(tmp_path) -> None:
    with pytest.raises(cp.ReferenceUnavailableError, match="third_party"):
        cp.shared_inputs(tmp_path)
