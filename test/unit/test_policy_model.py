"""CogACT network pieces on the tiny preset: shapes/dtypes per stage, DDIM math, CFG, second-to-last features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spvla_ros.core.policy.diffusion import DDIMSchedule, cosine_betas, ddim_sample, ddim_timesteps
from spvla_ros.core.policy.flops import llm_prefill_flops, policy_flops, vit_block_flops
from spvla_ros.core.policy.model import CogACTModel
from spvla_ros.core.policy.presets import COGACT_BASE, PRESETS, TINY, get_preset
from spvla_ros.core.policy.prompt import EOS_ID, WordHashTokenizer, build_prompt


@pytest.fixture(scope="module")
def model() -> CogACTModel:
    torch.manual_seed(0)
    return CogACTModel(TINY).eval().requires_grad_(False)


@pytest.fixture(autouse=True)
def one_thread():
    """2 shared cores: one torch thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (224, 224, 3), dtype=np.uint8)


def test_shapes_and_dtypes_through_every_stage(model: CogACTModel) -> None:
    vb = model.vision_backbone
    dino_px, siglip_px = vb.pixel_values(_image())
    assert dino_px.shape == siglip_px.shape == (1, 3, 224, 224)
    assert dino_px.dtype == torch.float32
    dino_seq = vb.dino_penultimate(dino_px)
    assert dino_seq.shape == (1, 1 + 4 + 256, TINY.dino.hidden_size)
    sig = vb.siglip_penultimate(siglip_px)
    assert sig.shape == (1, 256, TINY.siglip.hidden_size)
    fused = vb.fused_patches(dino_seq, sig)
    assert fused.shape == (1, 256, TINY.fused_vision_dim)
    assert torch.equal(fused[..., : TINY.dino.hidden_size], dino_seq[:, 5:])
    ids = torch.tensor([WordHashTokenizer(TINY.llm.vocab_size).prompt_ids("pick up the cup")])
    cog = model.cognition(fused, ids)
    assert cog.shape == (1, TINY.llm.hidden_size) and cog.dtype == torch.float32
    noise = torch.randn(1, 16, 7, generator=torch.Generator().manual_seed(0))
    out = model.sample_actions(cog, noise, DDIMSchedule.build(100, 10), cfg_scale=1.5)
    assert out.shape == (1, 16, 7) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_features_are_the_second_to_last_block_of_each_tower(model: CogACTModel) -> None:
    """Our truncated layer loop equals transformers' own forward, hidden_states[-2] (output of block L-2)."""
    vb = model.vision_backbone
    dino_px, siglip_px = vb.pixel_values(_image(1))
    ref_dino = vb.dino_featurizer(pixel_values=dino_px, output_hidden_states=True).hidden_states[-2]
    ref_sig = vb.siglip_featurizer(pixel_values=siglip_px, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(vb.dino_penultimate(dino_px), ref_dino, rtol=0, atol=1e-6)
    torch.testing.assert_close(vb.siglip_penultimate(siglip_px), ref_sig, rtol=0, atol=1e-6)


def test_pixel_normalization_per_tower(model: CogACTModel) -> None:
    img = np.full((224, 224, 3), 255, dtype=np.uint8)
    dino, siglip = model.vision_backbone.pixel_values(img)
    expected = [(1 - m) / s for m, s in zip(TINY.dino.mean, TINY.dino.std, strict=True)]
    torch.testing.assert_close(dino[0, :, 0, 0], torch.tensor(expected))
    torch.testing.assert_close(siglip[0, :, 5, 7], torch.ones(3))  # (1 - 0.5) / 0.5


def test_cfg_combines_conditional_and_unconditional_eps(model: CogACTModel) -> None:
    net = model.action_model.net
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, 7, generator=g)
    z = torch.randn(1, 1, TINY.llm.hidden_size, generator=g)
    t = torch.tensor([40])
    cond = net(x, t, z)
    uncond = net(x, t, net.z_embedder.uncondition.unsqueeze(0))
    torch.testing.assert_close(net.forward_with_cfg(x, t, z, 1.5), uncond + 1.5 * (cond - uncond))
    torch.testing.assert_close(net.forward_with_cfg(x, t, z, 1.0), cond, rtol=1e-5, atol=1e-6)


