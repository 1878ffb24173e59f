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
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from . import gather
from .kmeans import _inertia

if TYPE_CHECKING:
    from .histogram import ColorHistogram
    from .quantize import QuantizeResult

__all__ = [
    "SizeReport",
    "describe_shape",
    "formula_bits",
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
        If the shapes differ.

    Examples
    --------
    >>> mse(np.zeros((1, 2, 3)), np.ones((1, 2, 3)))
    3.0
    """
    a, b = _pair(original, quantized)
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
        If the shapes differ or `data_range` is not a finite number above 0.

    Examples
    --------
    >>> a = np.zeros((4, 4, 3), dtype=np.uint8)
    >>> round(psnr(a, a + 1), 2)
    48.13
    >>> b = np.full((4, 4), 4000, dtype=np.uint16)  # 12-bit data
    >>> round(psnr(b, b + 1, channel_axis=None, data_range=4095), 2)
    72.25
    """
    a, b = _pair(original, quantized)
    data_range = _checked_data_range(data_range)
    if data_range is None:
        data_range = _default_peak(a.dtype, a.min(), a.max())
    a, b = _measured_pixels(a, b, channel_axis)
    if a.size == 0:
        return math.inf
    diff = a.astype(np.float64) - b.astype(np.float64)
    per_channel = float((diff * diff).mean())
    if per_channel == 0:
        return math.inf
    return _psnr_db(data_range, per_channel)


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
        If the shapes differ, the images have fewer than 3 channels, `data_range`
        is not a finite number above 0, or the images hold 32- or 64-bit integers
        and `data_range` is not given.

    Examples
    --------
    >>> a = np.zeros((2, 2, 3), dtype=np.uint8)
    >>> mean_ciede2000(a, a)
    0.0
    """
    a, b = _pair(original, quantized)
    data_range = _checked_data_range(data_range)
    if a.shape[channel_axis] < 3:
        raise ValueError(
            "mean_ciede2000 needs RGB or RGBA images, got "
            f"{a.shape[channel_axis]} channel(s) along axis {channel_axis}."
        )
    scale = _colour_unit(a.dtype, data_range)
    if scale is None:
        raise ValueError(
            f"{a.dtype} colours have no known full intensity; pass data_range (the "
            "value of full intensity, e.g. 4095 for 12-bit data)."
        )
    a, b = _measured_pixels(a, b, channel_axis)
    if len(a) == 0:
        return 0.0
    # Distinct colour pairs are far fewer than pixels; convert each pair once.
    pairs = np.concatenate([a[:, :3], b[:, :3]], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    lab_a = _to_lab(uniq[:, :3], scale)
    lab_b = _to_lab(uniq[:, 3:], scale)
    entries = np.arange(len(uniq), dtype=np.intp)
    total = _ciede2000_sum(lab_a, lab_b, entries, counts.astype(np.float64))
    return float(total / counts.sum())


def formula_bits(n_pixels: int, n_colors: int, bits_per_color: int = 24) -> int:
    """Size of an indexed image by the formula indices + palette, in bits.

    ``n_pixels * ceil(log2 k) + k * bits_per_color``: one index per pixel plus the
    palette.

    Parameters
    ----------
    n_pixels : int
        Pixels in the image (H * W, times planes for stacks).
    n_colors : int
        Palette size k.
    bits_per_color : int, optional
        Bits of one palette entry (24 for RGB, 32 for RGBA).

    Returns
    -------
    bits : int

    Examples
    --------
    >>> formula_bits(750 * 1000, 64)
    4501536
    """
    index_bits = math.ceil(math.log2(n_colors)) if n_colors > 1 else 0
    return int(n_pixels) * index_bits + int(n_colors) * bits_per_color


def original_bits(n_pixels: int, bits_per_pixel: int = 24) -> int:
    """Size of the uncompressed image in bits: ``n_pixels * bits_per_pixel``.

    Examples
    --------
    >>> original_bits(750 * 1000)
    18000000
    """
    return int(n_pixels) * bits_per_pixel


@dataclass(frozen=True)
class SizeReport:
    """Size and quality of one quantisation result (see :func:`size_report`).

    Attributes
    ----------
    shape : tuple of int
        Spatial shape of the labels (height, width, or leading axes too for stacks).
    n_pixels : int
        Pixels in the image (all planes).
    n_colors : int
        Palette entries actually used, k.
    n_colors_requested : int
        The k asked for.
    bits_per_pixel : int
        Bits of one pixel of the uncompressed original: channels x bits of the dtype
        (24 for 8-bit RGB, 32 for RGBA, 8 for 8-bit grey, 48 for 16-bit RGB).
    index_bits : int
        ``ceil(log2 k)``, bits of one palette index.
    bits_per_color : int
        Bits of one palette entry, equal to `bits_per_pixel`.
    original_bits : int
        ``n_pixels * bits_per_pixel``: the raw original (H*W*24 for 8-bit RGB).
    source_bytes : int or None
        Size of the file the image came from, when known.
    formula_bits : int
        The formula size, ``n_pixels * ceil(log2 k) + k * bits_per_color``.
    png_bytes : int or None
        Real size of the indexed PNG (:func:`palette_io.to_png_bytes`, smallest bit
        depth, optimised); for stacks the sum of one PNG per 2-D plane. None when the
        palette cannot be stored as an 8-bit indexed PNG (more than 256 colours, or
        float colours outside [0, 1]).
    ratio : float or None
        Compression ratio of the indexed PNG against the raw original,
        ``original_bits / 8 / png_bytes``.
    formula_ratio : float
        ``original_bits / formula_bits``.
    source_ratio : float or None
        ``source_bytes / png_bytes``: how much smaller than the source file.
    psnr : float or None
        PSNR in dB against the original (None without the original; inf if equal).
        For RGBA, over the colour channels of the pixels visible in the original
        (alpha not 0); inf if none is.
    ciede2000 : float or None
        Mean CIEDE2000 against the original (for RGBA over the visible pixels, 0.0
        if none is); None without the original, for
        single-channel images, for floats outside [0, 1] and for 32- and 64-bit
        integers without a ``data_range``.
    seconds : float
        Wall time of the quantisation.
    psnr_peak : float or None
        The peak value the PSNR used: the ``data_range`` given, or the automatic
        one (see :func:`psnr`); None without the original.
    """

    shape: tuple[int, ...]
    n_pixels: int
    n_colors: int
    n_colors_requested: int
    bits_per_pixel: int
    index_bits: int
    bits_per_color: int
    original_bits: int
    source_bytes: int | None
    formula_bits: int
    png_bytes: int | None
    ratio: float | None
    formula_ratio: float
    source_ratio: float | None
    psnr: float | None
    ciede2000: float | None
    seconds: float
    psnr_peak: float | None = None

    @property
    def original_bytes(self) -> float:
        """Raw size of the original in bytes, ``original_bits / 8``."""
        return self.original_bits / 8

    @property
    def formula_bytes(self) -> float:
        """The formula's size in bytes, ``formula_bits / 8``."""
        return self.formula_bits / 8

    def as_dict(self) -> dict[str, Any]:
        """The fields (and byte sizes) as a plain dict."""
        out = asdict(self)
        out["original_bytes"] = self.original_bytes
        out["formula_bytes"] = self.formula_bytes
        return out

    def to_text(self) -> str:
        """A few human-readable lines, as the command line prints them.

        Examples
        --------
        >>> from napari_kmeans_quantize import quantize
        >>> img = np.zeros((4, 4, 3), np.uint8)
        >>> img[:2] = 255
        >>> print(size_report(quantize(img, 2), img).to_text())  # doctest: +ELLIPSIS
        original   4 x 4 (height x width), 16 pixels x 24 bits = 384 bits (48 bytes)
        formula    16 x 1 + 2 x 24 = 64 bits (8 bytes), 6.00 : 1
        indexed PNG ... bytes (2 colours, 1-bit indices), ... : 1 against the raw original
        quality    PSNR inf dB, mean CIEDE2000 0.00
        """
        shape = describe_shape(self.shape)
        lines = [
            f"original   {shape}, {self.n_pixels:,} pixels x {self.bits_per_pixel} bits"
            f" = {self.original_bits:,} bits ({self.original_bytes:,.0f} bytes)"
            + (
                f"; source file {self.source_bytes:,} bytes"
                if self.source_bytes is not None
                else ""
            ),
            f"formula    {self.n_pixels:,} x {self.index_bits} + {self.n_colors} x "
            f"{self.bits_per_color} = {self.formula_bits:,} bits "
            f"({self.formula_bytes:,.0f} bytes), {self.formula_ratio:.2f} : 1",
        ]
        if self.png_bytes is None:
            lines.append("indexed PNG n/a (more than 256 colours or not 8-bit)")
        else:
            png_bits = _png_index_bits(self.n_colors)
            line = (
                f"indexed PNG {self.png_bytes:,} bytes ({self.n_colors} colours, "
                f"{png_bits}-bit indices), {self.ratio:.2f} : 1 against the raw "
                "original"
            )
            if self.source_ratio is not None:
                line += f", {self.source_ratio:.2f} : 1 against the source file"
            lines.append(line)
        if self.psnr is not None:
            ciede = "n/a" if self.ciede2000 is None else f"{self.ciede2000:.2f}"
            lines.append(f"quality    PSNR {self.psnr:.2f} dB, mean CIEDE2000 {ciede}")
        return "\n".join(lines)


def size_report(
    result: QuantizeResult,
    original: np.ndarray | None = None,
    source_bytes: int | None = None,
    *,
    data_range: float | None = None,
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
    """
    data_range = _checked_data_range(data_range)
    source_bytes = _checked_source_bytes(source_bytes)
    ref = None
    if original is not None:
        ref = _Reference(original, result.channel_axis, data_range=data_range)
    return _size_report(result, ref, source_bytes)


class _Reference:
    """The original image reduced to distinct colours, for fast exact quality.

    Built once per image; a sweep over k reuses it for every result.
    """

    def __init__(
        self,
        original: np.ndarray,
        channel_axis: int | None,
        hist: ColorHistogram | None = None,
        data_range: float | None = None,
    ) -> None:
        """`hist`, if given, must be the histogram of the original's pixels;
        `data_range` as in :func:`size_report` (checked by the caller)."""
        from .histogram import color_histogram

        arr = np.asarray(original)
        if channel_axis is None:
            arr = arr[..., None]
        else:
            arr = np.moveaxis(arr, channel_axis, -1)
        self.image_shape = np.shape(original)
        self.dtype = arr.dtype
        if hist is None:
            hist = color_histogram(arr.reshape(-1, arr.shape[-1]))
        self.hist = hist
        self.n_pixels = int(hist.counts.sum())
        self.n_channels = arr.shape[-1]
        # The colours measured and each one's weight: for RGBA only the visible
        # colours count (weight 0 for alpha 0), and only their RGB.
        self.visible: np.ndarray | None = None
        self.colors = _kernel_dtype(hist.colors)
        self.weights = hist.counts.astype(np.float64)
        self.n_measured = self.n_pixels
        self.measured_channels = self.n_channels
        if self.n_channels == 4:
            self.visible = hist.colors[:, 3] != 0
            self.colors = np.ascontiguousarray(self.colors[:, :3])
            self.weights[~self.visible] = 0.0
            self.n_measured = int(hist.counts[self.visible].sum())
            self.measured_channels = 3
        lo, hi = self.hist.colors.min(), self.hist.colors.max()
        if data_range is not None:
            self.data_range = data_range
        else:
            self.data_range = _default_peak(self.dtype, lo, hi)
        unit = _colour_unit(self.dtype, data_range)
        self.unit = 1.0 if unit is None else unit
        self.has_ciede = self.n_channels >= 3 and _has_ciede(
            self.dtype, lo, hi, data_range
        )
        self._lab: np.ndarray | None = None
        # A sweep's threads share one reference: the conversion runs once.
        self._lab_lock = threading.Lock()

    def lab(self) -> np.ndarray:
        """The distinct colours in CIELAB (converted on first use)."""
        with self._lab_lock:
            if self._lab is None:
                self._lab = _to_lab(self.hist.colors, self.unit)
            return self._lab

    def quality(self, result: QuantizeResult) -> tuple[float, float | None]:
        """(PSNR, mean CIEDE2000) of a result of this image."""
        image_shape = np.shape(result.image)
        if image_shape != self.image_shape:
            raise ValueError(
                f"images must have the same shape, got {self.image_shape} (original) "
                f"and {image_shape} (quantised)."
            )
        hist = self.hist
        labels = np.asarray(result.labels).ravel()
        if labels.size != self.n_pixels:
            raise ValueError(
                f"the result has {labels.size} labels but the original has "
                f"{self.n_pixels} pixels; pass the image that was quantised."
            )
        palette = np.asarray(result.palette).reshape(len(result.palette), -1)
        k = len(palette)
        lut, one_entry = _colour_entries(hist.inverse, labels, hist.n_colors)
        if one_entry:
            # Nearest-colour mapping: every distinct colour went to one entry.
            rows, entries, weights = None, lut, self.weights
        else:
            # Dithered: count the (colour, entry) pairs instead.
            keys = hist.inverse.astype(np.int64) * k + labels
            pairs, counts = np.unique(keys, return_counts=True)
            rows, entries = pairs // k, pairs % k
            weights = counts.astype(np.float64)
            if self.visible is not None:
                weights[~self.visible[rows]] = 0.0
        colors = self.colors if rows is None else self.colors[rows]
        entries = entries.astype(np.intp, copy=False)
        measured = np.ascontiguousarray(
            _kernel_dtype(palette)[:, : self.measured_channels]
        )
        sse = _inertia(colors, weights, measured, entries)
        n_values = self.n_measured * self.measured_channels
        per_channel = sse / n_values if n_values else 0.0
        quality_psnr = (
            math.inf if per_channel == 0 else _psnr_db(self.data_range, per_channel)
        )
        ciede = None
        if self.has_ciede and self.n_measured == 0:
            ciede = 0.0
        elif self.has_ciede:
            lab = self.lab() if rows is None else self.lab()[rows]
            pal_lab = _to_lab(palette, self.unit)
            total = _ciede2000_sum(lab, pal_lab, entries, weights)
            ciede = float(total / weights.sum())
        return quality_psnr, ciede


def _kernel_dtype(colors: np.ndarray) -> np.ndarray:
    """`colors` in a dtype the numba kernels take: numba has no float16."""
    return colors.astype(np.float32) if colors.dtype == np.float16 else colors


@njit(nogil=True, cache=True)
def _colour_entries(inverse, labels, n_colors):  # pragma: no cover
    """The entry of every distinct colour, and whether all of a colour's pixels
    have that one entry (False for a dithered result), in one pass."""
    lut = np.full(n_colors, -1, dtype=np.intp)
    for i in range(len(inverse)):
        c = inverse[i]
        if lut[c] < 0:
            lut[c] = labels[i]
        elif lut[c] != labels[i]:
            return lut, False
    return lut, True


def describe_shape(shape: tuple[int, ...]) -> str:
    """Spatial shape in words, e.g. ``"512 x 768 (height x width)"``.

    Examples
    --------
    >>> describe_shape((3, 4, 5))
    '3 x 4 x 5 (planes x height x width)'
    """
    names = {1: "length", 2: "height x width", 3: "planes x height x width"}
    words = names.get(len(shape), f"{len(shape)}-D")
    return " x ".join(str(n) for n in shape) + f" ({words})"


def _to_lab(colors: np.ndarray, unit: float) -> np.ndarray:
    from .colorspace import rgb_to_lab

    return rgb_to_lab(np.clip(colors[:, :3].astype(np.float64) / unit, 0, 1))


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


def _png_index_bits(n_colors: int) -> int:
    from .palette_io import png_bit_depth

    return png_bit_depth(n_colors)


def _png_bytes(labels: np.ndarray, palette: np.ndarray) -> int | None:
    from .palette_io import MAX_PNG_COLORS, palette_to_uint8, to_png_bytes

    if len(palette) > MAX_PNG_COLORS:
        return None
    try:
        pal = palette_to_uint8(palette)
    except (TypeError, ValueError):
        return None
    labels = np.asarray(labels)
    if labels.ndim <= 2:
        return len(to_png_bytes(labels, pal))
    planes = labels.reshape(-1, *labels.shape[-2:])
    return sum(len(to_png_bytes(plane, pal)) for plane in planes)


def _size_report(
    result: QuantizeResult, ref: _Reference | None, source_bytes: int | None
) -> SizeReport:
    palette = np.asarray(result.palette)
    n_channels = palette.shape[1] if palette.ndim == 2 else 1
    labels = result.labels
    # Lazy (dask) labels: sizes from the shape; writing a PNG would read them all.
    lazy = not isinstance(labels, np.ndarray)
    n_pixels = math.prod(int(n) for n in labels.shape)
    k = len(palette)
    bits_per_pixel = n_channels * palette.dtype.itemsize * 8
    orig = original_bits(n_pixels, bits_per_pixel)
    formula = formula_bits(n_pixels, k, bits_per_pixel)
    if lazy:
        png = None
        quality_psnr, ciede = (None, None) if ref is None else ref.quality(result)
    else:
        # Deflate releases the GIL: the PNG compresses while the quality figures
        # are computed (12 MP at k=64: 1.45 s -> 0.8-1.1 s on two cores).
        with ThreadPoolExecutor(1, thread_name_prefix="nkq-png") as pool:
            png_job = pool.submit(_png_bytes, labels, palette)
            quality_psnr, ciede = (None, None) if ref is None else ref.quality(result)
            png = png_job.result()
    return SizeReport(
        shape=tuple(int(n) for n in labels.shape),
        n_pixels=n_pixels,
        n_colors=k,
        n_colors_requested=int(result.n_colors_requested),
        bits_per_pixel=bits_per_pixel,
        index_bits=result.bits_per_index,
        bits_per_color=bits_per_pixel,
        original_bits=orig,
        source_bytes=source_bytes,
        formula_bits=formula,
        png_bytes=png,
        ratio=None if not png else orig / 8 / png,
        formula_ratio=orig / formula if formula else math.inf,
        source_ratio=None if not png or source_bytes is None else source_bytes / png,
        psnr=quality_psnr,
        ciede2000=ciede,
        seconds=float(result.seconds),
        psnr_peak=None if quality_psnr is None else float(ref.data_range),
    )


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"images must have the same shape, got {a.shape} and {b.shape}."
        )
    return a, b


def _checked_source_bytes(source_bytes: object) -> int | None:
    if source_bytes is None:
        return None
    if (
        isinstance(source_bytes, bool)
        or not isinstance(source_bytes, int | np.integer)
        or source_bytes < 0
    ):
        raise ValueError(
            "source_bytes must be the source file's size, a whole number >= 0, "
            f"got {source_bytes!r}."
        )
    return int(source_bytes)


def _psnr_db(peak: float, per_channel_mse: float) -> float:
    """``10 log10(peak**2 / mse)`` in logs: peak**2 overflows above ~1e154."""
    return 20.0 * math.log10(peak) - 10.0 * math.log10(per_channel_mse)


def _checked_data_range(data_range: float | None) -> float | None:
    if data_range is None:
        return None
    if (
        isinstance(data_range, bool)
        or not isinstance(data_range, int | float | np.integer | np.floating)
        or not math.isfinite(data_range)
        or data_range <= 0
    ):
        raise ValueError(
            "data_range must be a finite number greater than 0 (the peak value, "
            f"e.g. 4095 for 12-bit data) or None for the default, got {data_range!r}."
        )
    return float(data_range)


def _default_peak(dtype: np.dtype, lo: Any, hi: Any) -> float:
    """The PSNR peak of integer or float data spanning [lo, hi] (see ``psnr``)."""
    if dtype.kind == "b":
        return 1.0  # True against False, as scikit-image
    if dtype.kind == "f":
        lo, hi = float(lo), float(hi)
        return 1.0 if (lo >= 0 and hi <= 1) else max(hi - lo, 1e-12)
    if dtype.itemsize <= 2:
        # scikit-image's convention: the dtype's range, from 0 unless the data
        # are negative.
        info = np.iinfo(dtype)
        return float(info.max) if lo >= 0 else float(info.max) - float(info.min)
    # Python ints: hi - lo of an int64 image can overflow int64.
    return float(max(int(hi) - int(lo), 1))


def _colour_unit(dtype: np.dtype, data_range: float | None) -> float | None:
    """The value read as full intensity for CIELAB; None when none is known."""
    if dtype.kind == "f":
        return 1.0
    if data_range is not None:
        return data_range
    if dtype.itemsize <= 2:
        return float(np.iinfo(dtype).max)
    # The range of 32- and 64-bit integers is no colour scale: black and white
    # are unknown, and a scale guessed from the data would move with the image.
    return None


def _has_ciede(dtype: np.dtype, lo: Any, hi: Any, data_range: float | None) -> bool:
    """Whether RGB(A) colours spanning [lo, hi] get a mean CIEDE2000 in a size
    report: floats must lie in [0, 1], integers need a known full intensity
    (see :func:`_colour_unit`)."""
    if np.dtype(dtype).kind == "f":
        return bool(lo >= 0 and hi <= 1)
    return _colour_unit(np.dtype(dtype), data_range) is not None


def _measured_pixels(
    a: np.ndarray, b: np.ndarray, channel_axis: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (rows) and channels that PSNR and CIEDE2000 compare.

    For RGBA, the colour of the pixels visible in `a`: a fully transparent
    pixel's colour is arbitrary and unseen, and alpha is no colour channel.
    """
    if channel_axis is None:
        return a.reshape(-1, 1), b.reshape(-1, 1)
    a = np.moveaxis(a, channel_axis, -1)
    b = np.moveaxis(b, channel_axis, -1)
    a = a.reshape(-1, a.shape[-1])
    b = b.reshape(-1, b.shape[-1])
    if a.shape[1] == 4:
        visible = a[:, 3] != 0
        return a[visible, :3], b[visible, :3]
    return a, b
