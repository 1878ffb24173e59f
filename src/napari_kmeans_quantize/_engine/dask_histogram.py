"""The histogram pass of the dask backend: every chunk counted, the counts
added up, and the histogram put in the in-memory histogram's order.

See the public ``chunked`` module's docstring for what is counted where.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
from numba import njit

from ..histogram import color_histogram
from . import dense
from .dense import DenseCounter
from .image import merge_transparent
from .keys import KeySpec

# A chunk of a small key space with at least this many pixels per possible colour
# is counted over the whole key space (a bitmap: 4 MiB of bits and ranks per
# running task for 8-bit RGB); others are sorted. The threshold is that of the
# bincount the bitmap replaced, which beat sorting down to 0.5 megapixels.
_BINCOUNT_MIN_FILL = 1 / 16


# The histogram pass runs in at most about this many batches (progress steps).
_MAX_BATCHES = 100


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
    empty = np.empty(0, dtype=spec.key_dtype)
    if bad:
        return empty, np.empty(0, dtype=np.int64), [bad], empty, None
    value_range = (pixels.min(), pixels.max()) if want_range else None
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
    sampled = keys[sample] if sample is not None else empty
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
