"""Image message fields <-> RGB arrays: channel order, padded rows, alpha, compressed, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from spvla_ros.core.image_convert import compressed_to_rgb, image_to_rgb, rgb_to_compressed, rgb_to_image_fields

RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_round_trip(encoding):
    h, w, enc, step, data = rgb_to_image_fields(RGB, encoding)
    assert (h, w, enc, step) == (4, 5, encoding, 15)
    np.testing.assert_array_equal(image_to_rgb(h, w, enc, step, data), RGB)


def test_bgr_bytes_are_reversed():
    _, _, _, _, data = rgb_to_image_fields(RGB, "bgr8")
    assert tuple(np.frombuffer(data, np.uint8)[:3]) == tuple(RGB[0, 0, ::-1])


def test_padded_rows_and_alpha():
    bgra = np.concatenate([RGB[..., ::-1], np.full((4, 5, 1), 255, np.uint8)], axis=2)
    padded = np.zeros((4, 24), np.uint8)
    padded[:, :20] = bgra.reshape(4, 20)
    np.testing.assert_array_equal(image_to_rgb(4, 5, "bgra8", 24, padded.tobytes()), RGB)


def test_png_round_trip_is_exact():
    fmt, data = rgb_to_compressed(RGB, "png")
    assert "png" in fmt
    np.testing.assert_array_equal(compressed_to_rgb(fmt, data), RGB)


@pytest.mark.parametrize(
    ("args", "match"),
    [((4, 5, "mono8", 5, bytes(20)), "unsupported"), ((4, 5, "rgb8", 15, bytes(59)), "expected"),
     ((4, 5, "rgb8", 10, bytes(60)), "step"), ((0, 5, "rgb8", 15, b""), "positive")],
)
def test_bad_raw_images_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        image_to_rgb(*args)


def test_bad_compressed_is_refused():
    with pytest.raises(ValueError):
        compressed_to_rgb("jpeg", b"not a jpeg")
    with pytest.raises(ValueError):
        compressed_to_rgb("jpeg", b"")


def test_wrong_array_is_refused():
    with pytest.raises(ValueError):
        rgb_to_image_fields(RGB.astype(np.float32))
