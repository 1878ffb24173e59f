"""One palette for several images (the frames of a movie, a series of photos).

``quantize_shared`` fits one palette to the combined colour histogram of all
images, exactly the palette of quantising their concatenation, and maps every
image onto it: one colour table for all, no flicker between frames.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from ._engine.api import checked_options, plain_form, with_options
from ._engine.result import QuantizeResult
from ._engine.shared import shared_iter

__all__ = ["quantize_shared", "quantize_shared_iter"]


@with_options()
def quantize_shared_iter(
    images: Sequence[Any],
    n_colors: int,
    *,
    weights: Sequence[Any] | None = None,
    **options: Any,
) -> Generator[float, None, list[QuantizeResult]]:
    """Generator form of :func:`quantize_shared`, yielding progress fractions."""
    checked, axis = checked_options(n_colors, {**options, "weights": weights})
    return (yield from shared_iter(images, checked, channel_axis=axis))


@plain_form(quantize_shared_iter)
def quantize_shared() -> list[QuantizeResult]:
    """Quantise several images with one palette fitted to all of them.

    The palette minimises the squared error over the pixels of every image
    together: it is the palette of :func:`~napari_kmeans_quantize.quantize` on
    the images' pixels put end to end, bit for bit. Every image is then mapped
    onto it (as :func:`~napari_kmeans_quantize.apply_palette` would); later
    images can be mapped with ``apply_palette`` too.

    Parameters
    ----------
    images : sequence of array_like
        The images, laid out as for ``quantize``, with one dtype and number of
        channels; their shapes may differ. If any is a dask array, all are
        treated as dask arrays and the results are lazy.
    n_colors : int
        Palette size k.
    channel_axis, color_space, dither, random_state, max_pixels, max_iter, tol
        As for :func:`~napari_kmeans_quantize.quantize` (the same axis for
        every image; dithering is done image by image, and not for dask).
    alpha, standardize : bool, optional
        As for ``quantize``: whether 4 channels are RGBA, and whether to fit on
        channels scaled to unit variance (over all the images' pixels).
    weights : sequence of array_like or None, optional
        One weight map per image (each of its image's spatial shape, or None
        for weights of 1), as ``weights`` of ``quantize``.
    fixed_colors : (m, C) array_like, optional
        Locked colours, as for ``quantize``.
    init, n_init
        The seeding and its restarts, as for ``quantize``.

    Returns
    -------
    results : list of QuantizeResult
        One per image, in the order given. All hold the identical ``palette``
        (most frequent over all images first) and the shared fit's
        ``inertia``, ``n_iter`` and ``converged``; ``image``, ``labels`` and
        ``counts`` are each image's own (lazy dask arrays for dask input, whose
        ``n_distinct`` is then 0).

    Raises
    ------
    TypeError, ValueError
        For what ``quantize`` refuses, for `images` that is not a non-empty
        list, images of different dtypes or channel counts, or `weights` that
        is not one entry per image.

    Examples
    --------
    >>> from skimage import data
    >>> frames = [data.astronaut(), data.coffee()]
    >>> a, b = quantize_shared(frames, 16)
    >>> bool((a.palette == b.palette).all()), a.image.shape, b.image.shape
    (True, (512, 512, 3), (400, 600, 3))
    """
