"""Locked colours: palette entries the fit must keep exactly.

The fit is exact weighted Lloyd with the locked centres pinned: every point
goes to its nearest centre, locked or free, and only the free centres move to
their clusters' weighted means. The locked colours enter the palette as given
(bit for bit, in the image's dtype), never through the fit space and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import gather
from .image import checked_palette

# Nearest-centre searches over more points than this use every core.
_PARALLEL_POINTS = 1 << 14


def checked_fixed_colors(
    fixed_colors: object, dtype: np.dtype, n_channels: int, n_colors: int
) -> np.ndarray:
    """`fixed_colors` as an (m, C) array in `dtype`; TypeError or ValueError for
    a wrong shape, values the dtype cannot hold, duplicates or m > n_colors."""
    try:
        fixed = checked_palette(fixed_colors, dtype, n_channels)
    except (TypeError, ValueError) as err:
        raise type(err)(f"fixed_colors are checked as a palette: {err}") from None
    if len(fixed) > n_colors:
        raise ValueError(
            f"fixed_colors holds {len(fixed)} colours but n_colors={n_colors}; lock "
            "at most n_colors colours, or raise n_colors."
        )
    distinct = np.unique(fixed, axis=0)
    if len(distinct) < len(fixed):
        raise ValueError(
            f"fixed_colors holds {len(fixed) - len(distinct)} duplicate colour(s); "
            "give every locked colour once."
        )
    return fixed


@dataclass(frozen=True, eq=False)
class PinnedFit:
    """Free centres after Lloyd with pinned ones, and how the fit went."""

    free: np.ndarray
    inertia: float
    n_iter: int
    converged: bool


def pinned_lloyd(
    points: np.ndarray,
    weights: np.ndarray,
    pinned: np.ndarray,
    free: np.ndarray,
    *,
    max_iter: int,
    tol: float,
) -> PinnedFit:
    """Weighted Lloyd iterations in which the `pinned` centres never move.

    Stops when no point changes cluster (the free centres are then the weighted
    means of their clusters), when an iteration lowers the error by less than
    the fraction `tol`, or after `max_iter` iterations.
    """
    m = len(pinned)
    centres = np.concatenate([pinned, free]).astype(np.float64)
    dist, labels = _nearest(points, centres)
    err = _error(weights, dist)
    n_iter, converged = 0, False
    while n_iter < max_iter:
        n_iter += 1
        reseeded = _update(points, weights, labels, dist, centres, m)
        dist, new = _nearest(points, centres)
        new_err = _error(weights, dist)
        same = np.array_equal(new, labels)
        labels = new
        if not reseeded and (same or err - new_err <= tol * err):
            converged = True
            break
        err = new_err
    return PinnedFit(centres[m:], _error(weights, dist), n_iter, converged)


def _nearest(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to and index of the nearest centre (the first of equals)."""
    dist = np.empty(len(points))
    idx = np.empty(len(points), dtype=np.intp)
    gather.each_slice(
        len(points),
        lambda lo, hi: _nearest_kernel(points, centres, dist, idx, lo, hi),
        _PARALLEL_POINTS,
    )
    return np.sqrt(dist), idx


@njit(nogil=True, cache=True)
def _nearest_kernel(points, centres, dist, idx, lo, hi):  # pragma: no cover
    # A full search over the centres: simple, and cheap for palette sizes.
    k, d = centres.shape
    for i in range(lo, hi):
        best, arg = np.inf, 0
        for c in range(k):
            sq = 0.0
            for j in range(d):
                t = points[i, j] - centres[c, j]
                sq += t * t
            if sq < best:
                best, arg = sq, c
        dist[i] = best
        idx[i] = arg


def _update(
    points: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    dist: np.ndarray,
    centres: np.ndarray,
    m: int,
) -> bool:
    """Move the free centres (rows m and on) to their clusters' weighted means,
    in place; an empty one moves to the worst-served point. Whether any did."""
    k, d = centres.shape
    w_sum = np.bincount(labels, weights=weights, minlength=k)
    sums = np.stack(
        [
            np.bincount(labels, weights=weights * points[:, j], minlength=k)
            for j in range(d)
        ],
        axis=1,
    )
    live = np.flatnonzero(w_sum[m:] > 0) + m
    centres[live] = sums[live] / w_sum[live, None]
    empty = np.flatnonzero(w_sum[m:] == 0) + m
    if not len(empty):
        return False
    cost = weights * dist**2
    for c in empty:
        worst = int(np.argmax(cost))
        if cost[worst] <= 0:
            break
        centres[c] = points[worst]
        cost[worst] = 0.0
    return True


def _error(weights: np.ndarray, dist: np.ndarray) -> float:
    # Not ``weights @ dist**2``: BLAS threads would spin on the other core.
    return float((weights * dist * dist).sum())
