"""Behaviour cloning of :class:`ChunkPolicy` from Meta-World's scripted experts, on CPU, deterministic per seed.

1. Demonstrations: per task, ``demos_per_task`` successful expert episodes from seeds ``demo_seed, ...`` (far
   from the evaluation seeds, so evaluation start states are unseen). The executed xyz carries a temporally
   correlated disturbance (AR(1), ``demo_drift_std``) while the label is the expert's clean reaction, so the data
   holds corrections away from the expert's own path. Each step's label is the chunk of the next ``chunk_len``
   expert actions (the last one repeated past the episode end).
2. Training: CogACT's objective for its DiT head: epsilon prediction on the cosine schedule with
   ``diffusion_steps`` steps, timesteps uniform, condition dropped with ``condition_dropout`` (for CFG); AdamW with
   warm-up and cosine decay. Fixed seeds and thread count: the same config gives the same weights on one machine.

The weights go to a cache file named by :func:`policy_digest` (``build/closed_loop_policy/`` by default, outside
git); ``spvla-bench train-policy`` re-creates them, ``spvla-bench closed-loop`` trains them when missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spvla_ros.core.policy.diffusion import cosine_betas
from spvla_ros.core.scheduler_config import speed_range_from_actions
from spvla_ros.eval.bc_policy import (
    OBS_STD_FLOOR,
    BCPolicyConfig,
    ChunkPolicy,
    ChunkPolicyNet,
    policy_digest,
    policy_from_state,
)
from spvla_ros.eval.metaworld_harness import (
    ENV_ACTION_HIGH,
    ENV_ACTION_LOW,
    ar1_step,
    expert_for,
    make_env,
    noise_rng,
    reseed_env,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO_ROOT / "build" / "closed_loop_policy"
"""Where trained weights are cached (git-ignored)."""


@dataclass(frozen=True)
class Demonstrations:
    """Behaviour-cloning data.

    Attributes:
        obs: (N, 39) observations.
        chunks: (N, chunk_len, 4) expert action chunks, Meta-World units.
        task_index: (N,) one-hot index of each sample's task.
        episodes: successful demonstrations kept.
        discarded: demonstrations that failed within ``demo_max_steps`` (not used).
    """

    obs: np.ndarray
    chunks: np.ndarray
    task_index: np.ndarray
    episodes: int
    discarded: int


def collect_demonstrations(
    tasks: Sequence[str], config: BCPolicyConfig, progress: bool = True
) -> Demonstrations:
    """Run the scripted experts (see the module docstring); ``demos_per_task`` successes per task."""
    obs_all, chunks_all, task_all = [], [], []
    kept = discarded = 0
    bar = tqdm(total=len(tasks) * config.demos_per_task, desc="demonstrations", unit="ep", disable=not progress)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, task in enumerate(tasks):
            env, expert = make_env(task, config.demo_seed), expert_for(task)
            seed, got = config.demo_seed, 0
            while got < config.demos_per_task:
                if seed - config.demo_seed >= 4 * config.demos_per_task:
                    raise RuntimeError(f"the expert of {task} failed too often ({discarded} discarded demos)")
                episode = _demonstrate(env, expert, task, seed, config)
                seed += 1
                if episode is None:
                    discarded += 1
                    continue
                obs, labels = episode
                obs_all.append(obs)
                chunks_all.append(_chunk_labels(labels, config.chunk_len))
                task_all.append(np.full(len(obs), index, dtype=np.int64))
                got += 1
                kept += 1
                bar.update(1)
            env.close()
    bar.close()
    return Demonstrations(np.concatenate(obs_all), np.concatenate(chunks_all), np.concatenate(task_all), kept,
                          discarded)


def _demonstrate(env, expert, task: str, seed: int, config: BCPolicyConfig):  # noqa: ANN001, ANN202
    """One noisy-execution expert episode: (obs (T, 39), clean labels (T, 4)), or None without success."""
    reseed_env(env, seed)
    rng = noise_rng(task, seed)
    obs, _ = env.reset()
    observations, labels = [], []
    drift = np.zeros(3)
    for _ in range(config.demo_max_steps):
        label = np.clip(expert.get_action(obs), ENV_ACTION_LOW, ENV_ACTION_HIGH)
        observations.append(obs.copy())
        labels.append(label)
        drift = ar1_step(drift, config.demo_drift_std, config.demo_drift_correlation, rng)
        executed = label.copy()
        executed[:3] += drift
        obs, _, _, truncated, info = env.step(np.clip(executed, ENV_ACTION_LOW, ENV_ACTION_HIGH))
        if info.get("success"):
            return np.array(observations), np.array(labels)
        if truncated:
            break
    return None


def _chunk_labels(labels: np.ndarray, chunk_len: int) -> np.ndarray:
    """(T, 4) actions -> (T, chunk_len, 4): row i of sample t is action t + i (the last action repeated)."""
    padded = np.concatenate([labels, np.repeat(labels[-1:], chunk_len - 1, axis=0)])
    index = np.arange(len(labels))[:, None] + np.arange(chunk_len)[None, :]
    return padded[index]


DEMO_FIELDS = ("demos_per_task", "demo_seed", "demo_drift_std", "demo_drift_correlation", "demo_max_steps",
               "chunk_len")
"""The :class:`BCPolicyConfig` fields that determine the demonstrations."""


def demonstrations_file(tasks: Sequence[str], config: BCPolicyConfig, cache_dir: str | Path) -> Path:
    """Cache file of the demonstrations of ``config`` on ``tasks`` (shared by configs that differ in training)."""
    blob = json.dumps({"tasks": list(tasks), **{k: getattr(config, k) for k in DEMO_FIELDS}}, sort_keys=True)
    return Path(cache_dir) / f"demos-{hashlib.sha256(blob.encode()).hexdigest()[:12]}.npz"


def cached_demonstrations(
    tasks: Sequence[str], config: BCPolicyConfig, cache_dir: str | Path | None, progress: bool = True
) -> Demonstrations:
    """:func:`collect_demonstrations`, read from / written to ``cache_dir`` when given."""
    path = demonstrations_file(tasks, config, cache_dir) if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path) as data:
            return Demonstrations(data["obs"], data["chunks"], data["task_index"], int(data["episodes"]),
                                  int(data["discarded"]))
    demos = collect_demonstrations(tasks, config, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, obs=demos.obs, chunks=demos.chunks, task_index=demos.task_index,
                            episodes=demos.episodes, discarded=demos.discarded)
        tmp.replace(path)
    return demos


def train_policy(
    tasks: Sequence[str], config: BCPolicyConfig, progress: bool = True, cache_dir: str | Path | None = None
) -> ChunkPolicy:
    """Collect (or read cached) demonstrations and train a :class:`ChunkPolicy` (see the module docstring)."""
    tasks = tuple(tasks)
    t0 = time.perf_counter()
    demos = cached_demonstrations(tasks, config, cache_dir, progress)
    t_demos = time.perf_counter() - t0
    torch.manual_seed(config.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        net, obs_mean, obs_std, final_loss = _fit(demos, config, len(tasks), progress)
    finally:
        torch.set_num_threads(previous_threads)
    speeds = demos.chunks[:, 0, :3]
    info = {
        "demonstrations": demos.episodes,
        "discarded_demonstrations": demos.discarded,
        "samples": int(len(demos.obs)),
        "final_loss": final_loss,
        "demo_wall_s": t_demos,
        "train_wall_s": time.perf_counter() - t0 - t_demos,
        "parameters": sum(p.numel() for p in net.parameters()),
        "speed_range": speed_range_from_actions(speeds),
    }
    return ChunkPolicy(config, tasks, net, obs_mean, obs_std, policy_digest(config, tasks), info)


def _fit(
    demos: Demonstrations, config: BCPolicyConfig, num_tasks: int, progress: bool
) -> tuple[ChunkPolicyNet, np.ndarray, np.ndarray, float]:
    obs_mean = demos.obs.mean(axis=0)
    obs_std = np.maximum(demos.obs.std(axis=0), OBS_STD_FLOOR)
    obs = torch.from_numpy(((demos.obs - obs_mean) / obs_std).astype(np.float32))
    chunks = torch.from_numpy(demos.chunks.astype(np.float32))
    tasks = torch.from_numpy(demos.task_index)
    alpha_bar = torch.from_numpy(np.cumprod(1.0 - cosine_betas(config.diffusion_steps)).astype(np.float32))
    net = ChunkPolicyNet(config, num_tasks)
    net.train()
    dit = net.action_model.net
    optim = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    smoothed = math.nan
    bar = tqdm(range(config.train_steps), desc="training", unit="step", disable=not progress)
    for step in bar:
        for group in optim.param_groups:
            group["lr"] = _learning_rate(step, config)
        index = torch.randint(0, len(obs), (config.batch_size,), generator=gen)
        x0 = chunks[index]
        t = torch.randint(0, config.diffusion_steps, (config.batch_size,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        ab = alpha_bar[t][:, None, None]
        xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps
        z = net.condition(obs[index], tasks[index])
        if config.condition_dropout > 0:
            drop = torch.rand((config.batch_size, 1, 1), generator=gen) < config.condition_dropout
            z = torch.where(drop, dit.z_embedder.uncondition.unsqueeze(0).expand_as(z), z)
        loss = torch.nn.functional.mse_loss(dit(xt, t, z), eps)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        value = loss.detach().item()
        smoothed = value if math.isnan(smoothed) else 0.98 * smoothed + 0.02 * value
        if step % 50 == 0:
            bar.set_postfix(loss=f"{smoothed:.4f}")
    bar.close()
    net.eval()
    return net, obs_mean, obs_std, smoothed


def _learning_rate(step: int, config: BCPolicyConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(1, config.train_steps - config.warmup_steps)
    return 0.5 * config.learning_rate * (1.0 + math.cos(math.pi * (step - config.warmup_steps) / span))


def policy_file(config: BCPolicyConfig, tasks: Sequence[str], cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """Cache file of the policy trained with ``config`` on ``tasks``."""
    return Path(cache_dir) / f"policy-{policy_digest(config, tuple(tasks))}.pt"


def save_policy(policy: ChunkPolicy, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(policy.state(), tmp)
    tmp.replace(path)


def load_policy_file(path: str | Path) -> ChunkPolicy:
    """A policy saved by :func:`save_policy`; ValueError when the file is not one."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        return policy_from_state(state)
    except (KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a closed-loop policy file ({exc})") from exc


def load_or_train(
    tasks: Sequence[str],
    config: BCPolicyConfig,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    retrain: bool = False,
    progress: bool = True,
) -> tuple[ChunkPolicy, bool]:
    """The cached policy for (config, tasks), trained and cached when missing. Returns (policy, trained now)."""
    path = policy_file(config, tasks, cache_dir)
    if path.exists() and not retrain:
        return load_policy_file(path), False
    policy = train_policy(tasks, config, progress, cache_dir)
    save_policy(policy, path)
    return policy, True
