"""Prismatic's fused GELU-MLP projector: fused patch features (.., 2176) -> LLM embeddings (.., 4096).

Layers (official keys ``projector.0/2/4``): Linear(F, 4F) -> GELU -> Linear(4F, H) -> GELU -> Linear(H, H).
"""

from __future__ import annotations

import torch
from torch import nn

PROJECTOR_EXPANSION = 4
"""Width of the first projector layer as a multiple of the fused vision width (Prismatic)."""


class FusedMLPProjector(nn.Module):
    def __init__(self, fused_vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        mid = fused_vision_dim * PROJECTOR_EXPANSION
        self.projector = nn.Sequential(
            nn.Linear(fused_vision_dim, mid),
            nn.GELU(),
            nn.Linear(mid, llm_dim),
            nn.GELU(),
            nn.Linear(llm_dim, llm_dim),
        )

    def forward(self, fused_patches: torch.Tensor) -> torch.Tensor:
        return self.projector(fused_patches)
