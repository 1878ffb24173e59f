"""Tests for the error-diffusion module against a plain per-pixel reference."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from napari_kmeans_quantize import dither
from napari_kmeans_quantize.dither import error_diffusion, error_diffusion_iter


def _reference(plane: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Serpentine Floyd-Steinberg with a brute-force nearest search, pixel by pixel.

    The floating-point steps are the ones the module promises (and the pure-Python
    implementation it replaced took): a value is ``(pixel + from_above) + 7/16 *
    left error``, clamped to the palette's box; distances sum the channels in
    order; the error a row sends below is ``(5/16 e[x] + 3/16 e[x + 1]) + 1/16
    e[x - 1]`` in scan order. So the labels must be equal, not merely close.
    """
    plane = plane.astype(np.float64)
    palette = palette.astype(np.float64)
    lo, hi = palette.min(axis=0), palette.max(axis=0)
    h, w, n_channels = plane.shape
    labels = np.zeros((h, w), dtype=np.intp)
    below = np.zeros((w, n_channels))
    for y in range(h):
        xs = range(w) if y % 2 == 0 else range(w - 1, -1, -1)
        errors = np.zeros((w, n_channels))  # in scan order
        carry = np.zeros(n_channels)
        for i, x in enumerate(xs):
            value = np.clip((plane[y, x] + below[x]) + carry, lo, hi)
            d = np.zeros(len(palette))
            for c in range(n_channels):
                d += (value[c] - palette[:, c]) ** 2
            j = int(np.argmin(d))  # ties: lowest index
            labels[y, x] = j
            errors[i] = value - palette[j]
            carry = 7 / 16 * errors[i]
        sent = 5 / 16 * errors
        sent[:-1] += 3 / 16 * errors[1:]
        sent[1:] += 1 / 16 * errors[:-1]
        below = sent if y % 2 == 0 else sent[::-1]
    return labels


def _drain(steps):
    fractions = []
    while True:
        try:
            fractions.append(next(steps))
        except StopIteration as done:
            return fractions, done.value


@pytest.mark.parametrize(
    "channels,k",
    [(3, 2), (3, 7), (3, 40), (3, 256), (1, 5), (1, 64), (2, 9), (4, 9), (16, 12)],
)
def test_matches_the_reference(channels, k):
    rng = np.random.default_rng(channels * 100 + k)
    image = rng.uniform(0, 1, (13, 17, channels))
    palette = rng.uniform(0, 1, (k, channels))
    np.testing.assert_array_equal(
        error_diffusion(image, palette), _reference(image, palette)
    )


@pytest.mark.parametrize("k", [16, 64, 256])
def test_photo_crop_matches_the_reference(k):
    # Real colour statistics (smooth areas and edges), many palette entries.
    crop = data.astronaut()[100:132, 180:228].astype(np.float64) / 255
    rng = np.random.default_rng(k)
    palette = crop.reshape(-1, 3)[rng.choice(crop.shape[0] * crop.shape[1], k)]
    np.testing.assert_array_equal(
        error_diffusion(crop, palette), _reference(crop, palette)
    )


@pytest.mark.parametrize("channels", [1, 3])
def test_exact_ties_go_to_the_lowest_index(channels):
    # Integer colours and palette: many diffused values sit exactly halfway
    # between two entries, or on a duplicated one.
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 9, (24, 24, channels))
    palette = rng.integers(0, 9, (12, channels)).astype(np.float64)
    palette[5] = palette[2]
    np.testing.assert_array_equal(
        error_diffusion(image, palette), _reference(image, palette)
    )


@pytest.mark.parametrize(
    "offset,size",
    [(0.0, 1e-9), (1e6, 1.0), (-50.0, 100.0), (3.0, 1e4)],
)
def test_any_scale_and_offset_of_the_palette_box(offset, size):
    rng = np.random.default_rng(4)
    palette = offset + size * rng.uniform(0, 1, (30, 3))
    palette[:, 1] = palette[0, 1]  # one channel where the palette does not vary
    image = offset + size * rng.uniform(-0.1, 1.1, (12, 15, 3))
    np.testing.assert_array_equal(
        error_diffusion(image, palette), _reference(image, palette)
    )


def test_flat_grey_keeps_its_mean_on_a_two_colour_palette():
    grey = np.full((32, 32, 1), 0.25)
    labels = error_diffusion(grey, np.array([[0.0], [1.0]]))
    # A quarter of the pixels white: the local average is preserved.
    assert abs(labels.mean() - 0.25) < 0.01


def test_leading_axes_are_independent_planes():
    rng = np.random.default_rng(0)
    stack = rng.uniform(0, 1, (2, 3, 9, 11, 3))
    palette = rng.uniform(0, 1, (6, 3))
    labels = error_diffusion(stack, palette)
    assert labels.shape == (2, 3, 9, 11)
    for plane, got in zip(
        stack.reshape(-1, 9, 11, 3), labels.reshape(-1, 9, 11), strict=True
    ):
        np.testing.assert_array_equal(got, _reference(plane, palette))


