"""Colours as packed integer keys, and the bitmap count of distinct keys."""

from __future__ import annotations

import numpy as np
from numba import njit

# Key spaces up to this size are counted in a dense array and mapped by a full
# lookup table (8-bit RGB: 2**24 keys, 128 MiB of int64 counts, a 16 MiB table).
DENSE_MAX_KEYS = 1 << 24


@njit(nogil=True, cache=True)
def bitmap_unique(keys, n_keys, with_inverse):  # pragma: no cover
    """``np.unique(keys, return_inverse=True, return_counts=True)`` for keys below
    `n_keys`, through a bitmap over the key space instead of a sort.

    A key's row is the number of set bits before its own: the count up to its
    64-bit word plus a population count within it. For 8-bit RGB the bitmap is
    2 MiB; the three passes over the keys cost a few ms where the sort of 393k
    keys took 30 ms. Without `with_inverse` the inverse is left empty (big images
    keep their keys instead).
    """
    n_words = (n_keys + 63) >> 6
    words = np.zeros(n_words, dtype=np.uint64)
    one = np.uint64(1)
    for i in range(len(keys)):
        key = np.uint64(keys[i])
        words[key >> np.uint64(6)] |= one << (key & np.uint64(63))
    rank, distinct = bitmap_rank(words, keys[:0])
    total = len(distinct)
    inverse = np.empty(len(keys) if with_inverse else 0, dtype=np.intp)
    counts = np.zeros(total, dtype=np.int64)
    for i in range(len(keys)):
        key = np.uint64(keys[i])
        w = key >> np.uint64(6)
        below = words[w] & ((one << (key & np.uint64(63))) - one)
        # Unsigned: numba checks signed indices for negative (from-the-end) values.
        r = np.uint64(rank[w] + _popcount(below))
        if with_inverse:
            inverse[np.uint64(i)] = r
        counts[r] += 1
    return distinct, inverse, counts


@njit(nogil=True, cache=True)
def bitmap_rank(words, like):  # pragma: no cover
    """The set bits before every 64-bit word of a bitmap, and the set keys in
    ascending order (in the dtype of the array `like`)."""
    one = np.uint64(1)
    rank = np.empty(len(words), dtype=np.int64)
    total = 0
    for w in range(len(words)):
        rank[w] = total
        total += _popcount(words[w])
    distinct = np.empty(total, dtype=like.dtype)
    j = 0
    for w in range(len(words)):
        b = words[w]
        while b:
            low = b & (~b + one)
            distinct[j] = (w << 6) | _popcount(low - one)
            j += 1
            b ^= low
    return rank, distinct


@njit(nogil=True, cache=True)
def _popcount(x):  # pragma: no cover
    # SWAR bit count of a uint64.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + (
        (x >> np.uint64(2)) & np.uint64(0x3333333333333333)
    )
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


class KeySpec:
    """How the colours of one dtype and channel count become sortable keys.

    Integer colours of at most 64 bits in all are packed into one uint32/uint64
    (signed values offset so keys sort like values, as in ``histogram.py``); other
    colours (floats, wide integers) are keyed by their raw bytes as a void scalar.
    Any channel count works: past 64 bits in all the keys are the raw bytes.
    `alpha` says whether 4 channels are RGBA (their transparent pixels merged
    before keying) or plain channels.
    """

    def __init__(self, dtype: np.dtype, n_channels: int, alpha: bool = True) -> None:
        self.dtype = np.dtype(dtype)
        self.n_channels = n_channels
        self.alpha = alpha
        self.bits = self.dtype.itemsize * 8
        total = self.bits * n_channels
        self.packed = self.dtype.kind in "ui" and total <= 64
        if self.packed:
            self.key_dtype = np.dtype(np.uint32 if total <= 32 else np.uint64)
            self.n_keys = 1 << total
        else:
            self.key_dtype = np.dtype((np.void, self.dtype.itemsize * n_channels))
            self.n_keys = None
        self.dense = self.n_keys is not None and self.n_keys <= DENSE_MAX_KEYS

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
