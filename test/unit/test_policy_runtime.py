"""Public policy surface on the tiny preset: outputs, pruning path, determinism, input validation, config."""

from __future__ import annotations

from dataclasses import fields

import cv2
import numpy as np
import pytest
import torch
import yaml

from spvla_ros.core.policy import STAGES, PolicyConfig, load_policy, load_policy_config
from spvla_ros.core.policy.policy_config import DEFAULT_CONFIG_PATH

INSTRUCTION = "put the carrot on the plate"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def policy():
    return load_policy("tiny", device="cpu", seed=0)


def _scene() -> np.ndarray:
    """Textured image with strong edges in one corner so Canny and attention have structure."""
    rng = np.random.default_rng(2)
    img = np.full((300, 400, 3), 120, dtype=np.uint8)
    img[40:140, 60:200] = (200, 30, 30)
    img[180:260, 250:380] = rng.integers(0, 256, (80, 130, 3), dtype=np.uint8)
    return img


def test_output_fields_shapes_and_dtypes(policy) -> None:
    out = policy.predict_chunk(_scene(), INSTRUCTION)
    assert out.actions.shape == (16, 7) and out.actions.dtype == np.float64
    assert np.isfinite(out.actions).all()
    assert out.keep_ratio == 1.0 and out.num_vision_tokens == 256
    assert set(out.stage_ms) == set(STAGES) and out.stage_ms["pruning"] == 0.0
    assert all(v >= 0 for v in out.stage_ms.values())
    assert out.latency_s >= sum(out.stage_ms.values()) / 1000 * 0.99
    assert set(np.unique(out.actions[:, 6])) <= {0.0, 1.0}  # binarized gripper
    assert np.abs(out.actions[:, :6]).max() <= 1.0  # identity statistics: clipped to [-1, 1]


def test_pruned_call_keeps_the_budget_and_shares_indices(policy) -> None:
    out = policy.predict_chunk(_scene(), INSTRUCTION, keep_ratio=0.5)
    assert out.num_vision_tokens == 128 == out.kept_indices.size
    assert np.all(np.diff(out.kept_indices) > 0) and out.kept_indices.max() < 256
    assert out.stage_ms["pruning"] > 0
    assert policy.predict_chunk(_scene(), INSTRUCTION, keep_ratio=0.35).num_vision_tokens == 90


def test_keep_ratio_one_through_the_pruning_path_is_bit_identical(policy) -> None:
    """Regression: running selection + gather with every token kept must not change a single bit."""
    policy.reset()
    plain = policy.predict_chunk(_scene(), INSTRUCTION, keep_ratio=1.0)
    policy.reset()
    forced = policy._predict(_scene(), INSTRUCTION, 1.0, run_pruning=True)
    policy.reset()
    nearly_one = policy.predict_chunk(_scene(), INSTRUCTION, keep_ratio=0.999)  # budget rounds to 256
    assert forced.stage_ms["pruning"] > 0 and nearly_one.num_vision_tokens == 256
    assert np.array_equal(plain.normalized_actions, forced.normalized_actions)
    assert np.array_equal(plain.normalized_actions, nearly_one.normalized_actions)
    policy.reset()
    pruned = policy.predict_chunk(_scene(), INSTRUCTION, keep_ratio=0.5)
    assert not np.array_equal(plain.normalized_actions, pruned.normalized_actions)


def test_seeded_noise_is_reproducible_and_reset_restarts_it() -> None:
    a, b = load_policy("tiny", seed=3), load_policy("tiny", seed=3)
    first = a.predict_chunk(_scene(), INSTRUCTION).normalized_actions
    assert np.array_equal(first, b.predict_chunk(_scene(), INSTRUCTION).normalized_actions)
    second = a.predict_chunk(_scene(), INSTRUCTION).normalized_actions
    assert not np.array_equal(first, second)  # fresh noise on each call
    a.reset()
    assert np.array_equal(first, a.predict_chunk(_scene(), INSTRUCTION).normalized_actions)
    other = load_policy("tiny", seed=4).predict_chunk(_scene(), INSTRUCTION).normalized_actions
    assert not np.array_equal(first, other)


def test_resizes_any_camera_size_like_a_224_image(policy) -> None:
    img = _scene()
    policy.reset()
    from_camera = policy.predict_chunk(img, INSTRUCTION)
    policy.reset()
    from_224 = policy.predict_chunk(policy.image_224(img), INSTRUCTION)
    assert policy.image_224(img).shape == (224, 224, 3)
    assert np.array_equal(from_camera.normalized_actions, from_224.normalized_actions)


