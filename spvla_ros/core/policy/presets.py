"""Architecture presets of the CogACT policy: ``cogact-base`` (the paper's model) and ``tiny`` (tests, demo).

Both presets build the *same* architecture (DINOv2-reg4 + SigLIP vision towers, fused MLP projector,
Llama decoder, DiT action head); only the widths and depths differ. ``tiny`` is a few MB, random init,
and runs on a CPU in a few tens of milliseconds. Input handling is not part of a preset: both squash frames to
224x224 px with ``resize_interpolation`` of ``config/policy.yaml`` (default ``pil_bicubic``, the official
``predict_action``'s resize).

Sources of the ``cogact-base`` numbers (read from public code; key mapping in ``checkpoint.py``):
  * DINOv2 ViT-L/14 reg4: timm ``vit_large_patch14_reg4_dinov2`` (1024 wide, 24 blocks, 16 heads, MLP 4096,
    4 register tokens, position embedding on patches only).
  * SigLIP so400m/14 at 224 px: timm ``vit_so400m_patch14_siglip_224`` (1152 wide, 27 blocks, 16 heads,
    MLP int(1152 * 3.7362) = 4304, exact GELU, attention-pool head).
  * Llama-2 7B with Prismatic's padded vocabulary (32000 + <PAD>, padded to a multiple of 64 = 32064).
  * DiT-S/B/L of CogACT ``action_model/action_model.py``; CogACT-Base uses DiT-B.
"""

from __future__ import annotations

from dataclasses import dataclass, field

IMAGE_SIZE_PX = 224
"""Square input resolution of both vision towers, pixels."""
PATCH_SIZE_PX = 14
"""ViT patch side, pixels: 224 / 14 = a 16 x 16 grid of 256 patches."""


@dataclass(frozen=True)
class ViTShape:
    """One vision transformer tower.

    Args:
        hidden_size: token width.
        num_layers: number of transformer blocks; features are taken after block ``num_layers - 1``
            (the second-to-last one, as Prismatic does).
        num_heads: attention heads.
        mlp_hidden: MLP hidden width.
        num_register_tokens: DINOv2 register tokens (0 for SigLIP).
        mean: per-channel normalization mean of [0, 1] RGB input (timm data config of the tower).
        std: per-channel normalization std.
    """

    hidden_size: int
    num_layers: int
    num_heads: int
    mlp_hidden: int
    num_register_tokens: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "mlp_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_layers < 2:
            raise ValueError(f"num_layers must be >= 2 (features come from the second-to-last), got {self.num_layers}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {self.num_register_tokens}")


@dataclass(frozen=True)
class LlamaShape:
    """The Llama decoder (transformers ``LlamaConfig`` fields of the same names)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"bad head layout: hidden_size={self.hidden_size}, num_heads={self.num_heads}, "
                f"num_kv_heads={self.num_kv_heads}"
            )


@dataclass(frozen=True)
class DiTShape:
    """A DiT action head size (CogACT ``DiT_S/B/L``)."""

    hidden_size: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"DiT hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")


DIT_SHAPES: dict[str, DiTShape] = {
    "DiT-S": DiTShape(hidden_size=384, depth=6, num_heads=4),
    "DiT-B": DiTShape(hidden_size=768, depth=12, num_heads=12),
    "DiT-L": DiTShape(hidden_size=1024, depth=24, num_heads=16),
    # ours, for the tiny preset only (not a CogACT release size)
    "DiT-T": DiTShape(hidden_size=32, depth=2, num_heads=2),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PolicyPreset:
    """A complete CogACT architecture.

    Args:
        name: preset name (``cogact-base``, ``tiny``).
        dino: DINOv2 tower.
        siglip: SigLIP tower.
        llm: Llama decoder.
        action_model_type: key of :data:`DIT_SHAPES`.
        action_dim: action width (7: dx, dy, dz, droll, dpitch, dyaw, gripper).
        future_action_window_size: chunk length minus one (CogACT: 15, so 16 actions per chunk).
        tokenizer: ``llama`` (a local Llama-2 tokenizer directory is required) or ``word-hash`` (ours,
            deterministic, no files; only meaningful for random-init weights).
        action_rate_hz: control rate the actions are meant for when the dataset statistics do not say, Hz.
    """

    name: str
    dino: ViTShape
    siglip: ViTShape
    llm: LlamaShape
    action_model_type: str
    action_dim: int = 7
    future_action_window_size: int = 15
    tokenizer: str = "llama"
    action_rate_hz: float = 5.0
    dit: DiTShape = field(init=False)

    def __post_init__(self) -> None:
        if self.action_model_type not in DIT_SHAPES:
            raise ValueError(f"action_model_type must be one of {sorted(DIT_SHAPES)}, got {self.action_model_type!r}")
        if self.tokenizer not in ("llama", "word-hash"):
            raise ValueError(f"tokenizer must be 'llama' or 'word-hash', got {self.tokenizer!r}")
        if self.action_rate_hz <= 0:
            raise ValueError(f"action_rate_hz must be > 0, got {self.action_rate_hz}")
        object.__setattr__(self, "dit", DIT_SHAPES[self.action_model_type])

    @property
    def chunk_len(self) -> int:
        """Actions per predicted chunk (16 for CogACT)."""
        return self.future_action_window_size + 1

    @property
    def num_patches(self) -> int:
        """Vision tokens per image before pruning (256)."""
        return (IMAGE_SIZE_PX // PATCH_SIZE_PX) ** 2

    @property
    def fused_vision_dim(self) -> int:
        """Width of one concatenated DINOv2 + SigLIP patch feature (2176 for cogact-base)."""
        return self.dino.hidden_size + self.siglip.hidden_size


COGACT_BASE = PolicyPreset(
    name="cogact-base",
    dino=ViTShape(1024, 24, 16, 4096, 4, IMAGENET_MEAN, IMAGENET_STD),
    siglip=ViTShape(1152, 27, 16, 4304, 0, SIGLIP_MEAN, SIGLIP_STD),
    llm=LlamaShape(
        hidden_size=4096,
        intermediate_size=11008,
        num_layers=32,
        num_heads=32,
        num_kv_heads=32,
        vocab_size=32064,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
    ),
    action_model_type="DiT-B",
    tokenizer="llama",
)

TINY = PolicyPreset(
    name="tiny",
    dino=ViTShape(32, 3, 2, 64, 4, IMAGENET_MEAN, IMAGENET_STD),
    siglip=ViTShape(48, 3, 2, 96, 0, SIGLIP_MEAN, SIGLIP_STD),
    llm=LlamaShape(
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=4,
        vocab_size=512,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
    ),
    action_model_type="DiT-T",
    tokenizer="word-hash",
)

PRESETS: dict[str, PolicyPreset] = {p.name: p for p in (COGACT_BASE, TINY)}


def get_preset(name: str) -> PolicyPreset:
    """The preset called ``name``; ValueError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown policy preset {name!r}; known presets: {sorted(PRESETS)}") from None
