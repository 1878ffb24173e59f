"""Quantisation of images bigger than memory: dask arrays, multiscale pyramids.

:func:`quantize` hands dask arrays to :func:`quantize_dask_iter`. The result is the
same palette and the same labels, bit for bit, as quantising the same data in
memory, but the image is only ever touched one chunk at a time:

1. **Exact colour histogram, chunk by chunk.** Every chunk (the channel axis is made
   whole first) is reduced to its distinct colours and their pixel counts, as packed
   integer keys. For 8-bit RGB and other small key spaces (at most 2**24 keys:
   8-bit RGB, 8- and 16-bit grey) a chunk of 2**21 pixels or more is counted with
   one ``np.bincount`` over the key space, a smaller one by sorting. The chunk
   results are computed in batches of a few chunks (one dask graph per batch, so
   the progress bar moves and the work can be cancelled between batches); inside a
   batch they are merged by a dask task, and the batch results are added into a
   fixed 2**24-entry count array (small key spaces) or merged into a sorted list of
   distinct keys (every other dtype). Either way the histogram is *exact* for every
   dtype: there is no binning and no error. What differs is memory: a fixed 128 MiB
   for small key spaces, and 8 to 24 bytes per distinct colour otherwise (uint16
   RGB, RGBA, floats). Floats are keyed by their bits (-0.0 counts as 0.0), so an
   image whose every pixel is a different float needs memory proportional to its
   pixel count; pass ``max_pixels`` to shorten the fit, not the histogram.
2. **Fit.** Weighted k-means on the distinct colours, exactly as in memory: the
   colours are put in the order the in-memory histogram gives them, so the fit sees
   identical input and returns an identical palette.
3. **Lazy mapping.** Every distinct colour gets its label once (nearest palette
   colour, with the in-memory tie-break). Labels are then mapped block by block with
   ``map_blocks``: a gather from a lookup table over the key space (small key
   spaces) or a ``searchsorted`` into the sorted distinct keys (others). The table is
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

import math
import os
import sys
import time
import warnings
from collections.abc import Generator, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from .colorspace import COLOR_SPACES, to_fit_space
from .histogram import color_histogram
from .kmeans import weighted_kmeans_iter
from .quantize import (
    QuantizeResult,
    _as_channels_last,
    _check_fit_space_range,
    _check_n_colors,
    _check_option,
    _check_positive_int,
    _drain,
    _is_dask,
    _nearest,
    _nearest_colors,
    _palette_of_fit,
    _scaled,
    _to_unit,
    _transparent_slot,
)

__all__ = ["quantize_dask_iter", "quantize_multiscale", "quantize_multiscale_iter"]

# Key spaces up to this size are counted in a dense array and mapped by a full
# lookup table (8-bit RGB: 2**24 keys, 128 MiB of int64 counts, a 16 MiB table).
_DENSE_MAX_KEYS = 1 << 24
# A chunk with at least this many pixels per possible colour is counted with a
# bincount over the key space; others are sorted. Measured on 8-bit RGB pixels of
# a noisy photo (2**24 keys): bincount 29 / 40 / 106 ms against sorting 44 / 210 /
# 536 ms for 1 / 4 / 12 megapixels, even at 0.5 megapixels (25 against 23 ms).
# The price is 128 MiB of counters per running task.
_BINCOUNT_MIN_FILL = 1 / 16
# The histogram pass runs in at most about this many batches (progress steps).
_MAX_BATCHES = 100
# Fractions of the progress bar: histogram pass, then the fit.
_HIST_END = 0.6
_FIT_END = 0.95

_DITHER_MESSAGE = (
    "dither=True is not supported for dask arrays: error diffusion carries each "
    "pixel's error to the pixels right of and below it, so every chunk would depend "
    "on all the chunks before it and the labels could be neither lazy nor parallel. "
    "Quantise without dithering, or pass np.asarray(image) if it fits in memory."
)


# --- public API -------------------------------------------------------------------


def quantize_dask_iter(
    image: Any,
    n_colors: int,
    *,
    channel_axis: int | None = -1,
    color_space: str = "rgb",
    dither: bool = False,
    random_state: int | None = 0,
    max_pixels: int | None = None,
    max_iter: int = 300,
    tol: float = 1e-4,
    histogram_method: str = "auto",
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
    n_colors, channel_axis, color_space, random_state, max_pixels, max_iter, tol
        As for :func:`~napari_kmeans_quantize.quantize`.
    dither : bool, optional
        Must be False: error diffusion is sequential over the whole image, so it
        cannot be mapped lazily chunk by chunk (a ValueError says so).
    histogram_method : {'auto', 'dense', 'sparse'}, optional
        How colours are counted. 'dense' (only for key spaces of at most 2**24
        keys, e.g. 8-bit RGB): big chunks are counted with a bincount over the
        whole key space and the chunk counts are added into one fixed count array
        on the caller's side. 'sparse': every chunk is sorted into distinct colours
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

    start = time.perf_counter()
    k = _check_n_colors(n_colors)
    _check_option("color_space", color_space, COLOR_SPACES)
    if max_pixels is not None:
        max_pixels = _check_positive_int("max_pixels", max_pixels)
    if not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
    _check_option("histogram_method", histogram_method, ("auto", "dense", "sparse"))
    image = _as_dask(image)
    arr, axis = _dask_channels_last(image, channel_axis)
    if dither:
        raise ValueError(_DITHER_MESSAGE)
    dtype = arr.dtype
    n_channels = arr.shape[-1]
    _check_fit_space_range(np.zeros((1, n_channels), dtype=dtype), color_space)
    spec = _KeySpec(dtype, n_channels)
    dense = spec.dense if histogram_method == "auto" else histogram_method == "dense"
    if dense and not spec.dense:
        raise ValueError(
            f"histogram_method='dense' needs at most {_DENSE_MAX_KEYS} possible "
            f"colours; {n_channels} channel(s) of {dtype} have {spec.n_keys_text}."
        )
    n_pixels = math.prod(arr.shape[:-1])
    sample = None
    if max_pixels is not None and max_pixels < n_pixels:
        rng = np.random.default_rng(random_state)
        sample = rng.choice(n_pixels, size=max_pixels, replace=False)
    yield 0.0

    hist, value_range = yield from _scaled(
        _histogram_pass(
            arr, spec, dense=dense, sample=sample, want_range=color_space != "rgb"
        ),
        0.0,
        _HIST_END,
    )
    if value_range is not None:
        # The in-memory check and message, on the image's extreme values.
        lo, hi = value_range
        _check_fit_space_range(
            np.array([[lo] * n_channels, [hi] * n_channels], dtype=dtype), color_space
        )
    fit = yield from _scaled(
        _fit_palette(hist, k, color_space, max_iter, tol), _HIST_END, _FIT_END
    )
    labels, image_out = _lazy_outputs(arr, axis, hist, fit, spec)
    yield 1.0
    return QuantizeResult(
        image=image_out,
        labels=labels,
        palette=fit.palette,
        counts=fit.counts,
        n_colors_requested=k,
        color_space=color_space,
        inertia=fit.inertia,
        n_iter=fit.n_iter,
        converged=fit.converged,
        n_distinct=len(hist.colors),
        channel_axis=axis,
        dither=False,
        seconds=time.perf_counter() - start,
    )


def quantize_multiscale(
    levels: Sequence[Any], n_colors: int, **kwargs: Any
) -> list[QuantizeResult]:
    """Quantise a multiscale image (a pyramid) with one palette for every level.

    The palette is fitted on one level, by default the finest (``fit_level=0``),
    which makes that level's result exactly :func:`quantize` of it (bit for bit).
    A coarser level is cheaper to fit on (a quarter of the pixels per step of a
    2x pyramid) but gives a slightly different palette: downsampling averages
    colours, so the coarse colour distribution is smoother than the fine one. Every
    other level is then mapped lazily onto that palette (nearest colour, as
    :func:`~napari_kmeans_quantize.apply_palette`), so the outputs are a pyramid of
    the same shapes as the input, aligned with it at every zoom, and a colour gets
    the same label at every level.

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
    **kwargs
        ``channel_axis``, ``color_space``, ``random_state``, ``max_pixels``,
        ``max_iter``, ``tol`` as for :func:`~napari_kmeans_quantize.quantize`
        (``dither`` must be False).

    Returns
    -------
    results : list of QuantizeResult
        One per level, in the order given, all with the same ``palette``. Images
        and labels are lazy dask arrays. The fit level's ``counts`` come from its
        histogram (a NumPy array); the other levels' ``counts`` are lazy dask
        arrays (computing them reads the level) and their ``n_distinct`` is 0 (not
        counted). Fit details (``inertia``, ``n_iter``, ``converged``) are those of
        the shared fit.

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
    return _drain(quantize_multiscale_iter(levels, n_colors, **kwargs))


