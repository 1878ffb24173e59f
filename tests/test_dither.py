"""Tests for the error-diffusion module against a plain per-pixel reference."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from napari_kmeans_quantize.dither import error_diffusion


def _reference(plane: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Textbook serpentine Floyd-Steinberg with a brute-force nearest search."""
    work = plane.astype(np.float64).copy()
    lo, hi = palette.min(axis=0), palette.max(axis=0)
    h, w, _ = work.shape
    labels = np.zeros((h, w), dtype=np.intp)
    for y in range(h):
        forward = y % 2 == 0
        step = 1 if forward else -1
        for x in range(w) if forward else range(w - 1, -1, -1):
            value = np.clip(work[y, x], lo, hi)
            d = ((palette - value) ** 2).sum(axis=1)
            j = int(np.argmin(d))  # ties: lowest index
            labels[y, x] = j
            err = value - palette[j]
            for dy, dx, wgt in ((0, 1, 7), (1, -1, 3), (1, 0, 5), (1, 1, 1)):
                yy, xx = y + dy, x + step * dx
                if yy < h and 0 <= xx < w:
                    work[yy, xx] += err * wgt / 16
    return labels


@pytest.mark.parametrize("channels,k", [(3, 2), (3, 7), (3, 40), (1, 5), (4, 9)])
def test_matches_the_textbook_algorithm(channels, k):
    rng = np.random.default_rng(channels * 100 + k)
    image = rng.uniform(0, 1, (13, 17, channels))
    palette = rng.uniform(0, 1, (k, channels))
    np.testing.assert_array_equal(
        error_diffusion(image, palette), _reference(image, palette)
    )


def test_photo_crop_matches_the_textbook_algorithm():
    # Real colour statistics (smooth areas and edges), many palette entries.
    crop = data.astronaut()[100:124, 180:220].astype(np.float64) / 255
    rng = np.random.default_rng(3)
    palette = crop.reshape(-1, 3)[rng.choice(crop.shape[0] * crop.shape[1], 64)]
    np.testing.assert_array_equal(
        error_diffusion(crop, palette), _reference(crop, palette)
    )


def test_flat_grey_keeps_its_mean_on_a_two_colour_palette():
    grey = np.full((32, 32, 1), 0.25)
    labels = error_diffusion(grey, np.array([[0.0], [1.0]]))
    # A quarter of the pixels white: the local average is preserved.
    assert abs(labels.mean() - 0.25) < 0.01


def test_leading_axes_are_independent_planes():
    rng = np.random.default_rng(0)
    stack = rng.uniform(0, 1, (3, 9, 11, 3))
    palette = rng.uniform(0, 1, (6, 3))
    labels = error_diffusion(stack, palette)
    assert labels.shape == (3, 9, 11)
    for plane, got in zip(stack, labels, strict=True):
        np.testing.assert_array_equal(got, _reference(plane, palette))


def test_duplicate_palette_entries_map_to_the_first():
    palette = np.array([[0.0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 1]])
    image = np.random.default_rng(1).uniform(0, 1, (8, 8, 3))
    labels = error_diffusion(image, palette)
    assert set(np.unique(labels)) <= {0, 1}


def test_input_is_not_modified():
    image = np.random.default_rng(2).uniform(0, 1, (10, 10, 3))
    palette = np.eye(3)
    before = image.copy()
    error_diffusion(image, palette)
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize(
    "image,palette,match",
    [
        (np.zeros((4, 3)), np.zeros((2, 3)), "two spatial"),
        (np.zeros((4, 4, 3)), np.zeros((0, 3)), "k >= 1"),
        (np.zeros((4, 4, 3)), np.zeros((2, 4)), "same colour space"),
        (np.full((4, 4, 3), np.nan), np.zeros((2, 3)), "NaN"),
        (np.zeros((4, 4, 3)), np.array([[0, 0, np.inf]]), "infinity"),
    ],
)
def test_bad_input_is_refused_with_a_reason(image, palette, match):
    with pytest.raises(ValueError, match=match):
        error_diffusion(image, palette)
