"""SP-VLA spatio-semantic token pruning (ROS-free): which vision patch tokens reach the language model.

Per frame: keep ratio from the arm's speed (:func:`keep_ratio_for_speed`), spatial patches from Canny edges
of the encoder's input image (:func:`canny_patch_mask`), semantic patches from the last vision layer's
accumulated attention (:class:`LastLayerAttention` + :func:`accumulated_attention`), then an order-preserving
union trimmed/filled to the budget (:func:`select_tokens`), applied to patch features
(:func:`apply_token_selection`) with renumbered or preserved position ids (:func:`position_ids_for_selection`).
"""

from spvla_ros.core.pruning.attention_hook import (
    LastLayerAttention,
    attention_sites,
    capture_last_layer_attention,
    num_prefix_tokens,
)
from spvla_ros.core.pruning.config import POSITION_ID_MODES, SEMANTIC_MODES, PruningConfig
from spvla_ros.core.pruning.keep_ratio import keep_ratio_for_speed, token_budget
from spvla_ros.core.pruning.selection import (
    TokenSelection,
    apply_token_selection,
    position_ids_for_selection,
    select_for_frame,
    select_tokens,
    selection_priority,
)
from spvla_ros.core.pruning.semantic import accumulated_attention, normalized_scores, semantic_mask
from spvla_ros.core.pruning.spatial import canny_edges, canny_patch_mask, validate_rgb_image

__all__ = [
    "POSITION_ID_MODES",
    "SEMANTIC_MODES",
    "LastLayerAttention",
    "PruningConfig",
    "TokenSelection",
    "accumulated_attention",
    "apply_token_selection",
    "attention_sites",
    "canny_edges",
    "canny_patch_mask",
    "capture_last_layer_attention",
    "keep_ratio_for_speed",
    "normalized_scores",
    "num_prefix_tokens",
    "position_ids_for_selection",
    "select_for_frame",
    "select_tokens",
    "selection_priority",
    "semantic_mask",
    "token_budget",
    "validate_rgb_image",
]