def test_ddim_respacing_and_cosine_schedule_match_the_formulas() -> None:
    assert ddim_timesteps(100, 10) == list(range(0, 100, 10))
    assert ddim_timesteps(100, 5) == list(range(0, 100, 20))
    with pytest.raises(ValueError):
        ddim_timesteps(100, 0)

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = cosine_betas(100)
    assert betas[0] == pytest.approx(1 - alpha_bar(0.01) / alpha_bar(0.0))
    assert betas[-1] == pytest.approx(0.999)  # capped
    sched = DDIMSchedule.build(100, 10)
    assert sched.timesteps == tuple(range(90, -1, -10))
    ac = np.cumprod(1 - betas)
    assert sched.alpha_bar[0] == pytest.approx(ac[90]) and sched.alpha_bar_prev[-1] == 1.0
    assert sched.alpha_bar_prev[0] == pytest.approx(ac[80])


def test_ddim_with_zero_eps_rescales_noise_by_one_over_sqrt_alpha_bar() -> None:
    """eps = 0: every step multiplies by sqrt(ab_prev / ab); the product telescopes to 1 / sqrt(ab[90])."""
    sched = DDIMSchedule.build(100, 10)
    noise = torch.randn(2, 16, 7, generator=torch.Generator().manual_seed(0))
    seen = []

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    out = ddim_sample(eps, noise, sched)
    assert seen == list(range(90, -1, -10))
    torch.testing.assert_close(out, noise / math.sqrt(sched.alpha_bar[0]), rtol=1e-5, atol=1e-6)


def test_sampling_is_deterministic_for_the_same_noise(model: CogACTModel) -> None:
    cog = torch.randn(1, TINY.llm.hidden_size, generator=torch.Generator().manual_seed(1))
    sched = DDIMSchedule.build(100, 10)
    a = model.sample_actions(cog, torch.randn(1, 16, 7, generator=torch.Generator().manual_seed(5)), sched, 1.5)
    b = model.sample_actions(cog, torch.randn(1, 16, 7, generator=torch.Generator().manual_seed(5)), sched, 1.5)
    c = model.sample_actions(cog, torch.randn(1, 16, 7, generator=torch.Generator().manual_seed(6)), sched, 1.5)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_prompt_and_word_hash_tokenizer() -> None:
    # As the official builder: lower-cased, the instruction's own whitespace kept, no trailing space after "Out:".
    assert build_prompt("Pick Up the Cup") == "In: What action should the robot take to pick up the cup?\nOut:"
    assert build_prompt(" Pick up ") == "In: What action should the robot take to  pick up ?\nOut:"
    for bad in ("", "   ", None):
        with pytest.raises(ValueError):
            build_prompt(bad)  # type: ignore[arg-type]
    tok = WordHashTokenizer(512)
    ids = tok.prompt_ids("pick up the cup")
    assert ids[0] == 1 and ids[-1] == EOS_ID
    assert all(3 <= i < 512 for i in ids[1:-1])
    assert ids == tok.prompt_ids("pick up the cup")
    # words + punctuation of the prompt: In : What action should the robot take to pick up the cup ? Out :
    assert len(ids) == 1 + 16 + 1
    assert WordHashTokenizer(32064).prompt_ids("x")[-2:] == [29871, EOS_ID]


def test_presets() -> None:
    assert set(PRESETS) == {"tiny", "cogact-base"}
    assert COGACT_BASE.fused_vision_dim == 1024 + 1152 and COGACT_BASE.dit.hidden_size == 768
    assert TINY.chunk_len == 16 and TINY.num_patches == 256
    with pytest.raises(ValueError, match="known presets"):
        get_preset("huge")
    assert sum(p.numel() for p in CogACTModel(TINY).parameters()) * 4 < 8e6  # "a few MB" in fp32


def test_flops_formulas() -> None:
    assert vit_block_flops(10, 8, 32) == 2 * (4 * 10 * 64 + 2 * 100 * 8 + 2 * 10 * 8 * 32)
    s = COGACT_BASE.llm
    per_layer = 20 * 4096 * 4 * 4096 + 20 * 20 * 4096 + 3 * 20 * 4096 * 11008
    assert llm_prefill_flops(COGACT_BASE, 20) == 2 * s.num_layers * per_layer
    full = policy_flops(COGACT_BASE, 256, 20, 1.5, 10, pruned=False)
    half = policy_flops(COGACT_BASE, 128, 20, 1.5, 10, pruned=True)
    assert full["total"] == sum(v for k, v in full.items() if k != "total")
    assert half["pruning"] > 0 == full["pruning"]
    assert 0.5 < half["total"] / full["total"] < 0.65
    # ~2 FLOPs per parameter per token for a 7B LLM over 276 tokens
    assert full["llm"] == pytest.approx(2 * 6.5e9 * 276, rel=0.1)
