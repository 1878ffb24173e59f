"""Colour differences, compiled: CIEDE2000 as scikit-image's ``deltaE_ciede2000``
(``kL = kC = kH = 1``) as a vectorising fast path plus a line-by-line port for
the pairs the fast path cannot do, summed deterministically on every core; the
weighted squared error behind PSNR; and the CIELAB values of integer colours."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import gather

# Pairs above which the CIEDE2000 sum runs in threads, and the pairs summed on
# their own before the chunks' sums are added (fixed, so that the total does not
# depend on the number of threads).
_CIEDE_PARALLEL_PAIRS = 1 << 14


_CIEDE_CHUNK = 1 << 12


# Pairs per block of _ciede2000_slice: its scratch columns (9 x 2 KiB) stay in L1.
_CIEDE_BLOCK = 256


# Constants of skimage's deltaE_ciede2000, computed as it computes them.
_TWO_PI = 2 * np.pi


_DEG30 = float(np.deg2rad(30))


_DEG6 = float(np.deg2rad(6))


_DEG63 = float(np.deg2rad(63))


_RAD2DEG = float(np.rad2deg(1.0))


_POW25_7 = float(25**7)


_COS30, _SIN30 = math.cos(_DEG30), math.sin(_DEG30)


_COS6, _SIN6 = math.cos(_DEG6), math.sin(_DEG6)


_COS63, _SIN63 = math.cos(_DEG63), math.sin(_DEG63)


# Constants of the fast path (_ciede2000_pair); the comments there say why.
# Below these, the two hues are opposite or the mean hue on the 0/360 seam, to
# within far more than round-off, and the pair takes skimage's own formula.
_CIEDE_OPPOSITE = 1e-9


_CIEDE_SEAM = 1e-9


# The mean hue is measured from 230 degrees, half-way round from 50 degrees, the
# middle of the hues where the rotation term is below round-off.
_COS230, _SIN230 = math.cos(math.radians(230.0)), math.sin(math.radians(230.0))


_DEG130 = math.radians(130.0)  # 0/360 degrees, measured from 230


# atan(t) = t P(t^2) / Q(t^2): a rational fit (least squares on 300 Chebyshev
# nodes, reweighted towards minimax, in mpmath at 60 digits) of atan(t)/t on
# |t| <= 0.65; the relative error with these doubles is below 1e-17 there (and
# 2e-10 at |t| = 1, where the angle no longer matters).
_ATAN_P1, _ATAN_P2, _ATAN_P3, _ATAN_P4, _ATAN_P5 = (
    2.1641071785470096,
    1.5976050731529734,
    0.4648283867563557,
    0.04504719094265399,
    0.0006492044068868133,
)


_ATAN_Q1, _ATAN_Q2, _ATAN_Q3, _ATAN_Q4, _ATAN_Q5 = (
    2.4974405118803418,
    2.2300852437798935,
    0.8515591751579871,
    0.12854930558112235,
    0.005186443030055489,
)


# exp(-y) for y in [0, 50] as exp(-j/16) exp(-r), r in [0, 1/16): a table and
# the Taylor series to r^9 (truncation error below 3e-19). y is clipped to 50:
# from there on exp(-y) < 2e-22 and the rotation term is lost in the round-off
# of the others.
_EXP_Y_MAX = 50.0


_EXP_TABLE = np.array([math.exp(-j / 16) for j in range(int(_EXP_Y_MAX * 16) + 1)])


_EXP_C = tuple((-1.0) ** n / math.factorial(n) for n in range(10))


# sin(a) for a in [0, pi/3], the Taylor series to a^17 (truncation error 2e-17).
_SIN_C = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(9))


@njit(nogil=True, cache=True)
def _ciede2000_exact(L1, a1, b1, chroma1, L2, a2, b2, chroma2):  # pragma: no cover
    # A line-by-line port of skimage.color.deltaE_ciede2000 (kL = kC = kH = 1),
    # scalar instead of masked arrays; keep it in step with that source. chroma1
    # and chroma2 are the chromas of (a, b), which the caller computes once per
    # colour. Two expressions are evaluated in equal but cheaper forms (Cbar**7
    # and T): as libm's pow and four cosines they took a third of the time, and
    # the round-off differs from skimage's by about 1e-14 relative. Only the pairs
    # that _ciede2000_pair cannot do take this path.
    Cbar = 0.5 * (chroma1 + chroma2)
    c2 = Cbar * Cbar
    c7 = c2 * c2 * c2 * Cbar  # Cbar**7 without libm's pow
    G = 0.5 * (1 - math.sqrt(c7 / (c7 + _POW25_7)))
    scale = 1 + G
    # skimage's _cart2polar_2pi: hue in [0, 2 pi). It adds 0.0 to the others,
    # which turns a hue of -0.0 into +0.0; so does this.
    C1 = math.hypot(a1 * scale, b1)
    h1 = math.atan2(b1, a1 * scale)
    h1 += _TWO_PI if h1 < 0.0 else 0.0
    C2 = math.hypot(a2 * scale, b2)
    h2 = math.atan2(b2, a2 * scale)
    h2 += _TWO_PI if h2 < 0.0 else 0.0

    L_term, C_term, Cbar = _ciede2000_lc(L1, L2, C1, C2)

    h_diff = h2 - h1
    h_sum = h1 + h2
    CC = C1 * C2

    dH = h_diff
    if h_diff > np.pi:
        dH -= _TWO_PI
    if h_diff < -np.pi:
        dH += _TWO_PI
    # skimage's convention when either colour has zero chroma: no hue difference,
    # and the "mean" hue is the sum of the two hues rather than their average.
    if CC == 0.0:
        dH = 0.0
    dH_term = 2 * math.sqrt(CC) * math.sin(dH / 2)

    Hbar = h_sum
    if CC != 0.0 and abs(h_diff) > np.pi:
        if h_sum < _TWO_PI:
            Hbar += _TWO_PI
        else:
            Hbar -= _TWO_PI
    if CC == 0.0:
        Hbar *= 2
    Hbar *= 0.5

    # T = 1 - 0.17 cos(H - 30deg) + 0.24 cos(2H) + 0.32 cos(3H + 6deg)
    #       - 0.20 cos(4H - 63deg), from one cos and one sin of H (angle sums and
    # multiple angles) instead of four cosines.
    T = _ciede2000_T(math.cos(Hbar), math.sin(Hbar))
    SH = 1 + 0.015 * Cbar * T
    H_term = dH_term / SH

    c2 = Cbar * Cbar
    c7 = c2 * c2 * c2 * Cbar
    Rc = 2 * math.sqrt(c7 / (c7 + _POW25_7))
    x = (Hbar * _RAD2DEG - 275) / 25
    dtheta = _DEG30 * math.exp(-(x * x))
    R_term = -math.sin(2 * dtheta) * Rc * C_term * H_term

    dE2 = L_term * L_term
    dE2 += C_term * C_term
    dE2 += H_term * H_term
    dE2 += R_term
    # As np.maximum(dE2, 0): clips negative round-off, passes NaN on.
    if dE2 < 0.0:
        dE2 = 0.0
    return math.sqrt(dE2)


@njit(nogil=True, cache=True, inline="always")
def _ciede2000_lc(L1, L2, C1, C2):  # pragma: no cover
    # skimage's lightness and chroma terms, and the mean chroma C'bar.
    Lbar = 0.5 * (L1 + L2)
    tmp = (Lbar - 50) * (Lbar - 50)
    SL = 1 + 0.015 * tmp / math.sqrt(20 + tmp)
    Cbar = 0.5 * (C1 + C2)
    SC = 1 + 0.045 * Cbar
    return (L2 - L1) / SL, (C2 - C1) / SC, Cbar


@njit(nogil=True, cache=True, inline="always")
def _ciede2000_T(cos1, sin1):  # pragma: no cover
    # skimage's T from cos(H) and sin(H) by angle sums and multiple angles.
    cos2, sin2 = 2 * cos1 * cos1 - 1, 2 * sin1 * cos1
    cos3, sin3 = cos1 * (4 * cos1 * cos1 - 3), sin1 * (3 - 4 * sin1 * sin1)
    cos4, sin4 = 2 * cos2 * cos2 - 1, 2 * sin2 * cos2
    return (
        1
        - 0.17 * (cos1 * _COS30 + sin1 * _SIN30)
        + 0.24 * cos2
        + 0.32 * (cos3 * _COS6 - sin3 * _SIN6)
        - 0.20 * (cos4 * _COS63 + sin4 * _SIN63)
    )


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _hue_from_230(c, s):  # pragma: no cover
    # The angle of the unit vector (c, s) minus 230 degrees, in (-230, 130]
    # degrees (so plus 230 it is in [0, 360), skimage's range), without atan2:
    # rotated by -230 degrees to (cp, sp), the angle phi has
    # tan(phi / 4) = sp / (1 + cp + sqrt(2 + 2 cp)) (the half-angle formula
    # twice), in [-0.64, 0.64] for |phi| <= 130 degrees and at most 1 beyond;
    # there a rational function gives atan to round-off, in a few multiplies
    # that vectorise, where libm's atan2 is a call. Near phi = +-180 degrees
    # (hue 50) it loses accuracy or is NaN, but there the rotation term is below
    # 1e-35 of the others and the caller clips it.
    cp = c * _COS230 + s * _SIN230
    sp = s * _COS230 - c * _SIN230
    t = sp / (1.0 + cp + math.sqrt(abs(2.0 + 2.0 * cp)))
    z = t * t
    p = 1.0 + z * (
        _ATAN_P1 + z * (_ATAN_P2 + z * (_ATAN_P3 + z * (_ATAN_P4 + z * _ATAN_P5)))
    )
    q = 1.0 + z * (
        _ATAN_Q1 + z * (_ATAN_Q2 + z * (_ATAN_Q3 + z * (_ATAN_Q4 + z * _ATAN_Q5)))
    )
    phi = 4.0 * t * p / q
    return phi - _TWO_PI if phi > _DEG130 else phi


@njit(nogil=True, cache=True, inline="always")
def _exp_neg(y):  # pragma: no cover
    # exp(-y) for y in [0, 50] (see _EXP_TABLE), NaN read as 50: a table lookup
    # and a polynomial, which vectorise, where libm's exp is a call.
    y = y if y < _EXP_Y_MAX else _EXP_Y_MAX
    j = int(y * 16.0)
    r = y - j * 0.0625  # exact: j / 16 is within a factor 2 of y
    poly = 0.0
    for c in _EXP_C[::-1]:
        poly = poly * r + c
    return _EXP_TABLE[j] * poly


@njit(nogil=True, cache=True, inline="always")
def _sin_small(a):  # pragma: no cover
    # sin(a) for a in [0, pi/3], a polynomial that vectorises (see _SIN_C).
    w = a * a
    poly = 0.0
    for c in _SIN_C[:0:-1]:
        poly = poly * w + c
    return a + a * w * poly


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _ciede2000_pair(L1, a1, b1, chroma1, L2, a2, b2, chroma2):  # pragma: no cover
    # CIEDE2000 as skimage computes it, in a form without branches or calls so
    # that a loop over pairs vectorises: skimage's two atan2, and the sin, cos and
    # sin of the hue terms, become square roots and divisions of the two hue
    # vectors, and the one angle left (for the rotation term's exp) a rational
    # function; exp and sin of the rotation term become polynomials. Returns -1.0
    # for the pairs where the vector forms are ill-conditioned or skimage's
    # branches decide the value (hues opposite, mean hue on the 0/360 seam);
    # those take _ciede2000_exact. The values differ from skimage's in round-off
    # only, as the line-by-line port's did: on 920,000 pairs of rgb2lab colours
    # (16- and 256-entry palettes, nearest and random entries) by at most
    # 8.5e-14 (the port: 8.5e-14), and on a million uniform Lab pairs by at most
    # 2.0e-13 (the port: 2.6e-13); median 1.4e-16 relative.
    Cbar = 0.5 * (chroma1 + chroma2)
    c2 = Cbar * Cbar
    c7 = c2 * c2 * c2 * Cbar
    # abs() of non-negative values: it tells LLVM that the square root needs no
    # NaN check, which would stop the loop vectorising.
    G = 0.5 * (1 - math.sqrt(abs(c7 / (c7 + _POW25_7))))
    scale = 1 + G
    x1, x2 = a1 * scale, a2 * scale
    # hypot without its overflow guard: Lab values are far from overflow.
    C1 = math.sqrt(x1 * x1 + b1 * b1)
    C2 = math.sqrt(x2 * x2 + b2 * b2)

    L_term, C_term, Cbar = _ciede2000_lc(L1, L2, C1, C2)
    CC = C1 * C2
    # A grey (CC == 0): skimage sets the hue difference, hence the hue and
    # rotation terms, to 0; its sum of the rest, in the same order.
    dE2 = L_term * L_term
    dE2 += C_term * C_term
    grey = math.sqrt(dE2)

    # The unit hue vectors (NaN for a grey, whose result is `grey`).
    r1, r2 = 1.0 / C1, 1.0 / C2
    u1x, u1y = x1 * r1, b1 * r1
    u2x, u2y = x2 * r2, b2 * r2
    # dH, skimage's h2 - h1 wrapped into [-pi, pi]: |u2 - u1| = 2 |sin(dH / 2)|,
    # and sin(dH) = u1 x u2 gives the sign, so dH_term = 2 sqrt(CC) sin(dH / 2)
    # needs no atan2 or sin. The difference of the unit vectors, not
    # CC (1 - cos dH), which would cancel for close hues.
    dx, dy = u2x - u1x, u2y - u1y
    d2 = dx * dx + dy * dy
    cross = u1x * u2y - u1y * u2x
    dH_term = math.copysign(math.sqrt(CC * d2), cross)
    # skimage's mean hue Hbar (after its +-2 pi when |h2 - h1| > pi) is the
    # direction of u1 + u2, the bisector of the smaller angle. For hues more
    # than 90 degrees apart u1 + u2 is short and its direction inexact (1e-14
    # near 180 degrees apart), so take u2 - u1 turned by 90 degrees towards it,
    # whose length is at least sqrt 2. cos and sin of Hbar, for T, are then
    # that direction without trig.
    sx, sy = u1x + u2x, u1y + u2y
    s2 = sx * sx + sy * sy
    use_d = s2 < d2
    sign = math.copysign(1.0, cross)
    bx = sign * dy if use_d else sx
    by = -sign * dx if use_d else sy
    rb = 1.0 / math.sqrt(d2 if use_d else s2)
    cos1, sin1 = bx * rb, by * rb

    T = _ciede2000_T(cos1, sin1)
    SH = 1 + 0.015 * Cbar * T
    H_term = dH_term / SH

    c2 = Cbar * Cbar
    c7 = c2 * c2 * c2 * Cbar
    Rc = 2 * math.sqrt(abs(c7 / (c7 + _POW25_7)))
    x = (_hue_from_230(cos1, sin1) * _RAD2DEG - 45) / 25  # (Hbar in deg - 275) / 25
    dtheta = _DEG30 * _exp_neg(x * x)
    R_term = -_sin_small(2 * dtheta) * Rc * C_term * H_term

    dE2 += H_term * H_term
    dE2 += R_term
    # As np.maximum(dE2, 0): clips negative round-off, passes NaN on.
    dE2 = 0.0 if dE2 < 0.0 else dE2
    dE = math.sqrt(dE2)
    # Hues opposite to within 1e-9 rad: skimage's strict |h2 - h1| > pi decides
    # which of the two bisectors is Hbar. Mean hue within 1e-9 rad of 0/360: its
    # round-off decides whether Hbar is near 0 or near 2 pi, which the rotation
    # term's exp tells apart. Both differ from skimage's by far more than
    # round-off, so skimage's own formula takes these.
    exact = (use_d & (abs(cross) < _CIEDE_OPPOSITE)) | (
        (cos1 > 0.0) & (abs(sin1) <= _CIEDE_SEAM * cos1)
    )
    dE = -1.0 if exact else dE
    return grey if CC == 0.0 else dE


def _ciede2000_sum(
    lab: np.ndarray, pal_lab: np.ndarray, entries: np.ndarray, weights: np.ndarray
) -> float:
    """Weighted sum of CIEDE2000(lab[i], pal_lab[entries[i]]), on every core.

    The formula is compute-bound (about 20 ns a pair), so the pairs are summed in
    threads. They are summed in chunks of a fixed size, and the chunks' sums are
    added in chunk order, so the total is the same on every run and whatever the
    number of cores (a sweep's one-core report and a two-core ``size_report``
    agree bit for bit).
    """
    a, b = pal_lab[:, 1], pal_lab[:, 2]
    pal_chroma = np.sqrt(a * a + b * b)  # as the kernel computes the colours'
    n = len(lab)
    parts = np.zeros(-(-n // _CIEDE_CHUNK))

    def run(lo: int, hi: int) -> None:
        _ciede2000_chunks(
            lab, pal_lab, pal_chroma, entries, weights, lo, hi, _CIEDE_CHUNK, parts
        )

    gather.each_slice(len(parts), run, _CIEDE_PARALLEL_PAIRS // _CIEDE_CHUNK)
    return float(sum(parts.tolist()))


@njit(nogil=True, cache=True)
def _ciede2000_chunks(
    lab, pal_lab, pal_chroma, entries, weights, first, stop, chunk, parts
):  # pragma: no cover
    # Chunks first..stop-1: parts[c] is the sum over pairs c*chunk..(c+1)*chunk-1.
    n = len(lab)
    for c in range(first, stop):
        parts[c] = _ciede2000_slice(
            lab, pal_lab, pal_chroma, entries, weights, c * chunk,
            min(n, (c + 1) * chunk),
        )  # fmt: skip


@njit(nogil=True, cache=True, error_model="numpy")
def _ciede2000_slice(
    lab, pal_lab, pal_chroma, entries, weights, first, stop
):  # pragma: no cover
    # In blocks: gather the pairs into columns, compute the block in one loop
    # that LLVM vectorises (about 8x faster than pair by pair with libm's trig),
    # then redo the few flagged pairs with skimage's formula and add the block
    # in order. Each pair's value is the same in a vector lane as in the scalar
    # remainder (the same IEEE operations, no fast-math), so the sum does not
    # depend on where the blocks or the slices start.
    n = _CIEDE_BLOCK
    L1, a1, b1, ch1 = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    L2, a2, b2, ch2 = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    out = np.empty(n)
    total = 0.0
    for lo in range(first, stop, n):
        m = min(n, stop - lo)
        for k in range(m):
            i, j = lo + k, entries[lo + k]
            L1[k], a1[k], b1[k] = lab[i, 0], lab[i, 1], lab[i, 2]
            ch1[k] = math.sqrt(a1[k] * a1[k] + b1[k] * b1[k])
            L2[k], a2[k], b2[k] = pal_lab[j, 0], pal_lab[j, 1], pal_lab[j, 2]
            ch2[k] = pal_chroma[j]
        _ciede2000_block(L1, a1, b1, ch1, L2, a2, b2, ch2, out, m)
        for k in range(m):
            d = out[k]
            if d < 0.0:
                d = _ciede2000_exact(
                    L1[k], a1[k], b1[k], ch1[k], L2[k], a2[k], b2[k], ch2[k]
                )
            total += weights[lo + k] * d
    return total


@njit(nogil=True, cache=True, error_model="numpy")
def _ciede2000_block(L1, a1, b1, ch1, L2, a2, b2, ch2, out, m):  # pragma: no cover
    # The loop LLVM vectorises: no calls, no branches, all columns contiguous.
    for k in range(m):
        out[k] = _ciede2000_pair(
            L1[k], a1[k], b1[k], ch1[k], L2[k], a2[k], b2[k], ch2[k]
        )


# --- CIELAB of integer colours -----------------------------------------------------


def integer_lab(colors: np.ndarray, unit: float) -> np.ndarray:
    """CIELAB of the RGB (first three channels) of uint8 or uint16 `colors`, read
    as sRGB in [0, `unit`] (clipped to [0, 1] after dividing by it).

    The values of ``rgb_to_lab(np.clip(colors[:, :3] / unit, 0, 1))`` bit for
    bit, in one pass over the colours and with the sRGB curve (a power, the
    slowest step) evaluated once per possible value, in a table: a sweep's
    million distinct colours convert in a quarter of the time.
    """
    from skimage.color import xyz_tristimulus_values

    from .srgb import XYZ_FROM_RGB as _XYZ_FROM_RGB
    from .srgb import srgb_to_linear as _srgb_to_linear

    colors = np.asarray(colors)
    if colors.dtype not in (np.uint8, np.uint16) or colors.ndim != 2:
        raise TypeError(f"expected (n, C) uint8 or uint16 colours, got {colors.dtype}.")
    values = np.arange(np.iinfo(colors.dtype).max + 1, dtype=np.float64)
    curve = _srgb_to_linear(np.clip(values / unit, 0, 1))
    white = xyz_tristimulus_values(illuminant="D65", observer="2", dtype=np.float64)
    out = np.empty((len(colors), 3))
    _integer_lab(colors, curve, _XYZ_FROM_RGB, white, out)
    return out


@njit(nogil=True, cache=True)
def _integer_lab(colors, curve, matrix, white, out):  # pragma: no cover
    # rgb_to_lab's operations in its order (no fused multiply-adds): the
    # linear map as its three column products summed left to right, the
    # division by the white point, then the cube root or its linear foot.
    f = np.empty(3)
    for i in range(colors.shape[0]):
        r, g, b = curve[colors[i, 0]], curve[colors[i, 1]], curve[colors[i, 2]]
        for j in range(3):
            x = (r * matrix[j, 0] + g * matrix[j, 1] + b * matrix[j, 2]) / white[j]
            f[j] = np.cbrt(x) if x > 0.008856 else 7.787 * x + 16.0 / 116.0
        out[i, 0] = 116.0 * f[1] - 16.0
        out[i, 1] = 500.0 * (f[0] - f[1])
        out[i, 2] = 200.0 * (f[1] - f[2])


# --- the squared error of PSNR -----------------------------------------------------


@njit(nogil=True, cache=True)
def squared_error(colors, weights, palette, entries):  # pragma: no cover
    """``sum_i weights[i] * |colors[i] - palette[entries[i]]|**2`` in float64.

    The k-means inertia's sum, term for term and in its order (so the same
    figure), in a loop that LLVM keeps tight: a third of the time a sweep's row
    spent in it.
    """
    total = 0.0
    for i in range(len(entries)):
        e = entries[i]
        d = 0.0
        for j in range(colors.shape[1]):
            t = float(colors[i, j]) - float(palette[e, j])
            d += t * t
        total += weights[i] * d
    return total
