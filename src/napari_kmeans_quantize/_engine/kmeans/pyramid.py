"""The pyramid of coarser point sets a fit runs on, coarse to fine.

Each level holds the weighted means of the points of the next finer level in
the cells of a regular grid; the cell side doubles from one level to the next.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..keys import bitmap_unique

# Point sets at most this large are clustered directly, without a pyramid.
_DIRECT_MAX_POINTS = 1 << 14


# A pyramid level must hold at least this many cells per cluster ...
_MIN_CELLS_PER_CLUSTER = 8


# ... and at most this fraction of the points of the next finer level.
_MAX_LEVEL_RATIO = 0.6


# The coarsest level (where the initialisation runs) holds about this many cells.
_INIT_TARGET_CELLS = 1 << 13


# ... or fewer for small k: about this many cells per cluster is enough to
# place k seeds (k=16 initialised on 8192 cells spent more on the seeds than on
# all Lloyd iterations).
_INIT_CELLS_PER_CLUSTER = 32


# Bits of the packed cell key of the finest grid (2**21 cells for RGB at 7 bits).
_MAX_KEY_BITS = 21
# ... and for more than 4 channels, where 21 bits would leave a grid of 2 or 4
# cells a side: the levels would jump from every point to a few hundred cells,
# too few to fit on, and the seeds would be placed on every point.
_MAX_KEY_BITS_MANY = 60


@dataclass
class _Level:
    """A point set of the pyramid.

    ``parent[i]`` is the cell of the next coarser level that holds point ``i`` of
    the next finer level (None on the full point set).
    """

    points: np.ndarray
    weights: np.ndarray
    parent: np.ndarray | None


def _group(keys: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (ascending) and the index of every key among them."""
    if n_keys <= 1 << 24:
        distinct, inverse, _ = bitmap_unique(keys, n_keys, True)
        return distinct, inverse
    distinct, inverse = np.unique(keys, return_inverse=True)
    return distinct, inverse.ravel()


class Pyramid:
    """Coarser point sets of weighted points, built once for every k.

    Each level holds the weighted means of the points of the next finer level in
    the cells of a regular grid; the cell side doubles from one level to the next,
    and a level is kept only if it is much smaller than the one below it. Which
    levels a fit uses depends on k (see :meth:`levels`), but they are always the
    first ones of the same chain, so fits for several k (a sweep) share one
    pyramid; it is built as far as the smallest k asks, and is safe to share
    between threads.

    Parameters
    ----------
    points : (n, d) ndarray of float64
        The finest point set (distinct colours in the fit space).
    weights : (n,) ndarray of float64
        The weight of every point.
    """

    def __init__(self, points: np.ndarray, weights: np.ndarray) -> None:
        self.points = points
        self.weights = weights
        self._chain: list[_Level] = []
        self._lock = threading.Lock()
        n, d = points.shape
        self._b = 0
        self._cur = (points, weights)
        if n <= _DIRECT_MAX_POINTS:
            return
        # Column by column: reductions over the short rows of an (n, d) array are
        # several times slower (6 ms against 0.2 ms for 230k RGB points).
        lo = np.array([points[:, j].min() for j in range(d)])
        span = float(max(points[:, j].max() - lo[j] for j in range(d)))
        if span == 0:
            return
        # Integer cell coordinates of every point on the finest grid (2**b cells
        # a side); a coarser grid halves them.
        key_bits = _MAX_KEY_BITS if d <= 4 else _MAX_KEY_BITS_MANY
        self._b = max(1, key_bits // d)
        self._coords = _grid_coords(points, lo, (1 << self._b) / span, self._b)

    def levels(self, k: int) -> list[_Level]:
        """The levels a fit of k clusters runs on, coarsest first.

        From the finest, the levels of at least ``8 k`` cells (and 1024), down to
        the first of at most ``min(8192, 32 k)`` cells, where the seeds are placed.
        """
        min_cells = max(_MIN_CELLS_PER_CLUSTER * k, 1 << 10)
        init_cells = min(_INIT_TARGET_CELLS, _INIT_CELLS_PER_CLUSTER * k)
        out: list[_Level] = []
        with self._lock:
            while len(out) < len(self._chain) or self._extend():
                level = self._chain[len(out)]
                m = len(level.points)
                if m < min_cells:
                    break
                out.append(level)
                if m <= init_cells:
                    break
        return out[::-1]

    def _extend(self) -> bool:
        """Add the next coarser level to the chain; False when there is none."""
        d = self.points.shape[1]
        cur_points, cur_weights = self._cur
        while self._b >= 1:
            b = self._b
            key = _cell_keys(self._coords, b)
            distinct, inverse = _group(key, 1 << (b * d))
            m = len(distinct)
            self._coords >>= 1
            self._b -= 1
            if m <= _MAX_LEVEL_RATIO * len(cur_points):
                means, w, self._coords = _coarser(
                    cur_points, cur_weights, self._coords, inverse, m
                )
                self._chain.append(_Level(means, w, inverse))
                self._cur = (means, w)
                return True
        return False


@njit(nogil=True, cache=True)
def _grid_coords(points, lo, scale, b):  # pragma: no cover
    n, d = points.shape
    top = (1 << b) - 1
    coords = np.empty((n, d), dtype=np.int64)
    for i in range(n):
        for j in range(d):
            coords[i, j] = min(int((points[i, j] - lo[j]) * scale), top)
    return coords


@njit(nogil=True, cache=True)
def _coarser(points, weights, coords, inverse, m):  # pragma: no cover
    # The cells' weighted means, weights and grid coordinates, in one pass in
    # point order.
    d = points.shape[1]
    w = np.zeros(m)
    means = np.zeros((m, d))
    cell_coords = np.empty((m, d), dtype=np.int64)
    for i in range(len(inverse)):
        a = inverse[i]
        w[a] += weights[i]
        for j in range(d):
            means[a, j] += weights[i] * points[i, j]
            cell_coords[a, j] = coords[i, j]
    for a in range(m):
        for j in range(d):
            means[a, j] /= w[a]
    return means, w, cell_coords


@njit(nogil=True, cache=True)
def _cell_keys(coords, b):  # pragma: no cover
    n, d = coords.shape
    key = np.empty(n, dtype=np.int64)
    for i in range(n):
        v = coords[i, 0]
        for j in range(1, d):
            v = (v << b) | coords[i, j]
        key[i] = v
    return key
