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
from typing import Any

import numpy as np

from ._engine.api import checked_options, plain_form, with_options
from ._engine.dask_backend import dask_quantize_iter
from ._engine.image import is_dask
from ._engine.options import MAX_COLORS
from ._engine.pipeline import memory_apply_iter, memory_quantize_iter
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


@with_options()
def quantize_iter(
    image: np.ndarray, n_colors: int, **options: Any
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
    checked, axis = checked_options(n_colors, options)
    # Dask: the bigger-than-memory path (histogram chunk by chunk, lazy labels).
    run = dask_quantize_iter if is_dask(image) else memory_quantize_iter
    return (yield from run(image, checked, channel_axis=axis))


@plain_form(quantize_iter)
def quantize() -> QuantizeResult:
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
    %(options)s

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


@with_options(only=("channel_axis", "color_space", "dither", "alpha"))
def apply_palette_iter(
    image: np.ndarray, palette: np.ndarray, **options: Any
) -> Generator[float, None, QuantizeResult]:
    """Generator form of :func:`apply_palette`, yielding progress fractions."""
    return (yield from memory_apply_iter(image, palette, **options))


@plain_form(apply_palette_iter)
def apply_palette() -> QuantizeResult:
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
