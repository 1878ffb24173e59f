"""Importance maps (``weights=``): a weighted colour histogram in the fit."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_kmeans_quantize import quantize


def _sorted(palette: np.ndarray) -> np.ndarray:
    return palette[np.lexsort(palette.T[::-1])]


@pytest.fixture
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()[::4, ::4]


def test_weight_two_equals_the_pixels_repeated(photo):
    weights = np.ones(photo.shape[:2])
    weights[10:40, 20:70] = 2
    weighted = quantize(photo, 16, weights=weights)
    repeated = np.concatenate(
        [photo.reshape(-1, 3), photo[10:40, 20:70].reshape(-1, 3)]
    )
    plain = quantize(repeated[:, None], 16)
    np.testing.assert_array_equal(_sorted(weighted.palette), _sorted(plain.palette))
    # Every pixel is still mapped, onto its nearest entry.
    assert weighted.labels.shape == photo.shape[:2]
    np.testing.assert_array_equal(weighted.palette[weighted.labels], weighted.image)


def test_mask_fit_equals_the_fit_of_the_masked_pixels(photo):
    mask = np.zeros(photo.shape[:2], dtype=bool)
    mask[30:90, 40:100] = True
    masked = quantize(photo, 16, weights=mask)
    alone = quantize(photo[mask][:, None], 16)
    np.testing.assert_array_equal(_sorted(masked.palette), _sorted(alone.palette))
    # Pixels outside the mask are mapped too (not left out of the image).
    assert masked.counts.sum() == mask.size
    assert not np.array_equal(masked.palette, quantize(photo, 16).palette)


def test_unit_weights_change_nothing(photo):
    plain = quantize(photo, 8)
    unit = quantize(photo, 8, weights=np.ones(photo.shape[:2], dtype=np.float32))
    np.testing.assert_array_equal(plain.palette, unit.palette)
    np.testing.assert_array_equal(plain.labels, unit.labels)


def test_dask_weights_give_the_in_memory_palette(photo):
    weights = np.ones(photo.shape[:2])
    weights[:40] = 3
    weights[100:, :30] = 0
    mem = quantize(photo, 12, weights=weights)
    lazy = quantize(
        da.from_array(photo, chunks=(50, 60, 3)),
        12,
        weights=da.from_array(weights, chunks=(70, 40)),
    )
    np.testing.assert_array_equal(mem.palette, lazy.palette)
    np.testing.assert_array_equal(mem.labels, np.asarray(lazy.labels))


def test_input_weights_are_not_modified(photo, data_hash):
    weights = np.linspace(0, 1, photo.shape[0] * photo.shape[1]).reshape(
        photo.shape[:2]
    )
    before = data_hash(weights)
    quantize(photo, 4, weights=weights)
    assert data_hash(weights) == before


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        (np.ones((5, 5)), ValueError, "spatial shape"),
        (np.ones((128, 128, 3)), ValueError, "spatial shape"),
        (np.full((128, 128), np.nan), ValueError, "NaN or infinite"),
        (np.full((128, 128), np.inf), ValueError, "NaN or infinite"),
        (-np.ones((128, 128)), ValueError, ">= 0"),
        (np.zeros((128, 128)), ValueError, "all zero"),
        (np.full((128, 128), "a"), TypeError, "numbers"),
        (np.ma.ones((128, 128)), TypeError, "masked"),
    ],
)
def test_bad_weights_are_refused(photo, weights, error, match):
    with pytest.raises(error, match=match):
        quantize(photo, 4, weights=weights)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.full((128, 128), -1.0), ">= 0"),
        (np.zeros((128, 128)), "all zero"),
        (np.full((128, 128), np.nan), "NaN or infinite"),
        (np.ones((4, 4)), "spatial shape"),
    ],
)
def test_bad_dask_weights_are_refused(photo, weights, match):
    image = da.from_array(photo, chunks=(64, 64, 3))
    with pytest.raises(ValueError, match=match):
        quantize(image, 4, weights=da.from_array(weights, chunks=32))


def test_dask_weights_with_max_pixels_are_refused(photo):
    image = da.from_array(photo, chunks=(64, 64, 3))
    with pytest.raises(ValueError, match="max_pixels"):
        quantize(image, 4, weights=np.ones(photo.shape[:2]), max_pixels=100)


def test_size_report_gives_the_psnr_inside_the_mask(photo):
    from napari_kmeans_quantize import psnr
    from napari_kmeans_quantize.metrics import size_report

    mask = np.zeros(photo.shape[:2], dtype=bool)
    mask[30:90, 40:100] = True
    result = quantize(photo, 16, weights=mask)
    report = size_report(result, photo, weights=mask)
    inside = psnr(photo[mask][:, None], result.image[mask][:, None])
    assert report.psnr_weighted == pytest.approx(inside, rel=1e-12)
    assert report.psnr == pytest.approx(psnr(photo, result.image), rel=1e-12)
    assert size_report(result, photo).psnr_weighted is None
