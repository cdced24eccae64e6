"""Last-layer attention capture == the eager reference, with SDPA kept everywhere; AccuAttn formula.

Tiny randomly initialised DINOv2/SigLIP encoders run without any weights; the real DINOv2 ViT-S/14 check
skips when ../shared is absent.
"""

import copy

import cv2
import numpy as np
import pytest
import torch
from spvla_testing import shared_path
from transformers import Dinov2Config, Dinov2Model, SiglipVisionConfig, SiglipVisionModel

from spvla_ros.core.pruning import (
    LastLayerAttention,
    accumulated_attention,
    capture_last_layer_attention,
    num_prefix_tokens,
)

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4}
IMAGE_MEAN = np.array([0.485, 0.456, 0.406])  # ImageNet statistics (shared/models/dinov2-vits14/README.md)
IMAGE_STD = np.array([0.229, 0.224, 0.225])


def twin_models(model_cls, config):
    """The same random weights loaded twice: SDPA (the runtime) and eager (the reference)."""
    torch.manual_seed(0)
    sdpa = model_cls._from_config(copy.deepcopy(config), attn_implementation="sdpa").eval()
    eager = model_cls._from_config(copy.deepcopy(config), attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    assert sdpa.config._attn_implementation == "sdpa"
    return sdpa, eager


def tiny_models(kind):
    if kind == "dinov2":
        return twin_models(Dinov2Model, Dinov2Config(image_size=56, patch_size=14, **TINY))
    return twin_models(SiglipVisionModel, SiglipVisionConfig(image_size=56, patch_size=14, **TINY))


@pytest.fixture
def count_sdpa(monkeypatch):
    """Count calls of torch's fused attention kernel (what transformers' SDPA layers call)."""
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    return calls


@pytest.mark.parametrize("kind", ["dinov2", "siglip"])
@pytest.mark.parametrize("layer_index", [-1, 0])
def test_capture_equals_eager_reference(kind, layer_index, count_sdpa):
    sdpa, eager = tiny_models(kind)
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        plain = sdpa(pixel_values=x).last_hidden_state
        count_sdpa.clear()
        with LastLayerAttention(sdpa, layer_index=layer_index) as capture:
            hooked = sdpa(pixel_values=x).last_hidden_state
        reference = eager(pixel_values=x, output_attentions=True).attentions[layer_index]
    assert len(count_sdpa) == TINY["num_hidden_layers"]  # every layer, the captured one too, ran SDPA
    torch.testing.assert_close(hooked, plain, rtol=0, atol=0)  # the capture does not change the output
    got = capture.attention
    assert got.shape == reference.shape == (2, 4, 16 + num_prefix_tokens(sdpa), 16 + num_prefix_tokens(sdpa))
    torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-6)


def test_hooks_are_removed_and_capture_survives_exit():
    sdpa, _ = tiny_models("dinov2")
    capture = capture_last_layer_attention(sdpa)
    with pytest.raises(RuntimeError, match="no attention captured"):
        _ = capture.attention
    with capture, torch.no_grad():
        sdpa(pixel_values=torch.randn(1, 3, 56, 56))
    first = capture.attention
    with torch.no_grad():
        sdpa(pixel_values=torch.randn(1, 3, 56, 56))  # outside the block: not recorded
    torch.testing.assert_close(capture.attention, first, rtol=0, atol=0)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in sdpa.modules())


def test_prefix_tokens_and_bad_models():
    dino, _ = tiny_models("dinov2")
    siglip, _ = tiny_models("siglip")
    assert num_prefix_tokens(dino) == 1
    assert num_prefix_tokens(siglip) == 0
    with pytest.raises(ValueError, match="no attention module"):
        LastLayerAttention(torch.nn.Sequential(torch.nn.Linear(3, 3)))
    with pytest.raises(ValueError, match="out of range"):
        LastLayerAttention(dino, layer_index=7)
    with pytest.raises(ValueError, match="num_prefix_tokens"):
        num_prefix_tokens(torch.nn.Linear(2, 2))


def test_accumulated_attention_matches_formula():
    rng = np.random.default_rng(0)
    heads, tokens, prefix = 3, 7, 2
    logits = rng.normal(size=(heads, tokens, tokens))
    attn = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = np.array(
        [sum(attn[h, i, j] for h in range(heads) for i in range(tokens)) / (heads * tokens) for j in range(tokens)]
    )
    got = accumulated_attention(attn, prefix)
    assert got.shape == (tokens - prefix,)
    np.testing.assert_allclose(got, expected[prefix:], rtol=1e-6)
    np.testing.assert_allclose(expected.sum(), 1.0)  # rows sum to 1, so AccuAttn of all T tokens sums to 1
    # batched: B=1 -> (P,), B=2 -> (B, P); torch input works the same
    np.testing.assert_allclose(accumulated_attention(torch.from_numpy(attn[None]), prefix), got, rtol=1e-6)
    two = accumulated_attention(np.stack([attn, attn[:, ::-1, :]]), prefix)
    assert two.shape == (2, tokens - prefix)


@pytest.mark.parametrize(
    ("attn", "prefix", "message"),
    [
        (np.full((2, 5, 5), np.nan), 1, "NaN"),
        (np.ones((2, 5, 4)), 1, "square"),
        (np.ones((5, 5)), 1, r"\(heads, T, T\)"),
        (np.ones((2, 5, 5)), 5, r"\[0, 5\)"),
        (np.ones((2, 5, 5)), -1, r"\[0, 5\)"),
        (np.ones((2, 5, 5), np.int64), 1, "floating point"),
        (-np.ones((2, 5, 5)), 1, "negative"),
    ],
)
def test_accumulated_attention_bad_input(attn, prefix, message):
    with pytest.raises(ValueError, match=message):
        accumulated_attention(attn, prefix)


def _real_pixels(path):
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA)
    x = ((rgb / 255.0 - IMAGE_MEAN) / IMAGE_STD).astype(np.float32).transpose(2, 0, 1)
    return torch.from_numpy(x[None])


def test_real_dinov2_capture_equals_eager_reference(count_sdpa):
    model_dir = shared_path("models/dinov2-vits14")
    image = shared_path("data/real_images/bridge_sink.png")
    sdpa = Dinov2Model.from_pretrained(model_dir, attn_implementation="sdpa", local_files_only=True).eval()
    eager = Dinov2Model.from_pretrained(model_dir, attn_implementation="eager", local_files_only=True).eval()
    x = _real_pixels(image)
    with torch.no_grad():
        count_sdpa.clear()
        with LastLayerAttention(sdpa) as capture:
            sdpa(pixel_values=x)
        layers = len(count_sdpa)
        reference = eager(pixel_values=x, output_attentions=True).attentions[-1]
    assert layers == sdpa.config.num_hidden_layers == 12
    got = capture.attention
    assert got.shape == (1, 6, 257, 257)
    # the layers before differ only by SDPA vs eager round-off (README: ~3e-5 on hidden states)
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=2e-5)
    scores, ref_scores = accumulated_attention(got, 1), accumulated_attention(reference, 1)
    assert scores.shape == (256,)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert np.argmax(scores) == np.argmax(ref_scores)