def test_resize_interpolations() -> None:
    """Default = the official predict_action's PIL bicubic; the OpenCV options stay selectable; 224 px frames pass
    unchanged whatever the setting (the official transform leaves them alone too; test/parity checks the
    pixels against the official code)."""
    from PIL import Image

    from spvla_ros.core.policy.policy_config import RESIZE_INTERPOLATIONS
    from spvla_ros.core.policy.runtime import resize_to_224

    assert PolicyConfig().resize_interpolation == "pil_bicubic"
    img = _scene()
    assert img.shape[:2] != (224, 224)
    out = {name: resize_to_224(img, name) for name in RESIZE_INTERPOLATIONS}
    assert all(o.shape == (224, 224, 3) and o.dtype == np.uint8 for o in out.values())
    expected = np.asarray(Image.fromarray(img).resize((224, 224), Image.Resampling.BICUBIC))
    assert np.array_equal(out["pil_bicubic"], expected)
    assert np.array_equal(out["cv2_area"], cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA))
    assert not np.array_equal(out["pil_bicubic"], out["cv2_area"])
    square = out["cv2_cubic"]
    assert all(np.array_equal(resize_to_224(square, name), square) for name in RESIZE_INTERPOLATIONS)
    with pytest.raises(ValueError, match="resize_interpolation"):
        resize_to_224(img, "area")


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((224, 224), dtype=np.uint8), "shape"),
        (np.zeros((224, 224, 4), dtype=np.uint8), "shape"),
        (np.zeros((3, 224, 224), dtype=np.uint8), "shape"),
        (np.full((224, 224, 3), np.nan, dtype=np.float32), "NaN"),
        (np.zeros((224, 224, 3), dtype=np.float32), "uint8"),
        (np.zeros((10, 224, 3), dtype=np.uint8), "at least 14x14"),
        (np.zeros((0, 0, 3), dtype=np.uint8), "at least 14x14"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_images_are_rejected(policy, image, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        policy.predict_chunk(image, INSTRUCTION)


@pytest.mark.parametrize("instruction", ["", "   \n", None, 3])
def test_empty_or_non_text_instruction_is_rejected(policy, instruction) -> None:
    with pytest.raises(ValueError, match="instruction"):
        policy.predict_chunk(_scene(), instruction)


@pytest.mark.parametrize("keep", [0.0, -0.5, 1.5, float("nan"), True])
def test_bad_keep_ratio_is_rejected(policy, keep) -> None:
    with pytest.raises(ValueError, match="keep_ratio"):
        policy.predict_chunk(_scene(), INSTRUCTION, keep_ratio=keep)


def test_device_and_preset_are_explicit() -> None:
    with pytest.raises(ValueError, match="device"):
        load_policy("tiny", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load_policy("tiny", device="cuda")
    with pytest.raises(ValueError, match="known presets"):
        load_policy("cogact-huge")
    with pytest.raises(ValueError, match="available keys: \\['identity'\\]"):
        load_policy("tiny", unnorm_key="bridge_orig")


def test_action_rate_and_ensembler_come_from_config(policy) -> None:
    assert policy.action_rate_hz == policy.preset.action_rate_hz  # identity stats: preset default
    ens = policy.make_ensembler()
    assert ens.horizon == policy.config.ensemble_horizon and ens.alpha == policy.config.ensemble_alpha
    out = policy.predict_chunk(_scene(), INSTRUCTION)
    assert ens.update(out.actions).shape == (7,)


def test_yaml_defaults_match_the_dataclass() -> None:
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    assert set(data) == {f.name for f in fields(PolicyConfig)}
    assert load_policy_config() == PolicyConfig()


@pytest.mark.parametrize(
    "change",
    [{"cfg_scale": 0.5}, {"ddim_steps": 0}, {"ddim_steps": 200}, {"resize_interpolation": "nearest"},
     {"resize_interpolation": "area"},
     {"ensemble_horizon": 0}, {"action_rate_hz_by_dataset": {"x": -1.0}}, {"gripper_threshold": float("nan")}],
)
def test_invalid_config_values_are_rejected(change: dict) -> None:
    with pytest.raises(ValueError):
        PolicyConfig(**change)


def test_unknown_yaml_key_is_rejected(tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("cfg_scale: 2.0\nddim: 5\n")
    with pytest.raises(ValueError, match="unknown keys \\['ddim'\\]"):
        load_policy_config(path)


def test_bf16_path_runs_end_to_end() -> None:
    """The GPU precision (bf16 weights, fp32 RoPE and DDIM state), exercised on CPU."""
    from spvla_ros.core.policy.normalization import identity_statistics
    from spvla_ros.core.policy.prompt import WordHashTokenizer
    from spvla_ros.core.policy.runtime import CogACTPolicy, build_model

    model = build_model(load_policy("tiny").preset, torch.device("cpu"), seed=0, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.llm_backbone.llm.model.rotary_emb.inv_freq.dtype == torch.float32
    policy = CogACTPolicy(
        model, PolicyConfig(), WordHashTokenizer(512), identity_statistics(), torch.device("cpu"), seed=0
    )
    for keep in (1.0, 0.5):
        out = policy.predict_chunk(_scene(), INSTRUCTION, keep_ratio=keep)
        assert out.actions.shape == (16, 7) and np.isfinite(out.normalized_actions).all()
