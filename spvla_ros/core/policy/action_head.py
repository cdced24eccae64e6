"""DiT action head of CogACT: denoises a (16, 7) action chunk conditioned on the LLM's cognition feature.

Module and parameter names follow CogACT's ``action_model`` (``net.x_embedder.linear``, ``net.blocks.N.attn.qkv``,
``net.z_embedder.uncondition``, ...) so the official ``action_model`` state dict loads without renaming.
Sequence layout inside the DiT: token 0 is the condition ``c = t_emb + z_emb``, tokens 1..16 the noisy actions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spvla_ros.core.policy.presets import DiTShape

TIMESTEP_FREQ_DIM = 256
"""Width of the sinusoidal timestep embedding fed to the timestep MLP (DiT default)."""
TIMESTEP_MAX_PERIOD = 10000.0
"""Longest period of the sinusoidal timestep embedding, in diffusion steps (DiT default)."""
DIT_NORM_EPS = 1e-6


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = TIMESTEP_MAX_PERIOD) -> torch.Tensor:
    """Sinusoidal embedding of diffusion timesteps ``t`` (N,) -> (N, dim), float32, ``[cos | sin]`` order."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class _Linear(nn.Module):
    """A module holding one ``linear`` (keeps CogACT's ``*.linear.weight`` key names)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class TimestepEmbedder(nn.Module):
    """Diffusion timestep (N,) -> (N, hidden)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(TIMESTEP_FREQ_DIM, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, TIMESTEP_FREQ_DIM).to(self.mlp[0].weight.dtype))


class ConditionEmbedder(nn.Module):
    """Cognition feature (N, 1, token_size) -> (N, 1, hidden); holds the learned *unconditional* feature for CFG."""

    def __init__(self, token_size: int, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(token_size, hidden_size)
        # CogACT: LabelEmbedder.uncondition, shape (1, token_size)
        self.uncondition = nn.Parameter(torch.zeros(1, token_size))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (timm ``Attention`` names)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> tanh-approximated GELU -> fc2 (timm ``Mlp`` names, as DiT uses)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """Pre-norm transformer block without affine norms (condition enters as token 0)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=DIT_NORM_EPS)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=DIT_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=DIT_NORM_EPS)
        self.linear = nn.Linear(dim, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm_final(x))


class DiT(nn.Module):
    """Noise predictor eps(x_t, t, z).

    Args:
        shape: DiT size.
        token_size: width of the cognition feature (LLM hidden size).
        action_dim: action width (7).
        chunk_len: actions per chunk (16).
    """

    def __init__(self, shape: DiTShape, token_size: int, action_dim: int, chunk_len: int) -> None:
        super().__init__()
        h = shape.hidden_size
        self.action_dim = action_dim
        self.chunk_len = chunk_len
        # Unused by inference; CogACT keeps it in the state dict (action history is "not used now").
        self.history_embedder = _Linear(action_dim, h)
        self.x_embedder = _Linear(action_dim, h)
        self.t_embedder = TimestepEmbedder(h)
        self.z_embedder = ConditionEmbedder(token_size, h)
        # chunk_len action tokens + 1 condition token (CogACT: future + past + 2 with past = 0)
        self.positional_embedding = nn.Parameter(torch.randn(chunk_len + 1, h) * h**-0.5)
        self.blocks = nn.ModuleList([DiTBlock(h, shape.num_heads, shape.mlp_ratio) for _ in range(shape.depth)])
        self.final_layer = FinalLayer(h, action_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.z_embedder.uncondition, std=0.02)
        # Random-init outputs must not be all zero (CogACT zero-inits the final layer for training; an
        # untrained runtime model would then always predict eps = 0). Small random weights instead.
        nn.init.normal_(self.final_layer.linear.weight, std=0.02)

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x: (N, chunk_len, action_dim) noisy actions; t: (N,) timesteps; z: (N, 1, token_size). -> eps, like x."""
        dtype = self.x_embedder.linear.weight.dtype
        x = self.x_embedder(x.to(dtype))
        c = self.t_embedder(t).unsqueeze(1) + self.z_embedder(z.to(dtype))
        h = torch.cat([c, x], dim=1) + self.positional_embedding
        for block in self.blocks:
            h = block(h)
        return self.final_layer(h)[:, 1:, :]

    def forward_with_cfg(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor, cfg_scale: float) -> torch.Tensor:
        """Classifier-free guided eps for one batch (B, chunk_len, action_dim); ``z`` is the condition (B, 1, D).

        Runs the conditional and the unconditional branch as one batch of 2B:
        ``eps = eps_uncond + cfg_scale * (eps_cond - eps_uncond)``.
        """
        b = x.shape[0]
        uncond = self.z_embedder.uncondition.to(z.dtype).unsqueeze(0).expand(b, 1, -1)
        eps = self.forward(torch.cat([x, x]), torch.cat([t, t]), torch.cat([z, uncond]))
        cond, unc = eps[:b], eps[b:]
        return unc + cfg_scale * (cond - unc)


class ActionModel(nn.Module):
    """Holds the DiT as ``net`` (CogACT ``ActionModel``; the diffusion schedules carry no parameters)."""

    def __init__(self, shape: DiTShape, token_size: int, action_dim: int, chunk_len: int) -> None:
        super().__init__()
        self.net = DiT(shape, token_size, action_dim, chunk_len)
