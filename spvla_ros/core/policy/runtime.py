"""CogACT policy runtime with SP-VLA token pruning: image + instruction -> (16, 7) action chunk.

Stages, each timed (``stage_ms``):

1. ``vision``: resize to 224x224 (``resize_interpolation``, default PIL bicubic as the official
   ``predict_action``), normalize per tower, DINOv2 and SigLIP up to their second-to-last block.
2. ``pruning`` (only when ``keep_ratio < 1``): DINOv2's last-block attention -> AccuAttn scores, Canny patch mask
   of the same 224x224 image, :func:`select_tokens`; the *same* indices are applied to the fused DINOv2+SigLIP
   patch features before the projector.
3. ``llm``: projector + Llama prefill of [BOS, kept vision tokens, prompt, cognition token].
4. ``action_head``: DDIM (10 steps) with CFG (1.5) in the DiT, then un-normalization with the dataset statistics.

Example::

    policy = load_policy("tiny", device="cpu")
    out = policy.predict_chunk(rgb_uint8, "pick up the cup", keep_ratio=0.5)
    out.actions.shape  # (16, 7): [dx, dy, dz, droll, dpitch, dyaw, gripper], dataset units
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from spvla_ros.core.policy.checkpoint import load_weights
from spvla_ros.core.policy.diffusion import DDIMSchedule
from spvla_ros.core.policy.ensemble import AdaptiveEnsembler
from spvla_ros.core.policy.model import CogACTModel
from spvla_ros.core.policy.normalization import (
    IDENTITY_STATS_KEY,
    ActionStatistics,
    identity_statistics,
    load_dataset_statistics,
    select_statistics,
    unnormalize_actions,
)
from spvla_ros.core.policy.policy_config import RESIZE_INTERPOLATIONS, PolicyConfig, load_policy_config
from spvla_ros.core.policy.presets import IMAGE_SIZE_PX, PATCH_SIZE_PX, PolicyPreset, get_preset
from spvla_ros.core.policy.prompt import LlamaPromptTokenizer, PromptTokenizer, WordHashTokenizer
from spvla_ros.core.pruning.config import PruningConfig

STAGES = ("vision", "pruning", "llm", "action_head")
"""Keys of :attr:`PolicyOutput.stage_ms`, in pipeline order."""
MS_PER_S = 1000.0
RGB_CHANNELS = 3
_CV2_INTERPOLATION = {"cv2_area": cv2.INTER_AREA, "cv2_linear": cv2.INTER_LINEAR, "cv2_cubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class PolicyOutput:
    """One model call.

    Attributes:
        actions: (16, 7) float64 chunk [dx, dy, dz, droll, dpitch, dyaw, gripper] in the dataset's action units
            (un-normalized with the ``unnorm_key`` statistics; gripper 0 = closed, 1 = open).
        keep_ratio: the keep ratio used, in (0, 1].
        num_vision_tokens: vision tokens that reached the LLM (256 unpruned).
        stage_ms: wall time per stage in ms, keys :data:`STAGES` (pruning is 0 when it did not run).
        latency_s: wall time of the whole call, s.
        normalized_actions: (16, 7) float32 raw DiT output before clipping and un-normalization.
        kept_indices: (K,) int64 patch indices kept, row-major over the 16x16 grid.
    """

    actions: np.ndarray
    keep_ratio: float
    num_vision_tokens: int
    stage_ms: dict[str, float]
    latency_s: float
    normalized_actions: np.ndarray = field(repr=False)
    kept_indices: np.ndarray = field(repr=False)


def validate_image(image: object) -> np.ndarray:
    """Check a camera frame: (H, W, 3) uint8 RGB with H, W >= one patch (14 px). ValueError otherwise."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError("image contains NaN or Inf (and must be uint8 RGB anyway)")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != RGB_CHANNELS:
        raise ValueError(f"image must be (H, W, 3) RGB (channels last), got shape {image.shape}")
    if min(image.shape[:2]) < PATCH_SIZE_PX:
        raise ValueError(f"image must be at least {PATCH_SIZE_PX}x{PATCH_SIZE_PX} px, got {image.shape[:2]}")
    return image


