"""K-means colour quantisation: the public entry points of the engine.

``quantize`` fits a palette of ``n_colors`` colours to an image and maps every pixel
to its nearest palette colour; ``apply_palette`` maps an image onto a palette that is
already known (the next frame of a series, say). Both validate their input up front
and never modify it.

Data flow: validate -> colour histogram (distinct colours + counts, one pass) ->
fit-space conversion of the distinct colours only -> weighted k-means -> palette in
the input's dtype -> one lookup per distinct colour -> one gather over the pixels.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from scipy.spatial import cKDTree

from . import gather
from .colorspace import COLOR_SPACES, from_fit_space, to_fit_space
from .histogram import ColorHistogram, color_histogram
from .kmeans import KMeansFit, _fit_iter, _Pyramid

__all__ = [
    "MAX_COLORS",
    "QuantizeResult",
    "apply_palette",
    "apply_palette_iter",
    "quantize",
    "quantize_iter",
]

#: The largest palette a result can hold (labels are stored as uint16).
MAX_COLORS = 65536
# Nearest-entry searches for more points than this use every core.
_PARALLEL_QUERY = 1 << 14


@dataclass(frozen=True, eq=False)
class QuantizeResult:
    """The outcome of a colour quantisation.

    Attributes
    ----------
    image : ndarray
        The quantised image: same shape and dtype as the input, and exactly
        ``palette[labels]`` (with the channel axis where the input had it).
    labels : ndarray of uint8 or uint16
        Palette index of every pixel, over the spatial shape (the input shape
        without its channel axis). uint8 when the palette has at most 256 colours.
    palette : (k, C) ndarray
        The palette colours in the input's dtype and value range, most frequent
        first. C is 1 for single-channel images.
    counts : (k,) ndarray of int64
        Number of pixels mapped to each palette entry.
    n_colors_requested : int
        The ``n_colors`` asked for; ``len(palette)`` is smaller when the image has
        fewer distinct colours.
    color_space : str
        The space the palette was fitted (and pixels assigned) in.
    inertia : float
        Weighted sum of squared distances of the pixels to their palette colour in
        the fit space, at the end of the fit (0 when every colour is kept).
    n_iter : int
        Lloyd iterations run on the full colour set.
    converged : bool
        Whether the fit stopped because it converged rather than at ``max_iter``.
    n_distinct : int
        Distinct colours in the input (after transparent pixels are merged).
    channel_axis : int or None
        Channel axis of `image` (None for single-channel images).
    dither : bool
        Whether error diffusion was used to assign pixels.
    seconds : float
        Wall time of the whole call.
    """

    image: np.ndarray
    labels: np.ndarray
    palette: np.ndarray
    counts: np.ndarray
    n_colors_requested: int
    color_space: str = "rgb"
    inertia: float = 0.0
    n_iter: int = 0
    converged: bool = True
    n_distinct: int = 0
    channel_axis: int | None = -1
    dither: bool = False
    seconds: float = field(default=0.0)

    @property
    def n_colors(self) -> int:
        """Number of palette entries actually used."""
        return len(self.palette)

    @property
    def bits_per_index(self) -> int:
        """Bits one cluster index needs, ``ceil(log2 k)`` (0 for a single colour)."""
        return math.ceil(math.log2(self.n_colors)) if self.n_colors > 1 else 0


def quantize(
    image: np.ndarray,
    n_colors: int,
    *,
    channel_axis: int | None = -1,
    color_space: str = "rgb",
    dither: bool = False,
    random_state: int | None = 0,
    max_pixels: int | None = None,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> QuantizeResult:
    """Reduce an image to `n_colors` colours by k-means clustering of its pixels.

    The palette minimises the sum of squared colour errors over *all* pixels (exact
    weighted k-means over the distinct colours, deterministic initialisation,
    Lloyd iterations to convergence). All leading axes (time, z, ...) share one
    palette.

    Parameters
    ----------
    image : ndarray
        Image of shape (..., C) with C = 3 (RGB) or 4 (RGBA), or a single-channel
        array with ``channel_axis=None``. Integer or floating dtype. Floats keep
        their values (no rescaling); NaN and infinity are rejected.
    n_colors : int
        Number of palette colours k, 1 <= k <= 65536. If the image has fewer
        distinct colours, those are returned exactly (with a warning).
    channel_axis : int or None, optional
        Axis of the colour channels, as in scikit-image. None means the image is
        single-channel (intensity quantisation).
    color_space : {'rgb', 'lab', 'oklab'}, optional
        Space the clustering runs in. 'rgb' minimises the RGB error (what PSNR
        measures); 'lab' (CIELAB) and 'oklab' are perceptual and lower the mean
        CIEDE2000 difference. Perceptual spaces need integer data or floats in
        [0, 1].
    dither : bool, optional
        Assign pixels by serpentine Floyd-Steinberg error diffusion instead of
        nearest colour. The palette is the same.
    random_state : int, numpy.random.Generator or None, optional
        Seed for the pixel sample when `max_pixels` is set. The fit itself is
        deterministic.
    max_pixels : int or None, optional
        Fit the palette on at most this many randomly chosen pixels (faster on huge
        images, slightly worse). None (the default) uses every pixel. Every pixel is
        mapped either way.
    max_iter : int, optional
        Most Lloyd iterations.
    tol : float, optional
        Stop when an iteration lowers the error by less than this fraction
        (finite, >= 0).

    Returns
    -------
    result : QuantizeResult
        Quantised image, labels, palette, counts and fit details.

    Raises
    ------
    TypeError
        If `image` is not a numeric array, `n_colors` is not an integer, `dither`
        is not a bool, `tol` or `random_state` is not a number, or a perceptual
        `color_space` is asked of 32- or 64-bit integer colours (no known scale).
    ValueError
        If the image is empty, has an unsupported number of channels, holds NaN or
        infinity; if `n_colors`, `color_space`, `max_pixels`, `max_iter`, `tol` or
        `random_state` are out of range; or if ``n_colors=1`` is asked of an RGBA
        image with both fully transparent and visible pixels.

    See Also
    --------
    quantize_iter : the same, as a generator reporting progress.
    apply_palette : map an image onto a given palette.

    Examples
    --------
    >>> from skimage import data
    >>> result = quantize(data.astronaut(), 16)
    >>> result.palette.shape, result.labels.dtype
    ((16, 3), dtype('uint8'))
    >>> bool((result.palette[result.labels] == result.image).all())
    True
    """
    return _drain(
        quantize_iter(
            image,
            n_colors,
            channel_axis=channel_axis,
            color_space=color_space,
            dither=dither,
            random_state=random_state,
            max_pixels=max_pixels,
            max_iter=max_iter,
            tol=tol,
        )
    )


def quantize_iter(
    image: np.ndarray,
    n_colors: int,
    *,
    channel_axis: int | None = -1,
    color_space: str = "rgb",
    dither: bool = False,
    random_state: int | None = 0,
    max_pixels: int | None = None,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> Generator[float, None, QuantizeResult]:
    """Generator form of :func:`quantize` for progress bars and cancellation.

    Yields the fraction of the work done (a float from 0 to 1) between steps; the
    :class:`QuantizeResult` is the generator's return value. Closing the generator
    (or simply not resuming it) stops the work; nothing is left half-done because
    the input is never written to. All parameters are those of :func:`quantize`,
    and they are validated before the first value is yielded (for a dask array,
    ``n_colors=1`` on RGBA with transparent and visible pixels is only found once
    the colours have been counted, since that needs a pass over the data).

    Examples
    --------
    >>> from skimage import data
    >>> gen = quantize_iter(data.coffee(), 8)
    >>> fractions = []
    >>> while True:
    ...     try:
    ...         fractions.append(next(gen))
    ...     except StopIteration as stop:
    ...         result = stop.value
    ...         break
    >>> fractions[-1], result.n_colors
    (1.0, 8)
    """
    start = time.perf_counter()
    k = _check_n_colors(n_colors)
    _check_option("color_space", color_space, COLOR_SPACES)
    if max_pixels is not None:
        max_pixels = _check_positive_int("max_pixels", max_pixels)
    if not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
    _check_tol(tol)
    _check_dither(dither)
    _check_random_state(random_state)
    if _is_dask(image):
        # Bigger-than-memory path: histogram chunk by chunk, labels mapped lazily.
        from .chunked import quantize_dask_iter

        return (
            yield from quantize_dask_iter(
                image,
                k,
                channel_axis=channel_axis,
                color_space=color_space,
                dither=dither,
                random_state=random_state,
                max_pixels=max_pixels,
                max_iter=max_iter,
                tol=tol,
            )
        )
    arr, axis = _checked_image(image, channel_axis, color_space)
    _check_one_entry(arr, k)
    yield 0.0

    hist, _ = _pixel_histogram(arr)
    yield 0.1
    return (
        yield from _quantize_histogram_iter(
            arr,
            axis,
            hist,
            k,
            color_space=color_space,
            dither=dither,
            random_state=random_state,
            max_pixels=max_pixels,
            max_iter=max_iter,
            tol=tol,
            start=start,
        )
    )


class _FitInputs:
    """The points a fit of a histogram runs on, and their pyramid.

    They depend only on whether a palette slot is kept for transparency, not on
    k, so the fits of a sweep share them; safe to share between threads.
    """

    def __init__(
        self,
        hist: ColorHistogram,
        dtype: np.dtype,
        color_space: str,
        max_pixels: int | None,
        random_state: int | None,
    ) -> None:
        self.hist = hist
        self.dtype = dtype
        self.color_space = color_space
        weights = hist.counts.astype(np.float64)
        n_pixels = int(hist.counts.sum())
        if max_pixels is not None and max_pixels < n_pixels:
            rng = np.random.default_rng(random_state)
            sample = rng.choice(n_pixels, size=max_pixels, replace=False)
            weights = np.bincount(hist.inverse[sample], minlength=hist.n_colors)
            weights = weights.astype(np.float64)
        self.weights = weights
        self._pyramids: dict[int | None, _Pyramid] = {}
        self._lock = threading.Lock()

    def rows(self, transparent: int | None) -> np.ndarray:
        """Rows of the histogram that the fit clusters."""
        keep = self.weights > 0
        if transparent is not None:
            keep[transparent] = False
        return np.flatnonzero(keep)

    def pyramid(self, transparent: int | None) -> _Pyramid:
        """The fit-space points of :meth:`rows` with their pyramid."""
        with self._lock:
            if transparent not in self._pyramids:
                rows = self.rows(transparent)
                points = to_fit_space(
                    _to_unit(self.hist.colors[rows], self.dtype, self.color_space),
                    self.color_space,
                )
                points = np.ascontiguousarray(points, dtype=np.float64)
                self._pyramids[transparent] = _Pyramid(points, self.weights[rows])
            return self._pyramids[transparent]


def _quantize_histogram_iter(
    arr: np.ndarray,
    axis: int | None,
    hist: ColorHistogram,
    k: int,
    *,
    color_space: str,
    dither: bool,
    random_state: int | None,
    max_pixels: int | None,
    max_iter: int,
    tol: float,
    start: float,
    inputs: _FitInputs | None = None,
) -> Generator[float, None, QuantizeResult]:
    """The steps of :func:`quantize_iter` after the histogram.

    `arr` is the validated channels-last image and `hist` the histogram of its
    pixels (fully transparent ones merged); a sweep shares one histogram, and one
    `inputs` (made with the same histogram and options), between its k. Yields
    fractions from 0.1 to 1.
    """
    if inputs is None:
        inputs = _FitInputs(hist, arr.dtype, color_space, max_pixels, random_state)
    transparent = _transparent_slot(hist.colors, k)
    fit_rows = inputs.rows(transparent)
    k_fit = k - (transparent is not None)

    n_iter, converged, inertia = 0, True, 0.0
    guess = None
    if len(fit_rows) <= k_fit or k_fit == 0:
        palette = hist.colors[fit_rows]
        if hist.n_colors < k:
            warnings.warn(
                f"The image has only {hist.n_colors} distinct colours, fewer than "
                f"n_colors={k}; returning those colours exactly.",
                UserWarning,
                stacklevel=2,
            )
    else:
        pyramid = inputs.pyramid(transparent)
        points = pyramid.points
        fit = yield from _scaled(
            _fit_iter(pyramid, k_fit, max_iter=max_iter, tol=tol), 0.1, 0.85
        )
        n_iter, converged, inertia = fit.n_iter, fit.converged, fit.inertia
        palette, guess = _palette_of_fit(
            fit, points, fit_rows, hist.n_colors, arr.dtype, color_space
        )
        if transparent is not None:
            # The bounds know nothing of the transparent entry added below.
            guess = None
    if transparent is not None:
        palette = np.concatenate([palette, hist.colors[transparent][None]])
    yield 0.9

    result = yield from _scaled(
        _assign(
            arr,
            hist,
            palette,
            color_space,
            dither,
            k,
            axis,
            image_dtype=arr.dtype,
            guess=guess,
        ),
        0.9,
        1.0,
    )
    result = _replace(
        result,
        inertia=inertia,
        n_iter=n_iter,
        converged=converged,
        seconds=time.perf_counter() - start,
    )
    yield 1.0
    return result


def apply_palette(
    image: np.ndarray,
    palette: np.ndarray,
    *,
    channel_axis: int | None = -1,
    color_space: str = "rgb",
    dither: bool = False,
) -> QuantizeResult:
    """Map an image onto a given palette (nearest colour, or error diffusion).

    Use it to give a series of images (or the frames of a movie) one shared
    palette: quantise the first, then apply its palette to the rest.

    Parameters
    ----------
    image : ndarray
        Image laid out as for :func:`quantize`.
    palette : (k, C) array_like
        Palette colours with the same number of channels as `image`, in the image's
        value range and dtype (whole numbers for integer images).
    channel_axis : int or None, optional
        Axis of the colour channels; None for single-channel images.
    color_space : {'rgb', 'lab', 'oklab'}, optional
        Space in which "nearest" is measured.
    dither : bool, optional
        Use serpentine Floyd-Steinberg error diffusion.

    Returns
    -------
    result : QuantizeResult
        The mapped image and labels. The palette keeps the given order (unused
        entries keep a count of 0), so labels index the palette you passed.

    Raises
    ------
    TypeError, ValueError
        For the same bad images as :func:`quantize`, an empty palette, a palette
        whose channel count differs from the image's, a palette with NaN, or
        colours that the image's dtype cannot hold (fractions or out-of-range
        values for an integer image).

    Examples
    --------
    >>> from skimage import data
    >>> first = quantize(data.astronaut(), 8)
    >>> second = apply_palette(data.astronaut()[::-1], first.palette)
    >>> bool((second.palette == first.palette).all())
    True
    """
    return _drain(
        apply_palette_iter(
            image,
            palette,
            channel_axis=channel_axis,
            color_space=color_space,
            dither=dither,
        )
    )


def apply_palette_iter(
    image: np.ndarray,
    palette: np.ndarray,
    *,
    channel_axis: int | None = -1,
    color_space: str = "rgb",
    dither: bool = False,
) -> Generator[float, None, QuantizeResult]:
    """Generator form of :func:`apply_palette`, yielding progress fractions."""
    start = time.perf_counter()
    _check_option("color_space", color_space, COLOR_SPACES)
    _check_dither(dither)
    arr, axis = _as_channels_last(image, channel_axis)
    _check_fit_space_range(arr, color_space)
    palette = np.asarray(palette)
    if palette.ndim == 1 and arr.shape[-1] == 1:
        palette = palette[:, None]
    if palette.ndim != 2 or palette.shape[1] != arr.shape[-1] or len(palette) == 0:
        raise ValueError(
            f"palette must have shape (k, {arr.shape[-1]}) with k >= 1 to match the "
            f"image's {arr.shape[-1]} channel(s), got shape {palette.shape}."
        )
    if len(palette) > MAX_COLORS:
        raise ValueError(
            f"palette has {len(palette)} colours; at most {MAX_COLORS} are supported."
        )
    if palette.dtype.kind not in "uif":
        raise TypeError(f"palette must be numeric, got dtype {palette.dtype}.")
    if palette.dtype.kind == "f" and not np.isfinite(palette).all():
        raise ValueError("palette contains NaN or infinity; pass finite colours.")
    palette = _palette_in_dtype(palette, arr.dtype)
    pixels = arr.reshape(-1, arr.shape[-1])
    yield 0.0
    hist = color_histogram(pixels)
    yield 0.3
    result = yield from _scaled(
        _assign(
            arr,
            hist,
            palette,
            color_space,
            dither,
            len(palette),
            axis,
            image_dtype=arr.dtype,
            keep_order=True,
        ),
        0.3,
        1.0,
    )
    result = _replace(result, seconds=time.perf_counter() - start)
    yield 1.0
    return result


# --- validation -------------------------------------------------------------------


def _palette_in_dtype(palette: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`palette` in the image's dtype; ValueError if a colour would change.

    A plain cast would wrap 300 to 44 in uint8 and truncate 0.5 to 0, silently
    mapping the image onto other colours than the ones passed.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        converted = palette.astype(dtype)
    if dtype.kind == "f":
        if np.isfinite(converted).all():
            return converted
        problem = f"values beyond the range of {dtype}"
    elif np.array_equal(converted, palette):
        return converted
    else:
        info = np.iinfo(dtype)
        problem = f"values that are not whole numbers in {info.min}..{info.max}"
    lo, hi = palette.min(), palette.max()
    hint = (
        f"; for colours given in [0, 1], multiply them by {np.iinfo(dtype).max}"
        if dtype.kind in "ui" and palette.dtype.kind == "f" and lo >= 0 and hi <= 1
        else ""
    )
    raise ValueError(
        f"palette must hold colours in the image's dtype ({dtype}), but it has "
        f"{problem} (they run from {lo} to {hi}){hint}."
    )


def _check_n_colors(n_colors: object) -> int:
    if isinstance(n_colors, bool) or not isinstance(n_colors, int | np.integer):
        raise TypeError(
            f"n_colors must be an integer between 1 and {MAX_COLORS}, got "
            f"{n_colors!r} of type {type(n_colors).__name__}."
        )
    if not 1 <= n_colors <= MAX_COLORS:
        raise ValueError(
            f"n_colors must be between 1 and {MAX_COLORS}, got {n_colors}."
        )
    return int(n_colors)


def _is_dask(image: object) -> bool:
    return hasattr(image, "__dask_graph__") and hasattr(image, "map_blocks")


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
    return int(value)


def _check_tol(tol: object) -> None:
    what = (
        "tol must be a finite number >= 0 (the fit stops when an iteration lowers "
        f"the error by less than this fraction), got {tol!r}."
    )
    if isinstance(tol, bool) or not isinstance(
        tol, int | float | np.integer | np.floating
    ):
        raise TypeError(what)
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(what)


def _check_dither(dither: object) -> None:
    if not isinstance(dither, bool | np.bool_):
        raise TypeError(f"dither must be True or False, got {dither!r}.")


def _check_random_state(random_state: object) -> None:
    if random_state is None or isinstance(random_state, np.random.Generator):
        return
    what = (
        "random_state must be None, an integer >= 0 or a numpy Generator, got "
        f"{random_state!r}."
    )
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer):
        raise TypeError(what)
    if random_state < 0:
        raise ValueError(what)


def _check_option(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")


def _as_channels_last(
    image: object, channel_axis: int | None
) -> tuple[np.ndarray, int | None]:
    """Validate `image` and return a (..., C) view of it plus the normalised axis."""
    arr = np.asarray(image)
    if arr.dtype.kind == "b":
        raise TypeError(
            "Boolean images cannot be quantised (they already have 2 colours); "
            "convert them with image.astype(np.uint8) first."
        )
    if arr.dtype.kind not in "uif":
        raise TypeError(
            f"image must be a numeric (integer or float) array, got dtype {arr.dtype}."
        )
    if arr.size == 0:
        raise ValueError(
            f"image is empty (shape {arr.shape}); pass at least one pixel."
        )
    if channel_axis is None:
        arr = arr[..., np.newaxis]
        axis = None
    else:
        if isinstance(channel_axis, bool) or not isinstance(
            channel_axis, int | np.integer
        ):
            raise TypeError(
                f"channel_axis must be an integer or None, got {channel_axis!r}."
            )
        if not -arr.ndim <= channel_axis < arr.ndim:
            raise ValueError(
                f"channel_axis={channel_axis} is out of range for an image with "
                f"{arr.ndim} dimension(s)."
            )
        axis = int(channel_axis) % arr.ndim
        n_channels = arr.shape[axis]
        if n_channels not in (1, 3, 4):
            if arr.ndim == 2 or n_channels > 4:
                hint = " For a single-channel (grey) image pass channel_axis=None."
            elif n_channels == 2:
                hint = (
                    " For grey plus alpha, make it RGBA, e.g. (channels last) "
                    "np.concatenate([img[..., :1]] * 3 + [img[..., 1:]], axis=-1)."
                )
            else:
                hint = ""
            raise ValueError(
                f"image has {n_channels} channels along axis {axis} (shape "
                f"{arr.shape}); quantize needs 3 (RGB) or 4 (RGBA) channels, or "
                f"1 channel.{hint}"
            )
        if arr.ndim < 2:
            raise ValueError(
                f"image of shape {arr.shape} has no spatial axes besides the channel "
                "axis; pass channel_axis=None for a 1-D signal."
            )
        arr = np.moveaxis(arr, axis, -1)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"image contains {int(bad.sum())} NaN or infinite value(s); replace "
                "them (e.g. with np.nan_to_num) before quantising."
            )
    return arr, axis


def _check_fit_space_range(arr: np.ndarray, color_space: str) -> None:
    if color_space == "rgb":
        return
    if arr.shape[-1] < 3:
        raise ValueError(
            f"color_space={color_space!r} needs RGB or RGBA data, but the image has "
            "1 channel; use color_space='rgb' for intensity images."
        )
    if arr.dtype.kind in "ui" and arr.dtype.itemsize > 2:
        # The perceptual spaces need to know what full intensity is: 255 for
        # 8 bits, 65535 for 16, 1.0 for floats. A 32- or 64-bit integer (what a
        # nested list becomes) says nothing about it.
        raise TypeError(
            f"color_space={color_space!r} needs colours on a known scale (uint8, "
            f"uint16, or float in [0, 1]), but the image is {arr.dtype}; convert "
            "it (e.g. image.astype(np.uint8) for values 0-255) or use "
            "color_space='rgb'."
        )
    lo, hi = arr.min(), arr.max()
    if arr.dtype.kind == "f" and (lo < 0 or hi > 1):
        raise ValueError(
            f"color_space={color_space!r} needs float colours in [0, 1], but the "
            f"image spans [{lo}, {hi}]; rescale it or use color_space='rgb'."
        )
    if arr.dtype.kind == "i" and lo < 0:
        raise ValueError(
            f"color_space={color_space!r} needs non-negative colours, but the image "
            f"has values down to {lo}; use color_space='rgb'."
        )


# --- helpers ----------------------------------------------------------------------


def _drain(gen: Generator[float, None, QuantizeResult]) -> QuantizeResult:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _scaled(gen: Generator, lo: float, hi: float) -> Generator[float, None, object]:
    """Re-yield a sub-generator's 0..1 fractions inside [lo, hi]."""
    while True:
        try:
            frac = next(gen)
        except StopIteration as stop:
            return stop.value
        yield lo + (hi - lo) * frac


