"""spvla's CogACT against the official CogACT code, stage by stage, on one checkpoint and a real camera frame.

The official model (microsoft/CogACT + prismatic from ../shared/third_party, run in its own venv
``.venv-cogact`` by tools/cogact_reference.py; never imported here) is built with random weights at
:data:`CI_SIZE` (full-width DINOv2 ViT-L/14-reg4 and SigLIP so400m/14 cut to 3 blocks each, one Llama layer
of hidden size 4096, DiT-S), saved in the release layout and run through ``predict_action``; spvla loads that
folder with ``load_policy`` and runs the same frames: the centre 224x224 crop of a real 640x480 BridgeData
frame, and the whole 640x480 frame. Tolerances: :data:`STAGE_TOLERANCES` (stated there, with why).

Without ../shared/third_party or the reference venv every test here skips and says which is missing. The full
towers and DiT-B: ``spvla-bench parity`` (docs/benchmarks.md).

Regressions pinned: prompt ids one token longer than the official ones (trailing space after "Out:"); frames
larger than 224 px resized with cv2 INTER_AREA instead of the official PIL bicubic; any timm -> transformers
key-mapping slip (every tower, projector, LLM and DiT stage is compared); the pruned path feeding the LLM
anything but the kept projector outputs, or moving them (position ids).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from spvla_testing import SHARED_DIR

from spvla_ros.bench import cogact_parity as cp
from spvla_ros.bench.report_io import format_table
from spvla_ros.core.policy import CogACTPolicy
from spvla_ros.core.policy.prompt import EOS_ID, LLAMA_SPACE_ID
from spvla_ros.core.policy.runtime import resize_to_224

pytestmark = pytest.mark.slow

REFERENCE_TIMEOUT_S = 600.0
FRAMES = ("224", "640x480")
OFFICIAL_PROMPT_IDS = Path(__file__).resolve().parents[1] / "unit" / "data" / "official_prompt_ids.json"
KEEP = 0.5


@dataclass
class Parity:
    run: cp.ReferenceRun
    policy: CogACTPolicy
    frames: dict[str, np.ndarray]
    ours: dict[str, dict[str, np.ndarray]]


@pytest.fixture(scope="module")
def parity(tmp_path_factory) -> Parity:
    work = tmp_path_factory.mktemp("cogact_parity")
    try:
        run = cp.run_reference(cp.CI_SIZE, work, shared=SHARED_DIR, timeout_s=REFERENCE_TIMEOUT_S)
    except cp.ReferenceUnavailableError as exc:
        pytest.skip(f"official CogACT reference not available: {exc}")
    try:
        policy = cp.load_parity_policy(run, cp.CI_SIZE, SHARED_DIR)
        frames = cp.parity_frames(SHARED_DIR / cp.PARITY_IMAGE)
        assert set(frames) == set(FRAMES)
        ours = {name: cp.spvla_stages(policy, frames[name], cp.INSTRUCTION, float(run.frame(name)["scale"]))
                for name in FRAMES}
        yield Parity(run, policy, frames, ours)
    finally:
        shutil.rmtree(run.run_dir / "checkpoints", ignore_errors=True)  # 2 GB


@pytest.mark.parametrize("frame", FRAMES)
def test_every_stage_matches_the_official_model(parity: Parity, frame: str) -> None:
    results = cp.compare_frame(frame, parity.ours[frame], parity.run.frame(frame))
    table = format_table(*cp.results_table(results))
    assert [r.stage for r in results] == list(cp.STAGE_TOLERANCES)
    assert all(r.ok for r in results), f"stages off the official model:\n{table}"
    assert all(r.max_ref > 0 for r in results), f"a stage is all zero on the official side:\n{table}"


def test_the_official_checkpoint_is_the_release_layout(parity: Parity) -> None:
    run_dir = parity.run.run_dir
    assert (run_dir / "config.json").is_file() and (run_dir / "dataset_statistics.json").is_file()
    assert [p.suffix for p in (run_dir / "checkpoints").iterdir()] == [".pt"]
    assert json.loads((run_dir / "config.json").read_text())["vla"]["base_vlm"] == "prism-dinosiglip-224px+7b"
    # The trivially initialised parameters were randomised, so a wrong mapping of any of them would show.
    randomised = parity.run.meta["randomised"]
    for needle in ("ls1.gamma", "reg_token", "cls_token", "final_layer.linear.weight", "norm.weight"):
        assert any(needle in name for name in randomised), needle


def test_official_prompt_ids_equal_the_recorded_ones_and_ours(parity: Parity) -> None:
    recorded = json.loads(OFFICIAL_PROMPT_IDS.read_text())
    live = parity.run.prompt_ids
    assert set(live) == set(cp.PROMPT_INSTRUCTIONS) and set(live) <= set(recorded)
    for text, ids in live.items():
        assert ids == recorded[text], text
        assert parity.policy.tokenizer.prompt_ids(text) == ids, text


def test_the_comparison_catches_the_old_prompt_and_the_old_resize(parity: Parity) -> None:
    """Negative controls: the two differences the issue found fail their stage by far."""
    ref = parity.run.frame("640x480")
    policy = parity.policy
    model = policy.model
    tol = cp.STAGE_TOLERANCES
    old_ids = policy.tokenizer.prompt_ids(cp.INSTRUCTION)
    assert old_ids[-2:] == [LLAMA_SPACE_ID, EOS_ID]
    old_ids = [*old_ids[:-2], LLAMA_SPACE_ID, LLAMA_SPACE_ID, EOS_ID]  # the template ended "Out: "
    with torch.inference_mode():
        fused = torch.from_numpy(parity.ours["640x480"]["projector_in"])
        cognition = model.cognition(fused, torch.tensor([old_ids])).numpy()
        pixels = model.vision_backbone.pixel_values(resize_to_224(parity.frames["640x480"], "cv2_area"))[0].numpy()
    rel_cognition = np.abs(cognition - ref["cognition"]).max() / np.abs(ref["cognition"]).max()
    rel_pixels = np.abs(pixels - ref["pixel_dino"]).max() / np.abs(ref["pixel_dino"]).max()
    assert rel_cognition > 100 * tol["cognition"].rel
    assert rel_pixels > 100 * tol["pixel_dino"].rel


# --------------------------------------------------------------------------------------------------------------
# The pruned path. With keep_ratio < 1 there is no official counterpart; what must hold:
#   1. keep_ratio 1.0 is the official path: predict_chunk runs no selection at all (the stages above), and
#      forcing the selection at 1.0 (all 256 tokens kept) gives bit-identical outputs in both position modes;
#   2. the LLM sees exactly [BOS, the kept rows of the projector output in their original order, the prompt];
#      the kept rows are the official projector's rows at the kept patch indices (no re-projection, no mixing);
#   3. positions: ``preserve`` gives each kept token the position it has in the official unpruned sequence
#      (1 + patch index; the prompt keeps 257 + j), so RoPE rotates it as in the official model; ``renumber``
#      (the default) numbers the shorter sequence 0..K+T-1, as token-dropping code does.
# --------------------------------------------------------------------------------------------------------------
def test_keep_one_through_the_selection_is_bit_identical(parity: Parity) -> None:
    policy = parity.policy
    frame = parity.frames["640x480"]
    plain = parity.ours["640x480"]
    original = policy.pruning_config
    try:
        for mode in ("renumber", "preserve"):
            policy.pruning_config = original.with_changes(position_ids=mode)
            policy.reset()
            forced = policy._predict(frame, cp.INSTRUCTION, 1.0, run_pruning=True)
            assert np.array_equal(forced.kept_indices, np.arange(256)), mode
            assert np.array_equal(forced.normalized_actions, plain["ddim"]), mode
            assert np.array_equal(forced.actions, plain["chunk_actions"]), mode
    finally:
        policy.pruning_config = original


@pytest.mark.parametrize("mode", ["renumber", "preserve"])
def test_pruned_llm_sees_exactly_the_kept_projector_rows(parity: Parity, mode: str) -> None:
    policy = parity.policy
    ref = parity.run.frame("640x480")
    original = policy.pruning_config
    try:
        policy.pruning_config = original.with_changes(position_ids=mode)
        pruned = cp.spvla_stages(policy, parity.frames["640x480"], cp.INSTRUCTION, float(ref["scale"]), KEEP)
    finally:
        policy.pruning_config = original
    idx = pruned["kept_indices"]
    k = len(idx)
    assert k == round(KEEP * 256) and np.all(np.diff(idx) > 0)  # original order, no repeats
    embeds, official = pruned["llm_inputs_embeds"][0], ref["llm_inputs_embeds"][0]
    text = official[1 + 256:]
    assert embeds.shape == (1 + k + len(text), official.shape[1])
    projector_tol = cp.STAGE_TOLERANCES["projector"].rel * np.abs(ref["projector"]).max()
    np.testing.assert_allclose(embeds[1:1 + k], ref["projector"][0, idx], rtol=0, atol=projector_tol)
    np.testing.assert_allclose(embeds[1:1 + k], pruned["projector"][0], rtol=0, atol=0)  # the very rows
    np.testing.assert_array_equal(embeds[0], official[0])  # BOS
    np.testing.assert_array_equal(embeds[1 + k:], text)  # the prompt, unchanged
    positions = pruned["position_ids"]
    if mode == "renumber":
        assert positions is None  # the decoder numbers 0 .. len - 1
    else:
        expected = np.concatenate([[0], 1 + idx, 1 + 256 + np.arange(len(text))])
        np.testing.assert_array_equal(positions.numpy()[0], expected)
