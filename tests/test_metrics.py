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


# --- the compiled CIEDE2000 against scikit-image's ----------------------------------


def test_mean_ciede2000_matches_skimage_over_all_pixels():
    from skimage import data
    from skimage.color import deltaE_ciede2000, rgb2lab

    image = data.astronaut()
    quantized = _quantize(image, 16).image
    expected = deltaE_ciede2000(rgb2lab(image), rgb2lab(quantized)).mean()
    assert mean_ciede2000(image, quantized) == pytest.approx(expected, rel=1e-9)


def test_seed_formula():
    # The seed article: a 750 x 1000 photo at k = 64.
    assert formula_bits(750 * 1000, 64) == 750 * 1000 * 6 + 64 * 24
    assert formula_bits(10, 1) == 24  # one colour needs no index bits
    assert formula_bits(10, 3, bits_per_color=32) == 10 * 2 + 3 * 32
    assert original_bits(750 * 1000) == 18_000_000


# --- the value range: data_range and the default peak per dtype ---------------------


def _small_astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()[::8, ::8]


def _sk_ciede(original: np.ndarray, quantized: np.ndarray, unit: float) -> float:
    from skimage.color import deltaE_ciede2000, rgb2lab

    def lab(x):
        return rgb2lab(np.clip(x[..., :3] / unit, 0, 1))

    return float(deltaE_ciede2000(lab(original), lab(quantized)).mean())


def test_12_bit_grey_in_uint16_uses_the_given_data_range():
    from skimage import data
    from skimage.metrics import peak_signal_noise_ratio

    image = data.coins()[::4, ::4].astype(np.uint16) * 16  # 16..4032
    result = _quantize(image, 8, channel_axis=None)
    expected = peak_signal_noise_ratio(image, result.image, data_range=4095)
    report = size_report(result, image, data_range=4095)
    assert report.psnr == pytest.approx(expected, rel=1e-9)
    assert psnr(
        image, result.image, channel_axis=None, data_range=4095
    ) == pytest.approx(expected, rel=1e-9)
    # Without it, scikit-image's convention: the peak of uint16 is 65535.
    default = peak_signal_noise_ratio(image, result.image)
    assert size_report(result, image).psnr == pytest.approx(default, rel=1e-9)
    assert default - expected == pytest.approx(20 * math.log10(65535 / 4095))


def test_12_bit_rgb_in_uint16_psnr_and_ciede2000_with_data_range():
    from skimage.metrics import peak_signal_noise_ratio

    image = _small_astronaut().astype(np.uint16) * 16
    result = _quantize(image, 16)
    report = size_report(result, image, data_range=4095)
    assert report.psnr == pytest.approx(
        peak_signal_noise_ratio(image, result.image, data_range=4095), rel=1e-9
    )
    expected = _sk_ciede(image, result.image, 4095)
    assert report.ciede2000 == pytest.approx(expected, rel=1e-9)
    assert mean_ciede2000(image, result.image, data_range=4095) == pytest.approx(
        expected, rel=1e-9
    )
    # The default reads the colours as fractions of 65535: nearly black.
    assert size_report(result, image).ciede2000 == pytest.approx(
        _sk_ciede(image, result.image, 65535), rel=1e-9
    )
    assert size_report(result, image).ciede2000 < expected / 5


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
def test_wide_integers_default_to_the_actual_range_and_no_ciede(dtype):
    from skimage.metrics import peak_signal_noise_ratio

    image = _small_astronaut().astype(dtype) + 1000
    result = _quantize(image, 16)
    actual = float(image.max() - image.min())
    expected = peak_signal_noise_ratio(image, result.image, data_range=actual)
    report = size_report(result, image)
    assert report.psnr == pytest.approx(expected, rel=1e-9)
    assert psnr(image, result.image) == pytest.approx(expected, rel=1e-9)
    assert report.ciede2000 is None
    assert "mean CIEDE2000 n/a" in report.to_text()
    with pytest.raises(ValueError, match="pass data_range"):
        mean_ciede2000(image, result.image)
    # Given, data_range is the peak and the full intensity of the colours.
    report = size_report(result, image, data_range=2000)
    assert report.psnr == pytest.approx(
        peak_signal_noise_ratio(image, result.image, data_range=2000), rel=1e-9
    )
    expected = _sk_ciede(image, result.image, 2000)
    assert report.ciede2000 == pytest.approx(expected, rel=1e-9)
    assert mean_ciede2000(image, result.image, data_range=2000) == pytest.approx(
        expected, rel=1e-9
    )


