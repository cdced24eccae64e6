"""Configuration of SP-VLA spatio-semantic token pruning, validated at construction.

Speed convention (the same as :mod:`spvla_ros.core.scheduler_config`): the *speed* of an action is the
Euclidean norm of its translational part ``||(a_x, a_y, a_z)||`` in the action's own units per action step
(metres per step for BridgeData-style deltas). ``v_pmin``/``v_pmax`` are in those units.

Patch grid convention: the vision encoders see a 224x224 RGB image cut into ``patch_size`` x ``patch_size``
pixel patches (14 -> a 16x16 grid, P = 256 patch tokens, numbered row-major). Register/CLS tokens are not
patches: they are never candidates for pruning and the caller always keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from spvla_ros.core.validation import require_finite, require_int_at_least

SEMANTIC_MODES = ("threshold", "mass")
"""``threshold``: keep patches whose normalized AccuAttn exceeds ``t_ks``; ``mass``: keep the top patches
holding ``semantic_mass`` of the accumulated attention."""
POSITION_ID_MODES = ("renumber", "preserve")
"""``renumber``: kept tokens get positions 0..K-1 (as the method's public code does); ``preserve``: each
kept token keeps its original patch index as position."""


@dataclass(frozen=True)
class PruningConfig:
    """SP-VLA token pruning settings.

    Args:
        v_pmin: speed at and below which nothing is pruned, action units per step (>= 0).
        v_pmax: speed at which the keep ratio reaches its floor, action units per step (> v_pmin).
            Between the two the keep ratio falls linearly: ``1 - (v - v_pmin) / (v_pmax - v_pmin)``.
        min_keep_ratio: floor of the keep ratio, fraction of the patch tokens in (0, 1].
        canny_low: lower hysteresis threshold of the Canny detector, grey levels of the uint8 image.
        canny_high: upper hysteresis threshold of the Canny detector, grey levels (>= canny_low).
        min_edge_pixels: a patch is *spatial* when it holds at least this many Canny edge pixels (>= 1).
        patch_size: side of a vision-encoder patch, pixels (DINOv2 and SigLIP in CogACT: 14).
        semantic_mode: one of ``SEMANTIC_MODES``.
        t_ks: ``threshold`` mode: keep a patch when its AccuAttn exceeds ``t_ks`` times the uniform share
            ``1/P`` of the patch attention (dimensionless, >= 0; 1.0 = "more than an average patch").
        semantic_mass: ``mass`` mode: keep the fewest top patches whose AccuAttn adds up to at least this
            fraction of the patch attention, in (0, 1].
        position_ids: one of ``POSITION_ID_MODES``.
    """

    # --- speed -> keep ratio (paper: no pruning at low speed, more pruning the faster the arm moves) ---
    v_pmin: float = 0.25
    v_pmax: float = 0.75
    min_keep_ratio: float = 0.5
    # --- spatial tokens: Canny edges on the very image the encoder sees ---
    canny_low: float = 100.0
    canny_high: float = 200.0
    min_edge_pixels: int = 4
    patch_size: int = 14
    # --- semantic tokens: accumulated attention of the last vision layer ---
    semantic_mode: str = "mass"
    t_ks: float = 1.0
    semantic_mass: float = 0.5
    # --- how the language model sees the kept tokens ---
    position_ids: str = "renumber"

    def __post_init__(self) -> None:
        for name in ("v_pmin", "v_pmax", "min_keep_ratio", "canny_low", "canny_high", "t_ks", "semantic_mass"):
            require_finite(name, getattr(self, name))
        if self.v_pmin < 0:
            raise ValueError(f"v_pmin must be >= 0, got {self.v_pmin}")
        if self.v_pmax <= self.v_pmin:
            raise ValueError(f"v_pmax ({self.v_pmax}) must be greater than v_pmin ({self.v_pmin})")
        if not 0.0 < self.min_keep_ratio <= 1.0:
            raise ValueError(f"min_keep_ratio must be in (0, 1], got {self.min_keep_ratio}")
        if self.canny_low < 0:
            raise ValueError(f"canny_low must be >= 0, got {self.canny_low}")
        if self.canny_high < self.canny_low:
            raise ValueError(f"canny_high ({self.canny_high}) must be >= canny_low ({self.canny_low})")
        require_int_at_least("min_edge_pixels", self.min_edge_pixels, 1)
        require_int_at_least("patch_size", self.patch_size, 1)
        if self.min_edge_pixels > self.patch_size**2:
            raise ValueError(
                f"min_edge_pixels ({self.min_edge_pixels}) exceeds the pixels of one patch ({self.patch_size**2})"
            )
        if self.semantic_mode not in SEMANTIC_MODES:
            raise ValueError(f"semantic_mode must be one of {SEMANTIC_MODES}, got {self.semantic_mode!r}")
        if self.t_ks < 0:
            raise ValueError(f"t_ks must be >= 0, got {self.t_ks}")
        if not 0.0 < self.semantic_mass <= 1.0:
            raise ValueError(f"semantic_mass must be in (0, 1], got {self.semantic_mass}")
        if self.position_ids not in POSITION_ID_MODES:
            raise ValueError(f"position_ids must be one of {POSITION_ID_MODES}, got {self.position_ids!r}")

    def with_changes(self, **changes: object) -> PruningConfig:
        """A validated copy with some fields changed (raises ValueError and leaves ``self`` as it is)."""
        return replace(self, **changes)
