"""Quality and size figures shared by the widget, the command line and benchmarks.

Conventions: ``mse`` is the mean over pixels of the squared error summed over
channels (Celebi's convention for colour quantisation); ``psnr`` uses the
per-channel MSE, ``10 log10(peak**2 / (mse / C))``, as image-processing tools do.
For RGBA images PSNR and mean CIEDE2000 cover only the pixels visible in the
original (alpha not 0) and only their colour (alpha is left out); ``mse`` covers
every pixel and channel.

:func:`size_report` gathers every figure of one result (raw and source sizes, the
formula size (indices plus palette), the real indexed-PNG bytes, ratio, PSNR, mean CIEDE2000) and
is the one place the widget, the command line and the sweep get them from.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ._engine.ciede2000 import _ciede2000_sum
from ._engine.quality import (
    Reference,
    SizeReport,
    build_size_report,
    checked_channel_axis,
    checked_data_range,
    checked_source_bytes,
    colour_unit,
    default_peak,
    describe_shape,
    formula_bits,
    measured_pixels,
    missing_peak,
    original_bits,
    pair,
    psnr_db,
    to_lab,
    with_weighted_psnr,
)
from ._engine.quality import has_ciede2000 as _has_ciede2000

if TYPE_CHECKING:
    from .quantize import QuantizeResult

# Documented where users import them from.
for _public in (SizeReport, describe_shape, formula_bits, original_bits):
    _public.__module__ = __name__
del _public


# The names the napari side imported before the public ones existed; kept until
# its callers switch to has_ciede2000 and check_data_range.
def _has_ciede(
    dtype: np.dtype, lo: object, hi: object, data_range: float | None
) -> bool:
    return has_ciede2000(dtype, lo, hi, data_range=data_range)


_checked_data_range = checked_data_range
_size_report = build_size_report


def has_ciede2000(
    dtype: np.dtype | type,
    lo: float = 0,
    hi: float = 0,
    *,
    data_range: float | None = None,
) -> bool:
    """Whether RGB(A) colours of `dtype` get a mean CIEDE2000 in a size report.

    Floats must lie in [0, 1] (give the image's smallest and largest value as
    `lo` and `hi`); integers need a known full intensity: the dtype's maximum
    for 8- and 16-bit integers, `data_range` for 32- and 64-bit ones.

    Parameters
    ----------
    dtype : numpy dtype
        The image's dtype.
    lo, hi : float, optional
        The image's smallest and largest value (only read for floats).
    data_range : float, optional
        The value of full intensity, as for :func:`size_report`.

    Returns
    -------
    bool

    Examples
    --------
    >>> has_ciede2000(np.uint8), has_ciede2000(np.int32)
    (True, False)
    >>> has_ciede2000(np.int32, data_range=4095)
    True
    """
    return _has_ciede2000(np.dtype(dtype), lo, hi, checked_data_range(data_range))


def check_data_range(data_range: float | None) -> float | None:
    """`data_range` as a float, or None; ValueError unless it is a finite number
    above 0 (the check of every function taking a ``data_range``).

    Parameters
    ----------
    data_range : float or None
        The peak value (e.g. 4095 for 12-bit data), or None for the default.

    Returns
    -------
    float or None

    Raises
    ------
    ValueError
        If `data_range` is not None and not a finite number above 0.

    Examples
    --------
    >>> check_data_range(4095)
    4095.0
    """
    return checked_data_range(data_range)


__all__ = [
    "SizeReport",
    "check_data_range",
    "describe_shape",
    "formula_bits",
    "has_ciede2000",
    "mean_ciede2000",
    "mse",
    "original_bits",
    "psnr",
    "size_report",
]


def mse(
    original: np.ndarray, quantized: np.ndarray, *, channel_axis: int | None = -1
) -> float:
    """Mean squared error per pixel, summed over the colour channels.

    Parameters
    ----------
    original, quantized : ndarray
        Images of the same shape.
    channel_axis : int or None, optional
        Axis of the channels; None for single-channel images.

    Returns
    -------
    mse : float
        ``mean over pixels of sum over channels of (original - quantized)**2``.

    Raises
    ------
    ValueError
        If the shapes differ, the images are empty or 0-d, hold NaN or infinity,
        or `channel_axis` is not one of their axes.

    Examples
    --------
    >>> mse(np.zeros((1, 2, 3)), np.ones((1, 2, 3)))
    3.0
    """
    a, b = pair(original, quantized)
    checked_channel_axis(channel_axis, a.ndim, optional=True)
    diff = a.astype(np.float64) - b.astype(np.float64)
    sq = diff * diff
    if channel_axis is None:
        return float(sq.mean())
    return float(sq.sum(axis=channel_axis).mean())


def psnr(
    original: np.ndarray,
    quantized: np.ndarray,
    *,
    channel_axis: int | None = -1,
    data_range: float | None = None,
) -> float:
    """Peak signal-to-noise ratio in dB (per-channel MSE).

    For RGBA images (4 channels along `channel_axis`) the MSE is over the colour
    channels of the pixels whose alpha in `original` is not 0: a fully
    transparent pixel's colour is arbitrary and never seen (``quantize`` maps all
    of them to one transparent entry), and alpha is no colour channel (averaged
    in, an opaque image's perfect alpha would raise PSNR by 1.25 dB).

    Parameters
    ----------
    original, quantized : ndarray
        Images of the same shape.
    channel_axis : int or None, optional
        Axis of the channels (4 along it are read as RGBA); None for
        single-channel images, including a grey image whose last axis happens
        to be 4 long.
    data_range : float, optional
        The peak value (finite, > 0). By default, as scikit-image's
        ``peak_signal_noise_ratio``, the range of the dtype for 8- and 16-bit
        integers (its maximum, or maximum minus minimum if `original` has negative
        values; so 12-bit data stored as uint16 needs ``data_range=4095``); 1 for
        floats in [0, 1], and their actual range for other floats (as
        :func:`size_report`, which keeps float values as they are). For 32- and
        64-bit integers the dtype's range (2**31 or more) says
        nothing about the data, so the default is the original's actual range,
        ``original.max() - original.min()`` over all pixels and channels (at
        least 1).

    Returns
    -------
    psnr : float
        ``10 log10(data_range**2 / mse_per_channel)``; ``inf`` for identical images
        and for RGBA images with no visible pixel (nothing visible differs).

    Raises
    ------
    ValueError
        If the shapes differ, the images are empty or 0-d, hold NaN or infinity,
        `channel_axis` is not one of their axes, `data_range` is not a finite
        number above 0, or it is None and `original` is a constant float image
        outside [0, 1] (whose range gives no peak) that differs from `quantized`.

    Examples
    --------
    >>> a = np.zeros((4, 4, 3), dtype=np.uint8)
    >>> round(psnr(a, a + 1), 2)
    48.13
    >>> b = np.full((4, 4), 4000, dtype=np.uint16)  # 12-bit data
    >>> round(psnr(b, b + 1, channel_axis=None, data_range=4095), 2)
    72.25
    """
    a, b = pair(original, quantized)
    checked_channel_axis(channel_axis, a.ndim, optional=True)
    data_range = checked_data_range(data_range)
    if data_range is None:
        data_range = default_peak(a.dtype, a.min(), a.max())
    a, b = measured_pixels(a, b, channel_axis)
    if a.size == 0:
        return math.inf
    diff = a.astype(np.float64) - b.astype(np.float64)
    per_channel = float((diff * diff).mean())
    if per_channel == 0:
        return math.inf
    if data_range is None:
        raise missing_peak()
    return psnr_db(data_range, per_channel)


def mean_ciede2000(
    original: np.ndarray,
    quantized: np.ndarray,
    *,
    channel_axis: int = -1,
    data_range: float | None = None,
) -> float:
    """Mean CIEDE2000 colour difference between two RGB(A) images.

    Colours are read as sRGB (integers divided by the value of full intensity,
    floats in [0, 1]; values outside [0, 1] then clipped) and converted to CIELAB (D65) with the formulas of scikit-image's
    ``rgb2lab`` (:func:`~napari_kmeans_quantize.colorspace.rgb_to_lab`). The
    difference is CIEDE2000 as scikit-image's ``deltaE_ciede2000`` computes it
    (``kL = kC = kH = 1``), by a compiled, vectorised reformulation of that
    function that is tested to agree with it to about 1e-13. For RGBA images the
    mean is over the pixels whose alpha in `original` is not 0 (fully transparent
    ones are never seen), and alpha is otherwise ignored. A mean below about 2.3
    is roughly one just-noticeable difference.

    Parameters
    ----------
    original, quantized : ndarray
        RGB or RGBA images of the same shape.
    channel_axis : int, optional
        Axis of the channels.
    data_range : float, optional
        For integer images, the value of full intensity (finite, > 0), e.g. 4095 for
        12-bit data stored as uint16. Default: the dtype's maximum for 8- and
        16-bit integers; 32- and 64-bit integers have no known colour scale and
        need it. Floats are read in [0, 1] whatever it is.

    Returns
    -------
    delta_e : float
        Mean CIEDE2000 over pixels; 0.0 for RGBA images with no visible pixel
        (nothing visible differs, as PSNR is then ``inf``).

    Raises
    ------
    ValueError
        If the shapes differ, the images are empty or 0-d, hold NaN or infinity,
        `channel_axis` is None or not one of their axes, they do not have 3 or 4
        channels along it, `data_range`
        is not a finite number above 0, or the images hold 32- or 64-bit integers
        and `data_range` is not given.

    Examples
    --------
    >>> a = np.zeros((2, 2, 3), dtype=np.uint8)
    >>> mean_ciede2000(a, a)
    0.0
    """
    a, b = pair(original, quantized)
    checked_channel_axis(channel_axis, a.ndim, optional=False)
    data_range = checked_data_range(data_range)
    if a.shape[channel_axis] not in (3, 4):
        raise ValueError(
            "mean_ciede2000 needs RGB or RGBA images, got "
            f"{a.shape[channel_axis]} channel(s) along axis {channel_axis}."
        )
    scale = colour_unit(a.dtype, data_range)
    if scale is None:
        raise ValueError(
            f"{a.dtype} colours have no known full intensity; pass data_range (the "
            "value of full intensity, e.g. 4095 for 12-bit data)."
        )
    a, b = measured_pixels(a, b, channel_axis)
    if len(a) == 0:
        return 0.0
    # Distinct colour pairs are far fewer than pixels; convert each pair once.
    pairs = np.concatenate([a[:, :3], b[:, :3]], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    lab_a = to_lab(uniq[:, :3], scale)
    lab_b = to_lab(uniq[:, 3:], scale)
    entries = np.arange(len(uniq), dtype=np.intp)
    total = _ciede2000_sum(lab_a, lab_b, entries, counts.astype(np.float64))
    return float(total / counts.sum())


def size_report(
    result: QuantizeResult,
    original: np.ndarray | None = None,
    source_bytes: int | None = None,
    *,
    data_range: float | None = None,
    weights: np.ndarray | None = None,
    file_formats: bool = False,
) -> SizeReport:
    """Sizes and quality of a quantisation result, in one place.

    PSNR's peak, by default: for 8- and 16-bit integers the dtype's range, as in
    scikit-image (255 for uint8, 65535 for uint16, whatever bits the camera used;
    so give ``data_range=4095`` for 12-bit data stored as uint16); for 32- and
    64-bit integers, whose dtype range (2**31 or more) says nothing about the data,
    the original's actual range, ``original.max() - original.min()`` over all
    pixels and channels (at least 1); for floats 1 if the original lies in [0, 1],
    otherwise its actual range. CIEDE2000 reads integer colours as fractions of
    the same full intensity: the dtype's maximum for 8- and 16-bit integers,
    `data_range` if given; 32- and 64-bit integers without `data_range` have no
    known colour scale and no CIEDE2000.

    Any channel count works: the palette costs ``k * C * bits`` (C channels of the
    dtype's bits), so the formula size is ``H * W * ceil(log2 k) + k * C * bits``.
    PSNR covers every channel; CIEDE2000 exists only for RGB and RGBA (None for
    other channel counts, and for 4 channels quantised with ``alpha=False``).

    For RGBA images both figures cover only the pixels whose alpha in the original
    is not 0 (a fully transparent pixel's colour is arbitrary and unseen, and
    ``quantize`` maps all of them to one transparent entry), and PSNR only their
    three colour channels; with no visible pixel, PSNR is inf and CIEDE2000 0.0.

    Parameters
    ----------
    result : QuantizeResult
        What :func:`~napari_kmeans_quantize.quantize` (or ``apply_palette``)
        returned.
    original : ndarray, optional
        The image that was quantised, in the same layout as ``result.image``.
        Without it, PSNR and CIEDE2000 are None.
    source_bytes : int, optional
        Size in bytes of the file the image was read from.
    data_range : float, optional
        The peak value for PSNR and, for integer RGB(A) images, the value of full
        intensity for CIEDE2000 (finite, > 0); like scikit-image's
        ``peak_signal_noise_ratio``. Default: see above.
    weights : ndarray, optional
        The importance map the image was quantised with (or any map of its
        spatial shape): ``psnr_weighted`` then gives the quality inside the
        region it marks, beside the overall ``psnr``. Needs `original`.
    file_formats : bool, optional
        Also encode the result in every exact file format that holds it and give
        their bytes (``file_bytes``, ``smallest_format``); a lossless WebP of a
        768 x 512 photo adds about 0.1 s. Default False. Channels that are no
        colours (not grey, RGB or RGBA) have no such files (None, as the PNG).

    Returns
    -------
    report : SizeReport
        Raw, source, formula and real indexed-PNG sizes, ratios, PSNR and mean
        CIEDE2000 (exact, over every pixel measured: computed from the distinct
        colours of the original and the palette entry each of them went to).

    Raises
    ------
    ValueError
        If `original` does not have the shape of ``result.image``, `data_range` is
        not a finite number above 0, or `source_bytes` is not a whole number >= 0.

    Examples
    --------
    >>> from skimage import data
    >>> from napari_kmeans_quantize import quantize
    >>> image = data.astronaut()
    >>> report = size_report(quantize(image, 16), image)
    >>> report.original_bits == 512 * 512 * 24, report.formula_bits
    (True, 1048960)
    >>> report.png_bytes < report.original_bytes / 4 and report.psnr > 20
    True
    >>> files = size_report(quantize(image, 16), file_formats=True).file_bytes
    >>> sorted(files)
    ['png', 'webp']
    """
    data_range = checked_data_range(data_range)
    source_bytes = checked_source_bytes(source_bytes)
    ref = None
    if original is not None:
        ref = Reference(
            original, result.channel_axis, data_range=data_range, alpha=result.alpha
        )
    report = build_size_report(result, ref, source_bytes, file_formats=file_formats)
    return with_weighted_psnr(report, result, original, weights)