def test_wide_integers_of_one_value_have_a_peak_of_one():
    image = np.full((4, 5, 3), 7, np.int64)
    other = image + 2
    assert psnr(image, other) == pytest.approx(10 * math.log10(1 / 4))


def test_int64_range_beyond_int64_does_not_overflow():
    image = np.array([[[-(2**62)] * 3, [2**62 + 2**61] * 3]], np.int64)
    other = image.copy()
    other[0, 0] += 4096  # float64 resolves steps of 1024 there
    peak = float(2**62 + 2**61 + 2**62)
    assert psnr(image, other) == pytest.approx(10 * math.log10(peak**2 / (4096**2 / 2)))


def test_signed_16_bit_follows_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(3)
    image = rng.integers(-3000, 3000, (24, 32), dtype=np.int16)
    result = _quantize(image, 8, channel_axis=None)
    expected = peak_signal_noise_ratio(image, result.image)  # 65535: negatives
    assert size_report(result, image).psnr == pytest.approx(expected, rel=1e-9)
    assert psnr(image, result.image, channel_axis=None) == pytest.approx(expected)


@pytest.mark.parametrize(
    "bad", [0, -1.0, math.nan, math.inf, "255", True, np.float64(-2.0)]
)
def test_bad_data_range_is_refused(bad):
    image = _photo(8, 8)
    result = _quantize(image, 4)
    for call in (
        lambda: size_report(result, image, data_range=bad),
        lambda: psnr(image, result.image, data_range=bad),
        lambda: mean_ciede2000(image, result.image, data_range=bad),
    ):
        with pytest.raises(ValueError, match="finite number greater than 0"):
            call()


# --- RGBA: only the visible pixels, only their colour --------------------------------


def _rgba_with_hidden_block(seed: int = 1) -> np.ndarray:
    """A small RGBA photo, fully transparent on a block with random RGB under it."""
    rgb = _small_astronaut()
    image = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    image[10:40, 5:45, 3] = 0
    image[10:40, 5:45, :3] = np.random.default_rng(seed).integers(0, 256, (30, 40, 3))
    image[50:, 50:, 3] = 1  # barely visible still counts
    return image


def _visible_psnr_and_ciede(original, quantized):
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import peak_signal_noise_ratio

    visible = original[..., 3] != 0
    a, b = original[visible][:, :3], quantized[visible][:, :3]
    de = deltaE_ciede2000(rgb2lab(a[None]), rgb2lab(b[None])).mean()
    return peak_signal_noise_ratio(a, b, data_range=255), float(de)


@pytest.mark.parametrize("dither", [False, True])
def test_rgba_figures_cover_the_visible_pixels_only(dither):
    image = _rgba_with_hidden_block()
    result = _quantize(image, 12, dither=dither)
    expected_psnr, expected_de = _visible_psnr_and_ciede(image, result.image)
    report = size_report(result, image)
    assert report.psnr == pytest.approx(expected_psnr, rel=1e-9)
    assert report.ciede2000 == pytest.approx(expected_de, rel=1e-9)
    assert psnr(image, result.image) == pytest.approx(expected_psnr, rel=1e-9)
    assert mean_ciede2000(image, result.image) == pytest.approx(expected_de, rel=1e-9)
    # Other hidden colours under the transparent block: the same figures.
    other = _rgba_with_hidden_block(seed=2)
    again = size_report(_quantize(other, 12, dither=dither), other)
    assert (again.psnr, again.ciede2000) == (report.psnr, report.ciede2000)


def test_rgba_channels_first():
    image = np.moveaxis(_rgba_with_hidden_block(), -1, 0)
    result = _quantize(image, 8, channel_axis=0)
    expected_psnr, expected_de = _visible_psnr_and_ciede(
        np.moveaxis(image, 0, -1), np.moveaxis(result.image, 0, -1)
    )
    report = size_report(result, image)
    assert report.psnr == pytest.approx(expected_psnr, rel=1e-9)
    assert report.ciede2000 == pytest.approx(expected_de, rel=1e-9)
    assert psnr(image, result.image, channel_axis=0) == pytest.approx(expected_psnr)


def test_opaque_rgba_scores_as_rgb():
    from skimage.metrics import peak_signal_noise_ratio

    rgb = _small_astronaut()
    image = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    result = _quantize(image, 16)
    expected = peak_signal_noise_ratio(rgb, result.image[..., :3])
    report = size_report(result, image)
    assert report.psnr == pytest.approx(expected, rel=1e-9)
    assert psnr(image, result.image) == pytest.approx(expected, rel=1e-9)
    assert report.ciede2000 == pytest.approx(
        mean_ciede2000(rgb, result.image[..., :3]), rel=1e-9
    )


