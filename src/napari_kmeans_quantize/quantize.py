"""K-means colour quantisation: the public entry points of the engine.

``quantize`` fits a palette of ``n_colors`` colours to an image and maps every pixel
to its nearest palette colour; ``apply_palette`` maps an image onto a palette that is
already known (the next frame of a series, say). Both validate their input up front
and never modify it.

Data flow: validate -> colour histogram (distinct colours + counts, one pass) ->
fit-space conversion of the distinct colours only -> weighted k-means -> palette in
the input's dtype -> one lookup per distinct colour -> one gather over the pixels.
The steps live in the private ``_engine.pipeline``; dask arrays go to
``_engine.dask_backend``, which runs the same fit on a chunked histogram.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from ._engine.dask_backend import dask_quantize_iter
from ._engine.image import is_dask
from ._engine.options import (
    DEFAULT_COLOR_SPACE,
    DEFAULT_INIT,
    DEFAULT_MAX_ITER,
    DEFAULT_RANDOM_STATE,
    DEFAULT_TOL,
    MAX_COLORS,
    QuantizeOptions,
)
from ._engine.pipeline import memory_apply_iter, memory_quantize_iter
from ._engine.progress import drain
from ._engine.result import FewColorsWarning, QuantizeResult

__all__ = [
    "MAX_COLORS",
    "FewColorsWarning",
    "QuantizeResult",
    "apply_palette",
    "apply_palette_iter",
    "quantize",
    "quantize_iter",
]

# Documented (and pickled) where users import them from.
QuantizeResult.__module__ = __name__
FewColorsWarning.__module__ = __name__


def quantize(
    image: np.ndarray,
    n_colors: int,
    *,
    channel_axis: int | None = -1,
    color_space: str = DEFAULT_COLOR_SPACE,
    dither: bool = False,
    random_state: int | np.random.Generator | None = DEFAULT_RANDOM_STATE,
    max_pixels: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    alpha: bool = True,
    standardize: bool = False,
    weights: np.ndarray | None = None,
    fixed_colors: np.ndarray | None = None,
    init: str = DEFAULT_INIT,
    n_init: int = 1,
) -> QuantizeResult:
    """Reduce an image to `n_colors` colours by k-means clustering of its pixels.

    The palette minimises the sum of squared colour errors over *all* pixels (exact
    weighted k-means over the distinct colours, deterministic initialisation,
    Lloyd iterations to convergence). All leading axes (time, z, ...) share one
    palette.

    Parameters
    ----------
    image : ndarray
        Image of shape (..., C) with 1 to 16 channels: RGB, RGBA (4 channels,
        unless `alpha` is False), or any other channels (fluorescence, spectral
        bands), each pixel a C-vector; or a single-channel array with
        ``channel_axis=None``. Integer or floating dtype. Floats keep their
        values (no rescaling); NaN and infinity are rejected.
    n_colors : int
        Number of palette colours k, 1 <= k <= 65536. If the image has fewer
        distinct colours, those are returned exactly (with a warning).
    channel_axis : int or None, optional
        Axis of the colour channels, as in scikit-image. None means the image is
        single-channel (intensity quantisation).
    color_space : {'rgb', 'lab', 'oklab'}, optional
        Space the clustering runs in. 'rgb' minimises the squared error over the
        channels as they are (what PSNR measures), for any channel count; 'lab'
        (CIELAB) and 'oklab' are perceptual and lower the mean CIEDE2000
        difference. Perceptual spaces need RGB(A) images with integer data or
        floats in [0, 1].
    dither : bool, optional
        Assign pixels by serpentine Floyd-Steinberg error diffusion instead of
        nearest colour. The palette is the same.
    random_state : int, numpy.random.Generator or None, optional
        Seed for the pixel sample when `max_pixels` is set and for the seeds of
        ``init='k-means++'``. The default fit is deterministic.
    max_pixels : int or None, optional
        Fit the palette on at most this many randomly chosen pixels (faster on huge
        images, slightly worse). None (the default) uses every pixel. Every pixel is
        mapped either way.
    max_iter : int, optional
        Most Lloyd iterations.
    tol : float, optional
        Stop when an iteration lowers the error by less than this fraction
        (finite, >= 0).
    alpha : bool, optional
        Whether a 4-channel image is RGBA (the default: fully transparent pixels
        share one palette entry). False says these are 4 plain channels, fitted
        like any other channel count.
    standardize : bool, optional
        Fit (and assign) on the channels divided by their standard deviation
        over the pixels, so that every channel weighs the same; the palette is
        still returned in the image's units and dtype. Use it when the channels
        are on different scales (a 12-bit and a 16-bit channel, stains of very
        different brightness), where the brightest channel would otherwise
        decide the clusters alone. Leave it off for colour images and for
        channels whose absolute differences matter. Only with
        ``color_space='rgb'``.
    weights : ndarray or dask array, optional
        An importance map: one finite weight >= 0 per pixel (the image's shape
        without the channel axis). The fit minimises the weighted squared error
        (each colour counts with the summed weight of its pixels); weight 0
        leaves a pixel out of the fit, yet every pixel is mapped. A weight of 2
        counts a pixel as if it were there twice. None: every pixel weighs 1.
    fixed_colors : (m, C) array_like, optional
        Locked colours, m <= `n_colors`, in the image's dtype and range (whole
        numbers for integer images): the palette holds them bit for bit, even
        if no pixel takes them. The fit moves only the other ``n_colors - m``
        entries (weighted Lloyd with the locked ones pinned). With m equal to
        `n_colors` the result is that of :func:`apply_palette`.
    init : {'variance-split', 'k-means++'}, optional
        How the centres start. 'variance-split' (the default) is a
        deterministic divisive split of the colours. 'k-means++' seeds with
        :func:`sklearn.cluster.kmeans_plusplus` on the distinct colours (their
        pixel counts, or weights, as sample weights), from `random_state`, as
        :class:`sklearn.cluster.KMeans` does.
    n_init : int, optional
        Runs from different k-means++ seeds; the palette of lowest inertia is
        kept. Above 1 only with ``init='k-means++'``.

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
        If the image is empty, has no channels or more than 16, holds NaN or
        infinity; if `n_colors`, `color_space`, `max_pixels`, `max_iter`, `tol` or
        `random_state` are out of range; if a perceptual `color_space` is asked
        of an image that is not RGB(A), or with `standardize`; if
        ``n_colors=1`` is asked of an RGBA image with both fully transparent and
        visible pixels; or if `weights`
        do not have the image's spatial shape, hold NaN, infinity or negative
        values, or are all zero (a TypeError if they are not numbers); or if
        `fixed_colors` has the wrong shape, colours the image's dtype cannot
        hold, duplicates or more than `n_colors` colours; or for an unknown
        `init`, or `n_init` that is not a positive integer (or above 1 with the
        deterministic default `init`).

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

    Five fluorescence channels, channels first, on different scales:

    >>> import numpy as np
    >>> cells = np.random.default_rng(0).integers(0, 4096, (5, 64, 64), np.uint16)
    >>> cells[0] *= 16
    >>> classes = quantize(cells, 8, channel_axis=0, standardize=True)
    >>> classes.palette.shape, classes.labels.shape
    ((8, 5), (64, 64))
    """
    # Same parameters, same names: the generator form does the work.
    return drain(quantize_iter(**locals()))


def quantize_iter(
    image: np.ndarray,
    n_colors: int,
    *,
    channel_axis: int | None = -1,
    color_space: str = DEFAULT_COLOR_SPACE,
    dither: bool = False,
    random_state: int | np.random.Generator | None = DEFAULT_RANDOM_STATE,
    max_pixels: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    alpha: bool = True,
    standardize: bool = False,
    weights: np.ndarray | None = None,
    fixed_colors: np.ndarray | None = None,
    init: str = DEFAULT_INIT,
    n_init: int = 1,
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
    options = QuantizeOptions.from_params(locals())
    if is_dask(image):
        # Bigger-than-memory path: histogram chunk by chunk, labels mapped lazily.
        return (
            yield from dask_quantize_iter(image, options, channel_axis=channel_axis)
        )
    return (yield from memory_quantize_iter(image, options, channel_axis=channel_axis))


def apply_palette(
    image: np.ndarray,
    palette: np.ndarray,
    *,
    channel_axis: int | None = -1,
    color_space: str = DEFAULT_COLOR_SPACE,
    dither: bool = False,
    alpha: bool = True,
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
    alpha : bool, optional
        Whether a 4-channel image is RGBA (default) or 4 plain channels.

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
    return drain(apply_palette_iter(**locals()))


def apply_palette_iter(
    image: np.ndarray,
    palette: np.ndarray,
    *,
    channel_axis: int | None = -1,
    color_space: str = DEFAULT_COLOR_SPACE,
    dither: bool = False,
    alpha: bool = True,
) -> Generator[float, None, QuantizeResult]:
    """Generator form of :func:`apply_palette`, yielding progress fractions."""
    return (
        yield from memory_apply_iter(
            image,
            palette,
            channel_axis=channel_axis,
            color_space=color_space,
            dither=dither,
            alpha=alpha,
        )
    )
