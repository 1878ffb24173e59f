"""Locked colours (``fixed_colors=``): kept bit for bit, pinned in the fit."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_kmeans_quantize import apply_palette, quantize


@pytest.fixture
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()[::4, ::4]


def _rows(palette: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.ascontiguousarray(palette)}


def test_locked_colours_are_in_the_palette_bit_for_bit(photo):
    # Pure green is nowhere in the photo: it stays although no pixel takes it.
    fixed = np.array([[255, 255, 255], [0, 0, 0], [0, 255, 0]], dtype=np.uint8)
    result = quantize(photo, 16, fixed_colors=fixed)
    assert _rows(fixed) <= _rows(result.palette)
    assert len(result.palette) <= 16
    green = np.flatnonzero((result.palette == [0, 255, 0]).all(axis=1))
    assert result.counts[green].tolist() == [0]
    np.testing.assert_array_equal(result.palette[result.labels], result.image)


def test_float_locked_colours_survive_the_perceptual_space(photo):
    image = photo.astype(np.float32) / 255
    fixed = np.array([[0.1, 0.2, 0.3], [0.9, 0.05, 0.5]], dtype=np.float32)
    result = quantize(image, 8, fixed_colors=fixed, color_space="oklab")
    assert _rows(fixed) <= _rows(result.palette)


def test_free_centres_are_a_weighted_lloyd_fixed_point(photo):
    image = photo.astype(np.float64)
    weights = np.ones(photo.shape[:2])
    weights[20:60, 30:90] = 5.0
    fixed = np.array([[255.0, 255.0, 255.0], [0.0, 0.0, 0.0]])
    result = quantize(image, 10, fixed_colors=fixed, weights=weights, tol=0)
    assert result.converged
    pixels = image.reshape(-1, 3)
    labels = result.labels.ravel()
    w = weights.ravel()
    locked = _rows(fixed)
    n_free = 0
    for entry, colour in enumerate(result.palette):
        if colour.tobytes() in locked:
            continue
        n_free += 1
        mine = labels == entry
        mean = (pixels[mine] * w[mine, None]).sum(axis=0) / w[mine].sum()
        np.testing.assert_allclose(colour, mean, rtol=1e-9, atol=1e-9)
    assert n_free == 8
    # ... and every pixel is on its nearest entry, locked or free.
    d = ((pixels[:, None, :] - result.palette[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(d[np.arange(len(d)), labels], d.min(axis=1))


def test_locking_a_whole_palette_is_apply_palette(photo):
    palette = quantize(photo, 12, max_iter=3).palette[::-1].copy()
    locked = quantize(photo, 12, fixed_colors=palette)
    applied = apply_palette(photo, palette)
    np.testing.assert_array_equal(locked.image, applied.image)
    assert _rows(locked.palette) == _rows(palette)
    assert locked.n_iter == 0


def test_dask_gives_the_in_memory_palette(photo):
    fixed = np.array([[250, 250, 250], [10, 10, 10]], dtype=np.uint8)
    mem = quantize(photo, 8, fixed_colors=fixed)
    lazy = quantize(da.from_array(photo, chunks=(64, 64, 3)), 8, fixed_colors=fixed)
    np.testing.assert_array_equal(mem.palette, lazy.palette)
    np.testing.assert_array_equal(mem.labels, np.asarray(lazy.labels))


def test_fewer_colours_than_free_entries_are_kept_exactly():
    image = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]], dtype=np.uint8)
    result = quantize(image, 5, fixed_colors=[[0, 0, 0]])
    assert _rows(result.palette) == _rows(
        np.array([[0, 0, 0], [1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.uint8)
    )


def test_input_is_not_modified(photo, data_hash):
    fixed = np.array([[255, 255, 255]], dtype=np.uint8)
    before = data_hash(fixed), data_hash(photo)
    quantize(photo, 4, fixed_colors=fixed)
    assert (data_hash(fixed), data_hash(photo)) == before


@pytest.mark.parametrize(
    ("fixed", "n_colors", "error", "match"),
    [
        ([[0, 0, 0], [0, 0, 0]], 4, ValueError, "duplicate"),
        ([[0, 0, 0]] * 1 + [[1, 1, 1], [2, 2, 2]], 2, ValueError, "at most n_colors"),
        ([[0, 0]], 4, ValueError, "shape"),
        ([0, 0, 0], 4, ValueError, "shape"),
        ([[300, 0, 0]], 4, ValueError, "whole numbers in 0..255"),
        ([[0.5, 0, 0]], 4, ValueError, "whole numbers"),
        ([[np.nan, 0, 0]], 4, ValueError, "NaN"),
        ([["a", "b", "c"]], 4, TypeError, "numeric"),
    ],
)
def test_bad_fixed_colours_are_refused(photo, fixed, n_colors, error, match):
    with pytest.raises(error, match=match) as info:
        quantize(photo, n_colors, fixed_colors=fixed)
    assert "fixed_colors" in str(info.value)
