"""Runtime settings of the CogACT policy (sampling, output, ensemble), defaults in ``config/policy.yaml``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from spvla_ros.core.config_io import CONFIG_DIR
from spvla_ros.core.validation import require_finite_fields, require_int_at_least

DEFAULT_CONFIG_PATH = CONFIG_DIR / "policy.yaml"
"""``config/policy.yaml`` of a source checkout, or its installed copy in ``share/spvla/config``."""
RESIZE_INTERPOLATIONS = ("pil_bicubic", "cv2_area", "cv2_linear", "cv2_cubic")
"""How a camera frame is brought to 224x224 px (frames already 224x224 are used as they are):

* ``pil_bicubic``: the official CogACT ``predict_action`` given a raw frame (Prismatic's ``resize-naive``
  transform: torchvision ``Resize((224, 224))`` on the PIL image = PIL bicubic with its antialiasing). CogACT's
  own SimplerEnv wrapper hands the raw frame to ``predict_action`` too, so this is what every official path does.
* ``cv2_area``: OpenCV ``INTER_AREA``, the shrink SimplerEnv-style wrappers apply before their model (spvla's
  earlier default); up to 0.12 (normalised pixel units) away from ``pil_bicubic`` on a 640x480 frame.
* ``cv2_linear``, ``cv2_cubic``: OpenCV ``INTER_LINEAR`` / ``INTER_CUBIC``.
"""


@dataclass(frozen=True)
class PolicyConfig:
    """CogACT runtime settings (``config/policy.yaml``).

    Args:
        cfg_scale: classifier-free guidance scale, >= 1 (1 disables it).
        ddim_steps: DDIM sampling steps, in [1, diffusion_steps].
        diffusion_steps: diffusion steps the head was trained with (CogACT: 100).
        gripper_threshold: normalized gripper output below it becomes 0, else 1.
        resize_interpolation: how camera frames are squashed to 224x224 px: pil_bicubic (the official CogACT
            predict_action), cv2_area (OpenCV INTER_AREA, SimplerEnv-style), cv2_linear or cv2_cubic.
        ensemble_horizon: chunks blended by :class:`AdaptiveEnsembler`, >= 1.
        ensemble_alpha: temperature of its cosine weights.
        action_rate_hz_by_dataset: control rate per ``unnorm_key``, Hz (> 0).
    """

    cfg_scale: float = 1.5
    ddim_steps: int = 10
    diffusion_steps: int = 100
    gripper_threshold: float = 0.5
    resize_interpolation: str = "pil_bicubic"
    ensemble_horizon: int = 7
    ensemble_alpha: float = 0.1
    action_rate_hz_by_dataset: dict[str, float] = field(
        default_factory=lambda: {"bridge_orig": 5.0, "fractal20220817_data": 3.0}
    )

    def __post_init__(self) -> None:
        require_finite_fields(self, ("cfg_scale", "gripper_threshold", "ensemble_alpha"))
        if self.cfg_scale < 1.0:
            raise ValueError(f"cfg_scale must be >= 1, got {self.cfg_scale}")
        for name in ("ddim_steps", "diffusion_steps", "ensemble_horizon"):
            require_int_at_least(name, getattr(self, name), 1)
        if self.ddim_steps > self.diffusion_steps:
            raise ValueError(f"ddim_steps ({self.ddim_steps}) exceeds diffusion_steps ({self.diffusion_steps})")
        if self.resize_interpolation not in RESIZE_INTERPOLATIONS:
            raise ValueError(
                f"resize_interpolation must be one of {RESIZE_INTERPOLATIONS}, got {self.resize_interpolation!r}"
            )
        for key, rate in self.action_rate_hz_by_dataset.items():
            if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
                raise ValueError(f"action_rate_hz_by_dataset[{key!r}] must be > 0, got {rate!r}")


def load_policy_config(path: str | Path | None = None) -> PolicyConfig:
    """PolicyConfig from YAML (default ``config/policy.yaml``; dataclass defaults when that file is absent).

    Raises:
        ValueError: unknown keys or invalid values (quoted).
    """
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not path.is_file():
        if path == DEFAULT_CONFIG_PATH:
            return PolicyConfig()
        raise FileNotFoundError(f"policy config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(PolicyConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown} (known: {sorted(known)})")
    return PolicyConfig(**data)
