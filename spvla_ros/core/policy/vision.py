"""DINOv2 + SigLIP vision backbone: one 224x224 RGB image -> 256 fused patch features (1024 + 1152 wide).

Built from transformers' ``Dinov2WithRegistersModel`` and ``SiglipVisionModel`` (SDPA attention). As in
Prismatic/CogACT, the features are the *second-to-last* block's output of each tower (no final norm), the
DINOv2 prefix tokens (CLS + 4 registers) are dropped, and the two are concatenated per patch. The last block
of each tower is never run for the features; DINOv2's last block is used only to score tokens for pruning.
The official checkpoints use timm key names; ``checkpoint.py`` maps them onto these modules.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel, SiglipVisionConfig, SiglipVisionModel

from spvla_ros.core.policy.presets import IMAGE_SIZE_PX, PATCH_SIZE_PX, PolicyPreset, ViTShape

LAYER_NORM_EPS = 1e-6
"""LayerNorm epsilon of both timm towers."""
UINT8_MAX = 255.0


def _dino_config(s: ViTShape) -> Dinov2WithRegistersConfig:
    if s.mlp_hidden % s.hidden_size:
        raise ValueError(f"DINOv2 mlp_hidden {s.mlp_hidden} must be a multiple of hidden_size {s.hidden_size}")
    return Dinov2WithRegistersConfig(
        hidden_size=s.hidden_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        mlp_ratio=s.mlp_hidden // s.hidden_size,  # transformers wants an int; checked in _dino_config
        num_register_tokens=s.num_register_tokens,
        image_size=IMAGE_SIZE_PX,
        patch_size=PATCH_SIZE_PX,
        hidden_act="gelu",
        layer_norm_eps=LAYER_NORM_EPS,
        qkv_bias=True,
        attn_implementation="sdpa",
    )


def _siglip_config(s: ViTShape) -> SiglipVisionConfig:
    return SiglipVisionConfig(
        hidden_size=s.hidden_size,
        intermediate_size=s.mlp_hidden,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        image_size=IMAGE_SIZE_PX,
        patch_size=PATCH_SIZE_PX,
        hidden_act="gelu",  # timm's so400m uses exact nn.GELU, not the tanh approximation
        layer_norm_eps=LAYER_NORM_EPS,
        vision_use_head=True,  # kept so the official attn_pool weights have a strict home (unused here)
        attn_implementation="sdpa",
    )


class DinoSigLIPBackbone(nn.Module):
    """The two towers, as ``dino_featurizer`` and ``siglip_featurizer`` (Prismatic's attribute names)."""

    def __init__(self, preset: PolicyPreset) -> None:
        super().__init__()
        self.preset = preset
        self.dino_featurizer = Dinov2WithRegistersModel(_dino_config(preset.dino))
        self.siglip_featurizer = SiglipVisionModel(_siglip_config(preset.siglip))
        # timm's DINOv2-reg puts no position embedding on the CLS token: keep that slot at zero.
        with torch.no_grad():
            self.dino_featurizer.embeddings.position_embeddings[:, 0].zero_()

    @property
    def num_dino_prefix_tokens(self) -> int:
        """CLS + registers ahead of the patches in DINOv2's sequence (5)."""
        return 1 + self.preset.dino.num_register_tokens

    def pixel_values(self, image224: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(224, 224, 3) uint8 RGB -> normalized (1, 3, 224, 224) inputs for DINOv2 and SigLIP (model dtype)."""
        weight = self.dino_featurizer.embeddings.patch_embeddings.projection.weight
        x = torch.from_numpy(np.ascontiguousarray(image224)).to(weight.device)
        x = x.permute(2, 0, 1).unsqueeze(0).float() / UINT8_MAX  # normalization in fp32, then the model dtype
        out = []
        for tower in (self.preset.dino, self.preset.siglip):
            mean = torch.tensor(tower.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(tower.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
            out.append(((x - mean) / std).to(weight.dtype))
        return out[0], out[1]

    def dino_penultimate(self, pixels: torch.Tensor) -> torch.Tensor:
        """DINOv2 sequence after the second-to-last block: (B, 1 + R + 256, D_dino), prefix tokens included."""
        h = self.dino_featurizer.embeddings(pixels)
        for layer in self.dino_featurizer.encoder.layer[:-1]:
            h = layer(h)
        return h

    def siglip_penultimate(self, pixels: torch.Tensor) -> torch.Tensor:
        """SigLIP patch features after the second-to-last block: (B, 256, D_siglip)."""
        h = self.siglip_featurizer.embeddings(pixels)
        for layer in self.siglip_featurizer.encoder.layers[:-1]:
            h = layer(h, None)
        return h

    def fused_patches(self, dino_sequence: torch.Tensor, siglip_patches: torch.Tensor) -> torch.Tensor:
        """Concatenate per patch: (B, 256, D_dino + D_siglip)."""
        return torch.cat([dino_sequence[:, self.num_dino_prefix_tokens :], siglip_patches], dim=2)

    def run_dino_last_attention(self, dino_sequence: torch.Tensor) -> None:
        """Run only the attention of DINOv2's last block on its input (norm1 + self-attention, no MLP).

        Its output is discarded: this exists so a hook on the last layer's q/k projections (the pruning
        package's ``LastLayerAttention``) sees the last layer's attention for the semantic token scores.
        """
        layer = self.dino_featurizer.encoder.layer[-1]
        layer.attention(layer.norm1(dino_sequence))
