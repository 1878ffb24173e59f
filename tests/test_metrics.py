"""Quality metrics, the seed's size formula, and the size report."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize.metrics import (
    SizeReport,
    formula_bits,
    mean_ciede2000,
    mse,
    original_bits,
    psnr,
    size_report,
)
from napari_kmeans_quantize.palette_io import to_png_bytes


def _photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


def _quantize(image, k, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return quantize(image, k, **kwargs)


# --- the plain metrics ---------------------------------------------------------------


def test_mse_and_psnr_conventions():
    a = np.zeros((2, 3, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 3  # error 9 in one channel of every pixel
    assert mse(a, b) == 9.0
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 3.0))
    assert psnr(a, a) == math.inf
    assert mse(a[..., 0], b[..., 0], channel_axis=None) == 9.0
    with pytest.raises(ValueError, match="same shape"):
        mse(a, b[:1])


def test_psnr_float_default_range_is_one():
    a = np.zeros((4, 4, 3))
    assert psnr(a, a + 0.1) == pytest.approx(20.0)


def test_mean_ciede2000():
    a = np.zeros((3, 3, 3), np.uint8)
    assert mean_ciede2000(a, a) == 0.0
    white = np.full_like(a, 255)
    assert mean_ciede2000(a, white) == pytest.approx(100.0, abs=0.01)
    with pytest.raises(ValueError, match="RGB"):
        mean_ciede2000(a[..., :1], a[..., :1])


def test_seed_formula():
    # The seed article: a 750 x 1000 photo at k = 64.
    assert formula_bits(750 * 1000, 64) == 750 * 1000 * 6 + 64 * 24
    assert formula_bits(10, 1) == 24  # one colour needs no index bits
    assert formula_bits(10, 3, bits_per_color=32) == 10 * 2 + 3 * 32
    assert original_bits(750 * 1000) == 18_000_000


# --- size_report ---------------------------------------------------------------------


def test_size_report_rgb():
    image = _photo()
    result = _quantize(image, 16)
    report = size_report(result, image, source_bytes=12345)
    h, w = image.shape[:2]
    assert isinstance(report, SizeReport)
    assert report.shape == (h, w)
    assert report.n_pixels == h * w
    assert report.n_colors == report.n_colors_requested == 16
    assert report.bits_per_pixel == report.bits_per_color == 24
    assert report.index_bits == 4
    assert report.original_bits == h * w * 24
    assert report.original_bytes == h * w * 3
    assert report.formula_bits == formula_bits(h * w, 16) == h * w * 4 + 16 * 24
    assert report.png_bytes == len(to_png_bytes(result.labels, result.palette))
    assert report.ratio == pytest.approx(h * w * 3 / report.png_bytes)
    assert report.formula_ratio == pytest.approx(
        report.original_bits / report.formula_bits
    )
    assert report.source_bytes == 12345
    assert report.source_ratio == pytest.approx(12345 / report.png_bytes)
    # Exact quality, equal to the per-pixel functions.
    assert report.psnr == pytest.approx(psnr(image, result.image), rel=1e-9)
    assert report.ciede2000 == pytest.approx(
        mean_ciede2000(image, result.image), rel=1e-9
    )
    assert report.seconds == result.seconds
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.psnr = 0.0


def test_size_report_without_original():
    image = _photo()
    report = size_report(_quantize(image, 4))
    assert report.psnr is None and report.ciede2000 is None
    assert report.source_bytes is None and report.source_ratio is None
    assert report.png_bytes > 0 and report.ratio > 1


def test_size_report_dithered_result_is_exact_too():
    image = _photo()
    result = _quantize(image, 8, dither=True)
    report = size_report(result, image)
    assert report.psnr == pytest.approx(psnr(image, result.image), rel=1e-9)
    assert report.ciede2000 == pytest.approx(
        mean_ciede2000(image, result.image), rel=1e-9
    )


def test_size_report_rgba_counts_32_bits():
    image = np.dstack([_photo(), np.full(_photo().shape[:2], 255, np.uint8)])
    image[:5, :5] = 0
    result = _quantize(image, 8)
    report = size_report(result, image)
    assert report.bits_per_pixel == 32
    assert report.formula_bits == formula_bits(image.shape[0] * image.shape[1], 8, 32)
    assert report.psnr == pytest.approx(psnr(image, result.image), rel=1e-9)
    assert report.ciede2000 == pytest.approx(
        mean_ciede2000(image, result.image), rel=1e-9
    )


def test_size_report_grey_has_no_ciede():
    image = _photo()[..., 1]
    result = _quantize(image, 4, channel_axis=None)
    report = size_report(result, image)
    assert report.bits_per_pixel == 8
    assert report.ciede2000 is None
    assert report.psnr == pytest.approx(
        psnr(image, result.image, channel_axis=None), rel=1e-9
    )
    assert report.png_bytes == len(to_png_bytes(result.labels, result.palette))


def test_size_report_channel_axis_first():
    image = np.moveaxis(_photo(), -1, 0)
    result = _quantize(image, 8, channel_axis=0)
    report = size_report(result, image)
    assert report.psnr == pytest.approx(psnr(image, result.image, channel_axis=0))


def test_size_report_uint16_and_float():
    image16 = _photo().astype(np.uint16) * 257
    report = size_report(_quantize(image16, 8), image16)
    assert report.bits_per_pixel == 48
    assert report.png_bytes is not None  # palette scaled to 8 bits for the file
    assert report.ciede2000 is not None

    image_f = _photo().astype(np.float64) * 2.0  # floats outside [0, 1]
    report = size_report(_quantize(image_f, 8), image_f)
    assert report.png_bytes is None and report.ratio is None
    assert report.ciede2000 is None
    assert math.isfinite(report.psnr)


def test_size_report_stack_sums_one_png_per_plane():
    stack = np.stack([_photo(seed=1), _photo(seed=2)])
    result = _quantize(stack, 8)
    report = size_report(result, stack)
    assert report.shape == stack.shape[:3]
    expected = sum(len(to_png_bytes(p, result.palette)) for p in result.labels)
    assert report.png_bytes == expected
    assert report.psnr == pytest.approx(psnr(stack, result.image), rel=1e-9)


def test_size_report_more_than_256_colours_has_no_png():
    image = _photo(64, 64)
    result = _quantize(image, 300)
    report = size_report(result, image)
    assert report.n_colors == 300
    assert report.png_bytes is None and report.ratio is None
    assert "n/a" in report.to_text()


def test_size_report_shape_mismatch():
    image = _photo()
    with pytest.raises(ValueError, match="same shape"):
        size_report(_quantize(image, 4), image[:10])


def test_size_report_text_and_dict():
    image = _photo()
    report = size_report(_quantize(image, 16), image, source_bytes=5000)
    text = report.to_text()
    assert f"{report.original_bits:,} bits" in text
    assert f"{report.formula_bits:,} bits" in text
    assert f"{report.png_bytes:,} bytes" in text
    assert "4-bit indices" in text
    assert "source file 5,000 bytes" in text
    assert f"PSNR {report.psnr:.2f} dB" in text
    d = report.as_dict()
    assert d["png_bytes"] == report.png_bytes
    assert d["original_bytes"] == report.original_bits / 8
