"""Tests for the exact colour histogram."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from napari_kmeans_quantize import histogram
from napari_kmeans_quantize._engine.keys import bitmap_unique
from napari_kmeans_quantize.histogram import color_histogram


def _check(pixels: np.ndarray) -> None:
    hist = color_histogram(pixels)
    expected, counts = np.unique(pixels, axis=0, return_counts=True)
    np.testing.assert_array_equal(hist.colors[hist.inverse], pixels)
    assert hist.colors.dtype == pixels.dtype
    assert hist.counts.sum() == len(pixels)
    assert hist.n_colors == len(expected)
    # Same set of colours and the same count for each.
    got = dict(zip(map(tuple, hist.colors.tolist()), hist.counts.tolist(), strict=True))
    want = dict(zip(map(tuple, expected.tolist()), counts.tolist(), strict=True))
    assert got == want


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64]
)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_exact_for_every_dtype_and_channel_count(dtype, channels):
    rng = np.random.default_rng(channels)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    lo, hi = (info.min, info.max) if info else (-2.0, 2.0)
    # Few levels, so colours repeat.
    levels = np.linspace(lo, hi, 5).astype(dtype)
    pixels = levels[rng.integers(0, 5, (500, channels))]
    _check(pixels)


@pytest.mark.parametrize("with_inverse", [True, False])
def test_bitmap_unique_equals_np_unique(with_inverse):
    rng = np.random.default_rng(1)
    # Keys on both sides of 64-bit word boundaries and at both ends of the space.
    edges = np.array([0, 62, 63, 64, 65, 127, 128, (1 << 24) - 1], dtype=np.uint32)
    keys = np.concatenate([edges, rng.integers(0, 1 << 24, 20_000, dtype=np.uint32)])
    keys = np.concatenate([keys, keys[::7]])
    distinct, inverse, counts = bitmap_unique(keys, 1 << 24, with_inverse)
    want, want_inverse, want_counts = np.unique(
        keys, return_inverse=True, return_counts=True
    )
    np.testing.assert_array_equal(distinct, want)
    np.testing.assert_array_equal(counts, want_counts)
    if with_inverse:
        np.testing.assert_array_equal(inverse, want_inverse)
    else:
        assert len(inverse) == 0


def test_dense_path_on_a_photo(monkeypatch):
    pixels = data.astronaut().reshape(-1, 3)
    monkeypatch.setattr(histogram, "_DENSE_MIN_PIXELS", 1)
    _check(pixels)


def test_negative_zero_is_zero():
    pixels = np.array([[0.0, 1.0], [-0.0, 1.0]])
    assert color_histogram(pixels).n_colors == 1


def test_bad_shape():
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        color_histogram(np.zeros(5))


@pytest.fixture(params=[False, True], ids=["sorted", "dense"])
def coffee(request, monkeypatch):
    """coffee's pixels and histogram, through both histogram paths."""
    if request.param:
        monkeypatch.setattr(histogram, "_DENSE_MIN_PIXELS", 1)
    pixels = data.coffee().reshape(-1, 3)
    return pixels, color_histogram(pixels)


def test_expand_maps_colour_values_to_pixels(coffee):
    pixels, hist = coffee
    values = (np.arange(hist.n_colors) % 251).astype(np.uint8)
    np.testing.assert_array_equal(hist.expand(values), values[hist.inverse])
    # Rows of values too: the colours themselves give back the pixels.
    np.testing.assert_array_equal(hist.expand(hist.colors), pixels)


def test_expand_needs_one_value_per_colour():
    hist = color_histogram(np.array([[0, 0, 0], [1, 1, 1]], dtype=np.uint8))
    with pytest.raises(ValueError, match="one row per distinct colour"):
        hist.expand(np.zeros(3))


def test_expand_pair_gives_labels_and_their_rows(coffee):
    _, hist = coffee
    values = (np.arange(hist.n_colors) % 7).astype(np.uint8)
    palette = np.arange(21, dtype=np.uint16).reshape(7, 3) * 1000
    labels, rows = hist.expand_pair(values, palette)
    np.testing.assert_array_equal(labels, values[hist.inverse])
    np.testing.assert_array_equal(rows, palette[values[hist.inverse]])
    assert labels.dtype == np.uint8 and rows.dtype == np.uint16


def test_expand_pair_rejects_bad_values():
    hist = color_histogram(np.array([[0, 0, 0], [1, 1, 1]], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        hist.expand_pair(np.zeros(3, dtype=np.intp), np.zeros((1, 3)))
    with pytest.raises(IndexError, match=r"\[0, 1\)"):
        hist.expand_pair(np.array([0, 1]), np.zeros((1, 3)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_dense_path_reads_the_keys_off_the_pixels(monkeypatch, dtype):
    # Grey keys of every small dtype (signed ones offset to sort like values),
    # counted and looked up with no key array.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    pixels = rng.integers(info.min, info.max, (5000, 1), endpoint=True).astype(dtype)
    monkeypatch.setattr(histogram, "_DENSE_MIN_PIXELS", 1)
    hist = color_histogram(pixels)
    colors, inverse, counts = np.unique(
        pixels, axis=0, return_inverse=True, return_counts=True
    )
    np.testing.assert_array_equal(hist.colors, colors)
    np.testing.assert_array_equal(hist.counts, counts)
    np.testing.assert_array_equal(hist.inverse, inverse.ravel())
    halves = (np.arange(hist.n_colors) / 2).astype(np.float16)
    np.testing.assert_array_equal(hist.expand(halves), halves[inverse.ravel()])


def test_colour_entries_of_per_pixel_labels(coffee):
    _, hist = coffee
    values = (np.arange(hist.n_colors) % 5).astype(np.uint8)
    entries, consistent = hist.colour_entries(values[hist.inverse])
    assert consistent
    np.testing.assert_array_equal(entries, values)
    # One pixel of a colour with another label than the colour's first pixel.
    labels = values[hist.inverse].copy()
    first, second = np.flatnonzero(hist.inverse == hist.inverse[0])[:2]
    labels[second] = labels[first] + 1
    assert not hist.colour_entries(labels)[1]
