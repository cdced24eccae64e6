"""CogACT policy runtime (ROS-free) with SP-VLA token pruning built in.

Public surface: :func:`load_policy`, :class:`CogACTPolicy` (``predict_chunk``, ``action_rate_hz``, ``reset``),
:class:`PolicyOutput`, :class:`AdaptiveEnsembler`.
See ``checkpoint.py`` for the checkpoint layouts and the timm -> transformers key mapping.
"""

from spvla_ros.core.policy.checkpoint import CheckpointError, save_official, save_own
from spvla_ros.core.policy.ensemble import AdaptiveEnsembler
from spvla_ros.core.policy.policy_config import PolicyConfig, load_policy_config
from spvla_ros.core.policy.presets import PRESETS, PolicyPreset, get_preset
from spvla_ros.core.policy.runtime import STAGES, CogACTPolicy, PolicyOutput, load_policy, validate_image

__all__ = [
    "PRESETS",
    "STAGES",
    "AdaptiveEnsembler",
    "CheckpointError",
    "CogACTPolicy",
    "PolicyConfig",
    "PolicyOutput",
    "PolicyPreset",
    "get_preset",
    "load_policy",
    "load_policy_config",
    "save_official",
    "save_own",
    "validate_image",
]
