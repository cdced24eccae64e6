"""Speed-driven keep ratio of SP-VLA token pruning, and the token budget it gives.

Speeds follow the spvla convention (:mod:`spvla_ros.core.scheduler_config`): ``||a_xyz||`` of the action,
action units per step.
"""

from __future__ import annotations

import math

from spvla_ros.core.pruning.config import PruningConfig

DEFAULT_MIN_KEEP_RATIO = PruningConfig.min_keep_ratio
"""Floor of the keep ratio when the caller gives none (the ``PruningConfig`` default)."""


def keep_ratio_for_speed(
    v: float, v_pmin: float, v_pmax: float, min_keep_ratio: float = DEFAULT_MIN_KEEP_RATIO
) -> float:
    """Fraction of the patch tokens to keep at speed ``v``.

    ``1`` for ``v <= v_pmin`` (no pruning at low speed); ``1 - (v - v_pmin) / (v_pmax - v_pmin)`` above,
    clamped to ``[min_keep_ratio, 1]``.

    Args:
        v: speed, action units per step (finite, >= 0).
        v_pmin: speed at and below which nothing is pruned, same units (>= 0).
        v_pmax: speed at which the linear ramp reaches 0 before clamping, same units (> v_pmin).
        min_keep_ratio: floor in (0, 1].

    Raises:
        ValueError: a non-finite or negative speed, or inconsistent bounds.
    """
    for name, value in (("v", v), ("v_pmin", v_pmin), ("v_pmax", v_pmax), ("min_keep_ratio", min_keep_ratio)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if v < 0:
        raise ValueError(f"speed v must be >= 0 (it is a norm), got {v}")
    if v_pmin < 0 or v_pmax <= v_pmin:
        raise ValueError(f"need 0 <= v_pmin < v_pmax, got v_pmin={v_pmin}, v_pmax={v_pmax}")
    if not 0.0 < min_keep_ratio <= 1.0:
        raise ValueError(f"min_keep_ratio must be in (0, 1], got {min_keep_ratio}")
    if v <= v_pmin:
        return 1.0
    ratio = 1.0 - (v - v_pmin) / (v_pmax - v_pmin)
    return float(min(1.0, max(min_keep_ratio, ratio)))


def token_budget(keep_ratio: float, num_patches: int) -> int:
    """How many patch tokens a keep ratio allows: ``round(keep_ratio * num_patches)``, at least 1.

    Rounds half up (``floor(x + 0.5)``), not Python's round-half-to-even, so the budget is monotone in the
    keep ratio. A keep ratio of exactly 1 gives ``num_patches``.

    Raises:
        ValueError: keep_ratio outside (0, 1] or not finite, or num_patches < 1.
    """
    if isinstance(keep_ratio, bool) or not isinstance(keep_ratio, (int, float)) or not math.isfinite(keep_ratio):
        raise ValueError(f"keep_ratio must be a finite number, got {keep_ratio!r}")
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
    if isinstance(num_patches, bool) or not isinstance(num_patches, int) or num_patches < 1:
        raise ValueError(f"num_patches must be an int >= 1, got {num_patches!r}")
    return int(min(num_patches, max(1, math.floor(keep_ratio * num_patches + 0.5))))
