"""quantize_shared: one palette fitted to several images together."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_kmeans_quantize import apply_palette, quantize, quantize_shared


@pytest.fixture
def frames() -> list[np.ndarray]:
    from skimage import data

    return [data.astronaut()[::4, ::4], data.coffee()[::5, ::3]]


def _concatenated(images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([im.reshape(-1, im.shape[-1]) for im in images])[:, None]


def test_one_palette_equal_to_quantising_the_concatenation(frames):
    results = quantize_shared(frames, 16)
    whole = quantize(_concatenated(frames), 16)
    start = 0
    for image, result in zip(frames, results, strict=True):
        np.testing.assert_array_equal(result.palette, whole.palette)
        n = image.shape[0] * image.shape[1]
        part = whole.image[start : start + n, 0].reshape(image.shape)
        np.testing.assert_array_equal(result.image, part)
        assert result.counts.sum() == n
        assert result.inertia == whole.inertia
        start += n
    assert results[0].palette.shape == (16, 3)


def test_a_later_image_maps_with_apply_palette(frames):
    first, second = quantize_shared(frames, 8)
    again = apply_palette(frames[1], first.palette)
    np.testing.assert_array_equal(again.image, second.image)


def test_weights_and_fixed_colours_act_on_the_combined_fit(frames):
    weights = [np.zeros(frames[0].shape[:2]), None]
    weights[0][:40] = 1
    fixed = np.array([[255, 255, 255]], dtype=np.uint8)
    results = quantize_shared(frames, 8, weights=weights, fixed_colors=fixed)
    flat = np.concatenate(
        [weights[0].ravel(), np.ones(frames[1].shape[0] * frames[1].shape[1])]
    )
    whole = quantize(
        _concatenated(frames), 8, weights=flat[:, None], fixed_colors=fixed
    )
    for result in results:
        np.testing.assert_array_equal(result.palette, whole.palette)


def test_dask_images_stay_lazy(frames):
    lazy = [da.from_array(frames[0], chunks=(64, 50, 3)), frames[1]]
    results = quantize_shared(lazy, 12)
    eager = quantize_shared(frames, 12)
    for got, want in zip(results, eager, strict=True):
        assert isinstance(got.labels, da.Array) and isinstance(got.image, da.Array)
        np.testing.assert_array_equal(got.palette, want.palette)
        np.testing.assert_array_equal(np.asarray(got.image), want.image)


def test_single_channel_images():
    rng = np.random.default_rng(1)
    images = [
        rng.integers(0, 255, (30, 40), dtype=np.uint8),
        rng.integers(0, 100, (7,), dtype=np.uint8),
    ]
    results = quantize_shared(images, 4, channel_axis=None)
    assert [r.image.shape for r in results] == [(30, 40), (7,)]
    np.testing.assert_array_equal(results[0].palette, results[1].palette)


@pytest.mark.parametrize(
    ("images", "kwargs", "error", "match"),
    [
        ([], {}, TypeError, "non-empty list"),
        (np.zeros((4, 4, 3), np.uint8), {}, TypeError, "non-empty list"),
        (
            [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint16)],
            {},
            ValueError,
            "same dtype",
        ),
        (
            [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 4), np.uint8)],
            {},
            ValueError,
            "channels",
        ),
        (
            [np.zeros((4, 4, 3), np.uint8)],
            {"weights": np.ones((4, 4))},
            TypeError,
            "one weight map",
        ),
        (
            [np.zeros((4, 4, 3), np.uint8)],
            {"weights": [None, None]},
            ValueError,
            "per image",
        ),
        (
            [np.zeros((4, 4, 3), np.uint8)],
            {"weights": [np.ones((3, 3))]},
            ValueError,
            "spatial shape",
        ),
    ],
)
def test_bad_input_is_refused(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        quantize_shared(images, 2, **kwargs)


def test_shared_multichannel_standardized_equals_the_concatenation():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4000, (20, 24, 5), dtype=np.uint16)
    b = rng.integers(0, 60, (16, 24, 5), dtype=np.uint16)
    shared = quantize_shared([a, b], 6, standardize=True)
    together = quantize(np.concatenate([a, b]), 6, standardize=True)
    for result in shared:
        np.testing.assert_array_equal(result.palette, together.palette)
    np.testing.assert_array_equal(
        np.concatenate([r.labels for r in shared]), together.labels
    )
