"""Passes over the pixels of a small key space that make each pixel's key as they go.

For 8-bit RGB and 8- or 16-bit grey (``KeySpec.dense``: at most 2**24 keys) a
pixel's key is a few shifts of its channels, cheaper to make again than to keep:
an array of keys would be 4 bytes a pixel (48 MB for a 12-megapixel photo, more
than the photo itself). So the counting and the per-pixel lookups read the pixels
themselves. A dense key space never has an alpha channel to merge (RGBA needs 32
bits).
"""

from __future__ import annotations

import queue
import threading

import numpy as np
from numba import njit

from .keys import KeySpec, _popcount, bitmap_rank


def key_args(pixels: np.ndarray, spec: KeySpec) -> tuple[np.ndarray, int, int]:
    """The (N, C) pixels as unsigned integers, the bits per channel and the bit
    that makes signed values sort like their keys (as ``KeySpec.keys`` does)."""
    unsigned = pixels.view(f"u{spec.dtype.itemsize}")
    flip = 1 << (spec.bits - 1) if spec.dtype.kind == "i" else 0
    return unsigned, spec.bits, flip


@njit(nogil=True, cache=True, inline="always")
def _key(pixels, i, bits, flip):  # pragma: no cover
    # RGB and grey written out: a loop of unknown length per pixel made the
    # count 1.5x slower. Unsigned, as the row index: numba checks every signed
    # index for a negative (from-the-end) value, which halved the lookups' speed.
    i = np.uint64(i)
    if pixels.shape[1] == 3:
        return np.uint64(
            ((np.int64(pixels[i, 0]) ^ flip) << (2 * bits))
            | ((np.int64(pixels[i, 1]) ^ flip) << bits)
            | (np.int64(pixels[i, 2]) ^ flip)
        )
    if pixels.shape[1] == 1:
        return np.uint64(np.int64(pixels[i, 0]) ^ flip)
    key = 0
    for c in range(pixels.shape[1]):
        key = (key << bits) | (np.int64(pixels[i, c]) ^ flip)
    return np.uint64(key)


@njit(nogil=True, cache=True)
def count_keys(pixels, bits, flip, n_keys, like):  # pragma: no cover
    """The distinct keys of the pixels (ascending, in the dtype of `like`) and the
    pixels of each: ``keys.bitmap_unique`` without a key array."""
    words = np.zeros((n_keys + 63) >> 6, dtype=np.uint64)
    one = np.uint64(1)
    for i in range(pixels.shape[0]):
        key = _key(pixels, i, bits, flip)
        words[key >> np.uint64(6)] |= one << (key & np.uint64(63))
    rank, distinct = bitmap_rank(words, like)
    counts = np.zeros(len(distinct), dtype=np.int64)
    for i in range(pixels.shape[0]):
        key = _key(pixels, i, bits, flip)
        w = key >> np.uint64(6)
        counts[
            np.uint64(
                rank[w] + _popcount(words[w] & ((one << (key & np.uint64(63))) - one))
            )
        ] += 1
    return distinct, counts


@njit(nogil=True, cache=True)
def lookup(pixels, bits, flip, table, out, lo, hi):  # pragma: no cover
    """``out[i] = table[key of pixel i]`` for i in [lo, hi)."""
    for i in range(np.uint64(lo), np.uint64(hi)):
        out[i] = table[_key(pixels, i, bits, flip)]


@njit(nogil=True, cache=True)
def lookup_pair(
    pixels, bits, flip, lut, table, values, rows, lo, hi
):  # pragma: no cover
    """``values[i] = lut[key]`` and ``rows[i] = table[values[i]]`` for i in [lo, hi)."""
    for i in range(np.uint64(lo), np.uint64(hi)):
        v = lut[_key(pixels, i, bits, flip)]
        values[i] = v
        for j in range(table.shape[1]):
            rows[i, j] = table[v, j]


@njit(nogil=True, cache=True)
def key_bitmap(distinct, n_keys):  # pragma: no cover
    """The bitmap of the distinct keys and the set bits before each of its words:
    with them a key's row among the distinct keys is a population count."""
    words = np.zeros((n_keys + 63) >> 6, dtype=np.uint64)
    one = np.uint64(1)
    for key in distinct:
        k = np.uint64(key)
        words[k >> np.uint64(6)] |= one << (k & np.uint64(63))
    rank, _ = bitmap_rank(words, distinct[:0])
    return words, rank


