"""The dask backend: exact chunk-by-chunk histogram, the shared fit, lazy outputs.

How and why is told in the public ``chunked`` module's docstring: the histogram
pass counts packed colour keys chunk by chunk (dense bincount or sorted merge),
the fit is ``pipeline``'s on the histogram in the in-memory order (so the
palette is the same bit for bit), and labels and image are ``map_blocks``
lookups through a table that is one node of the graph.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numba import njit

from ..histogram import color_histogram
from . import dense
from .dense import DenseCounter
from .image import (
    as_channels_last,
    check_fit_space_range,
    check_value_range,
    merge_transparent,
    native_dtype,
    needs_value_range,
    refuse_masked,
)
from .keys import DENSE_MAX_KEYS, KeySpec
from .options import QuantizeOptions, check_option, label_dtype
from .pipeline import (
    FitInputs,
    checked_arrays,
    color_labels,
    fit_palette,
    fit_points,
    nearest,
    order_by_share,
    pixel_sample,
)
from .progress import scaled
from .result import QuantizeResult
from .weights import dask_colour_weights

# A chunk of a small key space with at least this many pixels per possible colour
# is counted over the whole key space (a bitmap: 4 MiB of bits and ranks per
# running task for 8-bit RGB); others are sorted. The threshold is that of the
# bincount the bitmap replaced, which beat sorting down to 0.5 megapixels.
_BINCOUNT_MIN_FILL = 1 / 16


# The histogram pass runs in at most about this many batches (progress steps).
_MAX_BATCHES = 100


# Fractions of the progress bar: histogram pass, then the fit.
_HIST_END = 0.6


_FIT_END = 0.95


DITHER_MESSAGE = (
    "dither=True is not supported for dask arrays: error diffusion carries each "
    "pixel's error to the pixels right of and below it, so every chunk would depend "
    "on all the chunks before it and the labels could be neither lazy nor parallel. "
    "Quantise without dithering, or pass np.asarray(image) if it fits in memory."
)


WEIGHTS_SAMPLE_MESSAGE = (
    "weights cannot be combined with max_pixels for a dask image; the weights "
    "already say which pixels the fit should count. Drop max_pixels, or set the "
    "weights of the pixels to leave out to 0."
)


def dask_quantize_iter(
    image: Any,
    options: QuantizeOptions,
    *,
    channel_axis: int | None,
    histogram_method: str = "auto",
) -> Generator[float, None, QuantizeResult]:
    """``quantize_iter`` of a dask array (see the module docstring), with
    checked options; the public form is ``chunked.quantize_dask_iter``."""
    start = time.perf_counter()
    check_option("histogram_method", histogram_method, ("auto", "dense", "sparse"))
    image = as_dask(image)
    arr, axis = dask_channels_last(image, channel_axis)
    if options.dither:
        raise ValueError(DITHER_MESSAGE)
    color_space = options.color_space
    dtype = arr.dtype
    n_channels = arr.shape[-1]
    check_fit_space_range(
        np.zeros((1, n_channels), dtype=dtype), color_space, options.alpha
    )
    spec = KeySpec(dtype, n_channels, options.alpha)
    dense = spec.dense if histogram_method == "auto" else histogram_method == "dense"
    if dense and not spec.dense:
        raise ValueError(
            f"histogram_method='dense' needs at most {DENSE_MAX_KEYS} possible "
            f"colours; {n_channels} channel(s) of {dtype} have {spec.n_keys_text}."
        )
    n_pixels = math.prod(arr.shape[:-1])
    sample = None
    if options.max_pixels is not None and options.max_pixels < n_pixels:
        sample = pixel_sample(n_pixels, options.max_pixels, options.random_state)
    options = checked_arrays(options, dtype, arr.shape)
    weights = options.weights
    if weights is not None and sample is not None:
        raise ValueError(WEIGHTS_SAMPLE_MESSAGE)
    yield 0.0

    hist, value_range = yield from scaled(
        _histogram_pass(
            arr,
            spec,
            dense=dense,
            sample=sample,
            want_range=color_space != "rgb" or needs_value_range(dtype),
        ),
        0.0,
        _HIST_END,
    )
    if value_range is not None:
        # The in-memory checks and messages, on the image's extreme values.
        lo, hi = value_range
        check_value_range(lo, hi, dtype)
        check_fit_space_range(
            np.array([[lo] * n_channels, [hi] * n_channels], dtype=dtype),
            color_space,
            options.alpha,
        )
    if weights is not None:
        hist.set_weights(
            (yield from dask_colour_weights(arr, weights, spec, hist.keys))
        )
    fit = yield from scaled(_fit(hist, options), _HIST_END, _FIT_END)
    labels, image_out = _lazy_outputs(arr, axis, hist, fit, spec)
    yield 1.0
    return QuantizeResult(
        image=image_out,
        labels=labels,
        palette=fit.palette,
        counts=fit.counts,
        n_colors_requested=options.n_colors,
        color_space=color_space,
        inertia=fit.inertia,
        n_iter=fit.n_iter,
        converged=fit.converged,
        n_distinct=len(hist.colors),
        channel_axis=axis,
        dither=False,
        seconds=time.perf_counter() - start,
        channel_scale=fit.scale,
        alpha=options.alpha,
    )


def as_dask(image: Any) -> Any:
    import dask.array as da

    if isinstance(image, da.Array):
        return image
    data = getattr(image, "data", None)  # e.g. an xarray DataArray backed by dask
    if isinstance(data, da.Array):
        return data
    return da.asarray(image)


def dask_channels_last(image: Any, channel_axis: int | None) -> tuple[Any, int | None]:
    """Validate a dask image's metadata; return a (..., C) view with whole channels.

    Shape, dtype and channel checks (and their messages) are the in-memory ones,
    run on a zero-strided stand-in of the same shape so nothing is computed.
    """
    if any(isinstance(s, float) and math.isnan(s) for s in image.shape):
        raise ValueError(
            f"image has unknown chunk sizes (shape {image.shape}); call "
            "image.compute_chunk_sizes() first."
        )
    refuse_masked(image)
    dtype = native_dtype(image.dtype)
    as_channels_last(
        np.broadcast_to(np.zeros((), dtype=dtype), image.shape),
        channel_axis,
        check_values=False,
    )
    if image.dtype != dtype:
        # Big-endian chunks: the kernels compute in native byte order.
        image = image.astype(dtype)
    if channel_axis is None:
        return image[..., None], None
    axis = int(channel_axis) % image.ndim
    if image.numblocks[axis] > 1:
        image = image.rechunk({axis: -1})
    import dask.array as da

    if axis != image.ndim - 1:
        image = da.moveaxis(image, axis, -1)
    return image, axis


def _block_pixels(block: np.ndarray) -> np.ndarray:
    """The (N, C) pixels of a channels-last block."""
    return block.reshape(-1, block.shape[-1])


def _count_bad(pixels: np.ndarray) -> int:
    if pixels.dtype.kind != "f":
        return 0
    return int(pixels.size - np.count_nonzero(np.isfinite(pixels)))


def _block_histogram(
    block: np.ndarray,
    spec: KeySpec,
    sample: np.ndarray | None,
    want_range: bool,
    counter: DenseCounter | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray, tuple | None]:
    """Distinct keys (sorted), their counts, the non-finite count, sampled keys and
    (if asked) the block's smallest and largest value before transparent merging.
    With a `counter` (a small key space) the pixels are counted into it instead and
    no keys or counts are returned.
    """
    pixels = _block_pixels(block)
    bad = _count_bad(pixels)
    if bad:
        empty = np.empty(0, dtype=spec.key_dtype)
        return empty, np.empty(0, dtype=np.int64), [bad], empty, None
    value_range = (pixels.min(), pixels.max()) if want_range else None
    empty = np.empty(0, spec.key_dtype)
    if spec.dense and (
        counter is not None or spec.n_keys * _BINCOUNT_MIN_FILL <= len(pixels)
    ):
        # A small key space (never RGBA, so no alpha to merge): each key made as
        # it is counted, no per-pixel key array; into the shared counts, or
        # through a bitmap.
        sampled = spec.keys(pixels[sample]) if sample is not None else empty
        if counter is not None:
            counter.add(pixels)
            return empty, np.empty(0, dtype=np.int64), [0], sampled, value_range
        distinct, counts = dense.count_keys(
            *dense.key_args(pixels, spec), spec.n_keys, empty
        )
        return distinct, counts, [0], sampled, value_range
    keys = spec.keys(merge_transparent(pixels, spec.alpha))
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
        spec: KeySpec,
        keys: np.ndarray,
        key_counts: np.ndarray,
        sampled: np.ndarray | None,
    ) -> None:
        self.spec = spec
        #: distinct keys, ascending (the order the lazy lookup searches)
        self.keys = keys
        mine = spec.colors(keys)
        if spec.packed:
            # Packed keys are the in-memory histogram's keys, in its order.
            self.to_canon = None
            self.colors = mine
            self.counts = key_counts
        else:
            canon = color_histogram(mine)
            #: key row -> row of `colors` (the in-memory histogram order)
            self.to_canon = canon.inverse
            self.colors = canon.colors
            self.counts = self._in_order(key_counts)
        self.weights = self.counts.astype(np.float64)
        if sampled is not None:
            rows = np.searchsorted(keys, sampled)
            if self.to_canon is not None:
                rows = self.to_canon[rows]
            self.weights = np.bincount(rows, minlength=len(keys)).astype(np.float64)

    def set_weights(self, key_weights: np.ndarray) -> None:
        """Fit weights given per key (ascending), e.g. summed pixel weights."""
        self.weights = self._in_order(key_weights.astype(np.float64, copy=False))

    def _in_order(self, per_key: np.ndarray) -> np.ndarray:
        """Values given per key (ascending) in `colors`' order."""
        if self.to_canon is None:
            return per_key
        out = np.empty_like(per_key)
        out[self.to_canon] = per_key
        return out

    def per_key(self, per_colour: np.ndarray) -> np.ndarray:
        """Values given per row of `colors`, in key order."""
        return per_colour if self.to_canon is None else per_colour[self.to_canon]


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
    spec: KeySpec,
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

    # Tasks that share this process's memory count straight into shared arrays;
    # others (e.g. on distributed workers) send back their chunk's distinct keys.
    counter = DenseCounter(spec) if dense and _shares_memory(arr) else None
    acc = np.zeros(spec.n_keys, dtype=np.int64) if dense and not counter else None
    run_keys = np.empty(0, dtype=spec.key_dtype)
    run_counts = np.empty(0, dtype=np.int64)
    sampled, ranges = [], []
    for b0 in range(0, len(grid), batch):
        ids = grid[b0 : b0 + batch]
        parts = [
            task(blocks[(*i, 0)], spec, by_block.get(i, no_sample), want_range, counter)
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
            if acc is not None:
                _add_counts(acc, keys, counts)
            elif counter is None:
                run_keys, run_counts = _merge_sorted(
                    [run_keys, keys], [run_counts, counts]
                )
            sampled.append(samp)
            if value_range is not None:
                ranges.append(value_range)
        del parts
        yield (b0 + len(ids)) / len(grid)
    if counter is not None:
        run_keys, run_counts = counter.result()
    elif dense:
        run_keys = np.flatnonzero(acc).astype(spec.key_dtype)
        run_counts = acc[run_keys]
        del acc
    samp_all = None if sample is None else np.concatenate(sampled)
    value_range = _union_range(ranges)
    return _Histogram(spec, run_keys, run_counts, samp_all), value_range


def _shares_memory(arr: Any) -> bool:
    """Whether `arr`'s tasks would run in this process (dask's threaded or
    synchronous scheduler), where they can write into this process's arrays."""
    import dask.local
    import dask.threaded
    from dask.base import get_scheduler

    return get_scheduler(collections=[arr]) in (dask.threaded.get, dask.local.get_sync)


@njit(nogil=True, cache=True)
def _add_counts(acc, keys, counts):  # pragma: no cover
    # One pass: numpy's acc[keys] += counts gathers, adds and scatters in three,
    # on the caller's thread while the workers wait for the next batch.
    for i in range(len(keys)):
        acc[keys[i]] += counts[i]


def _union_range(ranges: Sequence[tuple | None]) -> tuple | None:
    ranges = [r for r in ranges if r is not None]
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


@dataclass(frozen=True, eq=False)
class _Fit:
    """The palette of a dask image, most frequent first, its counts, the label of
    every distinct colour (in key order) and the fit's details."""

    palette: np.ndarray
    counts: np.ndarray
    colour_label: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    scale: np.ndarray | None


def _fit(hist: _Histogram, options: QuantizeOptions) -> Generator[float, None, _Fit]:
    """The in-memory fit and assignment (``pipeline``), on the chunked histogram;
    counts come from the histogram instead of a pass over the pixels."""
    dtype = hist.spec.dtype
    inputs = FitInputs(
        hist.colors,
        hist.counts,
        hist.weights,
        dtype,
        options.color_space,
        alpha=options.alpha,
        standardize=options.standardize,
    )
    fit = yield from fit_palette(inputs, options)
    nearest, counts = color_labels(
        hist.colors,
        hist.counts,
        dtype,
        fit.palette,
        options.color_space,
        fit.guess,
        inputs.scale,
    )
    order, remap = order_by_share(counts, fit.keep)
    colour_label = hist.per_key(remap[nearest].astype(label_dtype(len(order))))
    return _Fit(
        fit.palette[order],
        counts[order],
        colour_label,
        fit.inertia,
        fit.n_iter,
        fit.converged,
        inputs.scale,
    )


def _map_block_dense(block: np.ndarray, spec: KeySpec, table: np.ndarray) -> np.ndarray:
    # Key and lookup in one pass per pixel, no per-pixel key array (a dense key
    # space is never RGBA: no alpha to merge).
    pixels, bits, flip = dense.key_args(_block_pixels(block), spec)
    out = np.empty(len(pixels), dtype=table.dtype)
    dense.lookup(pixels, bits, flip, table, out, 0, len(out))
    return out.reshape(block.shape[:-1])


def _map_block_sparse(
    block: np.ndarray, spec: KeySpec, table: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    keys_sorted, colour_label = table
    pixels = _block_pixels(block)
    if _count_bad(pixels):
        raise ValueError("image contains NaN or infinite values in this chunk.")
    keys = spec.keys(merge_transparent(pixels, spec.alpha))
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
    arr: Any, axis: int | None, hist: _Histogram, fit: _Fit, spec: KeySpec
) -> tuple[Any, Any]:
    import dask

    labels_dtype = fit.colour_label.dtype
    if spec.dense:
        lut = np.zeros(spec.n_keys, dtype=labels_dtype)
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
        dtype=labels_dtype,
        meta=np.empty((0,) * (arr.ndim - 1), dtype=labels_dtype),
        name="kmq-labels-" + dask.base.tokenize(arr, table, func),
    )
    return labels, _lazy_image(labels, fit.palette, axis)


