"""The fit pipeline: histogram -> fit space -> k-means -> palette -> assignment.

One function per step, called alike by the in-memory path (``quantize``), the
dask and multiscale paths (``dask_backend``) and the sweep (once per k):

- :class:`FitInputs`: the distinct colours to fit, their weights and (built once,
  shared by every k) their fit-space points and pyramid;
- :func:`fit_palette`: weighted k-means on them and the palette in the input's
  dtype (one entry kept for the transparent colour of RGBA images);
- ``assignment``: the nearest palette entry of every distinct colour
  (``color_labels``), the palette most frequent first (``order_by_share``) and
  the per-pixel labels and image of an in-memory result (``assign``); the
  conversions into the fit space are in ``fitspace``.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..colorspace import COLOR_SPACES, from_fit_space
from ..histogram import ColorHistogram, color_histogram
from .assignment import assign, color_labels, nearest, order_by_share
from .fitspace import channel_scale, fit_points, from_unit
from .fixed import checked_fixed_colors, pinned_lloyd
from .image import (
    check_one_entry,
    checked_image,
    checked_palette,
    has_alpha,
    merge_transparent,
    one_entry_rgba,
)
from .kmeans import KMeansFit, Pyramid
from .options import QuantizeOptions, check_bool, check_option
from .progress import scaled
from .restarts import seeded_fit_iter
from .result import FewColorsWarning, QuantizeResult
from .weights import checked_weights, colour_weights

# Where the dask backend takes them from: one pipeline, one import.
__all__ = [
    "FitInputs",
    "checked_arrays",
    "color_labels",
    "fit_palette",
    "fit_points",
    "memory_apply_iter",
    "memory_quantize_iter",
    "nearest",
    "order_by_share",
    "pixel_histogram",
    "pixel_sample",
    "quantize_histogram_iter",
    "sample_weights",
]

# --- fit inputs -----------------------------------------------------------------------


def transparent_slot(colors: np.ndarray, k: int, alpha: bool = True) -> int | None:
    """The row of the (merged) fully transparent colour among the distinct
    `colors`, which takes one of the k palette entries; None if there is none.

    Raises ValueError for k = 1 when there are visible colours too: one entry
    would make the whole image either transparent or visible.
    """
    if not has_alpha(colors.shape[1], alpha):
        return None
    rows = np.flatnonzero(colors[:, 3] == 0)
    if not len(rows):
        return None
    if k == 1:
        if len(colors) > 1:
            raise one_entry_rgba()
        return None
    return int(rows[0])


def sample_weights(
    hist: ColorHistogram,
    max_pixels: int | None,
    random_state: object,
    pixel_weights: np.ndarray | None = None,
) -> np.ndarray:
    """The fit weight of every distinct colour: its pixel count, or with
    `max_pixels` its count among that many randomly chosen pixels; with
    `pixel_weights` (checked, one per pixel) the sum of its pixels' weights."""
    weights = hist.counts.astype(np.float64)
    n_pixels = int(hist.counts.sum())
    sample = None
    if max_pixels is not None and max_pixels < n_pixels:
        sample = pixel_sample(n_pixels, max_pixels, random_state)
        weights = np.bincount(hist.inverse[sample], minlength=hist.n_colors)
        weights = weights.astype(np.float64)
    if pixel_weights is not None:
        weights = colour_weights(hist.inverse, hist.n_colors, pixel_weights, sample)
    return weights


def pixel_sample(n_pixels: int, max_pixels: int, random_state: object) -> np.ndarray:
    """The flat indices of the pixels a ``max_pixels`` fit is run on."""
    rng = np.random.default_rng(random_state)
    return rng.choice(n_pixels, size=max_pixels, replace=False)