@pytest.mark.parametrize(
    "dtype", ["u1", "<u2", ">u2", "i2", "i8", "f2", "f4", ">f8", "?"]
)
def test_every_dtype_is_worked_on_in_float64(dtype):
    rng = np.random.default_rng(5)
    values = rng.integers(0, 2 if dtype == "?" else 100, (10, 14, 3))
    image = values.astype(dtype)
    palette = rng.uniform(0, 1 if dtype == "?" else 100, (7, 3))
    np.testing.assert_array_equal(
        error_diffusion(image, palette),
        error_diffusion(image.astype(np.float64), palette),
    )


def test_a_strided_view_gives_the_same_labels_as_a_copy():
    rng = np.random.default_rng(6)
    image = rng.uniform(0, 1, (3, 20, 16)).transpose(1, 2, 0)[::2]
    palette = rng.uniform(0, 1, (9, 3))
    assert not image.flags.c_contiguous
    np.testing.assert_array_equal(
        error_diffusion(image, palette),
        error_diffusion(np.ascontiguousarray(image), palette),
    )


@pytest.mark.parametrize("k,dtype", [(1, np.uint8), (256, np.uint8), (257, np.uint16)])
def test_labels_take_the_smallest_unsigned_type(k, dtype):
    rng = np.random.default_rng(k)
    labels = error_diffusion(rng.uniform(0, 1, (6, 6, 3)), rng.uniform(0, 1, (k, 3)))
    assert labels.dtype == dtype


def test_duplicate_palette_entries_map_to_the_first():
    palette = np.array([[0.0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 1]])
    image = np.random.default_rng(1).uniform(0, 1, (8, 8, 3))
    labels = error_diffusion(image, palette)
    assert set(np.unique(labels)) == {0, 1}


def test_one_distinct_colour_and_empty_images():
    palette = np.array([[0.2, 0.4], [0.2, 0.4]])
    labels = error_diffusion(np.ones((5, 4, 2)), palette)
    np.testing.assert_array_equal(labels, np.zeros((5, 4)))
    assert error_diffusion(np.ones((0, 4, 2)), np.eye(2)).shape == (0, 4)


def test_input_is_not_modified():
    image = np.random.default_rng(2).uniform(0, 1, (10, 10, 3))
    palette = np.eye(3)
    before, palette_before = image.copy(), palette.copy()
    error_diffusion(image, palette)
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(palette, palette_before)


def test_iter_reports_rising_progress_and_returns_the_labels(monkeypatch):
    # One row per block: the error carried between blocks must not change a label.
    monkeypatch.setattr(dither, "_BLOCK_PIXELS", 1)
    monkeypatch.setattr(dither, "_YIELD_SECONDS", 0.0)
    rng = np.random.default_rng(8)
    stack = rng.uniform(0, 1, (2, 11, 7, 3))
    palette = rng.uniform(0, 1, (10, 3))
    fractions, labels = _drain(error_diffusion_iter(stack, palette))
    assert len(fractions) == 22  # every row of both planes
    assert fractions == sorted(fractions)
    assert fractions[0] > 0
    assert fractions[-1] == 1.0
    for plane, got in zip(stack, labels, strict=True):
        np.testing.assert_array_equal(got, _reference(plane, palette))


def test_closing_the_iterator_stops_the_work(monkeypatch):
    monkeypatch.setattr(dither, "_BLOCK_PIXELS", 1)
    monkeypatch.setattr(dither, "_YIELD_SECONDS", 0.0)
    calls = []
    kernel = dither.diffuse_rows

    def counting(*args):
        calls.append(len(args[0]))
        return kernel(*args)

    monkeypatch.setattr(dither, "diffuse_rows", counting)
    steps = error_diffusion_iter(
        np.random.default_rng(9).uniform(0, 1, (30, 8, 3)), np.eye(3)
    )
    next(steps)
    next(steps)
    steps.close()
    assert calls == [1, 1]
    with pytest.raises(StopIteration):
        next(steps)


@pytest.mark.parametrize(
    "image,palette,error,match",
    [
        (np.zeros((4, 3)), np.zeros((2, 3)), ValueError, "two spatial"),
        (np.zeros((4, 4, 3)), np.zeros((0, 3)), ValueError, "k >= 1"),
        (np.zeros((4, 4, 3)), np.zeros((2, 4)), ValueError, "same colour space"),
        (np.full((4, 4, 3), np.nan), np.zeros((2, 3)), ValueError, "NaN"),
        (np.zeros((4, 4, 3)), np.array([[0, 0, np.inf]]), ValueError, "infinity"),
        (np.zeros((4, 4, 3), complex), np.zeros((2, 3)), TypeError, "real numeric"),
        (np.zeros((4, 4, 3)), np.array([["a", "b", "c"]]), TypeError, "real numeric"),
    ],
)
def test_bad_input_is_refused_with_a_reason(image, palette, error, match):
    with pytest.raises(error, match=match):
        error_diffusion(image, palette)
    # The iterator checks when it is made, before any work is asked for.
    with pytest.raises(error, match=match):
        error_diffusion_iter(image, palette)