def _apply_block(
    block: np.ndarray,
    palette: np.ndarray,
    pal_fit: np.ndarray,
    color_space: str,
    labels_dtype: np.dtype,
    alpha: bool = True,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    pixels = _block_pixels(block)
    if _count_bad(pixels):
        raise ValueError("image contains NaN or infinite values in this chunk.")
    if color_space != "rgb" and pixels.size:
        check_fit_space_range(pixels, color_space, alpha)
    hist = color_histogram(merge_transparent(pixels, alpha))
    col_fit = fit_points(hist.colors, pixels.dtype, color_space, scale)
    labels = hist.expand(nearest(col_fit, pal_fit, palette).astype(labels_dtype))
    return labels.reshape(block.shape[:-1])


def _block_bincount(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=k).astype(np.int64)


def _sum_counts(*counts: np.ndarray) -> np.ndarray:
    return np.sum(counts, axis=0, dtype=np.int64)


def lazy_apply(
    arr: Any,
    axis: int | None,
    palette: np.ndarray,
    color_space: str,
    alpha: bool = True,
    scale: np.ndarray | None = None,
) -> tuple[Any, Any, Any]:
    """Labels, image and counts of `arr` mapped onto `palette`, all lazy
    (distances divided by `scale` when the palette was fitted standardised)."""
    import dask
    import dask.array as da

    k = len(palette)
    dtype = label_dtype(k)
    pal_fit = fit_points(palette, palette.dtype, color_space, scale)
    labels = arr.map_blocks(
        _apply_block,
        palette,
        pal_fit,
        color_space,
        dtype,
        alpha,
        scale,
        drop_axis=arr.ndim - 1,
        dtype=dtype,
        meta=np.empty((0,) * (arr.ndim - 1), dtype=dtype),
    )
    per_block = [
        dask.delayed(_block_bincount, pure=True)(b, k)
        for b in labels.to_delayed().ravel()
    ]
    counts = da.from_delayed(
        dask.delayed(_sum_counts, pure=True)(*per_block), (k,), dtype=np.int64
    )
    return labels, _lazy_image(labels, palette, axis), counts