def quantize_multiscale_iter(
    levels: Sequence[Any],
    n_colors: int,
    *,
    fit_level: int = 0,
    channel_axis: int | None = -1,
    color_space: str = "rgb",
    dither: bool = False,
    random_state: int | None = 0,
    max_pixels: int | None = None,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> Generator[float, None, list[QuantizeResult]]:
    """Generator form of :func:`quantize_multiscale`, yielding progress fractions."""
    if isinstance(levels, np.ndarray) or _is_dask(levels) or not len(levels):
        raise TypeError(
            "levels must be a non-empty list of arrays (finest first), got "
            f"{type(levels).__name__}."
        )
    if dither:
        raise ValueError(_DITHER_MESSAGE)
    if isinstance(fit_level, bool) or not isinstance(fit_level, int | np.integer):
        raise TypeError(f"fit_level must be an integer, got {fit_level!r}.")
    if not -len(levels) <= fit_level < len(levels):
        raise ValueError(
            f"fit_level={fit_level} is out of range for {len(levels)} level(s)."
        )
    fit_level = int(fit_level) % len(levels)
    arrays = [_as_dask(level) for level in levels]
    prepared = [_dask_channels_last(a, channel_axis) for a in arrays]
    ref = prepared[fit_level][0]
    for i, (arr, _) in enumerate(prepared):
        if (
            arr.dtype != ref.dtype
            or arr.ndim != ref.ndim
            or arr.shape[-1] != (ref.shape[-1])
        ):
            raise ValueError(
                f"level {i} (shape {arrays[i].shape}, dtype {arrays[i].dtype}) does "
                f"not match level {fit_level} (shape {arrays[fit_level].shape}, "
                f"dtype {arrays[fit_level].dtype}): all levels need the same dtype, "
                "number of dimensions and channels."
            )
    fitted = yield from quantize_dask_iter(
        arrays[fit_level],
        n_colors,
        channel_axis=channel_axis,
        color_space=color_space,
        random_state=random_state,
        max_pixels=max_pixels,
        max_iter=max_iter,
        tol=tol,
    )
    results = []
    for i, (arr, axis) in enumerate(prepared):
        if i == fit_level:
            results.append(fitted)
            continue
        labels, image, counts = _lazy_apply(arr, axis, fitted.palette, color_space)
        results.append(
            replace(fitted, image=image, labels=labels, counts=counts, n_distinct=0)
        )
    return results


# --- validation -------------------------------------------------------------------


def _as_dask(image: Any) -> Any:
    import dask.array as da

    if isinstance(image, da.Array):
        return image
    data = getattr(image, "data", None)  # e.g. an xarray DataArray backed by dask
    if isinstance(data, da.Array):
        return data
    return da.asarray(image)


def _dask_channels_last(image: Any, channel_axis: int | None) -> tuple[Any, int | None]:
    """Validate a dask image's metadata; return a (..., C) view with whole channels.

    Shape, dtype and channel checks (and their messages) are the in-memory ones,
    run on a zero-strided stand-in of the same shape so nothing is computed.
    """
    if any(isinstance(s, float) and math.isnan(s) for s in image.shape):
        raise ValueError(
            f"image has unknown chunk sizes (shape {image.shape}); call "
            "image.compute_chunk_sizes() first."
        )
    dtype = np.dtype(image.dtype)
    # Float stand-ins would be checked for NaN pixel by pixel; uint8 has the same
    # shape checks and no value checks (the dtype itself is checked separately).
    stand_in = np.uint8 if dtype.kind == "f" else dtype
    _as_channels_last(
        np.broadcast_to(np.zeros((), dtype=stand_in), image.shape), channel_axis
    )
    if channel_axis is None:
        return image[..., None], None
    axis = int(channel_axis) % image.ndim
    if image.numblocks[axis] > 1:
        image = image.rechunk({axis: -1})
    import dask.array as da

    if axis != image.ndim - 1:
        image = da.moveaxis(image, axis, -1)
    return image, axis


# --- colour keys ------------------------------------------------------------------


class _KeySpec:
    """How the colours of one dtype and channel count become sortable keys.

    Integer colours of at most 64 bits in all are packed into one uint32/uint64
    (signed values offset so keys sort like values, as in ``histogram.py``); other
    colours (floats, wide integers) are keyed by their raw bytes as a void scalar.
    """

    def __init__(self, dtype: np.dtype, n_channels: int) -> None:
        self.dtype = np.dtype(dtype)
        self.n_channels = n_channels
        self.bits = self.dtype.itemsize * 8
        total = self.bits * n_channels
        self.packed = self.dtype.kind in "ui" and total <= 64
        if self.packed:
            self.key_dtype = np.dtype(np.uint32 if total <= 32 else np.uint64)
            self.n_keys = 1 << total
        else:
            self.key_dtype = np.dtype((np.void, self.dtype.itemsize * n_channels))
            self.n_keys = None
        self.dense = self.n_keys is not None and self.n_keys <= _DENSE_MAX_KEYS

    @property
    def n_keys_text(self) -> str:
        return f"2**{self.bits * self.n_channels} possible colours"

    def keys(self, pixels: np.ndarray) -> np.ndarray:
        """One key per pixel row."""
        if not self.packed:
            if self.dtype.kind == "f":
                pixels = pixels + self.dtype.type(0)  # -0.0 -> 0.0
            rows = np.ascontiguousarray(pixels)
            return rows.view(self.key_dtype).ravel()
        unsigned = np.dtype(f"u{self.dtype.itemsize}")
        shifted = pixels.view(unsigned)
        if self.dtype.kind == "i":
            shifted = shifted ^ unsigned.type(1 << (self.bits - 1))
        kd = self.key_dtype.type
        if self.n_channels == 1:
            return shifted[:, 0].astype(self.key_dtype)
        keys = shifted[:, 0].astype(self.key_dtype)
        for c in range(1, self.n_channels):  # in place: no temporary per channel
            np.left_shift(keys, kd(self.bits), out=keys)
            np.bitwise_or(keys, shifted[:, c], out=keys)
        return keys

    def colors(self, keys: np.ndarray) -> np.ndarray:
        """The (n, C) colours of `keys` (the inverse of :meth:`keys`)."""
        if not self.packed:
            return (
                np.ascontiguousarray(keys).view(self.dtype).reshape(-1, self.n_channels)
            )
        unsigned = np.dtype(f"u{self.dtype.itemsize}")
        kd = self.key_dtype.type
        mask = kd((1 << self.bits) - 1)
        out = np.empty((len(keys), self.n_channels), dtype=unsigned)
        for c in range(self.n_channels):
            out[:, c] = (keys >> kd(self.bits * (self.n_channels - 1 - c))) & mask
        if self.dtype.kind == "i":
            out ^= unsigned.type(1 << (self.bits - 1))
        return out.view(self.dtype)


def _block_pixels(block: np.ndarray) -> np.ndarray:
    """The (N, C) pixels of a channels-last block."""
    return block.reshape(-1, block.shape[-1])


def _merge_alpha(pixels: np.ndarray) -> np.ndarray:
    """Fully transparent RGBA pixels all become (0, 0, 0, 0), as in ``quantize``."""
    if pixels.shape[1] == 4:
        clear = pixels[:, 3] == 0
        if clear.any():
            pixels = pixels.copy()
            pixels[clear] = 0
    return pixels


def _count_bad(pixels: np.ndarray) -> int:
    if pixels.dtype.kind != "f":
        return 0
    return int(pixels.size - np.count_nonzero(np.isfinite(pixels)))


# --- histogram pass ---------------------------------------------------------------


def _block_histogram(
    block: np.ndarray,
    spec: _KeySpec,
    sample: np.ndarray | None,
    want_range: bool,
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray, tuple | None]:
    """Distinct keys (sorted), their counts, the non-finite count, sampled keys and
    (if asked) the block's smallest and largest value before transparent merging.
    """
    pixels = _block_pixels(block)
    bad = _count_bad(pixels)
    if bad:
        empty = np.empty(0, dtype=spec.key_dtype)
        return empty, np.empty(0, dtype=np.int64), [bad], empty, None
    value_range = (pixels.min(), pixels.max()) if want_range else None
    keys = spec.keys(_merge_alpha(pixels))
    if spec.n_keys is not None and spec.n_keys * _BINCOUNT_MIN_FILL <= len(keys):
        counts = np.bincount(keys, minlength=spec.n_keys)
        # flatnonzero on a bool mask is several times faster than on int64 counts.
        distinct = np.flatnonzero(counts != 0)
        counts = counts[distinct].astype(np.int64)
        distinct = distinct.astype(spec.key_dtype)
    else:
        distinct, counts = np.unique(keys, return_counts=True)
        counts = counts.astype(np.int64)
    # (Not keys[:0]: an empty view would keep the whole keys array alive.)
    sampled = keys[sample] if sample is not None else np.empty(0, spec.key_dtype)
    return distinct, counts, [0], sampled, value_range


def _merge_sorted(
    keys: Sequence[np.ndarray], counts: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Merge lists of distinct sorted keys, adding the counts of equal keys."""
    if len(keys) == 1:
        return keys[0], counts[0]
    all_keys = np.concatenate(keys)
    all_counts = np.concatenate(counts)
    if len(all_keys) == 0:
        return all_keys, all_counts
    # Integers: numpy's default (SIMD) sort is fastest. Void keys compare through a
    # slow generic function; timsort needs the fewest comparisons on sorted runs.
    kind = "stable" if all_keys.dtype.kind == "V" else None
    order = np.argsort(all_keys, kind=kind)
    all_keys = all_keys[order]
    starts = np.flatnonzero(np.concatenate([[True], all_keys[1:] != all_keys[:-1]]))
    return all_keys[starts], np.add.reduceat(all_counts[order], starts)


def _merge_partials(*parts: tuple) -> tuple:
    """Merge the chunk results of one batch into one (a dask task)."""
    keys, counts = _merge_sorted([p[0] for p in parts], [p[1] for p in parts])
    return (
        keys,
        counts,
        [n for p in parts for n in p[2]],
        np.concatenate([p[3] for p in parts]),
        _union_range([p[4] for p in parts]),
    )


class _Histogram:
    """The exact histogram of a dask image, in the in-memory histogram's order."""

    def __init__(
        self,
        spec: _KeySpec,
        keys: np.ndarray,
        key_counts: np.ndarray,
        sampled: np.ndarray | None,
    ) -> None:
        self.spec = spec
        #: distinct keys, ascending (the order the lazy lookup searches)
        self.keys = keys
        mine = spec.colors(keys)
        canon = color_histogram(mine)
        #: key row -> row of `colors` (the in-memory histogram order)
        self.to_canon = canon.inverse
        self.colors = canon.colors
        self.counts = np.empty(len(keys), dtype=np.int64)
        self.counts[self.to_canon] = key_counts
        self.weights = self.counts.astype(np.float64)
        if sampled is not None:
            rows = self.to_canon[np.searchsorted(keys, sampled)]
            self.weights = np.bincount(rows, minlength=len(keys)).astype(np.float64)


def _parallelism() -> int:
    """Threads available to the active scheduler (a distributed client if any)."""
    if "distributed" in sys.modules:
        try:
            from distributed import default_client

            return max(1, sum(default_client().nthreads().values()))
        except (ImportError, ValueError):
            pass
    return os.cpu_count() or 1


def _sample_by_block(
    sample: np.ndarray, chunks: tuple[tuple[int, ...], ...]
) -> dict[tuple[int, ...], np.ndarray]:
    """Split flat sample indices of the spatial shape into per-block flat indices."""
    shape = tuple(sum(c) for c in chunks)
    multi = np.unravel_index(np.sort(sample), shape)
    block_idx, local = [], []
    for idx, c in zip(multi, chunks, strict=True):
        bounds = np.cumsum((0, *c))
        b = np.searchsorted(bounds, idx, side="right") - 1
        block_idx.append(b)
        local.append(idx - bounds[b])
    blocks = np.stack(block_idx, axis=1)
    out: dict[tuple[int, ...], np.ndarray] = {}
    uniq, inverse = np.unique(blocks, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for j, b in enumerate(uniq):
        sel = inverse == j
        bshape = tuple(c[i] for c, i in zip(chunks, b, strict=True))
        out[tuple(int(i) for i in b)] = np.ravel_multi_index(
            tuple(x[sel] for x in local), bshape
        )
    return out


def _histogram_pass(
    arr: Any,
    spec: _KeySpec,
    *,
    dense: bool,
    sample: np.ndarray | None,
    want_range: bool,
) -> Generator[float, None, tuple[_Histogram, tuple | None]]:
    import dask

    blocks = arr.to_delayed()
    grid = list(np.ndindex(*arr.numblocks[:-1]))
    by_block = {} if sample is None else _sample_by_block(sample, arr.chunks[:-1])
    no_sample = None if sample is None else np.empty(0, dtype=np.intp)
    batch = max(2 * _parallelism(), math.ceil(len(grid) / _MAX_BATCHES))
    task = dask.delayed(_block_histogram, pure=True)
    merge = dask.delayed(_merge_partials, pure=True)

    acc = np.zeros(spec.n_keys, dtype=np.int64) if dense else None
    run_keys = np.empty(0, dtype=spec.key_dtype)
    run_counts = np.empty(0, dtype=np.int64)
    sampled, ranges = [], []
    for b0 in range(0, len(grid), batch):
        ids = grid[b0 : b0 + batch]
        parts = [
            task(blocks[(*i, 0)], spec, by_block.get(i, no_sample), want_range)
            for i in ids
        ]
        # Dense: the chunk results come back as they are and are added into the
        # counts. Sparse: they are merged by a dask task (on a worker, if any).
        parts = dask.compute(*parts) if dense else dask.compute(merge(*parts))
        bad = [n for p in parts for n in p[2]]
        if any(bad):
            where = [i for i, n in zip(ids, bad, strict=True) if n]
            raise ValueError(
                f"image contains {sum(bad)} NaN or infinite value(s) in chunk(s) "
                f"{', '.join(map(str, where))} (the histogram pass stopped there); "
                "replace them (e.g. with np.nan_to_num) before quantising."
            )
        for keys, counts, _, samp, value_range in parts:
            if dense:
                acc[keys] += counts  # keys are distinct within a part
            else:
                run_keys, run_counts = _merge_sorted(
                    [run_keys, keys], [run_counts, counts]
                )
            sampled.append(samp)
            if value_range is not None:
                ranges.append(value_range)
        del parts
        yield (b0 + len(ids)) / len(grid)
    if dense:
        run_keys = np.flatnonzero(acc).astype(spec.key_dtype)
        run_counts = acc[run_keys]
        del acc
    samp_all = None if sample is None else np.concatenate(sampled)
    value_range = _union_range(ranges)
    return _Histogram(spec, run_keys, run_counts, samp_all), value_range


def _union_range(ranges: Sequence[tuple | None]) -> tuple | None:
    ranges = [r for r in ranges if r is not None]
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


# --- fit (mirrors quantize_iter) ---------------------------------------------------


class _Fit:
    palette: np.ndarray
    counts: np.ndarray
    colour_label: np.ndarray  # label of each distinct colour, in key order
    inertia: float
    n_iter: int
    converged: bool


def _fit_palette(
    hist: _Histogram, k: int, color_space: str, max_iter: int, tol: float
) -> Generator[float, None, _Fit]:
    """The in-memory fit and assignment of ``quantize_iter``, on the histogram.

    Each step mirrors ``quantize_iter`` and ``_assign`` line for line; the tests
    check the outputs are identical bit for bit.
    """
    dtype = hist.spec.dtype
    colors = hist.colors
    n_distinct = len(colors)
    transparent = _transparent_slot(colors, k)
    opaque = np.ones(n_distinct, dtype=bool)
    if transparent is not None:
        opaque[transparent] = False
    weights = hist.weights
    fit_rows = np.flatnonzero(opaque & (weights > 0))
    k_fit = k - (transparent is not None)

    out = _Fit()
    out.n_iter, out.converged, out.inertia = 0, True, 0.0
    guess = None
    if len(fit_rows) <= k_fit or k_fit == 0:
        palette = colors[fit_rows]
        if n_distinct < k:
            warnings.warn(
                f"The image has only {n_distinct} distinct colours, fewer than "
                f"n_colors={k}; returning those colours exactly.",
                UserWarning,
                stacklevel=4,
            )
    else:
        points = to_fit_space(
            _to_unit(colors[fit_rows], dtype, color_space), color_space
        )
        fit = yield from _scaled(
            weighted_kmeans_iter(
                points, weights[fit_rows], k_fit, max_iter=max_iter, tol=tol
            ),
            0.0,
            0.95,
        )
        out.n_iter, out.converged, out.inertia = fit.n_iter, fit.converged, fit.inertia
        palette, guess = _palette_of_fit(
            fit, points, fit_rows, n_distinct, dtype, color_space
        )
        del points
        if transparent is not None:
            guess = None
    if transparent is not None:
        palette = np.concatenate([palette, colors[transparent][None]])

    # _assign, with counts from the histogram instead of a pass over the pixels.
    nearest = _nearest_colors(colors, dtype, palette, color_space, guess=guess)
    # Float weights are exact for totals below 2**53 pixels.
    counts = np.bincount(nearest, weights=hist.counts, minlength=len(palette))
    counts = counts.astype(np.int64)
    order = np.lexsort((np.arange(len(palette)), -counts))
    order = order[counts[order] > 0]
    remap = np.empty(len(palette), dtype=np.intp)
    remap[order] = np.arange(len(order))
    out.palette, out.counts = palette[order], counts[order]
    label_dtype = np.uint8 if len(out.palette) <= 256 else np.uint16
    out.colour_label = remap[nearest].astype(label_dtype)[hist.to_canon]
    yield 1.0
    return out


# --- lazy outputs ------------------------------------------------------------------


def _map_block_dense(
    block: np.ndarray, spec: _KeySpec, table: np.ndarray
) -> np.ndarray:
    pixels = _merge_alpha(_block_pixels(block))
    return table[spec.keys(pixels)].reshape(block.shape[:-1])


def _map_block_sparse(
    block: np.ndarray, spec: _KeySpec, table: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    keys_sorted, colour_label = table
    pixels = _block_pixels(block)
    if _count_bad(pixels):
        raise ValueError("image contains NaN or infinite values in this chunk.")
    keys = spec.keys(_merge_alpha(pixels))
    idx = np.minimum(np.searchsorted(keys_sorted, keys), len(keys_sorted) - 1)
    if not (keys_sorted[idx] == keys).all():
        raise RuntimeError(
            "The dask array gave colours that were not in it during the histogram "
            "pass; is its graph deterministic?"
        )
    return colour_label[idx].reshape(block.shape[:-1])


def _palette_block(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``palette[labels]``, gathering whole rows (7x faster for 8-bit RGB)."""
    if palette.ndim == 1:
        return palette[labels]
    row = np.dtype((np.void, palette.itemsize * palette.shape[1]))
    rows = np.ascontiguousarray(palette).view(row).ravel()
    return rows[labels].view(palette.dtype).reshape(*labels.shape, palette.shape[1])


def _lazy_image(labels: Any, palette: np.ndarray, axis: int | None) -> Any:
    import dask.array as da

    if axis is None:
        return labels.map_blocks(
            _palette_block,
            palette[:, 0],
            dtype=palette.dtype,
            meta=np.empty((0,) * labels.ndim, dtype=palette.dtype),
        )
    c = palette.shape[1]
    image = labels.map_blocks(
        _palette_block,
        palette,
        dtype=palette.dtype,
        new_axis=labels.ndim,
        chunks=(*labels.chunks, (c,)),
        meta=np.empty((0,) * (labels.ndim + 1), dtype=palette.dtype),
    )
    return da.moveaxis(image, -1, axis)


def _lazy_outputs(
    arr: Any, axis: int | None, hist: _Histogram, fit: _Fit, spec: _KeySpec
) -> tuple[Any, Any]:
    import dask

    label_dtype = fit.colour_label.dtype
    if spec.dense:
        lut = np.zeros(spec.n_keys, dtype=label_dtype)
        lut[hist.keys] = fit.colour_label
        func, table = _map_block_dense, lut
    else:
        func, table = _map_block_sparse, (hist.keys, fit.colour_label)
    # One graph node holds the table: built once, sent once per worker.
    table = dask.delayed(table, pure=True)
    labels = arr.map_blocks(
        partial(func, spec=spec),
        table=table,
        drop_axis=arr.ndim - 1,
        dtype=label_dtype,
        meta=np.empty((0,) * (arr.ndim - 1), dtype=label_dtype),
        name="kmq-labels-" + dask.base.tokenize(arr, table, func),
    )
    return labels, _lazy_image(labels, fit.palette, axis)


# --- apply a palette lazily (other multiscale levels) -------------------------------


def _apply_block(
    block: np.ndarray,
    palette: np.ndarray,
    pal_fit: np.ndarray,
    color_space: str,
    label_dtype: np.dtype,
) -> np.ndarray:
    pixels = _block_pixels(block)
    if _count_bad(pixels):
        raise ValueError("image contains NaN or infinite values in this chunk.")
    if color_space != "rgb" and pixels.size:
        _check_fit_space_range(pixels, color_space)
    hist = color_histogram(_merge_alpha(pixels))
    col_fit = to_fit_space(
        _to_unit(hist.colors, pixels.dtype, color_space), color_space
    )
    labels = hist.expand(_nearest(col_fit, pal_fit, palette).astype(label_dtype))
    return labels.reshape(block.shape[:-1])


def _block_bincount(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=k).astype(np.int64)


def _sum_counts(*counts: np.ndarray) -> np.ndarray:
    return np.sum(counts, axis=0, dtype=np.int64)


def _lazy_apply(
    arr: Any, axis: int | None, palette: np.ndarray, color_space: str
) -> tuple[Any, Any, Any]:
    """Labels, image and counts of `arr` mapped onto `palette`, all lazy."""
    import dask
    import dask.array as da

    k = len(palette)
    label_dtype = np.dtype(np.uint8 if k <= 256 else np.uint16)
    pal_fit = to_fit_space(_to_unit(palette, palette.dtype, color_space), color_space)
    labels = arr.map_blocks(
        _apply_block,
        palette,
        pal_fit,
        color_space,
        label_dtype,
        drop_axis=arr.ndim - 1,
        dtype=label_dtype,
        meta=np.empty((0,) * (arr.ndim - 1), dtype=label_dtype),
    )
    per_block = [
        dask.delayed(_block_bincount, pure=True)(b, k)
        for b in labels.to_delayed().ravel()
    ]
    counts = da.from_delayed(
        dask.delayed(_sum_counts, pure=True)(*per_block), (k,), dtype=np.int64
    )
    return labels, _lazy_image(labels, palette, axis), counts
