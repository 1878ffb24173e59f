"""Hex colours and weight maps from outside Python (_palette_control)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kmeans_quantize._palette_control import (
    colors_for_image,
    parse_hex_colors,
    weight_map,
)


def test_hex_colours_parse_with_and_without_hash():
    got = parse_hex_colors("#ffffff, 000000,#12ab34")
    np.testing.assert_array_equal(got, [[255, 255, 255], [0, 0, 0], [0x12, 0xAB, 0x34]])
    assert parse_hex_colors("#11223344").tolist() == [[0x11, 0x22, 0x33, 0x44]]


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "empty"), ("#fff", "not a hex"), ("#ffffff,#ffffff00", "mixes")],
)
def test_bad_hex_colours(text, match):
    with pytest.raises(ValueError, match=match):
        parse_hex_colors(text)


def test_colours_follow_the_image_dtype_and_channels():
    c = parse_hex_colors("#ff8000")
    assert colors_for_image(c, np.uint16, 3).tolist() == [[65535, 32896, 0]]
    assert colors_for_image(c, np.float32, 3).tolist() == [
        [1.0, np.float32(128 / 255), 0.0]
    ]
    assert colors_for_image(c, np.uint8, 4).tolist() == [[255, 128, 0, 255]]
    grey = parse_hex_colors("#808080")
    assert colors_for_image(grey, np.uint8, 1).tolist() == [[128]]
    with pytest.raises(ValueError, match="greys"):
        colors_for_image(c, np.uint8, 1)
    with pytest.raises(ValueError, match="8- or 16-bit"):
        colors_for_image(c, np.int32, 3)


def test_weight_map_is_grey_or_the_colour_mean():
    grey = np.array([[0, 255]], dtype=np.uint8)
    assert weight_map(grey, None).tolist() == [[0.0, 255.0]]
    rgba = np.array([[[30, 60, 90, 0]]], dtype=np.uint8)
    assert weight_map(rgba, -1).tolist() == [[60.0]]
