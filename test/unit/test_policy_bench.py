"""``spvla-bench policy``: JSON keys per keep ratio, FLOPs ratios, CPU memory guard, flops-only mode."""

from __future__ import annotations

import json

import pytest
import torch

from spvla_ros.bench import policy_bench
from spvla_ros.bench.cli import build_parser
from spvla_ros.core.policy import STAGES


def _args(*extra: str):
    return build_parser().parse_args(["policy", *extra])


def test_tiny_run_writes_every_figure(tmp_path, capsys) -> None:
    before = torch.get_num_threads()
    out = tmp_path / "policy.json"
    try:
        args = _args("--preset", "tiny", "--steps", "2", "--warmup", "1", "--threads", "1",
                     "--keep", "1.0,0.5", "--json", str(out))
        assert args._run(args) == 0
    finally:
        torch.set_num_threads(before)
    data = json.loads(out.read_text())
    for key in ("latency_s", "flops", "flops_ratio", "stage_ms", "peak_memory_mb", "num_vision_tokens"):
        assert set(data[key]) == {"1.0", "0.5"}, key
    assert data["flops_ratio"]["1.0"] == 1.0 and 0 < data["flops_ratio"]["0.5"] < 1
    assert set(data["stage_ms"]["0.5"]) == set(STAGES)
    assert data["num_vision_tokens"] == {"1.0": 256, "0.5": 128}
    assert data["flops"]["0.5"]["pruning"] > 0 == data["flops"]["1.0"]["pruning"]
    assert data["peak_memory_mb"]["1.0"] > 0 and data["dtype"] == "float32"
    assert "latency_ms" in capsys.readouterr().out


def test_flops_only_needs_no_weights(capsys) -> None:
    args = _args("--preset", "cogact-base", "--flops-only", "--keep", "1.0,0.5")
    assert args._run(args) == 0
    text = capsys.readouterr().out
    assert "cogact-base" in text and "latency_ms" not in text


def test_cpu_run_that_cannot_fit_is_refused(monkeypatch, capsys) -> None:
    monkeypatch.setattr(policy_bench, "_physical_bytes", lambda: 1 << 30)
    args = _args("--preset", "cogact-base", "--device", "cpu")
    assert args._run(args) == 2
    assert "--flops-only" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["", "1.2", "0", "a,b"])
def test_bad_keep_list(text: str) -> None:
    with pytest.raises(ValueError):
        policy_bench.parse_keep(text)


def test_synthetic_scene_has_edges() -> None:
    from spvla_ros.core.pruning import canny_patch_mask

    img = policy_bench.synthetic_scene()
    assert img.shape == (224, 224, 3) and img.dtype.name == "uint8"
    assert 0 < canny_patch_mask(img).sum() < 256
