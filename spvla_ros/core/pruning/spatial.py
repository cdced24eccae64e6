"""Spatial tokens: Canny edges of the encoder's input image, counted per vision-encoder patch."""

from __future__ import annotations

import cv2
import numpy as np

from spvla_ros.core.pruning.config import PruningConfig

RGB_CHANNELS = 3
DEFAULT_MIN_EDGE_PIXELS = PruningConfig.min_edge_pixels
DEFAULT_PATCH_SIZE = PruningConfig.patch_size
DEFAULT_CANNY_LOW = PruningConfig.canny_low
DEFAULT_CANNY_HIGH = PruningConfig.canny_high


def validate_rgb_image(image: np.ndarray, patch: int = DEFAULT_PATCH_SIZE) -> tuple[int, int]:
    """Check that ``image`` is an (H, W, 3) uint8 RGB array tiled exactly by ``patch`` x ``patch`` patches.

    Returns:
        (rows, cols) of the patch grid, e.g. (16, 16) for 224x224 with patch 14.

    Raises:
        ValueError: not a numpy array, wrong dtype, channel-first layout, wrong channel count, or a size that
            is not a multiple of the patch (the image must be the very one the encoder sees, already resized).
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    if image.ndim != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.shape[2] != RGB_CHANNELS:
        hint = " (looks channel-first; pass HWC)" if image.shape[0] == RGB_CHANNELS else ""
        raise ValueError(f"image must have 3 channels last (H, W, 3) RGB, got shape {image.shape}{hint}")
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch must be an int >= 1, got {patch!r}")
    height, width = image.shape[:2]
    if height % patch or width % patch or height == 0 or width == 0:
        raise ValueError(
            f"image size {height}x{width} is not a multiple of the patch size {patch}; "
            "pass the resized image the encoder sees (e.g. 224x224)"
        )
    return height // patch, width // patch


def canny_edges(
    image: np.ndarray, low: float = DEFAULT_CANNY_LOW, high: float = DEFAULT_CANNY_HIGH
) -> np.ndarray:
    """Canny edge map of an (H, W, 3) uint8 RGB image: (H, W) bool, True on edge pixels.

    The image is converted to grey with the RGB weights (ITU-R BT.601) and run through ``cv2.Canny`` with
    a 3x3 Sobel aperture and the L1 gradient norm; ``low``/``high`` are its hysteresis thresholds.
    """
    validate_rgb_image(image, patch=1)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high < low:
        raise ValueError(f"need 0 <= low <= high (finite), got low={low}, high={high}")
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return cv2.Canny(grey, float(low), float(high)) > 0


def edge_pixels_per_patch(edges: np.ndarray, patch: int = DEFAULT_PATCH_SIZE) -> np.ndarray:
    """Count edge pixels per patch: (H, W) bool -> (H/patch, W/patch) int, patches in row-major grid order."""
    height, width = edges.shape
    rows, cols = height // patch, width // patch
    if rows * patch != height or cols * patch != width:
        raise ValueError(f"edge map {height}x{width} is not a multiple of the patch size {patch}")
    return edges.reshape(rows, patch, cols, patch).sum(axis=(1, 3), dtype=np.int64)


def canny_patch_mask(
    image: np.ndarray,
    patch: int = DEFAULT_PATCH_SIZE,
    low: float = DEFAULT_CANNY_LOW,
    high: float = DEFAULT_CANNY_HIGH,
    min_edge_pixels: int = DEFAULT_MIN_EDGE_PIXELS,
) -> np.ndarray:
    """Spatial patches: those holding at least ``min_edge_pixels`` Canny edge pixels.

    Args:
        image: (H, W, 3) uint8 RGB, the very image the vision encoder sees (224x224 in CogACT).
        patch: patch side in pixels (14 for DINOv2/SigLIP ViT-*/14).
        low, high: Canny hysteresis thresholds, grey levels.
        min_edge_pixels: edge pixels a patch needs to count as spatial (>= 1).

    Returns:
        (H/patch, W/patch) bool grid, row-major like the encoder's patch tokens; ``.ravel()`` gives the (P,)
        mask that :func:`select_tokens` takes.
    """
    validate_rgb_image(image, patch)
    if isinstance(min_edge_pixels, bool) or not isinstance(min_edge_pixels, int) or min_edge_pixels < 1:
        raise ValueError(f"min_edge_pixels must be an int >= 1, got {min_edge_pixels!r}")
    return edge_pixels_per_patch(canny_edges(image, low, high), patch) >= min_edge_pixels
