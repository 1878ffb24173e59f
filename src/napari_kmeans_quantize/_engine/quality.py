"""The quality and size figures of a result: the engine side of ``metrics``.

:class:`Reference` reduces the original to its distinct colours once, so that
PSNR and mean CIEDE2000 of any number of results (a sweep's k) are exact without
a pass over the pixels; :func:`build_size_report` gathers every figure.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .ciede2000 import _ciede2000_sum, integer_lab, squared_error
from .image import as_native, has_alpha
from .weights import weighted_psnr

if TYPE_CHECKING:
    from ..histogram import ColorHistogram
    from .result import QuantizeResult


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
    psnr_weighted : float or None
        PSNR inside the region that the ``weights`` given mark, from their
        weighted mean squared error (for a 0/1 mask: the masked pixels' PSNR);
        None without weights or without the original.
    file_bytes : dict of str to int or None
        With ``size_report(..., file_formats=True)``: the real bytes of every exact
        file format that holds the result (:func:`palette_io.file_sizes`: PNG-8 and
        lossless WebP for one image; APNG, GIF and palette TIFF for a stack),
        smallest first; empty when no format stores the palette's colours exactly
        (e.g. floats). None when not asked for, or for lazy labels.
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
    psnr_weighted: float | None = None
    file_bytes: dict[str, int] | None = None

    @property
    def smallest_format(self) -> str | None:
        """The format of the smallest exact file (needs ``file_bytes``)."""
        return next(iter(self.file_bytes), None) if self.file_bytes else None

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
        if self.file_bytes:
            sizes = ", ".join(f"{f} {n:,}" for f, n in self.file_bytes.items())
            lines.append(f"files      smallest {self.smallest_format} ({sizes} bytes)")
        elif self.file_bytes is not None:
            lines.append(
                "files      no exact file: the palette's colours are not 8-bit "
                "(or 16-bit for TIFF) values"
            )
        if self.psnr is not None:
            ciede = "n/a" if self.ciede2000 is None else f"{self.ciede2000:.2f}"
            lines.append(f"quality    PSNR {self.psnr:.2f} dB, mean CIEDE2000 {ciede}")
        return "\n".join(lines)


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


class Reference:
    """The original image reduced to distinct colours, for fast exact quality.

    Built once per image; a sweep over k reuses it for every result.
    """

    def __init__(
        self,
        original: np.ndarray,
        channel_axis: int | None,
        hist: ColorHistogram | None = None,
        data_range: float | None = None,
        alpha: bool = True,
    ) -> None:
        """`hist`, if given, must be the histogram of the original's pixels;
        `data_range` as in :func:`size_report` (checked by the caller); `alpha`
        whether 4 channels are RGBA."""
        from ..histogram import color_histogram

        # The kernels compute in native byte order, as quantize does.
        arr = as_native(np.asarray(original), "original")
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
        rgba = has_alpha(self.n_channels, alpha)
        if rgba:
            self.visible = hist.colors[:, 3] != 0
            self.colors = np.ascontiguousarray(self.colors[:, :3])
            self.weights[~self.visible] = 0.0
            self.n_measured = int(hist.counts[self.visible].sum())
            self.measured_channels = 3
        lo, hi = self.hist.colors.min(), self.hist.colors.max()
        if data_range is not None:
            self.data_range = data_range
        else:
            self.data_range = default_peak(self.dtype, lo, hi)
        unit = colour_unit(self.dtype, data_range)
        self.unit = 1.0 if unit is None else unit
        # CIEDE2000 is a difference of colours: RGB and RGBA only.
        is_color = self.n_channels == 3 or rgba
        self.has_ciede = is_color and has_ciede2000(self.dtype, lo, hi, data_range)
        self._lab: np.ndarray | None = None
        # A sweep's threads share one reference: the conversion runs once.
        self._lab_lock = threading.Lock()

    def peak(self) -> float:
        """The PSNR peak; ValueError when the original gives none."""
        if self.data_range is None:
            raise missing_peak()
        return self.data_range

    def lab(self) -> np.ndarray:
        """The distinct colours in CIELAB (converted on first use)."""
        with self._lab_lock:
            if self._lab is None:
                self._lab = to_lab(self.hist.colors, self.unit)
            return self._lab

    def quality(
        self, result: QuantizeResult, entries: np.ndarray | None = None
    ) -> tuple[float, float | None]:
        """(PSNR, mean CIEDE2000) of a result of this image.

        `entries`, if given, is the label of every colour of this reference's
        histogram (as the assignment made them), which spares reading the
        result's labels pixel by pixel; the result may then have no ``image``.
        """
        image_shape = np.shape(result.image)
        if result.image is not None and image_shape != self.image_shape:
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
        if entries is not None:
            lut, one_entry = entries, True
        else:
            lut, one_entry = hist.colour_entries(labels)
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
        sse = squared_error(colors, weights, measured, entries)
        n_values = self.n_measured * self.measured_channels
        per_channel = sse / n_values if n_values else 0.0
        quality_psnr = (
            math.inf if per_channel == 0 else psnr_db(self.peak(), per_channel)
        )
        ciede = None
        if self.has_ciede and self.n_measured == 0:
            ciede = 0.0
        elif self.has_ciede:
            lab = self.lab() if rows is None else self.lab()[rows]
            pal_lab = to_lab(palette, self.unit)
            total = _ciede2000_sum(lab, pal_lab, entries, weights)
            ciede = float(total / weights.sum())
        return quality_psnr, ciede


def _kernel_dtype(colors: np.ndarray) -> np.ndarray:
    """`colors` in a dtype the numba kernels take: numba has no float16."""
    return colors.astype(np.float32) if colors.dtype == np.float16 else colors


def to_lab(colors: np.ndarray, unit: float) -> np.ndarray:
    from ..colorspace import rgb_to_lab

    # The same values either way; the table form pays off once its table
    # (one entry per possible value) is small beside the colours.
    table = colors.ndim == 2 and colors.dtype in (np.uint8, np.uint16)
    if table and 8 * len(colors) > np.iinfo(colors.dtype).max:
        return integer_lab(colors, unit)
    return rgb_to_lab(np.clip(colors[:, :3].astype(np.float64) / unit, 0, 1))


def _png_index_bits(n_colors: int) -> int:
    from ..palette_io import png_bit_depth

    return png_bit_depth(n_colors)


def _png_bytes(labels: np.ndarray, palette: np.ndarray) -> int | None:
    from ..palette_io import MAX_PNG_COLORS, palette_to_uint8, to_png_bytes

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


def build_size_report(
    result: QuantizeResult,
    ref: Reference | None,
    source_bytes: int | None,
    *,
    file_formats: bool = False,
    entries: np.ndarray | None = None,
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
    # Image files hold colours: channels that are none have no PNG or other file.
    colors = n_channels in (1, 3) or has_alpha(n_channels, result.alpha)
    if lazy or not colors:
        png = None
        quality_psnr, ciede = (
            (None, None) if ref is None else ref.quality(result, entries)
        )
    else:
        # Deflate releases the GIL: the PNG compresses while the quality figures
        # are computed (12 MP at k=64: 1.45 s -> 0.8-1.1 s on two cores).
        with ThreadPoolExecutor(1, thread_name_prefix="nkq-png") as pool:
            png_job = pool.submit(_png_bytes, labels, palette)
            quality_psnr, ciede = (
                (None, None) if ref is None else ref.quality(result, entries)
            )
            png = png_job.result()
    files = None
    if file_formats and not lazy and colors:
        from ..palette_io import file_sizes

        try:
            files = file_sizes(labels, palette).sizes
        except ValueError:
            # colours no file stores exactly (floats outside [0, 1])
            files = {}
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
        psnr_peak=None
        if quality_psnr is None or ref.data_range is None
        else float(ref.data_range),
        file_bytes=files,
    )


def checked_source_bytes(source_bytes: object) -> int | None:
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


def psnr_db(peak: float, per_channel_mse: float) -> float:
    """``10 log10(peak**2 / mse)`` in logs: peak**2 overflows above ~1e154."""
    return 20.0 * math.log10(peak) - 10.0 * math.log10(per_channel_mse)


def checked_data_range(data_range: float | None) -> float | None:
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


def default_peak(dtype: np.dtype, lo: Any, hi: Any) -> float | None:
    """The PSNR peak of integer or float data spanning [lo, hi] (see ``psnr``)."""
    if dtype.kind == "b":
        return 1.0  # True against False, as scikit-image
    if dtype.kind == "f":
        lo, hi = float(lo), float(hi)
        if lo >= 0 and hi <= 1:
            return 1.0
        # A constant image outside [0, 1] has no range to be the peak.
        return hi - lo if hi > lo else None
    if dtype.itemsize <= 2:
        # scikit-image's convention: the dtype's range, from 0 unless the data
        # are negative.
        info = np.iinfo(dtype)
        return float(info.max) if lo >= 0 else float(info.max) - float(info.min)
    # Python ints: hi - lo of an int64 image can overflow int64.
    return float(max(int(hi) - int(lo), 1))


def colour_unit(dtype: np.dtype, data_range: float | None) -> float | None:
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


def has_ciede2000(dtype: np.dtype, lo: Any, hi: Any, data_range: float | None) -> bool:
    """Whether RGB(A) colours spanning [lo, hi] get a mean CIEDE2000 in a size
    report: floats must lie in [0, 1], integers need a known full intensity
    (see :func:`colour_unit`)."""
    if np.dtype(dtype).kind == "f":
        return bool(lo >= 0 and hi <= 1)
    return colour_unit(np.dtype(dtype), data_range) is not None


def measured_pixels(
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


def pair(a: object, b: object) -> tuple[np.ndarray, np.ndarray]:
    """Two images a metric can compare: same shape, at least one pixel, numeric
    and finite; ValueError or TypeError otherwise."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"images must have the same shape, got {a.shape} and {b.shape}."
        )
    if a.ndim == 0:
        raise ValueError("images are 0-d (single numbers); pass arrays of pixels.")
    if a.size == 0:
        raise ValueError(
            f"images are empty (shape {a.shape}); pass at least one pixel."
        )
    for name, x in (("original", a), ("quantized", b)):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}.")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(
                f"{name} contains NaN or infinite values, which have no error to "
                "measure; replace them (e.g. with np.nan_to_num) first."
            )
    return a, b


def checked_channel_axis(channel_axis: object, ndim: int, *, optional: bool) -> None:
    """Refuse a channel axis that is not an axis of an `ndim`-dimensional image
    (None only where `optional`)."""
    if channel_axis is None:
        if optional:
            return
        raise ValueError(
            "channel_axis must be the axis of the RGB(A) channels (e.g. -1), not None."
        )
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, int | np.integer):
        raise TypeError(
            f"channel_axis must be an integer or None, got {channel_axis!r}."
        )
    if not -ndim <= channel_axis < ndim:
        raise ValueError(
            f"channel_axis={channel_axis} is out of range for images with {ndim} "
            "dimension(s)."
        )


def missing_peak() -> ValueError:
    return ValueError(
        "the original is constant and not in [0, 1], so its range (0) gives no PSNR "
        "peak; pass data_range (the value of full intensity)."
    )


def with_weighted_psnr(
    report: SizeReport, result: QuantizeResult, original: Any, weights: Any
) -> SizeReport:
    """`report` with the PSNR inside the region the `weights` mark."""
    if weights is None or report.psnr_peak is None:
        return report
    value = weighted_psnr(
        original, result.image, weights, result.channel_axis, report.psnr_peak
    )
    return replace(report, psnr_weighted=value)
