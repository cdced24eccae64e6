"""Analytic FLOPs of one CogACT call per stage (1 multiply-add = 2 FLOPs; matmuls only).

Counted: every linear layer and attention matmul that runs. Not counted: norms, activations, softmax,
residual adds, the image resize and Canny (all O(tokens * width) or O(pixels), well under 0.1 % here).

* vision: DINOv2 patch embedding + its first L-1 blocks over 1 + R + 256 tokens; SigLIP likewise over 256.
* pruning: DINOv2's last-block attention module (q, k, v, o projections + attention) over 1 + R + 256 tokens.
* llm: projector over the K kept tokens + Llama prefill of S = K + T tokens (causal attention: S^2 / 2 pairs);
  the LM head does not run.
* action_head: ``ddim_steps`` DiT passes over chunk_len + 1 tokens, batch 2 with CFG (1 without).
"""

from __future__ import annotations

from spvla_ros.core.policy.action_head import TIMESTEP_FREQ_DIM
from spvla_ros.core.policy.presets import PATCH_SIZE_PX, PolicyPreset
from spvla_ros.core.policy.projector import PROJECTOR_EXPANSION

FLOPS_PER_MAC = 2
RGB_CHANNELS = 3


def vit_block_flops(tokens: int, width: int, mlp_hidden: int) -> int:
    """One pre-norm transformer block over ``tokens`` tokens (full bidirectional attention)."""
    projections = 4 * tokens * width * width
    attention = 2 * tokens * tokens * width  # Q K^T and A V
    mlp = 2 * tokens * width * mlp_hidden
    return FLOPS_PER_MAC * (projections + attention + mlp)


def attention_module_flops(tokens: int, width: int) -> int:
    """q, k, v, o projections + attention matmuls of one block."""
    return FLOPS_PER_MAC * (4 * tokens * width * width + 2 * tokens * tokens * width)


def vision_flops(preset: PolicyPreset) -> int:
    """Both towers up to their second-to-last block."""
    p = preset.num_patches
    patch_macs = RGB_CHANNELS * PATCH_SIZE_PX * PATCH_SIZE_PX
    total = 0
    for tower in (preset.dino, preset.siglip):
        tokens = p + (1 + tower.num_register_tokens if tower is preset.dino else 0)
        total += FLOPS_PER_MAC * p * patch_macs * tower.hidden_size
        total += (tower.num_layers - 1) * vit_block_flops(tokens, tower.hidden_size, tower.mlp_hidden)
    return total


def pruning_flops(preset: PolicyPreset) -> int:
    """DINOv2's last-block attention, run only to score tokens."""
    return attention_module_flops(preset.num_patches + 1 + preset.dino.num_register_tokens, preset.dino.hidden_size)


def projector_flops(preset: PolicyPreset, vision_tokens: int) -> int:
    f, h = preset.fused_vision_dim, preset.llm.hidden_size
    mid = PROJECTOR_EXPANSION * f
    return FLOPS_PER_MAC * vision_tokens * (f * mid + mid * h + h * h)


def llm_prefill_flops(preset: PolicyPreset, seq_len: int) -> int:
    """Llama prefill over ``seq_len`` tokens (no LM head)."""
    s = preset.llm
    head_dim = s.hidden_size // s.num_heads
    proj = seq_len * s.hidden_size * (2 * s.hidden_size + 2 * s.num_kv_heads * head_dim)
    attention = seq_len * seq_len * s.hidden_size  # causal: half of (Q K^T + A V) over S^2 pairs
    mlp = 3 * seq_len * s.hidden_size * s.intermediate_size
    return FLOPS_PER_MAC * s.num_layers * (proj + attention + mlp)


def action_head_flops(preset: PolicyPreset, cfg_scale: float, ddim_steps: int) -> int:
    d = preset.dit
    h, tokens, a = d.hidden_size, preset.chunk_len + 1, preset.action_dim
    batch = 2 if cfg_scale > 1.0 else 1
    per_pass = d.depth * vit_block_flops(tokens, h, int(h * d.mlp_ratio))
    per_pass += FLOPS_PER_MAC * (
        preset.chunk_len * a * h  # x embedder
        + TIMESTEP_FREQ_DIM * h
        + h * h  # timestep MLP
        + preset.llm.hidden_size * h  # condition embedder
        + tokens * h * a  # final layer
    )
    return ddim_steps * batch * per_pass


def policy_flops(
    preset: PolicyPreset, vision_tokens: int, text_tokens: int, cfg_scale: float, ddim_steps: int, pruned: bool
) -> dict[str, int]:
    """FLOPs per stage (``vision``, ``pruning``, ``llm``, ``action_head``) and ``total`` for one call.

    Args:
        vision_tokens: vision tokens that reach the projector/LLM (256 unpruned).
        text_tokens: prompt ids including BOS and the cognition token.
        pruned: whether the pruning stage ran.
    """
    out = {
        "vision": vision_flops(preset),
        "pruning": pruning_flops(preset) if pruned else 0,
        "llm": projector_flops(preset, vision_tokens) + llm_prefill_flops(preset, vision_tokens + text_tokens),
        "action_head": action_head_flops(preset, cfg_scale, ddim_steps),
    }
    out["total"] = sum(out.values())
    return out
