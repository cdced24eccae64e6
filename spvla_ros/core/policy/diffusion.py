"""Cosine noise schedule and deterministic DDIM sampling (eta = 0) as CogACT runs it.

CogACT trains with 100 diffusion steps on the ``squaredcos_cap_v2`` schedule, epsilon prediction, and samples
with DDIM on the ``ddimN`` respacing of OpenAI's improved-diffusion (timesteps ``range(0, 100, 100 // N)``).
Coefficients are computed in float64 and applied in float32, as the reference does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

MAX_BETA = 0.999
"""Upper clip of a single beta (improved-diffusion ``betas_for_alpha_bar``)."""
COSINE_OFFSET = 0.008
"""s in alpha_bar(t) = cos((t + s) / (1 + s) * pi / 2)^2 (Nichol & Dhariwal 2021)."""


def cosine_betas(num_steps: int) -> np.ndarray:
    """``squaredcos_cap_v2`` betas, (num_steps,) float64."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")

    def alpha_bar(t: float) -> float:
        return math.cos((t + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

    return np.array(
        [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), MAX_BETA) for i in range(num_steps)]
    )


def ddim_timesteps(train_steps: int, sample_steps: int) -> list[int]:
    """The ``ddimN`` respacing: the smallest integer stride s with ``len(range(0, T, s)) == N``; ascending."""
    if sample_steps < 1 or sample_steps > train_steps:
        raise ValueError(f"sample_steps must be in [1, {train_steps}], got {sample_steps}")
    for stride in range(1, train_steps + 1):
        steps = list(range(0, train_steps, stride))
        if len(steps) == sample_steps:
            return steps
    raise ValueError(f"cannot take exactly {sample_steps} of {train_steps} steps with an integer stride")


@dataclass(frozen=True)
class DDIMSchedule:
    """Timesteps (descending, original indices fed to the model) and alpha-bar before/after each step."""

    timesteps: tuple[int, ...]
    alpha_bar: tuple[float, ...]
    alpha_bar_prev: tuple[float, ...]

    @classmethod
    def build(cls, train_steps: int, sample_steps: int) -> DDIMSchedule:
        ac = np.cumprod(1.0 - cosine_betas(train_steps))
        steps = ddim_timesteps(train_steps, sample_steps)
        ab = [float(ac[s]) for s in steps]
        ab_prev = [1.0, *ab[:-1]]
        return cls(tuple(reversed(steps)), tuple(reversed(ab)), tuple(reversed(ab_prev)))


EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""eps(x_t (B, T, C) float32, t (B,) int64) -> (B, T, C)."""


def ddim_sample(eps_fn: EpsFn, noise: torch.Tensor, schedule: DDIMSchedule) -> torch.Tensor:
    """Run the DDIM chain (eta = 0) from ``noise`` (B, T, C) to x_0; float32 result, same shape."""
    x = noise.float()
    for t, ab, ab_prev in zip(schedule.timesteps, schedule.alpha_bar, schedule.alpha_bar_prev, strict=True):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps = eps_fn(x, t_batch).float()
        x0 = _f32(math.sqrt(1.0 / ab)) * x - _f32(math.sqrt(1.0 / ab - 1.0)) * eps
        x = _f32(math.sqrt(ab_prev)) * x0 + _f32(math.sqrt(1.0 - ab_prev)) * eps
    return x


def _f32(value: float) -> float:
    """``value`` rounded to float32 (the reference casts its float64 coefficients to float32)."""
    return float(np.float32(value))
