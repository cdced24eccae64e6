"""Recorded action trajectories for offline replay: loading an npz, and a synthetic fallback.

An action file is an ``.npz`` holding ``actions`` (N, 7) ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``
in the robot's action units per step, and ``episode`` (N,) integer ids (rows of one episode contiguous).
``../shared/data/bridge_debug_25ep.npz`` (BridgeData V2, WidowX, 5 Hz, metres and radians per step) is one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spvla_ros.core.scheduler_config import ACTION_DIM


def load_action_episodes(path: str | Path) -> list[np.ndarray]:
    """Episodes of an action npz, each (steps, 7) float64, in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing keys, wrong shapes, NaN/Inf, or interleaved episodes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"action file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        missing = {"actions", "episode"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: missing keys {sorted(missing)} (has {sorted(data.files)})")
        actions = np.asarray(data["actions"], dtype=np.float64)
        episode = np.asarray(data["episode"])
    if actions.ndim != 2 or actions.shape[1] != ACTION_DIM:
        raise ValueError(f"{path}: actions must be (N, {ACTION_DIM}), got {actions.shape}")
    if episode.shape != (actions.shape[0],):
        raise ValueError(f"{path}: episode must be ({actions.shape[0]},), got {episode.shape}")
    if not np.issubdtype(episode.dtype, np.integer):
        raise ValueError(f"{path}: episode ids must be integers, got {episode.dtype}")
    if not np.isfinite(actions).all():
        raise ValueError(f"{path}: actions contain NaN or Inf")
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    ids = episode[starts]
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{path}: rows of an episode must be contiguous")
    return [actions[a:b] for a, b in zip(starts, np.r_[starts[1:], len(episode)], strict=True)]


def synthetic_episodes(
    num_episodes: int = 20, steps: int = 60, speed: float = 0.01, seed: int = 0
) -> list[np.ndarray]:
    """Smooth reach-like trajectories (bell-shaped speed profiles, noisy), for runs without recorded data.

    Args:
        num_episodes: how many episodes.
        steps: steps per episode.
        speed: peak translational speed, action units per step.
        seed: RNG seed (deterministic output).

    Returns:
        Episodes, each (steps, 7): translation along a random direction per segment, small rotation,
        gripper 1 (open) switching to 0 (closed) two thirds through.
    """
    rng = np.random.default_rng(seed)
    episodes = []
    t = np.linspace(0.0, 1.0, steps)
    for _ in range(num_episodes):
        actions = np.zeros((steps, ACTION_DIM))
        for seg in (slice(0, steps // 2), slice(steps // 2, steps)):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            phase = (t[seg] - t[seg][0]) / max(t[seg][-1] - t[seg][0], 1e-9)
            profile = speed * np.sin(np.pi * phase) ** 2
            actions[seg, :3] = profile[:, None] * direction
        actions[:, :3] += rng.normal(scale=0.05 * speed, size=(steps, 3))
        actions[:, 3:6] = rng.normal(scale=0.01, size=(steps, 3))
        actions[:, 6] = (t < 2 / 3).astype(float)
        episodes.append(actions)
    return episodes