def test_rgba_with_no_visible_pixel():
    image = _rgba_with_hidden_block()
    image[..., 3] = 0
    result = _quantize(image, 4)
    report = size_report(result, image)
    assert report.psnr == math.inf and report.ciede2000 == 0.0
    quantized = np.zeros_like(image)
    assert psnr(image, quantized) == math.inf
    assert mean_ciede2000(image, quantized) == 0.0


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


def test_size_report_rejects_labels_that_do_not_cover_the_image():
    image = _photo()
    result = _quantize(image, 8)
    cut = dataclasses.replace(result, labels=result.labels[:10])
    with pytest.raises(ValueError, match="pass the image that was quantised"):
        size_report(cut, image)


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


def test_float16_images_are_measured_like_float32():
    image = (_photo() / 255).astype(np.float16)
    result = quantize(image, 6)
    wide = image.astype(np.float32)
    report = size_report(result, image)
    assert report.psnr == pytest.approx(psnr(wide, result.image.astype(np.float32)))
    assert report.ciede2000 == pytest.approx(
        mean_ciede2000(wide, result.image.astype(np.float32))
    )


@pytest.mark.parametrize("bad", [-1, 2.5, True, "9000"])
def test_bad_source_bytes_are_refused(bad):
    image = _photo()
    with pytest.raises(ValueError, match="source_bytes must be"):
        size_report(quantize(image, 4), image, source_bytes=bad)


def test_psnr_of_floats_outside_0_1_uses_their_range_as_size_report_does():
    image = _photo().astype(np.float64) * 10.0 - 500.0
    result = quantize(image, 6)
    expected = psnr(image, result.image, data_range=float(image.max() - image.min()))
    assert psnr(image, result.image) == pytest.approx(expected)
    assert size_report(result, image).psnr == pytest.approx(expected)
    # In [0, 1] the peak stays 1 (scikit-image's convention).
    unit = image / 4000.0 + 0.125
    assert unit.min() >= 0 and unit.max() <= 1
    res = quantize(unit, 6)
    assert psnr(unit, res.image) == pytest.approx(psnr(unit, res.image, data_range=1))


def test_psnr_with_extreme_peaks_does_not_overflow():
    image = _photo()
    result = quantize(image, 4)
    base = psnr(image, result.image)
    # 20 log10(peak) grows by 20 dB per decade of the peak, whatever its size.
    for peak in (1e-200, 1e155, 1e300):
        expected = base + 20 * math.log10(peak / 255)
        assert psnr(image, result.image, data_range=peak) == pytest.approx(expected)
        report = size_report(result, image, data_range=peak)
        assert report.psnr == pytest.approx(expected)
        assert report.psnr_peak == peak


def test_psnr_of_boolean_masks_uses_a_peak_of_one():
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(2)
    a, b = rng.random((20, 30)) > 0.5, rng.random((20, 30)) > 0.5
    assert psnr(a, b, channel_axis=None) == pytest.approx(
        peak_signal_noise_ratio(a, b, data_range=1)
    )


@pytest.mark.parametrize(
    ("dtype", "scale", "peak"),
    [(np.uint8, 1, 255), (np.uint16, 16, 65535), (np.float64, 1 / 255, 1.0)],
)
def test_size_report_says_which_peak_it_used(dtype, scale, peak):
    image = (_photo() * scale).astype(dtype)
    report = size_report(quantize(image, 4), image)
    assert report.psnr_peak == peak
    assert size_report(quantize(image, 4)).psnr_peak is None  # no original


# --- odd input: measured correctly or refused with a reason ---


def test_psnr_of_two_different_constant_floats_needs_a_peak():
    a, b = np.full((4, 4), 5.0), np.full((4, 4), 6.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, b, channel_axis=None)
    assert psnr(a, b, channel_axis=None, data_range=10.0) == pytest.approx(20.0)
    assert psnr(a, a, channel_axis=None) == math.inf


@pytest.mark.parametrize("func", [psnr, mse, mean_ciede2000])
@pytest.mark.parametrize(
    "image", [np.zeros((0, 4, 3)), np.zeros((4, 0, 3)), np.array(0.5)]
)
def test_metrics_refuse_empty_and_0d_images(func, image):
    with pytest.raises(ValueError, match=r"empty|0-d"):
        func(image, image)


