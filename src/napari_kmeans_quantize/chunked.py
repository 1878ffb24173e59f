"""Quantisation of images bigger than memory: dask arrays, multiscale pyramids.

The public entry points; the work is done in the private ``_engine.dask_backend``
(histogram pass, fit through the shared pipeline, lazy outputs) and
``_engine.multiscale``.

:func:`quantize` hands dask arrays to :func:`quantize_dask_iter`. The result is the
same palette and the same labels, bit for bit, as quantising the same data in
memory, but the image is only ever touched one chunk at a time:

1. **Exact colour histogram, chunk by chunk.** Every chunk (the channel axis is made
   whole first) is reduced to its distinct colours and their pixel counts, as packed
   integer keys. For 8-bit RGB and other small key spaces (at most 2**24 keys:
   8-bit RGB, 8- and 16-bit grey) each pixel's key is made as it is counted (no
   array of keys). On dask's threaded or synchronous scheduler every running task
   adds its chunk straight into a uint32 count array over the whole key space
   (64 MiB for 8-bit RGB, one per task running at a time): one increment per
   pixel, nothing sent back. Elsewhere (a ``dask.distributed`` cluster, say) a
   chunk with at least a sixteenth as many pixels as possible colours is counted
   through a bitmap over the key space, a smaller one by sorting. The chunks are
   computed in batches of a few chunks (one dask graph per batch, so the progress
   bar moves and the work can be cancelled between batches); chunk results sent
   back are added into a fixed 2**24-entry count array (small key spaces) or
   merged, by a dask task per batch, into a sorted list of distinct keys (every
   other dtype). Either way the histogram is *exact* for every dtype: there is no
   binning and no error. What differs is memory: a fixed 64 to 128 MiB per
   counting thread for small key spaces, and 8 to 24 bytes per distinct colour
   otherwise (uint16 RGB, RGBA, floats). Floats are keyed by their bits (-0.0 counts as 0.0), so an
   image whose every pixel is a different float needs memory proportional to its
   pixel count; pass ``max_pixels`` to shorten the fit, not the histogram.
2. **Fit.** Weighted k-means on the distinct colours, exactly as in memory: the
   colours are put in the order the in-memory histogram gives them, so the fit sees
   identical input and returns an identical palette.
3. **Lazy mapping.** Every distinct colour gets its label once (nearest palette
   colour, with the in-memory tie-break). Labels are then mapped block by block with
   ``map_blocks``: a gather from a lookup table over the key space (small key
   spaces, indexed by each pixel's key made on the fly) or a ``searchsorted`` into
   the sorted distinct keys (others). The table is
   one node of the graph (a ``dask.delayed`` value), so it is built once, shipped
   once per worker, and computing the labels never runs the histogram again. The
   quantised image is ``palette[labels]``, also lazy. Counts per palette entry come
   from the histogram.

Everything runs through ``dask.compute`` and ``map_blocks`` with whatever scheduler
is active, including a ``dask.distributed`` client; nothing here picks a scheduler.

Error diffusion (``dither=True``) is refused for dask input: it carries every
pixel's error to the pixels right of and below it, so each chunk depends on all the
chunks before it and the labels could be neither lazy nor parallel.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from ._engine.api import checked_options, plain_form, with_options
from ._engine.dask_backend import dask_quantize_iter
from ._engine.multiscale import multiscale_iter
from ._engine.result import QuantizeResult

__all__ = ["quantize_dask_iter", "quantize_multiscale", "quantize_multiscale_iter"]


@with_options()
def quantize_dask_iter(
    image: Any, n_colors: int, *, histogram_method: str = "auto", **options: Any
) -> Generator[float, None, QuantizeResult]:
    """Quantise a dask array chunk by chunk; the generator form, with progress.

    Called by :func:`~napari_kmeans_quantize.quantize` and
    :func:`~napari_kmeans_quantize.quantize_iter` for dask arrays; the parameters
    are theirs and the palette, labels, counts and fit details are the same, bit
    for bit, as for ``np.asarray(image)``. Yields progress fractions (0 to 1) after
    each batch of chunks and each fit iteration; closing the generator between two
    values stops the work (no dask computation is left running).

    Parameters
    ----------
    image : dask.array.Array
        Image laid out as for :func:`~napari_kmeans_quantize.quantize`. Chunks may
        split the channel axis (it is rechunked whole). Other array types are
        wrapped with ``dask.array.asarray``.
    n_colors : int
        Palette size k, as for :func:`~napari_kmeans_quantize.quantize`.
    %(options)s
    dither : bool, optional
        Must be False: error diffusion is sequential over the whole image, so it
        cannot be mapped lazily chunk by chunk (a ValueError says so).
    histogram_method : {'auto', 'dense', 'sparse'}, optional
        How colours are counted. 'dense' (only for key spaces of at most 2**24
        keys, e.g. 8-bit RGB): counts over the whole key space, which the tasks
        of the threaded scheduler add their chunks into directly (elsewhere big
        chunks are counted with a bitmap and added up on the caller's side). 'sparse': every chunk is sorted into distinct colours
        and counts, and these sorted lists are merged. 'auto' picks 'dense'
        whenever it applies. The result is the same either way.

    Returns
    -------
    result : QuantizeResult
        ``image`` and ``labels`` are **lazy dask arrays** chunked like the input
        (labels have no channel axis); nothing is computed until you compute,
        store or view them, and then only the chunks asked for (each reads its
        input chunk once more). Compute both together (``dask.compute`` or
        ``dask.array.store([labels, image], ...)``) to read the input once.
        ``palette`` and ``counts`` are NumPy arrays. ``seconds`` is the time of
        the histogram pass and the fit.

    Raises
    ------
    TypeError, ValueError
        As :func:`~napari_kmeans_quantize.quantize`; NaN or infinity are found
        chunk by chunk during the histogram pass, and the error names the chunk.
    """
    checked, axis = checked_options(n_colors, options)
    run = dask_quantize_iter(
        image, checked, channel_axis=axis, histogram_method=histogram_method
    )
    return (yield from run)


@with_options(exclude=("weights", "init", "n_init"))
def quantize_multiscale_iter(
    levels: Sequence[Any],
    n_colors: int,
    *,
    fit_level: int = 0,
    lazy: bool = True,
    **options: Any,
) -> Generator[float, None, list[QuantizeResult]]:
    """Generator form of :func:`quantize_multiscale`, yielding progress fractions."""
    checked, axis = checked_options(n_colors, options)
    run = multiscale_iter(
        levels, checked, channel_axis=axis, fit_level=fit_level, lazy=lazy
    )
    return (yield from run)


@plain_form(quantize_multiscale_iter)
def quantize_multiscale() -> list[QuantizeResult]:
    """Quantise a multiscale image (a pyramid) with one palette for every level.

    The palette is fitted on one level, by default the finest (``fit_level=0``),
    which makes that level's result exactly :func:`quantize` of it (bit for bit).
    A coarser level is cheaper to fit on (a quarter of the pixels per step of a
    2x pyramid) but gives a slightly different palette: downsampling averages
    colours, so the coarse colour distribution is smoother than the fine one. Every
    other level is then mapped onto that palette (nearest colour, as
    :func:`~napari_kmeans_quantize.apply_palette`), lazily by default, so the
    outputs are a pyramid of the same shapes as the input, aligned with it at
    every zoom, and a colour gets the same label at every level. The palette is
    ordered by the fitted level's shares; every level's ``counts`` are its own.
    This is the package's one multiscale implementation (the widget's too).

    Parameters
    ----------
    levels : sequence of array_like
        The levels, finest first (as napari holds multiscale data): dask, zarr or
        NumPy arrays with the same dtype, number of dimensions and channels.
    n_colors : int
        Palette size k.
    fit_level : int, optional
        Index of the level the palette is fitted on (default 0, the finest;
        negative values count from the coarsest).
    lazy : bool, optional
        True (the default): every level is a dask array and the results are lazy
        (no dithering). False: every level is read into memory and mapped at
        once, and ``dither=True`` diffuses the error on every level.
    dither : bool, optional
        Error diffusion on every level, as for
        :func:`~napari_kmeans_quantize.quantize`; needs ``lazy=False``.
    %(options)s

    Returns
    -------
    results : list of QuantizeResult
        One per level, in the order given, all with the same ``palette``. Lazy:
        images and labels are dask arrays; the fit level's ``counts`` come from
        its histogram (a NumPy array), the other levels' ``counts`` are lazy dask
        arrays (computing them reads the level) and their ``n_distinct`` is 0 (not
        counted). Eager: NumPy arrays throughout, each level's ``counts`` and
        ``n_distinct`` its own. Fit details (``inertia``, ``n_iter``,
        ``converged``) are those of the shared fit.

    Examples
    --------
    >>> import dask.array as da
    >>> from skimage import data
    >>> img = data.astronaut()
    >>> pyramid = [da.from_array(img, chunks=(256, 256, 3)), img[::2, ::2]]
    >>> res = quantize_multiscale(pyramid, 8)
    >>> [r.labels.shape for r in res]
    [(512, 512), (256, 256)]
    >>> all((r.palette == res[0].palette).all() for r in res)
    True
    """