class FitInputs:
    """The distinct colours a fit runs on, their weights, and their pyramid.

    The points depend only on whether a palette slot is kept for transparency,
    not on k, so the fits of a sweep share them; safe to share between threads.

    Parameters
    ----------
    colors : (n, C) ndarray
        The distinct colours, in the in-memory histogram's order.
    counts : (n,) ndarray of int64
        Pixels of every colour.
    weights : (n,) ndarray of float64
        Fit weight of every colour (its count, or its count in a sample).
    dtype : numpy dtype
        The image's dtype.
    color_space : str
        The fit space.
    alpha : bool, optional
        Whether 4 channels are RGBA (else 4 plain channels).
    standardize : bool, optional
        Fit on the channels divided by their standard deviation (``scale``).
    """

    def __init__(
        self,
        colors: np.ndarray,
        counts: np.ndarray,
        weights: np.ndarray,
        dtype: np.dtype,
        color_space: str,
        *,
        alpha: bool = True,
        standardize: bool = False,
    ) -> None:
        self.colors = colors
        self.counts = counts
        self.weights = weights
        self.dtype = np.dtype(dtype)
        self.color_space = color_space
        self.alpha = alpha
        self.scale = channel_scale(colors, weights) if standardize else None
        self._pyramids: dict[int | None, Pyramid] = {}
        self._lock = threading.Lock()

    @property
    def n_colors(self) -> int:
        return len(self.colors)

    def rows(self, transparent: int | None) -> np.ndarray:
        """Rows of the colours that the fit clusters."""
        keep = self.weights > 0
        if transparent is not None:
            keep[transparent] = False
        return np.flatnonzero(keep)

    def pyramid(self, transparent: int | None) -> Pyramid:
        """The fit-space points of :meth:`rows` with their pyramid."""
        with self._lock:
            if transparent not in self._pyramids:
                rows = self.rows(transparent)
                # Every colour (the usual case): no copies of the colours and
                # weights just to pick them all.
                every = len(rows) == self.n_colors
                colors = self.colors if every else self.colors[rows]
                points = fit_points(colors, self.dtype, self.color_space, self.scale)
                points = np.ascontiguousarray(points, dtype=np.float64)
                weights = self.weights if every else self.weights[rows]
                self._pyramids[transparent] = Pyramid(points, weights)
            return self._pyramids[transparent]


# --- fit ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PaletteFit:
    """A fitted palette (in the input's dtype, not yet ordered) and how the fit
    went; `guess` is what :func:`color_labels` may skip searching, `keep` the
    entries to keep even if no pixel takes them (locked colours)."""

    palette: np.ndarray
    guess: tuple[np.ndarray, np.ndarray] | None
    inertia: float = 0.0
    n_iter: int = 0
    converged: bool = True
    keep: np.ndarray | None = None


def fit_palette(
    inputs: FitInputs, options: QuantizeOptions
) -> Generator[float, None, PaletteFit]:
    """Weighted k-means of the colours into ``options.n_colors`` entries.

    Yields fractions from 0 to 1. With no more colours than entries the colours
    are the palette (a :class:`FewColorsWarning` says so when there are fewer).
    """
    k = options.n_colors
    colors, dtype, color_space = inputs.colors, inputs.dtype, inputs.color_space
    transparent = transparent_slot(colors, k, inputs.alpha)
    fit_rows = inputs.rows(transparent)
    k_fit = k - (transparent is not None)
    if options.fixed_colors is not None:
        out = yield from fit_fixed(inputs, options, transparent, k_fit)
    elif len(fit_rows) <= k_fit or k_fit == 0:
        out = PaletteFit(colors[fit_rows], None)
        if inputs.n_colors < k:
            warnings.warn(
                f"The image has only {inputs.n_colors} distinct colours, fewer than "
                f"n_colors={k}; returning those colours exactly.",
                FewColorsWarning,
                stacklevel=2,
            )
    else:
        pyramid = inputs.pyramid(transparent)
        fit = yield from seeded_fit_iter(pyramid, k_fit, options)
        palette, guess = palette_of_fit(
            fit,
            pyramid.points,
            fit_rows,
            inputs.n_colors,
            dtype,
            color_space,
            inputs.scale,
        )
        # The bounds know nothing of the transparent entry added below.
        guess = None if transparent is not None else guess
        out = PaletteFit(palette, guess, fit.inertia, fit.n_iter, fit.converged)
    if transparent is not None:
        palette = np.concatenate([out.palette, colors[transparent][None]])
        keep = None if out.keep is None else np.append(out.keep, False)
        out = PaletteFit(palette, None, out.inertia, out.n_iter, out.converged, keep)
    yield 1.0
    return out


