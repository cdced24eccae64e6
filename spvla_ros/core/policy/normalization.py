"""Action un-normalization with a checkpoint's ``dataset_statistics.json`` (CogACT/OpenVLA convention).

``dataset_statistics.json`` maps a dataset key (``unnorm_key``, e.g. ``bridge_orig``,
``fractal20220817_data``) to ``{"action": {"q01": [7], "q99": [7], "mask": [7], ...}, ...}``.
A model output x in [-1, 1] becomes ``0.5 * (x + 1) * (q99 - q01) + q01`` on masked dimensions and stays x
elsewhere; before that x is clipped to [-1, 1] and the gripper is binarized (x < threshold -> 0 else 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GRIPPER_INDEX = 6
"""Column of the gripper command in a (.., 7) action: [dx, dy, dz, droll, dpitch, dyaw, gripper]."""
IDENTITY_STATS_KEY = "identity"
"""Key of the built-in statistics used by random-init policies: q01 = -1, q99 = 1 (output = clipped model output)."""


@dataclass(frozen=True)
class ActionStatistics:
    """Per-dimension bounds of one dataset's actions.

    Args:
        key: the ``unnorm_key`` they came from.
        q01: 1st percentile per action dimension, (A,), action units.
        q99: 99th percentile, (A,).
        mask: which dimensions are un-normalized, (A,) bool (the gripper usually is not).
        control_frequency_hz: the dataset's control rate when the statistics carry one, else None.
    """

    key: str
    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray
    control_frequency_hz: float | None = None

    def __post_init__(self) -> None:
        shapes = {self.q01.shape, self.q99.shape, self.mask.shape}
        if len(shapes) != 1 or self.q01.ndim != 1:
            raise ValueError(f"statistics {self.key!r}: q01/q99/mask shapes differ or are not 1-D: {shapes}")
        if not (np.isfinite(self.q01).all() and np.isfinite(self.q99).all()):
            raise ValueError(f"statistics {self.key!r}: q01/q99 contain NaN or Inf")


def identity_statistics(action_dim: int = 7) -> ActionStatistics:
    """Statistics that leave in-range outputs unchanged (gripper unmasked, as in real checkpoints)."""
    mask = np.ones(action_dim, dtype=bool)
    mask[GRIPPER_INDEX] = False
    return ActionStatistics(IDENTITY_STATS_KEY, -np.ones(action_dim), np.ones(action_dim), mask)


def load_dataset_statistics(path: str | Path) -> dict:
    """The parsed ``dataset_statistics.json`` (FileNotFoundError / ValueError with the path)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset statistics not found: {path}")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty mapping of dataset keys")
    return data


def select_statistics(stats: dict, unnorm_key: str | None) -> ActionStatistics:
    """The action statistics for ``unnorm_key`` (None: the only key). ValueError lists the available keys."""
    keys = sorted(stats)
    if unnorm_key is None:
        if len(keys) != 1:
            raise ValueError(f"the checkpoint has statistics for several datasets; pass unnorm_key, one of {keys}")
        unnorm_key = keys[0]
    if unnorm_key not in stats:
        raise ValueError(f"unnorm_key {unnorm_key!r} is not in the dataset statistics; available keys: {keys}")
    entry = stats[unnorm_key]
    action = entry.get("action") if isinstance(entry, dict) else None
    if not isinstance(action, dict) or "q01" not in action or "q99" not in action:
        raise ValueError(f"dataset statistics {unnorm_key!r} have no action q01/q99")
    q01 = np.asarray(action["q01"], dtype=np.float64)
    mask = np.asarray(action.get("mask", np.ones_like(q01, dtype=bool)), dtype=bool)
    rate = entry.get("control_frequency_hz")
    return ActionStatistics(
        unnorm_key, q01, np.asarray(action["q99"], dtype=np.float64), mask, None if rate is None else float(rate)
    )


def unnormalize_actions(normalized: np.ndarray, stats: ActionStatistics, gripper_threshold: float) -> np.ndarray:
    """(T, A) model output in [-1, 1] -> (T, A) float64 actions in dataset units (see module docstring)."""
    x = np.clip(np.asarray(normalized, dtype=np.float64), -1.0, 1.0)
    if x.ndim != 2 or x.shape[1] != stats.q01.shape[0]:
        raise ValueError(f"normalized actions must be (T, {stats.q01.shape[0]}), got {x.shape}")
    x[:, GRIPPER_INDEX] = np.where(x[:, GRIPPER_INDEX] < gripper_threshold, 0.0, 1.0)
    return np.where(stats.mask, 0.5 * (x + 1.0) * (stats.q99 - stats.q01) + stats.q01, x)
