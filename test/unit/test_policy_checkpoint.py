"""Checkpoint I/O on the tiny preset: official CogACT layout (timm vision keys) and our own format.

Regressions pinned: official key names per section; round trip gives bit-equal outputs; every strict-loading
error names the offending tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spvla_ros.core.policy import CheckpointError, load_policy, save_official, save_own
from spvla_ros.core.policy.checkpoint import LATEST_CHECKPOINT, load_weights, to_official
from spvla_ros.core.policy.runtime import build_model

STATS = {
    "bridge_orig": {"action": {"q01": [-0.03] * 6 + [0.0], "q99": [0.03] * 6 + [1.0], "mask": [True] * 6 + [False]}},
    "fractal20220817_data": {"action": {"q01": [-0.2] * 7, "q99": [0.2] * 7, "mask": [True] * 6 + [False]}},
}
IMAGE = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cogact_run")
    save_official(build_model(load_policy("tiny", seed=11).preset, torch.device("cpu"), seed=11), run, STATS)
    return run


def _load_blob(run: Path) -> dict:
    return torch.load(run / "checkpoints" / LATEST_CHECKPOINT, weights_only=True)


def _write_blob(src: Path, dst: Path, blob: dict) -> Path:
    (dst / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "dataset_statistics.json"):
        (dst / name).write_text((src / name).read_text())
    torch.save(blob, dst / "checkpoints" / LATEST_CHECKPOINT)
    return dst


def test_official_layout_and_key_names(official_dir: Path) -> None:
    assert {p.name for p in official_dir.iterdir()} == {"config.json", "dataset_statistics.json", "checkpoints"}
    model = _load_blob(official_dir)["model"]
    assert set(model) == {"vision_backbone", "projector", "llm_backbone", "action_model"}
    vb = model["vision_backbone"]
    for key in (
        "dino_featurizer.cls_token",
        "dino_featurizer.reg_token",
        "dino_featurizer.pos_embed",
        "dino_featurizer.patch_embed.proj.weight",
        "dino_featurizer.blocks.0.attn.qkv.weight",
        "dino_featurizer.blocks.0.ls1.gamma",
        "dino_featurizer.norm.bias",
        "siglip_featurizer.blocks.2.mlp.fc2.weight",
        "siglip_featurizer.attn_pool.latent",
        "siglip_featurizer.attn_pool.kv.weight",
        "siglip_featurizer.pos_embed",
    ):
        assert key in vb, key
    assert vb["dino_featurizer.pos_embed"].shape == (1, 256, 32)  # no CLS slot in timm's reg4 DINOv2
    assert vb["dino_featurizer.reg_token"].shape == (1, 4, 32)
    assert vb["dino_featurizer.blocks.0.attn.qkv.weight"].shape == (96, 32)
    assert not any(k.startswith(("embeddings.", "encoder.")) for k in (s.split(".", 1)[1] for s in vb))
    assert set(model["projector"]) == {f"projector.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}
    assert "llm.model.embed_tokens.weight" in model["llm_backbone"] and "llm.lm_head.weight" in model["llm_backbone"]
    assert model["action_model"]["net.z_embedder.uncondition"].shape == (1, 64)
    assert "net.blocks.1.attn.qkv.weight" in model["action_model"]
    assert json.loads((official_dir / "config.json").read_text())["action_model_type"] == "DiT-T"


def test_official_round_trip_gives_identical_outputs(official_dir: Path) -> None:
    original = load_policy("tiny", seed=11, unnorm_key=None)
    loaded = load_policy("tiny", checkpoint=official_dir, seed=11, unnorm_key="bridge_orig")
    for name, value in original.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[name]), name
    a = original.predict_chunk(IMAGE, "open the drawer")
    b = loaded.predict_chunk(IMAGE, "open the drawer")
    assert np.array_equal(a.normalized_actions, b.normalized_actions)
    c = loaded.predict_chunk(IMAGE, "open the drawer", keep_ratio=0.5)
    d = original.predict_chunk(IMAGE, "open the drawer", keep_ratio=0.5)
    assert np.array_equal(c.normalized_actions, d.normalized_actions)
    # the .pt file itself is accepted too
    pt = official_dir / "checkpoints" / LATEST_CHECKPOINT
    again = load_policy("tiny", checkpoint=pt, seed=11, unnorm_key="bridge_orig")
    assert np.array_equal(again.predict_chunk(IMAGE, "open the drawer").normalized_actions, a.normalized_actions)


def test_own_format_round_trip(tmp_path: Path) -> None:
    original = load_policy("tiny", seed=5)
    save_own(original.model, tmp_path / "own", STATS)
    loaded = load_policy("tiny", checkpoint=tmp_path / "own", seed=5, unnorm_key="fractal20220817_data")
    a = original.predict_chunk(IMAGE, "stack the cups")
    b = loaded.predict_chunk(IMAGE, "stack the cups")
    assert np.array_equal(a.normalized_actions, b.normalized_actions)
    assert loaded.statistics.key == "fractal20220817_data"


def _mutated(official_dir: Path, tmp_path: Path, edit) -> Path:
    blob = _load_blob(official_dir)
    edit(blob["model"])
    return _write_blob(official_dir, tmp_path / "mutated", blob)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["vision_backbone"].pop("dino_featurizer.blocks.1.attn.qkv.bias"),
         r"missing tensors 1: dino_featurizer\.blocks\.1\.attn\.qkv\.bias"),
        (lambda m: m["llm_backbone"].update({"llm.model.extra.weight": torch.zeros(2)}),
         r"\[llm_backbone\]: unexpected tensors 1: llm\.model\.extra\.weight"),
        (lambda m: m["projector"].update({"projector.0.weight": torch.zeros(3, 3)}),
         r"mis-shaped tensors 1: projector\.0\.weight \(3, 3\) != \(320, 80\)"),
        (lambda m: m["action_model"].update({"net.positional_embedding": torch.zeros(16, 32)}),
         r"net\.positional_embedding \(16, 32\) != \(17, 32\)"),
        (lambda m: m.pop("vision_backbone"), r"missing sections \['vision_backbone'\]"),
        (lambda m: m.update({"value_head": {}}), r"unexpected sections \['value_head'\]"),
    ],
)
def test_strict_loading_names_every_problem(official_dir: Path, tmp_path: Path, edit, message: str) -> None:
    bad = _mutated(official_dir, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        load_policy("tiny", checkpoint=bad, unnorm_key="bridge_orig")


def test_known_extras_are_ignored(official_dir: Path, tmp_path: Path) -> None:
    def edit(m: dict) -> None:
        m["ema_diffusion"] = dict(m["action_model"])
        m["llm_backbone"]["llm.model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)

    ok = _mutated(official_dir, tmp_path, edit)
    policy = load_policy("tiny", checkpoint=ok, unnorm_key="bridge_orig")
    assert policy.predict_chunk(IMAGE, "go").actions.shape == (16, 7)


def test_layout_errors(official_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_policy("tiny", checkpoint=tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="not a CogACT checkpoint"):
        load_policy("tiny", checkpoint=empty)
    two = _write_blob(official_dir, tmp_path / "two", _load_blob(official_dir))
    (two / "checkpoints" / LATEST_CHECKPOINT).rename(two / "checkpoints" / "step-1.pt")
    torch.save(_load_blob(official_dir), two / "checkpoints" / "step-2.pt")
    with pytest.raises(CheckpointError, match="several checkpoints"):
        load_policy("tiny", checkpoint=two)
    stray = tmp_path / "stray.pt"
    torch.save({}, stray)
    with pytest.raises(CheckpointError, match="checkpoints/<name>.pt"):
        load_policy("tiny", checkpoint=stray)
    other = _write_blob(official_dir, tmp_path / "dit_b", _load_blob(official_dir))
    (other / "config.json").write_text(json.dumps({"action_model_type": "DiT-B"}))
    with pytest.raises(CheckpointError, match="DiT-B"):
        load_policy("tiny", checkpoint=other)


def test_own_format_strictness(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    model = load_policy("tiny").model
    save_own(model, tmp_path / "own", STATS)
    state = load_file(str(tmp_path / "own" / "model.safetensors"))
    state.pop("action_model.net.final_layer.linear.bias")
    save_file(state, str(tmp_path / "own" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing tensors 1: action_model\.net\.final_layer\.linear\.bias"):
        load_weights(build_model(model.preset, torch.device("cpu"), 0), tmp_path / "own")
    meta = json.loads((tmp_path / "own" / "spvla_policy.json").read_text())
    (tmp_path / "own" / "spvla_policy.json").write_text(json.dumps({**meta, "preset": "cogact-base"}))
    with pytest.raises(CheckpointError, match="saved for preset 'cogact-base'"):
        load_weights(build_model(model.preset, torch.device("cpu"), 0), tmp_path / "own")


def test_unnorm_key_errors_list_the_available_keys(official_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"'kitchen' is not in .*\['bridge_orig', 'fractal20220817_data'\]"):
        load_policy("tiny", checkpoint=official_dir, unnorm_key="kitchen")
    with pytest.raises(ValueError, match="several datasets; pass unnorm_key"):
        load_policy("tiny", checkpoint=official_dir)


def test_export_refuses_what_timm_cannot_hold() -> None:
    model = build_model(load_policy("tiny").preset, torch.device("cpu"), 0)
    with torch.no_grad():
        model.vision_backbone.dino_featurizer.embeddings.position_embeddings[0, 0, 0] = 1.0
    with pytest.raises(CheckpointError, match="CLS position"):
        to_official(model.state_dict(), model.preset)