def fit_fixed(
    inputs: FitInputs, options: QuantizeOptions, transparent: int | None, k_fit: int
) -> Generator[float, None, PaletteFit]:
    """The palette with ``options.fixed_colors`` (checked) locked: they are kept
    bit for bit and pinned in the Lloyd iterations that move the other entries.

    The free centres start from the plain fit of ``k_fit - m`` entries.
    """
    fixed = options.fixed_colors
    dtype, color_space = inputs.dtype, inputs.color_space
    n_free = k_fit - len(fixed)
    rows = inputs.rows(transparent)
    others = rows[~_rows_in(inputs.colors[rows], fixed)]
    inertia, n_iter, converged = 0.0, 0, True
    if len(others) <= n_free or n_free == 0:
        free = inputs.colors[others[:n_free]]
    else:
        pyramid = inputs.pyramid(transparent)
        start = yield from scaled(seeded_fit_iter(pyramid, n_free, options), 0.0, 0.5)
        pinned = pinned_lloyd(
            pyramid.points,
            pyramid.weights,
            fit_points(fixed, dtype, color_space),
            start.centers,
            max_iter=options.max_iter,
            tol=options.tol,
        )
        free = from_unit(from_fit_space(pinned.free, color_space), dtype, color_space)
        free = np.unique(free, axis=0)
        free = free[~_rows_in(free, fixed)]
        inertia, n_iter, converged = pinned.inertia, pinned.n_iter, pinned.converged
    palette = np.concatenate([fixed, free])
    keep = np.arange(len(palette)) < len(fixed)
    return PaletteFit(palette, None, inertia, n_iter, converged, keep)


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Which of `rows` equal a row of `table`."""
    hit = np.zeros(len(rows), dtype=bool)
    for row in table:
        hit |= (rows == row).all(axis=1)
    return hit


def palette_of_fit(
    fit: KMeansFit,
    points: np.ndarray,
    fit_rows: np.ndarray,
    n_colors: int,
    dtype: np.dtype,
    color_space: str,
    scale: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The palette of a fit (rounded, sorted, unique) and a guess of each colour's
    entry, with a mask of the colours where it is proven to be the nearest one.

    `points` are the fitted colours (rows `fit_rows` of the `n_colors`). Rounding
    moves every centre to its palette entry by at most ``shift.max()``; a colour
    nearer to its own entry than the fit's lower bound on the other centres minus
    that shift has its own entry as the unique nearest one (see
    ``KMeansFit.lower``). Colours outside `fit_rows` are left to the search.
    """
    palette = from_unit(
        from_fit_space(fit.centers, color_space), dtype, color_space, scale
    )
    palette, entry = np.unique(palette, axis=0, return_inverse=True)
    entry = entry.ravel()
    pal_fit = fit_points(palette, dtype, color_space, scale)
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


def pixel_histogram(arr: np.ndarray, alpha: bool = True) -> tuple[ColorHistogram, bool]:
    """Histogram of a channels-last image's pixels, fully transparent ones merged.

    Also says whether no pixel was merged (the histogram is then that of the
    image itself, as the quality figures need).
    """
    pixels = arr.reshape(-1, arr.shape[-1])
    merged = merge_transparent(pixels, alpha)
    return color_histogram(merged), merged is pixels


