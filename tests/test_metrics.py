"""Quality metrics, the seed's size formula, and the size report."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize._engine.ciede2000 import (
    _ciede2000_slice,
    _ciede2000_sum,
    _exp_neg,
    _hue_from_230,
    _sin_small,
)
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


def _kernel_each(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 of each pair by the kernel: one pair per call, weight 1."""
    lab1 = np.ascontiguousarray(lab1, dtype=np.float64)
    lab2 = np.ascontiguousarray(lab2, dtype=np.float64)
    entry, weight = np.zeros(1, np.intp), np.ones(1)
    return np.array(
        [
            _ciede2000_sum(lab1[i : i + 1], lab2[i : i + 1], entry, weight)
            for i in range(len(lab1))
        ]
    )


def _random_lab(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack([rng.uniform(0, 100, n), rng.uniform(-128, 127, (n, 2))])


def test_ciede2000_kernel_matches_skimage_on_random_pairs():
    from skimage.color import deltaE_ciede2000

    rng = np.random.default_rng(2000)
    lab1, lab2 = _random_lab(rng, 20_000), _random_lab(rng, 20_000)
    expected = deltaE_ciede2000(lab1, lab2)
    np.testing.assert_allclose(
        _kernel_each(lab1, lab2), expected, rtol=1e-10, atol=1e-10
    )
    # The summing kernel indexes a palette and weights each pair.
    pal = lab2[:37]
    entries = rng.integers(0, len(pal), len(lab1)).astype(np.intp)
    weights = rng.integers(1, 1000, len(lab1)).astype(np.float64)
    total = _ciede2000_sum(lab1, pal, entries, weights)
    assert total == pytest.approx(
        weights @ deltaE_ciede2000(lab1, pal[entries]), rel=1e-12
    )


def test_ciede2000_sum_is_the_same_on_one_core_and_on_all(monkeypatch):
    # A sweep's reports run on one core, size_report on all: the same figure.
    from napari_kmeans_quantize import gather

    rng = np.random.default_rng(7)
    lab, pal = _random_lab(rng, 50_000), _random_lab(rng, 64)
    entries = rng.integers(0, len(pal), len(lab)).astype(np.intp)
    weights = rng.integers(1, 1000, len(lab)).astype(np.float64)
    with gather.one_core():
        one = _ciede2000_sum(lab, pal, entries, weights)
    for cores in (2, 3, 8):
        monkeypatch.setattr(gather, "_cores", lambda cores=cores: cores)
        assert _ciede2000_sum(lab, pal, entries, weights) == one


def _polar(L: float, chroma: float, degrees: float) -> list[float]:
    h = math.radians(degrees)
    return [L, chroma * math.cos(h), chroma * math.sin(h)]


def test_ciede2000_kernel_matches_skimage_on_edge_cases():
    from skimage.color import deltaE_ciede2000

    tiny = 1e-6  # degrees: far above round-off, close to the 180 and 0/360 seams
    pairs = [
        # identical colours, grey and chromatic
        ([50.0, 0.0, 0.0], [50.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([61.3, 20.5, -40.25], [61.3, 20.5, -40.25]),
        ([30.0, -20.0, 0.0], [30.0, -20.0, 0.0]),
        # greys (a = b = 0) against greys ...
        ([50.0, 0.0, 0.0], [60.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0], [100.0, 0.0, 0.0]),
        ([20.0, -0.0, -0.0], [70.0, 0.0, 0.0]),
        # ... and against chromatic colours in every quadrant (hue 0 to 360)
        *[([50.0, 0.0, 0.0], _polar(55.0, 30.0, h)) for h in range(0, 360, 15)],
        *[(_polar(40.0, 60.0, h), [45.0, 0.0, 0.0]) for h in (1, 95, 181, 275, 359)],
        # hues exactly 180 degrees apart (h2 - h1 is +pi or -pi in floats too);
        # with unequal chromas the sign skimage gives the hue difference there
        # shows in the rotation term
        ([50.0, 30.0, 0.0], [50.0, -30.0, 0.0]),
        ([50.0, -30.0, 0.0], [50.0, 30.0, 0.0]),
        ([40.0, 0.0, 25.0], [60.0, 0.0, -25.0]),
        ([40.0, 0.0, -25.0], [60.0, 0.0, 25.0]),
        ([50.0, 0.0, 20.0], [55.0, 0.0, -120.0]),
        ([50.0, 0.0, -20.0], [55.0, 0.0, 120.0]),
        ([50.0, 30.0, 0.0], [55.0, -120.0, 0.0]),
        # just under and just over 180 degrees, both orders, all around the circle
        *[
            (_polar(50.0, 40.0, h), _polar(55.0, 45.0, h + 180 + d))
            for h in (0, 10, 100, 170, 265, 300)
            for d in (-tiny, tiny, -0.5, 0.5)
        ],
        *[
            (_polar(50.0, 40.0, h + 180 + d), _polar(55.0, 45.0, h))
            for h in (10, 100, 265)
            for d in (-tiny, tiny)
        ],
        # straddling hue 0/360 (mean hue near 0 and, past the seam, near 360)
        (_polar(50.0, 40.0, 5.0), _polar(50.0, 40.0, 355.0)),
        (_polar(50.0, 40.0, 355.0), _polar(52.0, 35.0, 5.0)),
        (_polar(50.0, 40.0, 1.0), _polar(50.0, 40.0, 358.0)),
        (_polar(50.0, 40.0, 3.0), _polar(50.0, 40.0, 359.0)),
        (_polar(50.0, 40.0, tiny), _polar(50.0, 40.0, 360 - tiny)),
        ([50.0, 40.0, 0.0], [50.0, 40.0, -1e-9]),
        ([50.0, 40.0, 0.0], [50.0, 40.0, -0.0]),
        # hue differences above 180 whose sum is below and above 360
        (_polar(50.0, 40.0, 10.0), _polar(50.0, 40.0, 250.0)),
        (_polar(50.0, 40.0, 100.0), _polar(50.0, 40.0, 300.0)),
        # negative a with b = 0 (hue exactly 180 degrees), b = -0.0, b near 0
        ([50.0, -20.0, 0.0], [55.0, -30.0, 0.0]),
        ([50.0, -20.0, 0.0], [50.0, -20.0, -0.0]),
        ([50.0, -20.0, -0.0], [50.0, 20.0, 0.0]),
        ([50.0, -20.0, 0.0], [50.0, -20.0, 1e-3]),
        ([50.0, -20.0, 0.0], [50.0, -20.0, -1e-3]),
        ([50.0, -20.0, 0.0], [50.0, 0.0, 0.0]),
        ([50.0, -20.0, 0.0], [50.0, 10.0, 10.0]),
        # around hue 275 degrees, where the rotation term peaks
        (_polar(50.0, 60.0, 270.0), _polar(50.0, 62.0, 280.0)),
    ]
    lab1 = np.array([p[0] for p in pairs])
    lab2 = np.array([p[1] for p in pairs])
    got = _kernel_each(lab1, lab2)
    np.testing.assert_allclose(
        got, deltaE_ciede2000(lab1, lab2), rtol=1e-10, atol=1e-10
    )
    assert np.all(got[:4] == 0.0)
    # Symmetric under swapping the two colours, as skimage's formula is.
    np.testing.assert_allclose(_kernel_each(lab2, lab1), got, rtol=1e-10, atol=1e-10)


def _kernel_in_block(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 of each pair computed among all the others (vector lanes).

    Weight 1 on the pair and 0 on the rest: the zeros add exactly, so the sum is
    the pair's value as the vectorised loop computed it.
    """
    lab1 = np.ascontiguousarray(lab1, dtype=np.float64)
    lab2 = np.ascontiguousarray(lab2, dtype=np.float64)
    n = len(lab1)
    assert n < 1 << 14  # one thread, one slice
    entries = np.arange(n, dtype=np.intp)
    out = np.empty(n)
    for i in range(n):
        weights = np.zeros(n)
        weights[i] = 1.0
        out[i] = _ciede2000_sum(lab1, lab2, entries, weights)
    return out


def _check_against_skimage(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Both kernel paths against skimage at 1e-10, both orders; the values."""
    from skimage.color import deltaE_ciede2000

    lab1, lab2 = np.asarray(lab1, dtype=np.float64), np.asarray(lab2, dtype=np.float64)
    expected = deltaE_ciede2000(lab1, lab2)
    alone = _kernel_each(lab1, lab2)
    np.testing.assert_allclose(alone, expected, rtol=1e-10, atol=1e-10)
    # A pair's value does not depend on its place in a block (lane or remainder).
    np.testing.assert_array_equal(_kernel_in_block(lab1, lab2), alone)
    swapped = _kernel_each(lab2, lab1)
    np.testing.assert_allclose(swapped, expected, rtol=1e-10, atol=1e-10)
    return alone


def test_ciede2000_kernel_hues_near_opposite():
    # The kernel's mean hue comes from the sum of the unit hue vectors, or from
    # their difference when the hues are more than 90 degrees apart; within
    # 1e-9 rad of opposite, from skimage's formula.
    # Unequal chromas, so that the rotation term (which sees the mean hue and
    # the sign of the hue difference) counts.
    pairs = []
    for h in (0.0, 1e-7, 5.0, 45.0, 90.0, 95.0, 170.0, 180.0, 230.0, 265.0, 275.0):
        for d in (0.0, 1e-9, 5e-8, 1e-7, 1e-5, 0.01, 0.5, 10.0, 60.0, 89.0, 91.0):
            for sign in (-1, 1):
                pairs.append(
                    (_polar(50.0, 30.0, h), _polar(60.0, 60.0, h + 180 + sign * d))
                )
    # Exactly opposite in floats: (a, b) against -2 (a, b).
    for a, b in ((30.0, 0.0), (-30.0, 0.0), (0.0, 25.0), (12.5, -40.0), (-3.0, 7.0)):
        pairs.append(([50.0, a, b], [60.0, -2 * a, -2 * b]))
        pairs.append(([50.0, a, b], [60.0, -2 * a, -2 * b + 1e-12]))
    lab1 = np.array([p[0] for p in pairs])
    lab2 = np.array([p[1] for p in pairs])
    _check_against_skimage(lab1, lab2)


def test_ciede2000_kernel_mean_hue_on_the_seam():
    # Mean hue near 0/360 degrees: whether skimage's is near 0 or near 2 pi shows
    # in the rotation term (by 1e-5 here, with large hue differences and unequal
    # chromas); within 1e-9 rad of the seam the kernel takes skimage's formula.
    pairs = []
    for h in (0.5, 10.0, 45.0, 80.0, 89.0):
        for d in (0.0, 1e-12, 1e-10, 1e-9, 1e-8, 1e-6, 1e-3):
            for sign in (-1, 1):
                pairs.append((_polar(50.0, 30.0, h), _polar(55.0, 70.0, -h + sign * d)))
    # Mirror images (b and -b): the mean hue is exactly 0 in floats.
    for a, b in ((40.0, 3.0), (40.0, 60.0), (5.0, 80.0), (-5.0, 80.0), (30.0, 1e-9)):
        pairs.append(([50.0, a, b], [55.0, 2 * a, -2 * b]))
        pairs.append(([50.0, a, -b], [55.0, 2 * a, 2 * b]))
    lab1 = np.array([p[0] for p in pairs])
    lab2 = np.array([p[1] for p in pairs])
    _check_against_skimage(lab1, lab2)


def test_ciede2000_kernel_mean_hue_50_degrees():
    # Mean hue 50 degrees, where the kernel's angle helper is singular (NaN):
    # the rotation term is negligible there, and the result finite and exact.
    pairs = [
        (_polar(50.0, 30.0, 50.0 - d), _polar(60.0, 60.0, 50.0 + d))
        for d in (0.0, 1e-12, 1e-8, 1e-3, 1.0, 30.0, 80.0)
    ]
    pairs += [
        (
            [50.0, 10.0, 10.0 * math.tan(math.radians(50))],
            [60.0, 20.0, 20.0 * math.tan(math.radians(50))],
        )
    ]
    lab1 = np.array([p[0] for p in pairs])
    lab2 = np.array([p[1] for p in pairs])
    assert np.isfinite(_check_against_skimage(lab1, lab2)).all()


def test_ciede2000_kernel_greys_and_tiny_chromas():
    # Zero chroma (skimage: no hue difference), signed zeros, and chromas small
    # enough that a * (1 + G) squared underflows, against greys and colours.
    greys = [[50.0, 0.0, 0.0], [50.0, -0.0, 0.0], [50.0, 0.0, -0.0], [50.0, -0.0, -0.0]]
    small = [
        [40.0, t * sa, t * sb]
        for t in (1e-300, 1e-200, 1e-160, 1e-150, 1e-100, 1e-20, 1e-8)
        for sa, sb in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1))
    ]
    colours = [
        [60.0, 20.0, 0.0],
        [60.0, -20.0, 0.0],
        [60.0, -20.0, -0.0],
        [30.0, 0.0, -45.0],
        _polar(55.0, 50.0, 275.0),
        _polar(55.0, 50.0, 100.0),
        _polar(55.0, 1e-3, 200.0),
    ]
    pairs = [(p, q) for p in greys + small for q in greys + small[::7] + colours]
    lab1 = np.array([p[0] for p in pairs])
    lab2 = np.array([p[1] for p in pairs])
    _check_against_skimage(lab1, lab2)


def test_ciede2000_kernel_passes_nan_on():
    from skimage.color import deltaE_ciede2000

    good = [50.0, 20.0, -30.0]
    lab1, lab2 = [], []
    for c in range(3):
        bad = list(good)
        bad[c] = math.nan
        lab1 += [bad, good, bad, [50.0, 0.0, 0.0]]
        lab2 += [good, bad, [50.0, 0.0, 0.0], bad]
    lab1, lab2 = np.array(lab1), np.array(lab2)
    assert np.isnan(deltaE_ciede2000(lab1, lab2)).all()
    assert np.isnan(_kernel_each(lab1, lab2)).all()
    # In a vector lane too: one NaN pair among good ones makes the sum NaN.
    rng = np.random.default_rng(3)
    good1, good2 = _random_lab(rng, 300), _random_lab(rng, 300)
    entries, weights = np.arange(300, dtype=np.intp), np.ones(300)
    assert math.isfinite(_ciede2000_sum(good1, good2, entries, weights))
    for i in range(len(lab1)):
        bad1, bad2 = good1.copy(), good2.copy()
        bad1[100], bad2[100] = lab1[i], lab2[i]
        assert math.isnan(_ciede2000_sum(bad1, bad2, entries, weights))


def test_ciede2000_kernel_sum_is_the_pairs_in_order():
    # The slice adds w_i * dE_i in pair order, whatever its blocks: the total
    # is bit-identical to that sum of the pairs' own values, and to itself.
    rng = np.random.default_rng(7)
    lab1, pal = _random_lab(rng, 1000), _random_lab(rng, 9)
    entries = rng.integers(0, len(pal), len(lab1)).astype(np.intp)
    weights = rng.integers(1, 100, len(lab1)).astype(np.float64)
    values = _kernel_each(lab1, pal[entries])
    in_order = 0.0
    for w, v in zip(weights, values, strict=True):
        in_order += w * v
    chroma = np.sqrt(pal[:, 1] ** 2 + pal[:, 2] ** 2)
    total = _ciede2000_slice(lab1, pal, chroma, entries, weights, 0, len(lab1))
    assert total == in_order
    assert _ciede2000_sum(lab1, pal, entries, weights) == total
    assert _ciede2000_sum(lab1, pal, entries, weights) == total


def test_ciede2000_kernel_polynomials_match_libm():
    # The vectorisable stand-ins for exp, sin and atan2, on the ranges used.
    ys = np.concatenate([np.linspace(0, 50, 20_001), [1e-300, 0.0625, 49.99999]])
    got = np.array([_exp_neg(y) for y in ys])
    np.testing.assert_allclose(got, np.exp(-ys), rtol=4e-16, atol=0)
    assert _exp_neg(60.0) == _exp_neg(50.0) == _exp_neg(math.nan)

    angles = np.concatenate([np.linspace(0, math.pi / 3, 10_001), [1e-300, 1e-8]])
    got = np.array([_sin_small(a) for a in angles])
    np.testing.assert_allclose(got, np.sin(angles), rtol=4e-16, atol=0)

    # Mean hues where the rotation term counts (100 to 360 degrees), and the
    # seam: 0/360 maps to 130 or to -230 degrees.
    hues = np.radians(np.linspace(100, 360, 26_001)[:-1])
    got = np.array([_hue_from_230(math.cos(h), math.sin(h)) for h in hues])
    np.testing.assert_allclose(got, hues - math.radians(230), rtol=0, atol=2e-15)
    assert _hue_from_230(1.0, -1e-9) == pytest.approx(math.radians(130), abs=2e-9)
    assert _hue_from_230(1.0, 1e-9) == pytest.approx(math.radians(-230), abs=2e-9)
    # Elsewhere the rotation term is below 1e-21 of the others and the angle
    # need not be exact; around 50 degrees it is not (NaN at 50), and the
    # kernel's exp reads NaN as the largest argument.
    hues = np.radians(np.linspace(0.01, 100, 10_001))
    got = np.array([_hue_from_230(math.cos(h), math.sin(h)) for h in hues])
    far = np.abs(hues - math.radians(50)) > math.radians(1)
    np.testing.assert_allclose(got[far], hues[far] - math.radians(230), atol=1e-9)
    error = np.abs(got[~far] - (hues[~far] - math.radians(230)))
    assert np.all(np.isnan(error) | (error < 1e-6))


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