def resize_to_224(image: np.ndarray, interpolation: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (224, 224, 3) uint8 RGB, squashed (no crop, as Prismatic's ``resize-naive``).

    ``interpolation`` is one of :data:`RESIZE_INTERPOLATIONS`; a 224x224 frame is returned unchanged (torchvision's
    ``Resize`` does the same for a PIL image already at the target size).
    """
    if image.shape[:2] == (IMAGE_SIZE_PX, IMAGE_SIZE_PX):
        return np.ascontiguousarray(image)
    if interpolation == "pil_bicubic":
        resized = Image.fromarray(image).resize((IMAGE_SIZE_PX, IMAGE_SIZE_PX), Image.Resampling.BICUBIC)
        return np.array(resized)  # writable (torch.from_numpy warns on read-only buffers)
    if interpolation not in _CV2_INTERPOLATION:
        raise ValueError(f"resize_interpolation must be one of {RESIZE_INTERPOLATIONS}, got {interpolation!r}")
    return cv2.resize(image, (IMAGE_SIZE_PX, IMAGE_SIZE_PX), interpolation=_CV2_INTERPOLATION[interpolation])


class CogACTPolicy:
    """A loaded CogACT model plus everything needed to turn a frame into an action chunk.

    Build it with :func:`load_policy`. Not thread-safe: one call at a time.
    """

    def __init__(
        self,
        model: CogACTModel,
        config: PolicyConfig,
        tokenizer: PromptTokenizer,
        statistics: ActionStatistics,
        device: torch.device,
        seed: int | None,
        pruning_config: PruningConfig | None = None,
    ) -> None:
        self.model = model.eval()
        self.preset: PolicyPreset = model.preset
        self.config = config
        self.tokenizer = tokenizer
        self.statistics = statistics
        self.device = device
        self.dtype = next(model.parameters()).dtype
        self.seed = seed
        self.pruning_config = pruning_config if pruning_config is not None else PruningConfig()
        self._schedule = DDIMSchedule.build(config.diffusion_steps, config.ddim_steps)
        self._generator = torch.Generator(device=device)
        self._prompt_cache: dict[str, torch.Tensor] = {}
        self.reset()

    # ----- public surface -----
    @property
    def pruning_config(self) -> PruningConfig:
        """SP-VLA token selection settings used when ``keep_ratio < 1`` (Canny, semantic mode, position ids...).

        Assignable between calls (the policy node swaps in a new one when its parameters change); the next
        ``predict_chunk`` uses it.
        """
        return self._pruning_config

    @pruning_config.setter
    def pruning_config(self, config: PruningConfig) -> None:
        if not isinstance(config, PruningConfig):
            raise ValueError(f"pruning_config must be a PruningConfig, got {type(config).__name__}")
        self._pruning_config = config

    @property
    def action_rate_hz(self) -> float:
        """Rate the actions are meant to be executed at, Hz: dataset statistics, else the config's table for the
        ``unnorm_key``, else the preset's default."""
        if self.statistics.control_frequency_hz is not None:
            return self.statistics.control_frequency_hz
        return float(self.config.action_rate_hz_by_dataset.get(self.statistics.key, self.preset.action_rate_hz))

    def reset(self) -> None:
        """Start of an episode: re-seed the diffusion noise (same seed -> same chunks for the same inputs)."""
        if self.seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(self.seed)

    def make_ensembler(self) -> AdaptiveEnsembler:
        """An :class:`AdaptiveEnsembler` with this policy's configured horizon and alpha."""
        return AdaptiveEnsembler(
            self.config.ensemble_horizon, self.config.ensemble_alpha, self.preset.chunk_len, self.preset.action_dim
        )

    @torch.inference_mode()
    def predict_chunk(self, image: np.ndarray, instruction: str, keep_ratio: float = 1.0) -> PolicyOutput:
        """One model call.

        Args:
            image: (H, W, 3) uint8 RGB camera frame, any size >= 14 px (resized to 224x224 here).
            instruction: task in natural language, non-empty.
            keep_ratio: fraction of the 256 vision tokens to keep, in (0, 1]; < 1 runs SP-VLA pruning.

        Raises:
            ValueError: bad image (type, dtype, channels, NaN, too small), empty instruction, keep_ratio outside
                (0, 1].
        """
        return self._predict(image, instruction, keep_ratio, run_pruning=None)

    # ----- internals -----
    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _prompt_ids(self, instruction: str) -> torch.Tensor:
        ids = self._prompt_cache.get(instruction)
        if ids is None:
            ids = torch.tensor([self.tokenizer.prompt_ids(instruction)], dtype=torch.long, device=self.device)
            self._prompt_cache = {instruction: ids}  # one entry: the instruction rarely changes within a task
        return ids

    def image_224(self, image: np.ndarray) -> np.ndarray:
        """The (224, 224, 3) uint8 RGB image both encoders and Canny see (``config.resize_interpolation``)."""
        return resize_to_224(validate_image(image), self.config.resize_interpolation)

    def _predict(
        self, image: np.ndarray, instruction: str, keep_ratio: float, run_pruning: bool | None
    ) -> PolicyOutput:
        if isinstance(keep_ratio, bool) or not isinstance(keep_ratio, (int, float)) or not 0 < keep_ratio <= 1:
            raise ValueError(f"keep_ratio must be a number in (0, 1], got {keep_ratio!r}")
        validate_image(image)
        input_ids = self._prompt_ids(instruction)  # validates the instruction before any work
        prune = keep_ratio < 1.0 if run_pruning is None else run_pruning
        vb = self.model.vision_backbone
        stage_ms = dict.fromkeys(STAGES, 0.0)

        self._sync()
        t0 = time.perf_counter()
        img = self.image_224(image)
        dino_px, siglip_px = vb.pixel_values(img)
        dino_seq = vb.dino_penultimate(dino_px)
        fused = vb.fused_patches(dino_seq, vb.siglip_penultimate(siglip_px))
        self._sync()
        t1 = time.perf_counter()
        stage_ms["vision"] = (t1 - t0) * MS_PER_S

        indices = np.arange(fused.shape[1], dtype=np.int64)
        vision_position_ids = None
        if prune:
            fused, indices, vision_position_ids = self._prune(img, dino_seq, fused, float(keep_ratio))
            self._sync()
        t2 = time.perf_counter()
        stage_ms["pruning"] = (t2 - t1) * MS_PER_S if prune else 0.0

        cognition = self.model.cognition(fused, input_ids, vision_position_ids)
        self._sync()
        t3 = time.perf_counter()
        stage_ms["llm"] = (t3 - t2) * MS_PER_S

        noise = torch.randn(
            (1, self.preset.chunk_len, self.preset.action_dim),
            generator=self._generator,
            device=self.device,
            dtype=torch.float32,
        )
        normalized = self.model.sample_actions(cognition, noise, self._schedule, self.config.cfg_scale)
        normalized_np = normalized[0].float().cpu().numpy()
        actions = unnormalize_actions(normalized_np, self.statistics, self.config.gripper_threshold)
        t4 = time.perf_counter()
        stage_ms["action_head"] = (t4 - t3) * MS_PER_S
        return PolicyOutput(
            actions=actions,
            keep_ratio=float(keep_ratio),
            num_vision_tokens=int(fused.shape[1]),
            stage_ms=stage_ms,
            latency_s=t4 - t0,
            normalized_actions=normalized_np,
            kept_indices=indices,
        )

    def _prune(
        self, image224: np.ndarray, dino_seq: torch.Tensor, fused: torch.Tensor, keep_ratio: float
    ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor | None]:
        """SP-VLA spatio-semantic selection; returns kept features (1, K, F), indices (K,), vision position ids."""
        from spvla_ros.core.pruning import (
            LastLayerAttention,
            accumulated_attention,
            apply_token_selection,
            canny_patch_mask,
            position_ids_for_selection,
            select_tokens,
        )

        cfg = self._pruning_config
        vb = self.model.vision_backbone
        with LastLayerAttention(vb.dino_featurizer) as capture:
            vb.run_dino_last_attention(dino_seq)
        scores = accumulated_attention(capture.attention, vb.num_dino_prefix_tokens)
        spatial = canny_patch_mask(
            image224, cfg.patch_size, cfg.canny_low, cfg.canny_high, cfg.min_edge_pixels
        ).ravel()
        indices = select_tokens(scores, spatial, keep_ratio, cfg)
        positions = None
        if cfg.position_ids == "preserve":
            # BOS sits at position 0; each kept vision token keeps 1 + its patch index.
            pos = position_ids_for_selection(indices, "preserve", start=1)
            positions = torch.as_tensor(pos, device=self.device).unsqueeze(0)
        return apply_token_selection(fused, indices), indices, positions


def resolve_device(device: str) -> torch.device:
    """``cpu`` or ``cuda[:N]`` as a torch device; ValueError when CUDA is asked for and absent."""
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def dtype_for(device: torch.device) -> torch.dtype:
    """bf16 on GPU (CogACT runs Llama-2 in bf16), fp32 on CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def build_model(
    preset: PolicyPreset, device: torch.device, seed: int | None, dtype: torch.dtype | None = None
) -> CogACTModel:
    """A randomly initialized model built directly on ``device`` in :func:`dtype_for` precision.

    Built under that default dtype (not converted afterwards), so a 7B model never exists in fp32 on a 24 GB
    GPU, and buffers that transformers deliberately keeps in fp32 (Llama's RoPE ``inv_freq``) stay fp32.
    Deterministic for a given seed. ``dtype`` overrides :func:`dtype_for` (tests run the bf16 path on CPU).
    """
    if seed is not None:
        torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or dtype_for(device))
    try:
        with torch.device(device):
            model = CogACTModel(preset)
    finally:
        torch.set_default_dtype(previous)
    return model.eval().requires_grad_(False)


def load_policy(
    preset: str | PolicyPreset = "tiny",
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    unnorm_key: str | None = None,
    seed: int | None = 0,
    *,
    config: PolicyConfig | None = None,
    pruning_config: PruningConfig | None = None,
    tokenizer_dir: str | Path | None = None,
    dtype: torch.dtype | None = None,
) -> CogACTPolicy:
    """Build a :class:`CogACTPolicy`.

    Args:
        preset: architecture, ``tiny`` or ``cogact-base`` (or a :class:`PolicyPreset`, e.g. a reduced-depth
            variant for parity checks).
        checkpoint: local checkpoint (official CogACT run directory or .pt, or our format); None = random init
            with identity action statistics (key ``identity``).
        device: ``cpu`` (fp32) or ``cuda[:N]`` (bf16); explicit, never guessed.
        unnorm_key: dataset key of ``dataset_statistics.json``; None when it holds exactly one.
        seed: seeds random init and the diffusion noise; None = nondeterministic noise.
        config: runtime settings; default ``config/policy.yaml``.
        pruning_config: token selection settings (``config/pruning.yaml`` via the node); default the dataclass
            defaults.
        tokenizer_dir: local Llama-2 tokenizer directory for ``llama`` presets with real weights; default: the
            checkpoint directory.
        dtype: weight precision; default :func:`dtype_for` the device (``torch.bfloat16`` on CPU runs the GPU's
            bf16 path, for measuring its error).

    Raises:
        ValueError: unknown preset/device/unnorm_key (with the available keys); CheckpointError (a ValueError)
            for a checkpoint that does not match; FileNotFoundError for missing files.
    """
    spec = preset if isinstance(preset, PolicyPreset) else get_preset(preset)
    dev = resolve_device(device)
    cfg = config if config is not None else load_policy_config()
    model = build_model(spec, dev, seed, dtype)
    if checkpoint is None:
        stats = {IDENTITY_STATS_KEY: {"action": _stats_dict(identity_statistics(spec.action_dim))}}
        tokenizer: PromptTokenizer = WordHashTokenizer(spec.llm.vocab_size)
    else:
        stats_path = load_weights(model, checkpoint)
        stats = load_dataset_statistics(stats_path)
        if spec.tokenizer == "word-hash":
            tokenizer = WordHashTokenizer(spec.llm.vocab_size)
        else:
            ckpt = Path(checkpoint)
            tokenizer = LlamaPromptTokenizer(tokenizer_dir or (ckpt if ckpt.is_dir() else ckpt.parents[1]))
    statistics = select_statistics(stats, unnorm_key)
    if statistics.q01.shape[0] != spec.action_dim:
        raise ValueError(f"statistics {statistics.key!r} have {statistics.q01.shape[0]} dims, model {spec.action_dim}")
    return CogACTPolicy(model, cfg, tokenizer, statistics, dev, seed, pruning_config)


def _stats_dict(stats: ActionStatistics) -> dict:
    return {"q01": stats.q01.tolist(), "q99": stats.q99.tolist(), "mask": stats.mask.tolist()}
