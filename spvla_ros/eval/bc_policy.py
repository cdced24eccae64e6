"""A learned chunking policy for the closed loop: CogACT's DiT/DDIM action head conditioned on the robot state.

The network stands in for a VLA with the same action head: the cognition feature that CogACT's LLM produces is
replaced by an MLP over the (normalised) Meta-World observation and a one-hot task id; the rest is the project's
own :class:`~spvla_ros.core.policy.action_head.ActionModel` (DiT) sampled by
:func:`~spvla_ros.core.policy.diffusion.ddim_sample`, the code path of :class:`CogACTModel.sample_actions`.

Shapes: observation (B, 39) (Meta-World: positions in m, quaternions, goal in m), task index (B,), chunk
(B, chunk_len, 4) ``[dx, dy, dz, grab]`` in Meta-World action units (the [-1, 1] box; the env moves the hand
1 cm per unit per step). Row ``i`` of a chunk predicted from the observation at step ``t`` is the action for step
``t + i``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from spvla_ros.core.policy.action_head import ActionModel
from spvla_ros.core.policy.diffusion import DDIMSchedule, ddim_sample
from spvla_ros.core.policy.presets import DiTShape
from spvla_ros.core.validation import require_finite, require_int_at_least

OBS_DIM = 39
"""Meta-World v3 observation width."""
ENV_ACTION_DIM = 4
"""Meta-World action width ``[dx, dy, dz, grab]``."""
OBS_STD_FLOOR = 1e-3
"""Smallest per-dimension std used to normalise observations (constant entries such as an absent 2nd object)."""


@dataclass(frozen=True)
class BCPolicyConfig:
    """Size, demonstrations and training of the behaviour-cloned chunking policy (``policy:`` of
    ``config/closed_loop.yaml``).

    Args:
        hidden_size: DiT width (CogACT DiT-B: 768; here a small head), divisible by ``num_heads``.
        depth: DiT blocks.
        num_heads: attention heads.
        token_size: width of the condition feature that replaces CogACT's cognition token.
        encoder_hidden: width of the MLP from (observation, task one-hot) to the condition feature.
        chunk_len: actions per predicted chunk (CogACT: 16).
        diffusion_steps: training diffusion steps (CogACT: 100, cosine schedule).
        ddim_steps: DDIM sampling steps at inference (CogACT: 10).
        cfg_scale: classifier-free guidance at inference (1 = off; > 1 needs ``condition_dropout`` > 0).
        condition_dropout: probability of training on the learned unconditional feature (CogACT: 0.1).
        demos_per_task: successful scripted-expert demonstrations per task.
        demo_seed: first Meta-World seed of the demonstrations (kept far from the evaluation seeds).
        demo_drift_std: stationary std of the AR(1) disturbance added to the *executed* demo xyz (action units
            per step, as the harness's ``drift_std``); the label stays the expert's clean reaction, so the data
            holds the corrections a closed loop needs (DART-style noise injection).
        demo_drift_correlation: AR(1) coefficient of that disturbance per step, in [0, 1) (0: white noise).
        demo_max_steps: step limit of a demonstration; an episode without success is discarded.
        train_steps: optimiser steps.
        batch_size: samples per step.
        learning_rate: AdamW learning rate (cosine decay to 0 after ``warmup_steps``).
        warmup_steps: linear warm-up steps.
        weight_decay: AdamW weight decay.
        seed: seed of initialisation, batch order and diffusion noise in training.
        threads: torch CPU threads for training and closed-loop inference (fixed, so a seed gives the same weights
            on one machine; 1 is fastest for these small batches, and on a loaded machine by far).
    """

    hidden_size: int = 64
    depth: int = 3
    num_heads: int = 4
    token_size: int = 64
    encoder_hidden: int = 128
    chunk_len: int = 16
    diffusion_steps: int = 100
    ddim_steps: int = 10
    cfg_scale: float = 1.0
    condition_dropout: float = 0.0
    demos_per_task: int = 20
    demo_seed: int = 1000
    demo_drift_std: float = 0.3
    demo_drift_correlation: float = 0.95
    demo_max_steps: int = 200
    train_steps: int = 4000
    batch_size: int = 256
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden_size", "depth", "num_heads", "token_size", "encoder_hidden", "chunk_len",
                     "diffusion_steps", "ddim_steps", "demos_per_task", "demo_max_steps", "train_steps",
                     "batch_size", "threads"):
            require_int_at_least(name, getattr(self, name), 1)
        for name in ("demo_seed", "seed", "warmup_steps"):
            require_int_at_least(name, getattr(self, name), 0)
        DiTShape(self.hidden_size, self.depth, self.num_heads)  # divisibility
        if self.ddim_steps > self.diffusion_steps:
            raise ValueError(f"ddim_steps ({self.ddim_steps}) must not exceed diffusion_steps ({self.diffusion_steps})")
        for name in ("cfg_scale", "condition_dropout", "demo_drift_std", "demo_drift_correlation", "learning_rate",
                     "weight_decay"):
            require_finite(name, getattr(self, name))
        if self.cfg_scale < 1.0:
            raise ValueError(f"cfg_scale must be >= 1 (1 = no guidance), got {self.cfg_scale}")
        if not 0.0 <= self.condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {self.condition_dropout}")
        if self.cfg_scale > 1.0 and self.condition_dropout == 0.0:
            raise ValueError("cfg_scale > 1 needs condition_dropout > 0 (the unconditional feature is never trained)")
        if not 0.0 <= self.demo_drift_correlation < 1.0:
            raise ValueError(f"demo_drift_correlation must be in [0, 1), got {self.demo_drift_correlation}")
        if self.demo_drift_std < 0 or self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("demo_drift_std and weight_decay must be >= 0 and learning_rate > 0")

    @property
    def dit_shape(self) -> DiTShape:
        return DiTShape(self.hidden_size, self.depth, self.num_heads)


def policy_digest(config: BCPolicyConfig, tasks: tuple[str, ...]) -> str:
    """Short hash of everything that determines the trained weights (config + task list + torch version)."""
    blob = json.dumps({"config": asdict(config), "tasks": list(tasks), "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class ChunkPolicyNet(nn.Module):
    """(observation, task) -> condition feature -> DiT noise predictor over a (chunk_len, 4) action chunk."""

    def __init__(self, config: BCPolicyConfig, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.encoder = nn.Sequential(
            nn.Linear(OBS_DIM + num_tasks, config.encoder_hidden),
            nn.SiLU(),
            nn.Linear(config.encoder_hidden, config.encoder_hidden),
            nn.SiLU(),
            nn.Linear(config.encoder_hidden, config.token_size),
        )
        self.action_model = ActionModel(config.dit_shape, config.token_size, ENV_ACTION_DIM, config.chunk_len)

    def condition(self, obs_normalized: torch.Tensor, task_index: torch.Tensor) -> torch.Tensor:
        """(B, 39) normalised observation, (B,) int64 task index -> (B, 1, token_size) condition feature."""
        onehot = nn.functional.one_hot(task_index, self.num_tasks).to(obs_normalized.dtype)
        return self.encoder(torch.cat([obs_normalized, onehot], dim=1)).unsqueeze(1)


@dataclass
class ChunkPolicy:
    """A trained :class:`ChunkPolicyNet` with its observation statistics, ready to predict chunks.

    Attributes:
        config: how it was built and trained.
        tasks: task names in one-hot order.
        net: the network (eval mode).
        obs_mean, obs_std: (39,) observation statistics of the demonstrations.
        digest: :func:`policy_digest` of (config, tasks).
        train_info: what training measured (loss, wall time, demonstrations), for the reports.
    """

    config: BCPolicyConfig
    tasks: tuple[str, ...]
    net: ChunkPolicyNet
    obs_mean: np.ndarray
    obs_std: np.ndarray
    digest: str
    train_info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.net.eval()
        self._schedule = DDIMSchedule.build(self.config.diffusion_steps, self.config.ddim_steps)
        self._task_index = {t: i for i, t in enumerate(self.tasks)}

    def task_index(self, task: str) -> int:
        """One-hot index of ``task``; ValueError for a task the policy was not trained on."""
        if task not in self._task_index:
            raise ValueError(f"the policy was not trained on task {task!r}; it knows {list(self.tasks)}")
        return self._task_index[task]

    def noise_shape(self) -> tuple[int, int]:
        """Shape of the DDIM start noise of one chunk, (chunk_len, 4)."""
        return (self.config.chunk_len, ENV_ACTION_DIM)

    @torch.no_grad()
    def predict(self, obs: np.ndarray, task_index: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Chunks for a batch: obs (B, 39), task_index (B,), noise (B, chunk_len, 4) -> (B, chunk_len, 4) float64.

        Deterministic given ``noise`` (DDIM, eta = 0); the result is clipped to the env's [-1, 1] action box.
        """
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] != OBS_DIM:
            raise ValueError(f"obs must have shape (B, {OBS_DIM}), got {obs.shape}")
        if not np.isfinite(obs).all():
            raise ValueError("obs contains NaN or Inf")
        x = torch.from_numpy(((obs - self.obs_mean) / self.obs_std).astype(np.float32))
        task = torch.from_numpy(np.asarray(task_index, dtype=np.int64))
        z = self.net.condition(x, task)
        dit = self.net.action_model.net
        start = torch.from_numpy(np.asarray(noise, dtype=np.float32))
        if self.config.cfg_scale > 1.0:
            chunk = ddim_sample(lambda xt, t: dit.forward_with_cfg(xt, t, z, self.config.cfg_scale), start,
                                self._schedule)
        else:
            chunk = ddim_sample(lambda xt, t: dit(xt, t, z), start, self._schedule)
        return np.clip(chunk.numpy().astype(np.float64), -1.0, 1.0)

    def state(self) -> dict:
        """Everything :func:`policy_from_state` needs (torch-saveable)."""
        return {
            "config": asdict(self.config),
            "tasks": list(self.tasks),
            "state_dict": self.net.state_dict(),
            "obs_mean": self.obs_mean.tolist(),
            "obs_std": self.obs_std.tolist(),
            "digest": self.digest,
            "train_info": self.train_info,
        }


def policy_from_state(state: dict) -> ChunkPolicy:
    """Rebuild a :class:`ChunkPolicy` saved with :meth:`ChunkPolicy.state`."""
    config = BCPolicyConfig(**state["config"])
    tasks = tuple(state["tasks"])
    net = ChunkPolicyNet(config, len(tasks))
    net.load_state_dict(state["state_dict"])
    return ChunkPolicy(config, tasks, net, np.asarray(state["obs_mean"], dtype=np.float64),
                       np.asarray(state["obs_std"], dtype=np.float64), state["digest"], dict(state["train_info"]))
