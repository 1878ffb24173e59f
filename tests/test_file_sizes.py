"""file_sizes: the real bytes of every exact format that holds a result, smallest first."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize.palette_io import (
    FileSizes,
    file_sizes,
    to_animated_gif_bytes,
    to_apng_bytes,
    to_png_bytes,
    to_tiff_bytes,
    to_webp_bytes,
)


def _quantized(image, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return quantize(image, k)


def test_two_d_result_png_and_webp_with_real_bytes(photo):
    result = _quantized(photo(48, 64), 32)
    sizes = file_sizes(result.labels, result.palette)
    assert isinstance(sizes, FileSizes)
    assert sizes.sizes == {
        "png": len(to_png_bytes(result.labels, result.palette)),
        "webp": len(to_webp_bytes(result.labels, result.palette)),
    }
    assert sizes.smallest_bytes == min(sizes.sizes.values())
    assert sizes.sizes[sizes.smallest] == sizes.smallest_bytes
    assert list(sizes.sizes.values()) == sorted(sizes.sizes.values())
    assert sizes.refused == {}
    assert sizes.as_dict()["smallest"] == sizes.smallest


def test_stack_apng_gif_and_tiff(photo):
    frames = np.stack([photo(seed=s) for s in range(3)])
    result = _quantized(frames, 16)
    sizes = file_sizes(result.labels, result.palette)
    assert sizes.sizes["apng"] == len(to_apng_bytes(result.labels, result.palette))
    assert sizes.sizes["gif"] == len(
        to_animated_gif_bytes(result.labels, result.palette)
    )
    assert sizes.sizes["tiff"] == len(to_tiff_bytes(result.labels, result.palette))
    assert set(sizes.sizes) == {"apng", "gif", "tiff"}


def test_formats_that_cannot_hold_the_result_are_refused_with_the_reason():
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (6, 4)).astype(np.uint8)
    palette[:, 3] = 255
    palette[2, 3] = 128  # partial alpha: no GIF, no TIFF
    labels = rng.integers(0, 6, (3, 8, 8)).astype(np.uint8)
    sizes = file_sizes(labels, palette)
    assert set(sizes.sizes) == {"apng"}
    assert "binary transparency" in sizes.refused["gif"]
    assert "alpha" in sizes.refused["tiff"]
    # More than three axes: only the multi-page TIFF holds it.
    sizes = file_sizes(labels.reshape(3, 1, 8, 8).repeat(2, axis=1), palette[:, :3])
    assert set(sizes.sizes) == {"tiff"}
    # More than 256 colours in 2-D: WebP only.
    many = rng.integers(0, 256, (300, 3)).astype(np.uint8)
    sizes = file_sizes(rng.integers(0, 300, (20, 20)).astype(np.uint16), many)
    assert sizes.smallest == "webp" and "256" in sizes.refused["png"]


def test_a_uint16_palette_has_no_exact_8_bit_file(photo):
    result = _quantized(photo(48, 64).astype(np.uint16) * 257, 8)
    sizes = file_sizes(result.labels, result.palette)
    assert sizes.sizes == {} and sizes.smallest is None and sizes.smallest_bytes is None
    assert "rounded" in sizes.refused["png"]
    stack = file_sizes(np.stack([result.labels] * 2), result.palette)
    assert set(stack.sizes) == {"tiff"}


@pytest.mark.parametrize(
    ("labels", "palette", "error"),
    [
        (np.zeros((0, 4), np.uint8), np.zeros((2, 3), np.uint8), ValueError),
        (np.full((4, 4), 9, np.uint8), np.zeros((2, 3), np.uint8), ValueError),
        (np.zeros((4, 4)), np.zeros((2, 3), np.uint8), TypeError),
        (np.zeros(4, np.uint8), np.zeros((2, 3), np.uint8), ValueError),
    ],
)
def test_bad_input_is_an_error_not_a_refusal(labels, palette, error):
    with pytest.raises(error):
        file_sizes(labels, palette)


def test_webp_effort_is_passed_on(photo):
    result = _quantized(photo(48, 64), 16)
    fast = file_sizes(result.labels, result.palette, webp_method=0)
    assert fast.sizes["webp"] == len(
        to_webp_bytes(result.labels, result.palette, method=0)
    )
    with pytest.raises(ValueError, match=r"0\.\.6"):
        file_sizes(result.labels, result.palette, webp_method=9)


def test_max_effort_is_the_writers_slowest_settings(photo):
    result = _quantized(photo(48, 64), 16)
    lab, pal = result.labels, result.palette
    best = file_sizes(lab, pal, effort="max")
    assert best.sizes == {
        "png": len(to_png_bytes(lab, pal, optimize="max")),
        "webp": len(to_webp_bytes(lab, pal, method=6)),
    }
    default = file_sizes(lab, pal)
    assert best.sizes["png"] <= default.sizes["png"]
    assert best.smallest_bytes <= default.smallest_bytes
    frames = _quantized(np.stack([photo(seed=s) for s in range(2)]), 8)
    stack = file_sizes(frames.labels, frames.palette, effort="max")
    assert stack.sizes["apng"] == len(
        to_apng_bytes(frames.labels, frames.palette, optimize="max")
    )
    with pytest.raises(ValueError, match="effort must be 'default' or 'max'"):
        file_sizes(lab, pal, effort="slow")