def _replace(result: QuantizeResult, **changes: object) -> QuantizeResult:
    from dataclasses import replace

    return replace(result, **changes)


def _unit_scale(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


def _to_unit(colors: np.ndarray, dtype: np.dtype, color_space: str) -> np.ndarray:
    colors = colors.astype(np.float64)
    if color_space == "rgb":
        return colors
    return colors / _unit_scale(dtype)


def _from_unit(colors: np.ndarray, dtype: np.dtype, color_space: str) -> np.ndarray:
    if color_space != "rgb":
        colors = colors * _unit_scale(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        colors = np.clip(np.rint(colors), info.min, info.max)
    return colors.astype(dtype)


def _merge_transparent(pixels: np.ndarray) -> np.ndarray:
    """Make all fully transparent RGBA pixels the same colour, (0, 0, 0, 0)."""
    if pixels.shape[1] != 4:
        return pixels
    clear = pixels[:, 3] == 0
    if not clear.any():
        return pixels
    pixels = pixels.copy()
    pixels[clear] = 0
    return pixels


def _one_entry_rgba() -> ValueError:
    return ValueError(
        "n_colors=1 cannot keep the image's fully transparent pixels apart from its "
        "visible ones; use n_colors >= 2 (one entry then stays transparent)."
    )


def _check_one_entry(arr: np.ndarray, k: int) -> None:
    """Refuse k = 1 for a channels-last RGBA image with both fully transparent and
    visible pixels, before any work (see _transparent_slot)."""
    if k == 1 and arr.shape[-1] == 4:
        alpha = arr[..., 3]
        if (alpha == 0).any() and (alpha != 0).any():
            raise _one_entry_rgba()


def _transparent_slot(colors: np.ndarray, k: int) -> int | None:
    """The row of the (merged) fully transparent colour among the distinct
    `colors`, which takes one of the k palette entries; None if there is none.

    Raises ValueError for k = 1 when there are visible colours too: one entry
    would make the whole image either transparent or visible.
    """
    if colors.shape[1] != 4:
        return None
    rows = np.flatnonzero(colors[:, 3] == 0)
    if not len(rows):
        return None
    if k == 1:
        if len(colors) > 1:
            raise _one_entry_rgba()
        return None
    return int(rows[0])


def _checked_image(
    image: np.ndarray, channel_axis: int | None, color_space: str
) -> tuple[np.ndarray, int | None]:
    """The validated image, channels last, and its normalised channel axis."""
    arr, axis = _as_channels_last(image, channel_axis)
    _check_fit_space_range(arr, color_space)
    return arr, axis


def _pixel_histogram(arr: np.ndarray) -> tuple[ColorHistogram, bool]:
    """Histogram of a channels-last image's pixels, fully transparent ones merged.

    Also says whether no pixel was merged (the histogram is then that of the
    image itself, as the quality figures need).
    """
    pixels = arr.reshape(-1, arr.shape[-1])
    merged = _merge_transparent(pixels)
    return color_histogram(merged), merged is pixels


def _palette_of_fit(
    fit: KMeansFit,
    points: np.ndarray,
    fit_rows: np.ndarray,
    n_colors: int,
    dtype: np.dtype,
    color_space: str,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The palette of a fit (rounded, sorted, unique) and a guess of each colour's
    entry, with a mask of the colours where it is proven to be the nearest one.

    `points` are the fitted colours (rows `fit_rows` of the `n_colors`). Rounding
    moves every centre to its palette entry by at most ``shift.max()``; a colour
    nearer to its own entry than the fit's lower bound on the other centres minus
    that shift has its own entry as the unique nearest one (see
    ``KMeansFit.lower``). Colours outside `fit_rows` are left to the search.
    """
    palette = _from_unit(from_fit_space(fit.centers, color_space), dtype, color_space)
    palette, entry = np.unique(palette, axis=0, return_inverse=True)
    entry = entry.ravel()
    pal_fit = to_fit_space(_to_unit(palette, dtype, color_space), color_space)
    shift = np.sqrt(((pal_fit[entry] - fit.centers) ** 2).sum(axis=1))
    # Margin for the rounding of the distances behind the bounds.
    eps = 1e-9 * max(1.0, float(np.abs(fit.centers).max()))
    labels = np.zeros(n_colors, dtype=np.intp)
    certain = np.zeros(n_colors, dtype=bool)
    _guess_kernel(
        points,
        np.ascontiguousarray(pal_fit, dtype=np.float64),
        entry.astype(np.intp),
        fit.labels,
        fit.lower,
        float(shift.max()) + eps,
        fit_rows,
        labels,
        certain,
    )
    return palette, (labels, certain)


@njit(nogil=True, cache=True)
def _guess_kernel(
    points, pal_fit, entry, fit_labels, lower, slack, rows, labels, certain
):  # pragma: no cover
    # The own entry of every fitted colour, and whether its distance to it is
    # below the bound on the other entries: one pass, no (n, d) temporaries.
    for i in range(len(rows)):
        own = entry[fit_labels[i]]
        sq = 0.0
        for j in range(points.shape[1]):
            t = points[i, j] - pal_fit[own, j]
            sq += t * t
        labels[rows[i]] = own
        certain[rows[i]] = np.sqrt(sq) < lower[i] - slack


def _nearest_colors(
    colors: np.ndarray,
    dtype: np.dtype,
    palette: np.ndarray,
    color_space: str,
    guess: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Nearest palette entry of each colour, in the fit space.

    With a `guess` (from :func:`_palette_of_fit`) only the colours it does not
    prove are converted and searched.
    """
    pal_fit = to_fit_space(_to_unit(palette, dtype, color_space), color_space)
    if guess is None:
        col_fit = to_fit_space(_to_unit(colors, dtype, color_space), color_space)
        return _nearest(col_fit, pal_fit, palette)
    labels, certain = guess
    labels = labels.copy()
    todo = np.flatnonzero(~certain)
    if len(todo):
        col_fit = to_fit_space(_to_unit(colors[todo], dtype, color_space), color_space)
        labels[todo] = _nearest(col_fit, pal_fit, palette)
    return labels


def _nearest(
    points: np.ndarray, pal_fit: np.ndarray, palette: np.ndarray
) -> np.ndarray:
    """Index of the nearest palette entry for each point.

    Equidistant entries are common with integer colours; the tree is built over the
    palette in a canonical (sorted) order so that ties resolve the same way whatever
    order the palette is given in (quantize and apply_palette then agree).
    """
    if len(palette) == 1:
        return np.zeros(len(points), dtype=np.intp)
    canon = np.lexsort(palette.T[::-1])
    workers = -1 if len(points) > _PARALLEL_QUERY and gather._workers() > 1 else 1
    idx = cKDTree(pal_fit[canon]).query(points, workers=workers)[1]
    return canon[idx]


def _assign(
    arr: np.ndarray,
    hist: ColorHistogram,
    palette: np.ndarray,
    color_space: str,
    dither: bool,
    k_requested: int,
    axis: int | None,
    *,
    image_dtype: np.dtype,
    keep_order: bool = False,
    guess: tuple[np.ndarray, np.ndarray] | None = None,
) -> Generator[float, None, QuantizeResult]:
    """Map pixels to palette entries and build the result."""
    if dither:
        from .dither import error_diffusion

        pal_fit = to_fit_space(_to_unit(palette, image_dtype, color_space), color_space)
        col_fit = to_fit_space(
            _to_unit(hist.colors, image_dtype, color_space), color_space
        )
        labels = error_diffusion(
            col_fit[hist.inverse].reshape((*arr.shape[:-1], arr.shape[-1])), pal_fit
        ).ravel()
        counts = np.bincount(labels, minlength=len(palette)).astype(np.int64)
    else:
        # Without dithering a colour's pixels all take one entry, so everything
        # up to the final per-pixel lookup works on the (far fewer) colours.
        labels = _nearest_colors(
            hist.colors, image_dtype, palette, color_space, guess=guess
        )
        counts = np.bincount(labels, weights=hist.counts, minlength=len(palette))
        counts = np.rint(counts).astype(np.int64)
    yield 0.5
    if not keep_order:
        # Most frequent first; unused entries (possible after rounding) are dropped.
        order = np.lexsort((np.arange(len(palette)), -counts))
        order = order[counts[order] > 0]
        remap = np.empty(len(palette), dtype=np.intp)
        remap[order] = np.arange(len(order))
        palette, counts, labels = palette[order], counts[order], remap[labels]
    label_dtype = np.uint8 if len(palette) <= 256 else np.uint16
    labels = labels.astype(label_dtype)
    if dither:
        image = gather.take(palette, labels)
    else:
        labels, image = hist.expand_pair(labels, palette)
    labels = labels.reshape(arr.shape[:-1])
    image = image.reshape(arr.shape)
    image = image[..., 0] if axis is None else np.moveaxis(image, -1, axis)
    return QuantizeResult(
        image=image,
        labels=labels,
        palette=palette,
        counts=counts,
        n_colors_requested=k_requested,
        color_space=color_space,
        n_distinct=hist.n_colors,
        channel_axis=axis,
        dither=dither,
    )
