"""The assignment step: the nearest palette entry of every distinct colour (or,
with dithering, of every pixel), the palette ordered by share, and the
per-pixel labels and image of an in-memory result."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
from numba import njit
from scipy.spatial import cKDTree

from .. import gather
from ..histogram import ColorHistogram
from .fitspace import fit_points
from .kmeans.centres import _sort_row, _sq_dist
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
            found = _near_guess(col_fit, pal_fit, labels[todo])
            left = np.flatnonzero(found < 0)
            if len(left):
                found[left] = nearest(col_fit[left], pal_fit, palette)
            labels[todo] = found
    # Float weights are exact for totals below 2**53 pixels.
    entry_counts = np.bincount(labels, weights=counts, minlength=len(palette))
    return labels, np.rint(entry_counts).astype(np.int64)


def _near_guess(
    points: np.ndarray, pal_fit: np.ndarray, guess: np.ndarray
) -> np.ndarray:
    """The nearest palette entry of every point where it is unique by a clear
    margin, found from the point's `guess` outwards; -1 elsewhere (ties and near
    ties, which :func:`nearest` resolves as it always does)."""
    points = np.ascontiguousarray(points, dtype=np.float64)
    pal_fit = np.ascontiguousarray(pal_fit, dtype=np.float64)
    slack = _NEAR_RTOL * (1.0 + float(np.abs(pal_fit).max()))
    order, dist, cnt = _entry_neighbours(points, pal_fit, guess, slack)
    out = np.empty(len(points), dtype=np.intp)
    gather.each_slice(
        len(points),
        lambda lo, hi: _near_guess_kernel(
            points, pal_fit, guess, order, dist, cnt, slack, out, lo, hi
        ),
        _PARALLEL_QUERY,
    )
    return out


# Relative margin (and, times the largest coordinate, absolute margin) on the
# distances: far above their rounding, so that an entry found nearer by it is
# the one a tree search finds too.
_NEAR_RTOL = 1e-9


@njit(nogil=True, cache=True)
def _entry_neighbours(points, pal, guess, slack):  # pragma: no cover
    """For every entry, the other entries that the walks from it may reach,
    nearest first (ties by index), with their distances and how many."""
    m = len(pal)
    # An entry more than (2 + rtol) u + slack from a point's guess, u the
    # point's distance to it, is farther from the point than the guess by the
    # margin: no walk from that guess needs it.
    need = np.zeros(m)
    for i in range(len(points)):
        e = guess[i]
        need[e] = max(need[e], np.sqrt(_sq_dist(points, i, pal, e)))
    order = np.empty((m, m), dtype=np.intp)
    dist = np.empty((m, m))
    cnt = np.zeros(m, dtype=np.intp)
    for e in range(m):
        if need[e] == 0.0:
            continue
        reach = need[e] * (2.0 + _NEAR_RTOL) + slack
        n = 0
        for f in range(m):
            d = np.sqrt(_sq_dist(pal, e, pal, f))
            if f != e and d <= reach:
                order[e, n] = f
                dist[e, n] = d
                n += 1
        cnt[e] = n
        _sort_row(order[e], dist[e], n)
    return order, dist, cnt


@njit(nogil=True, cache=True)
def _near_guess_kernel(
    points, pal, guess, order, dist, cnt, slack, out, lo, hi
):  # pragma: no cover
    # Entry f is at least dist(e, f) - u from a point at distance u from entry
    # e: walking e's neighbours nearest first, the walk stops once that exceeds
    # the nearest distance found by the margin.
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no from-the-end checks
        e = guess[i]
        b1 = _sq_dist(points, i, pal, e)
        u = np.sqrt(b1)
        r1, b2, i1 = u, np.inf, e
        for t in range(cnt[e]):
            if dist[e, t] - u > r1 * (1.0 + _NEAR_RTOL) + slack:
                break
            f = order[e, t]
            df = _sq_dist(points, i, pal, f)
            if df < b1:
                b1, b2, i1 = df, b1, f
                r1 = np.sqrt(b1)
            elif df < b2:
                b2 = df
        clear = np.sqrt(b2) > r1 * (1.0 + _NEAR_RTOL) + slack
        out[i] = i1 if clear else -1


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