@pytest.mark.parametrize("func", [psnr, mse, mean_ciede2000])
def test_metrics_refuse_nan_and_infinity(func):
    a = np.zeros((4, 4, 3))
    b = a.copy()
    b[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        func(a, b)
    with pytest.raises(ValueError, match="NaN or infinite"):
        func(b, a)


def test_mean_ciede2000_needs_a_channel_axis_of_3_or_4():
    rng = np.random.default_rng(0)
    five = rng.integers(0, 256, (6, 6, 5), dtype=np.uint8)
    with pytest.raises(ValueError, match="5 channel"):
        mean_ciede2000(five, five[::-1])
    with pytest.raises(ValueError, match="channel_axis"):
        mean_ciede2000(five[..., :3], five[..., :3], channel_axis=None)
    with pytest.raises(ValueError, match="channel_axis"):
        psnr(five, five, channel_axis=3)


def test_psnr_of_five_channels_is_over_every_channel():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (6, 6, 5), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-3, 4, a.shape), 0, 255).astype(np.uint8)
    mse_per_value = ((a.astype(float) - b) ** 2).mean()
    expected = 10 * math.log10(255**2 / mse_per_value)
    assert psnr(a, b) == pytest.approx(expected)


def test_size_report_of_a_big_endian_original():
    image = _photo().astype(">u2")
    result = quantize(image, 8)
    report = size_report(result, image)
    native = image.astype("=u2")
    assert report.psnr == pytest.approx(psnr(native, result.image))
    assert report.ciede2000 == pytest.approx(mean_ciede2000(native, result.image))


@pytest.mark.parametrize("n_channels", [2, 5, 8, 16])
def test_size_report_of_multichannel_images(n_channels):
    rng = np.random.default_rng(n_channels)
    centres = rng.integers(500, 60000, (6, n_channels))
    img = centres[rng.integers(0, 6, (24, 20))] + rng.integers(0, 9, (24, 20, 1))
    img = img.astype(np.uint16)
    res = quantize(img, 8)
    report = size_report(res, img)
    k = res.n_colors
    assert (
        report.formula_bits == 24 * 20 * math.ceil(math.log2(k)) + k * n_channels * 16
    )
    assert report.original_bits == 24 * 20 * n_channels * 16
    # PSNR over every channel; no CIEDE2000 for channels that are no colours.
    err = ((img.astype(float) - res.image) ** 2).mean()
    assert report.psnr == pytest.approx(10 * math.log10(65535**2 / err))
    assert report.ciede2000 is None


def test_four_plain_channels_are_measured_as_four():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    img[:4, :, 3] = 0
    res = quantize(img, 8, alpha=False)
    report = size_report(res, img)
    err = ((img.astype(float) - res.image) ** 2).mean()
    assert report.psnr == pytest.approx(10 * math.log10(255**2 / err))
    assert report.ciede2000 is None
    # Read as RGBA, the same pixels are measured over visible RGB only.
    rgba = size_report(quantize(img, 8), img)
    assert rgba.ciede2000 is not None


def test_size_report_file_formats_are_the_real_bytes_smallest_first(astronaut):
    from napari_kmeans_quantize import palette_io, quantize

    image = astronaut[::2, ::2]
    result = quantize(image, 16)
    assert size_report(result, image).file_bytes is None
    report = size_report(result, image, file_formats=True)
    files = report.file_bytes
    assert set(files) == {"png", "webp"}
    assert files["png"] == len(palette_io.to_png_bytes(result.labels, result.palette))
    assert files["webp"] == len(palette_io.to_webp_bytes(result.labels, result.palette))
    assert list(files.values()) == sorted(files.values())
    assert report.smallest_format == min(files, key=files.get)
    assert f"smallest {report.smallest_format}" in report.to_text()


def test_size_report_file_formats_of_a_stack_are_the_animations_and_tiff():
    from napari_kmeans_quantize import quantize

    y, x = np.mgrid[0:24, 0:32]
    frames = np.stack([np.dstack([x * 8, y * 10, (x + y + t) * 4]) for t in range(3)])
    result = quantize(frames.astype(np.uint8), 8)
    files = size_report(result, file_formats=True).file_bytes
    assert set(files) == {"apng", "gif", "tiff"}


@pytest.mark.parametrize("n", [3, 40, 9000])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_quality_cielab_is_rgb_to_lab_for_few_and_many_colours(dtype, n):
    # Many integer colours go through the table form, a palette's few through
    # rgb_to_lab: the same values either way, so no figure depends on the route.
    from napari_kmeans_quantize._engine.quality import to_lab
    from napari_kmeans_quantize.colorspace import rgb_to_lab

    colors = np.random.default_rng(n).integers(0, np.iinfo(dtype).max, (n, 4))
    colors = colors.astype(dtype)
    unit = float(np.iinfo(dtype).max)
    expected = rgb_to_lab(np.clip(colors[:, :3] / unit, 0, 1))
    np.testing.assert_array_equal(to_lab(colors, unit), expected)