def quantize_histogram_iter(
    arr: np.ndarray,
    axis: int | None,
    hist: ColorHistogram,
    inputs: FitInputs,
    options: QuantizeOptions,
    *,
    image: bool = True,
) -> Generator[float, None, tuple[QuantizeResult, np.ndarray | None]]:
    """The in-memory steps after the histogram: fit, then assignment.

    `arr` is the validated channels-last image, `hist` the histogram of its
    pixels (fully transparent ones merged) and `inputs` made from it; a sweep
    shares all three between its k. Yields fractions from 0 to 1; returns the
    result (whose ``seconds`` is left for the caller to set; no ``image``
    without `image`) and, without dithering, every distinct colour's label.
    """
    # Error diffusion is the longest step of a dithered run: give it the bar.
    split = 0.3 if options.dither else 0.9
    fit = yield from scaled(fit_palette(inputs, options), 0.0, split - 0.05)
    # The points and pyramid are not needed for the assignment: where the caller
    # keeps no reference (quantize), they are freed before its outputs are made.
    scale, alpha = inputs.scale, inputs.alpha
    del inputs
    yield split
    result, entries = yield from scaled(
        assign(
            arr,
            hist,
            fit.palette,
            options.color_space,
            options.dither,
            options.n_colors,
            axis,
            guess=fit.guess,
            scale=scale,
            keep=fit.keep,
            image=image,
        ),
        split,
        1.0,
    )
    result = replace_result(
        result,
        inertia=fit.inertia,
        n_iter=fit.n_iter,
        converged=fit.converged,
        channel_scale=scale,
        alpha=alpha,
    )
    return result, entries


def checked_arrays(
    options: QuantizeOptions, dtype: np.dtype, shape: tuple[int, ...]
) -> QuantizeOptions:
    """`options` with its arrays (weights, fixed colours) checked against a
    channels-last image of `dtype` and `shape`."""
    from dataclasses import replace

    changes: dict[str, object] = {}
    if options.weights is not None:
        changes["weights"] = checked_weights(options.weights, shape[:-1])
    if options.fixed_colors is not None:
        changes["fixed_colors"] = checked_fixed_colors(
            options.fixed_colors, dtype, shape[-1], options.n_colors
        )
    return replace(options, **changes) if changes else options


def replace_result(result: QuantizeResult, **changes: object) -> QuantizeResult:
    from dataclasses import replace

    return replace(result, **changes)


def memory_quantize_iter(
    image: object, options: QuantizeOptions, *, channel_axis: int | None
) -> Generator[float, None, QuantizeResult]:
    """``quantize_iter`` of an in-memory image, with checked options."""
    start = time.perf_counter()
    arr, axis = checked_image(image, channel_axis, options.color_space, options.alpha)
    check_one_entry(arr, options.n_colors, options.alpha)
    options = checked_arrays(options, arr.dtype, arr.shape)
    yield 0.0
    hist, _ = pixel_histogram(arr, options.alpha)
    weights = sample_weights(
        hist, options.max_pixels, options.random_state, options.weights
    )
    yield 0.1
    result, _ = yield from scaled(
        quantize_histogram_iter(
            arr,
            axis,
            hist,
            FitInputs(
                hist.colors,
                hist.counts,
                weights,
                arr.dtype,
                options.color_space,
                alpha=options.alpha,
                standardize=options.standardize,
            ),
            options,
        ),
        0.1,
        1.0,
    )
    result = replace_result(result, seconds=time.perf_counter() - start)
    yield 1.0
    return result


def memory_apply_iter(
    image: object,
    palette: object,
    *,
    channel_axis: int | None,
    color_space: str,
    dither: bool,
    alpha: bool = True,
    scale: np.ndarray | None = None,
) -> Generator[float, None, QuantizeResult]:
    """``apply_palette_iter``: checks, then the assignment in the given order
    (distances divided by `scale`, the channel scale of a standardised fit)."""
    start = time.perf_counter()
    check_option("color_space", color_space, COLOR_SPACES)
    dither = check_bool("dither", dither)
    alpha = check_bool("alpha", alpha)
    arr, axis = checked_image(image, channel_axis, color_space, alpha)
    palette = checked_palette(palette, arr.dtype, arr.shape[-1])
    yield 0.0
    hist = color_histogram(arr.reshape(-1, arr.shape[-1]))
    yield 0.3
    result, _ = yield from scaled(
        assign(
            arr,
            hist,
            palette,
            color_space,
            dither,
            len(palette),
            axis,
            keep_order=True,
            scale=scale,
        ),
        0.3,
        1.0,
    )
    result = replace_result(
        result, seconds=time.perf_counter() - start, channel_scale=scale, alpha=alpha
    )
    yield 1.0
    return result
