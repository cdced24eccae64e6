"""The CogACT network as one ``nn.Module`` whose top-level children match the official checkpoint sections.

``vision_backbone`` (DINOv2 + SigLIP), ``projector`` (fused MLP), ``llm_backbone`` (``llm`` = Llama),
``action_model`` (``net`` = DiT). Stage methods are separate so the runtime can time and prune between them.
"""

from __future__ import annotations

import torch
from torch import nn

from spvla_ros.core.policy.action_head import ActionModel
from spvla_ros.core.policy.diffusion import DDIMSchedule, ddim_sample
from spvla_ros.core.policy.llm import LlamaBackbone
from spvla_ros.core.policy.presets import PolicyPreset
from spvla_ros.core.policy.projector import FusedMLPProjector
from spvla_ros.core.policy.vision import DinoSigLIPBackbone

SECTIONS = ("vision_backbone", "projector", "llm_backbone", "action_model")
"""Top-level module names = section names of the official checkpoint's ``model`` dict."""


class CogACTModel(nn.Module):
    def __init__(self, preset: PolicyPreset) -> None:
        super().__init__()
        self.preset = preset
        self.vision_backbone = DinoSigLIPBackbone(preset)
        self.projector = FusedMLPProjector(preset.fused_vision_dim, preset.llm.hidden_size)
        self.llm_backbone = LlamaBackbone(preset.llm)
        self.action_model = ActionModel(
            preset.dit, preset.llm.hidden_size, preset.action_dim, preset.chunk_len
        )

    def cognition(
        self, fused_patches: torch.Tensor, input_ids: torch.Tensor, vision_position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Fused patch features (B, K, F) + prompt ids (B, T) -> cognition feature (B, H).

        ``vision_position_ids`` (B, K): explicit LLM positions of the vision tokens (pruning ``preserve`` mode);
        the prompt then continues after the full, unpruned grid.
        """
        return self.llm_backbone.cognition_feature(
            self.projector(fused_patches), input_ids, vision_position_ids, 1 + self.preset.num_patches
        )

    def sample_actions(
        self, cognition: torch.Tensor, noise: torch.Tensor, schedule: DDIMSchedule, cfg_scale: float
    ) -> torch.Tensor:
        """DDIM with classifier-free guidance (cfg_scale > 1; 1 disables it): (B, 16, 7) float32 in ~[-1, 1]."""
        net = self.action_model.net
        z = cognition.unsqueeze(1).to(net.x_embedder.linear.weight.dtype)  # (B, 1, H)
        if cfg_scale > 1.0:
            return ddim_sample(lambda x, t: net.forward_with_cfg(x, t, z, cfg_scale), noise, schedule)
        return ddim_sample(lambda x, t: net(x, t, z), noise, schedule)
