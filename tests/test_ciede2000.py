"""The compiled CIEDE2000 (``_engine.ciede2000``) against scikit-image's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_kmeans_quantize._engine.ciede2000 import (
    _ciede2000_slice,
    _ciede2000_sum,
    _exp_neg,
    _hue_from_230,
    _sin_small,
)


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


@pytest.mark.parametrize(
    ("dtype", "unit"),
    [(np.uint8, 255.0), (np.uint8, 200.0), (np.uint16, 65535.0), (np.uint16, 4095.0)],
)
def test_integer_lab_is_rgb_to_lab_bit_for_bit(dtype, unit):
    # The quality figures read CIELAB through the table form: it must give
    # exactly the colours rgb_to_lab gives (so no figure changes), including
    # values above `unit` (clipped), blacks, whites and the sRGB curve's knee.
    from napari_kmeans_quantize._engine.ciede2000 import integer_lab
    from napari_kmeans_quantize.colorspace import rgb_to_lab

    rng = np.random.default_rng(3)
    top = np.iinfo(dtype).max
    colors = rng.integers(0, top + 1, (200_000, 4)).astype(dtype)
    edges = np.array([0, 1, 10, 11, 12, int(unit) - 1, int(unit), top], dtype)
    grid = np.stack(np.meshgrid(edges, edges, edges, indexing="ij"), -1).reshape(-1, 3)
    colors[: len(grid), :3] = grid
    expected = rgb_to_lab(np.clip(colors[:, :3].astype(np.float64) / unit, 0, 1))
    got = integer_lab(colors, unit)
    assert got.dtype == np.float64 and got.shape == (len(colors), 3)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(integer_lab(colors[::3, :3], unit), expected[::3])
    with pytest.raises(TypeError, match="uint8 or uint16"):
        integer_lab(colors.astype(np.int32), unit)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_squared_error_is_the_inertia_term_for_term(dtype):
    from napari_kmeans_quantize._engine.ciede2000 import squared_error
    from napari_kmeans_quantize._engine.kmeans import weighted_inertia

    rng = np.random.default_rng(4)
    colors = rng.integers(0, 256, (10_000, 3)).astype(dtype)
    palette = rng.integers(0, 256, (17, 3)).astype(dtype)
    entries = rng.integers(0, len(palette), len(colors))
    weights = rng.integers(0, 50, len(colors)).astype(np.float64)
    direct = weights @ ((colors.astype(float) - palette[entries]) ** 2).sum(axis=1)
    total = squared_error(colors, weights, palette, entries)
    assert total == weighted_inertia(colors, weights, palette, entries)
    assert total == pytest.approx(direct, rel=1e-12)
    assert squared_error(colors, weights, palette, entries.astype(np.uint8)) == total
