"""Camera image <-> numpy conversion for the policy node and the bag tools (numpy only; cv2 for JPEG/PNG).

The policy consumes (H, W, 3) uint8 RGB. ROS images arrive as raw ``sensor_msgs/Image`` fields (encoding,
row stride ``step``, bytes) or as ``sensor_msgs/CompressedImage`` (``format`` + JPEG/PNG bytes). These
functions take the message *fields*, not the messages, so this module stays free of rclpy.
"""

from __future__ import annotations

import numpy as np

RAW_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")
"""Raw encodings accepted: 8-bit colour, with or without alpha (alpha is dropped)."""
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4}
BGR_ORDER = ("bgr8", "bgra8")


def image_to_rgb(height: int, width: int, encoding: str, step: int, data: bytes | bytearray | memoryview) -> np.ndarray:
    """Raw image fields -> (height, width, 3) uint8 RGB (a new array; the message buffer is not kept).

    Args:
        height, width: pixels (> 0).
        encoding: one of :data:`RAW_ENCODINGS` (``sensor_msgs/image_encodings`` names).
        step: bytes per row, >= width * channels (rows may be padded).
        data: at least height * step bytes.

    Raises:
        ValueError: an unsupported encoding (e.g. ``mono8``, ``16UC1``), empty size, or a buffer that does
            not match the declared size.
    """
    if encoding not in CHANNELS:
        raise ValueError(f"unsupported image encoding {encoding!r}; expected one of {RAW_ENCODINGS}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    channels = CHANNELS[encoding]
    if step < width * channels:
        raise ValueError(f"row step {step} B is smaller than width*channels = {width * channels} B ({encoding})")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < height * step:
        raise ValueError(f"image data has {buf.size} B, expected height*step = {height * step} B")
    rows = buf[: height * step].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    rgb = rows[..., :3]
    if encoding in BGR_ORDER:
        rgb = rgb[..., ::-1]
    return np.ascontiguousarray(rgb)


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[int, int, str, int, bytes]:
    """(H, W, 3) uint8 RGB -> ``(height, width, encoding, step, data)`` for a ``sensor_msgs/Image``.

    Args:
        rgb: (H, W, 3) uint8, RGB channel order.
        encoding: ``rgb8`` or ``bgr8`` (the bytes are reordered for ``bgr8``).
    """
    rgb = check_rgb(rgb)
    if encoding == "rgb8":
        out = rgb
    elif encoding == "bgr8":
        out = rgb[..., ::-1]
    else:
        raise ValueError(f"can only write rgb8 or bgr8, got {encoding!r}")
    height, width = rgb.shape[:2]
    return height, width, encoding, width * 3, np.ascontiguousarray(out).tobytes()


def compressed_to_rgb(fmt: str, data: bytes | bytearray | memoryview) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` fields (format string such as ``jpeg`` or ``rgb8; png compressed``,
    JPEG/PNG bytes) -> (H, W, 3) uint8 RGB.

    Raises:
        ValueError: empty or undecodable data, or a non-colour result.
    """
    import cv2  # only this path needs OpenCV

    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ValueError(f"compressed image ({fmt!r}) has no data")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"could not decode compressed image of format {fmt!r} ({buf.size} B)")
    return np.ascontiguousarray(bgr[..., ::-1])


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg") -> tuple[str, bytes]:
    """(H, W, 3) uint8 RGB -> ``(format, data)`` for a ``sensor_msgs/CompressedImage`` (``jpeg`` or ``png``)."""
    import cv2

    rgb = check_rgb(rgb)
    ext = {"jpeg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ValueError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")
    ok, enc = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return f"rgb8; {fmt} compressed bgr8", enc.tobytes()


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Return ``rgb`` if it is an (H, W, 3) uint8 array with H, W > 0; raise ValueError otherwise."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    return rgb
