"""Spatial (Canny) patches: a known rectangle lands exactly on the patches its border crosses; bad images."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spvla_ros.core.pruning import canny_patch_mask, validate_rgb_image

SIZE, PATCH = 224, 14
GRID = SIZE // PATCH


def rectangle_image(top, left, bottom, right, value=(255, 255, 255)):
    """Black 224x224 RGB with a filled rectangle on rows top..bottom-1 and columns left..right-1."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[top:bottom, left:right] = value
    return image


def border_patches(top, left, bottom, right):
    """Patches the rectangle's outline crosses, from geometry alone: its 4 sides as pixel segments."""
    expected = np.zeros((GRID, GRID), bool)
    for row in (top, bottom - 1):  # horizontal sides span columns left..right-1
        expected[row // PATCH, left // PATCH : (right - 1) // PATCH + 1] = True
    for col in (left, right - 1):  # vertical sides span rows top..bottom-1
        expected[top // PATCH : (bottom - 1) // PATCH + 1, col // PATCH] = True
    return expected


def test_known_rectangle_hits_exactly_its_border_patches():
    # sides at pixel 37 (patch 2, offset 9), 121 (patch 8, offset 9), 51 (patch 3), 180 (patch 12)
    top, left, bottom, right = 37, 51, 121, 181
    mask = canny_patch_mask(rectangle_image(top, left, bottom, right))
    expected = border_patches(top, left, bottom, right)
    assert mask.shape == (GRID, GRID) and mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)
    # interior patches (uniform white) and the outside (uniform black) are not spatial
    assert not mask[4:7, 5:11].any()
    assert mask.sum() == 2 * (12 - 3 + 1) + 2 * (8 - 2 + 1) - 4


# Canny marks the pixel on one side or the other of a step, so a side must not sit on a patch's first
# or last pixel row/column (offsets 1..12 of 0..13) for its patch to be unambiguous. With
# min_edge_pixels=1 every patch a side touches counts; with the default (4) the side must run at least a few
# pixels into the patch, so the offsets stay nearer the middle (4..9).
@settings(max_examples=40, deadline=None)
@given(
    r0=st.integers(0, 12),
    c0=st.integers(0, 12),
    h=st.integers(1, 3),
    w=st.integers(1, 3),
    offsets=st.sampled_from([(1, 12, 1), (4, 9, 4)]).flatmap(
        lambda spec: st.tuples(*[st.integers(spec[0], spec[1])] * 4, st.just(spec[2]))
    ),
    grey=st.integers(60, 255),
)
def test_random_rectangles_hit_exactly_their_border_patches(r0, c0, h, w, offsets, grey):
    oy, ox, oy1, ox1, min_edge_pixels = offsets
    top, left = r0 * PATCH + oy, c0 * PATCH + ox
    bottom, right = (r0 + h) * PATCH + oy1, (c0 + w) * PATCH + ox1
    image = rectangle_image(top, left, bottom, right, value=(grey, grey, grey))
    mask = canny_patch_mask(image, min_edge_pixels=min_edge_pixels)
    np.testing.assert_array_equal(mask, border_patches(top, left, bottom, right))


def test_blank_image_has_no_spatial_patch_and_min_edge_pixels_counts():
    assert not canny_patch_mask(np.full((SIZE, SIZE, 3), 128, np.uint8)).any()
    # a 6x6 blob inside one patch (about 20 edge pixels): kept at 1, dropped at 100
    image = rectangle_image(100, 100, 106, 106)
    assert canny_patch_mask(image, min_edge_pixels=1)[100 // PATCH, 100 // PATCH]
    assert not canny_patch_mask(image, min_edge_pixels=100).any()


def test_thresholds_matter():
    image = rectangle_image(37, 51, 121, 181, value=(40, 40, 40))  # weak step
    assert canny_patch_mask(image, low=10, high=20).any()
    assert not canny_patch_mask(image, low=1000, high=2000).any()


def test_non_square_grid_follows_image():
    assert canny_patch_mask(np.zeros((28, 42, 3), np.uint8)).shape == (2, 3)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((224, 224, 3), np.float32), "uint8"),
        (np.zeros((3, 224, 224), np.uint8), "channel-first"),
        (np.zeros((224, 224, 4), np.uint8), "3 channels"),
        (np.zeros((224, 224), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((225, 224, 3), np.uint8), "multiple of the patch"),
        (np.zeros((0, 224, 3), np.uint8), "multiple of the patch"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_images_are_rejected_clearly(image, message):
    with pytest.raises(ValueError, match=message):
        canny_patch_mask(image)


def test_validate_returns_grid():
    assert validate_rgb_image(np.zeros((224, 224, 3), np.uint8)) == (16, 16)
    with pytest.raises(ValueError, match="min_edge_pixels"):
        canny_patch_mask(np.zeros((224, 224, 3), np.uint8), min_edge_pixels=0)