@njit(nogil=True, cache=True)
def colour_entries(
    pixels, bits, flip, words, rank, labels, n_colors
):  # pragma: no cover
    """The label of every distinct colour, and whether all its pixels have that one
    label (False as soon as one does not: a dithered result)."""
    one = np.uint64(1)
    lut = np.full(n_colors, -1, dtype=np.intp)
    for i in range(pixels.shape[0]):
        key = _key(pixels, i, bits, flip)
        w = key >> np.uint64(6)
        c = np.uint64(
            rank[w] + _popcount(words[w] & ((one << (key & np.uint64(63))) - one))
        )
        label = labels[np.uint64(i)]
        if lut[c] < 0:
            lut[c] = label
        elif lut[c] != label:
            return lut, False
    return lut, True


@njit(nogil=True, cache=True)
def count_into(pixels, bits, flip, acc):  # pragma: no cover
    """``acc[key of pixel i] += 1`` for every pixel: one scattered increment each."""
    for i in range(pixels.shape[0]):
        acc[_key(pixels, i, bits, flip)] += 1


@njit(nogil=True, cache=True)
def _fold(total, acc):  # pragma: no cover
    for i in range(len(acc)):
        total[i] += acc[i]
        acc[i] = 0


@njit(nogil=True, cache=True)
def _nonzero(counts, like):  # pragma: no cover
    # np.flatnonzero and the counts there in one pass, keys in like's dtype.
    n = 0
    for key in range(len(counts)):
        if counts[key]:
            n += 1
    keys = np.empty(n, dtype=like.dtype)
    out = np.empty(n, dtype=np.int64)
    j = 0
    for key in range(len(counts)):
        if counts[key]:
            keys[j] = key
            out[j] = counts[key]
            j += 1
    return keys, out


class DenseCounter:
    """Pixel counts over a small key space, added into by concurrent tasks.

    Every task that runs at the same time counts into an array of its own (taken
    from a free list, made when none is free), so the counts need no lock and no
    per-chunk list of distinct colours is made, shipped and added up: one
    scattered increment per pixel. Arrays are uint32 (64 MiB for 8-bit RGB), at
    most ``_MAX_ARRAYS`` of them; one about to overflow is first added into an
    int64 array. For tasks that share this process's memory (dask's threaded or
    synchronous scheduler).
    """

    _LIMIT = (1 << 32) - 1
    # Tasks past this many at once wait for an array (bounds the memory: 512
    # MiB for 8-bit RGB).
    _MAX_ARRAYS = 8

    def __init__(self, spec: KeySpec) -> None:
        self.spec = spec
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._arrays: list[list] = []  # [counts, pixels counted into them]
        self._lock = threading.Lock()
        self._spill: np.ndarray | None = None

    def __dask_tokenize__(self) -> object:
        return ("DenseCounter", id(self))

    def add(self, pixels: np.ndarray) -> None:
        """Count the (N, C) `pixels` (of the counter's dtype and channels)."""
        if len(pixels) > self._LIMIT:
            for lo in range(0, len(pixels), self._LIMIT):
                self.add(pixels[lo : lo + self._LIMIT])
            return
        try:
            slot = self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                make = len(self._arrays) < self._MAX_ARRAYS
                if make:
                    slot = [np.zeros(self.spec.n_keys, dtype=np.uint32), 0]
                    self._arrays.append(slot)
            if not make:
                slot = self._free.get()  # wait for a task to hand one back
        try:
            if slot[1] + len(pixels) > self._LIMIT:
                with self._lock:
                    if self._spill is None:
                        self._spill = np.zeros(self.spec.n_keys, dtype=np.int64)
                    _fold(self._spill, slot[0])
                slot[1] = 0
            count_into(*key_args(pixels, self.spec), slot[0])
            slot[1] += len(pixels)
        finally:
            self._free.put(slot)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct keys (ascending, of the spec's key dtype) and their counts;
        the count arrays are released."""
        slots, self._arrays = self._arrays, []
        spill, self._spill = self._spill, None
        like = np.empty(0, dtype=self.spec.key_dtype)
        if not slots:
            return like, np.empty(0, dtype=np.int64)
        base, n = slots[0]
        for counts, m in slots[1:]:
            # Added in place while no count can pass the uint32 range.
            if n + m <= self._LIMIT:
                _fold(base, counts)
                n += m
            else:
                if spill is None:
                    spill = np.zeros(self.spec.n_keys, dtype=np.int64)
                _fold(spill, counts)
        if spill is not None:
            _fold(spill, base)
            base = spill
        return _nonzero(base, like)
