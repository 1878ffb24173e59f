"""The assignment step: the nearest palette entry of every distinct colour (or,
with dithering, of every pixel), the palette ordered by share, and the
per-pixel labels and image of an in-memory result."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
from scipy.spatial import cKDTree

from .. import gather
from ..histogram import ColorHistogram
from .fitspace import fit_points
from .options import label_dtype
from .progress import scaled
from .result import QuantizeResult

# Nearest-entry searches for more points than this use every core.
_PARALLEL_QUERY = 1 << 14


def nearest(points: np.ndarray, pal_fit: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette entry for each point.

    Equidistant entries are common with integer colours; the tree is built over the
    palette in a canonical (sorted) order so that ties resolve the same way whatever
    order the palette is given in (quantize and apply_palette then agree).
    """
    if len(palette) == 1:
        return np.zeros(len(points), dtype=np.intp)
    canon = np.lexsort(palette.T[::-1])
    workers = -1 if len(points) > _PARALLEL_QUERY and gather.workers() > 1 else 1
    idx = cKDTree(pal_fit[canon]).query(points, workers=workers)[1]
    return canon[idx]


def color_labels(
    colors: np.ndarray,
    counts: np.ndarray,
    dtype: np.dtype,
    palette: np.ndarray,
    color_space: str,
    guess: tuple[np.ndarray, np.ndarray] | None = None,
    scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest entry of every distinct colour (in the fit space) and the
    pixels of every entry.

    With a `guess` (from ``palette_of_fit``) only the colours it does not prove
    are converted and searched.
    """
    pal_fit = fit_points(palette, dtype, color_space, scale)
    if guess is None:
        labels = nearest(
            fit_points(colors, dtype, color_space, scale), pal_fit, palette
        )
    else:
        labels = guess[0].copy()
        todo = np.flatnonzero(~guess[1])
        if len(todo):
            col_fit = fit_points(colors[todo], dtype, color_space, scale)
            labels[todo] = nearest(col_fit, pal_fit, palette)
    # Float weights are exact for totals below 2**53 pixels.
    entry_counts = np.bincount(labels, weights=counts, minlength=len(palette))
    return labels, np.rint(entry_counts).astype(np.int64)


def order_by_share(
    counts: np.ndarray, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The palette order most frequent first (ties by index), unused entries
    dropped unless `keep` says so, and the map from old to new entry
    (``remap[order] = arange``)."""
    order = np.lexsort((np.arange(len(counts)), -counts))
    used = counts[order] > 0
    order = order[used if keep is None else used | keep[order]]
    # The smallest type that holds every entry: remap[labels] over a dithered
    # image's pixels is then no wider than the labels it returns.
    remap = np.zeros(len(counts), dtype=label_dtype(len(counts)))
    remap[order] = np.arange(len(order))
    return order, remap


def assign(
    arr: np.ndarray,
    hist: ColorHistogram,
    palette: np.ndarray,
    color_space: str,
    dither: bool,
    k_requested: int,
    axis: int | None,
    *,
    keep_order: bool = False,
    guess: tuple[np.ndarray, np.ndarray] | None = None,
    scale: np.ndarray | None = None,
    keep: np.ndarray | None = None,
    image: bool = True,
) -> Generator[float, None, tuple[QuantizeResult, np.ndarray | None]]:
    """Map the pixels of a channels-last image to palette entries: the result,
    and (without dithering) the label of every distinct colour.

    Yields 0.5 half-way. Without `keep_order` the palette comes out most
    frequent first, unused entries dropped (except those in `keep`). Without
    `image` the result's ``image`` is None (a sweep measures its rows from the
    labels and the colours).
    """
    dtype = arr.dtype
    if dither:
        from ..dither import error_diffusion_iter

        pal_fit = fit_points(palette, dtype, color_space, scale)
        if color_space == "rgb" and scale is None and arr.shape[-1] != 4:
            # rgb's fit space is the pixel values themselves, which the kernel
            # widens row by row: no float64 copy of the whole image. (RGBA is
            # excluded: its histogram merged the fully transparent pixels.)
            source = arr
        else:
            col_fit = fit_points(hist.colors, dtype, color_space, scale)
            source = col_fit[hist.inverse].reshape(arr.shape)
        labels = yield from scaled(error_diffusion_iter(source, pal_fit), 0.0, 0.5)
        labels = labels.ravel()
        counts = np.bincount(labels, minlength=len(palette)).astype(np.int64)
    else:
        # Without dithering a colour's pixels all take one entry, so everything
        # up to the final per-pixel lookup works on the (far fewer) colours.
        labels, counts = color_labels(
            hist.colors, hist.counts, dtype, palette, color_space, guess, scale
        )
    yield 0.5
    if not keep_order:
        order, remap = order_by_share(counts, keep)
        palette, counts, labels = palette[order], counts[order], remap[labels]
    labels = labels.astype(label_dtype(len(palette)))
    entries, quantized = (None, None) if dither else (labels, None)
    if dither and image:
        quantized = gather.take(palette, labels)
    elif not dither and image:
        labels, quantized = hist.expand_pair(labels, palette)
    elif not dither:
        labels = hist.expand(labels)
    labels = labels.reshape(arr.shape[:-1])
    if quantized is not None:
        quantized = quantized.reshape(arr.shape)
        quantized = (
            quantized[..., 0] if axis is None else np.moveaxis(quantized, -1, axis)
        )
    result = QuantizeResult(
        image=quantized,  # type: ignore[arg-type]
        labels=labels,
        palette=palette,
        counts=counts,
        n_colors_requested=k_requested,
        color_space=color_space,
        n_distinct=hist.n_colors,
        channel_axis=axis,
        dither=dither,
    )
    return result, entries
