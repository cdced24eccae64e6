"""`spvla-bench pruning` runs end to end and writes the JSON keys the issue names (tiny model, and real)."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from spvla_testing import shared_path
from transformers import Dinov2Config, Dinov2Model

from spvla_ros.bench.cli import main

SWEEP_KEYS = {"speed", "keep_ratio", "mean_keep_ratio"}
TOP_KEYS = {
    "speed_sweep",
    "spatial_fraction",
    "semantic_fraction",
    "overlap_fraction",
    "encoder_ms_plain",
    "encoder_ms_with_attention",
    "selection_ms",
    "feature_fidelity",
}


def run_bench(images, model, tmp_path):
    out = tmp_path / "pruning.json"
    figures = tmp_path / "figs"
    argv = ["pruning", "--images", str(images), "--model", str(model), "--json", str(out), "--figures", str(figures)]
    assert main([*argv, "--repeats", "1", "--warmup", "0", "--random-draws", "3"]) == 0
    return json.loads(out.read_text()), figures


def check_payload(payload, n_images):
    assert set(payload) >= TOP_KEYS
    assert len(payload["images"]) == n_images
    for row in payload["speed_sweep"]:
        assert set(row) == SWEEP_KEYS
        assert 0 < row["mean_keep_ratio"] <= 1
    ratios = [row["mean_keep_ratio"] for row in payload["speed_sweep"]]  # speeds ascend -> ratios fall
    assert ratios == sorted(ratios, reverse=True) and ratios[0] == 1.0
    assert payload["encoder_ms_plain"] > 0 and payload["encoder_ms_with_attention"] > 0
    assert payload["selection_ms"] > 0
    assert 0 <= payload["overlap_fraction"] <= min(payload["spatial_fraction"], payload["semantic_fraction"])
    for row in payload["feature_fidelity"]:
        assert {"keep_ratio", "tokens", "method", "random", "method_beats_random"} <= set(row)
        assert -1 <= row["method"] <= 1 and -1 <= row["random"] <= 1


def test_bench_on_tiny_model_and_synthetic_images(tmp_path):
    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=224, patch_size=14
    )
    Dinov2Model(config).save_pretrained(tmp_path / "model")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        img = np.zeros((240, 320, 3), np.uint8)
        img[40 + 20 * k : 160, 60:250] = rng.integers(80, 255, 3)
        cv2.imwrite(str(images / f"synthetic_{k}.png"), img)
    payload, figures = run_bench(images, tmp_path / "model", tmp_path)
    check_payload(payload, 2)
    assert sorted(p.name for p in figures.iterdir()) == ["synthetic_0_pruning.png", "synthetic_1_pruning.png"]


@pytest.mark.slow
def test_bench_on_real_dinov2_and_images(tmp_path):
    model = shared_path("models/dinov2-vits14")
    images = tmp_path / "images"
    images.mkdir()
    for name in ("bridge_sink.png", "google_coke_can_real_eval_1.png"):
        shutil.copy(shared_path(f"data/real_images/{name}"), images / name)
    payload, _ = run_bench(images, model, tmp_path)
    check_payload(payload, 2)
    assert payload["attn_implementation"] == "sdpa"


def test_bench_rejects_empty_folder(tmp_path):
    with pytest.raises(SystemExit, match="no images"):
        main(["pruning", "--images", str(tmp_path), "--model", str(tmp_path)])
