"""Llama backbone: [BOS, vision tokens, prompt tokens, cognition token] -> cognition feature (LLM width).

As in Prismatic's multimodal forward, the projected vision tokens are inserted right after BOS. The cognition
feature is the final-norm hidden state at the last position (the EOS token CogACT appends). Only the prefill
runs; the LM head (kept in the state dict as ``llm.lm_head``) is never evaluated.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from spvla_ros.core.policy.presets import LlamaShape


def llama_config(s: LlamaShape) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        num_key_value_heads=s.num_kv_heads,
        vocab_size=s.vocab_size,
        max_position_embeddings=s.max_position_embeddings,
        rms_norm_eps=s.rms_norm_eps,
        rope_theta=s.rope_theta,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )


class LlamaBackbone(nn.Module):
    """Holds ``llm`` (a transformers ``LlamaForCausalLM``), Prismatic's attribute name."""

    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.llm = LlamaForCausalLM(llama_config(shape))

    def cognition_feature(
        self,
        vision_embeds: torch.Tensor,
        input_ids: torch.Tensor,
        vision_position_ids: torch.Tensor | None = None,
        text_start: int | None = None,
    ) -> torch.Tensor:
        """Prefill and return the last-position hidden state, (B, H).

        Args:
            vision_embeds: (B, K, H) projected vision tokens.
            input_ids: (B, T) prompt ids starting with BOS and ending with the cognition token.
            vision_position_ids: (B, K) explicit positions of the vision tokens (pruning's ``preserve`` mode);
                None = contiguous positions 0..(K + T - 1) over the whole sequence.
            text_start: with ``vision_position_ids``, the position of the first prompt token after BOS.
        """
        text = self.llm.model.embed_tokens(input_ids)
        embeds = torch.cat([text[:, :1], vision_embeds.to(text.dtype), text[:, 1:]], dim=1)
        position_ids = None
        if vision_position_ids is not None:
            if text_start is None:
                raise ValueError("text_start is required with vision_position_ids")
            b, t = input_ids.shape
            dev = input_ids.device
            position_ids = torch.cat(
                [
                    torch.zeros(b, 1, dtype=torch.long, device=dev),
                    vision_position_ids.to(device=dev, dtype=torch.long),
                    torch.arange(text_start, text_start + t - 1, device=dev).expand(b, -1),
                ],
                dim=1,
            )
        out = self.llm.model(inputs_embeds=embeds, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state[:, -1]
