"""Kernels over the centres: their order along an axis, the neighbour lists and
shifts after a move, the cluster means and error, and point-centre distances."""

from __future__ import annotations

import numpy as np
from numba import njit

# ... those within this many cluster radii. A short reach gives tighter bounds for
# the points near their centre, and the cap (reach - distance) for the others.
_REACH = 1.5


@njit(nogil=True, cache=True)
def _stable_argsort(keys):  # pragma: no cover
    """``np.argsort(keys, kind="stable")``, by a bottom-up merge sort.

    numba's own sorts take about a second each to compile, in every kernel that
    uses one; this one is plain loops.
    """
    n = len(keys)
    order = np.arange(n)
    buf = np.empty(n, dtype=np.intp)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j = lo, mid
            for t in range(lo, hi):
                # Take from the right run only if strictly smaller: stable.
                if j < hi and (i >= mid or keys[order[j]] < keys[order[i]]):
                    buf[t] = order[j]
                    j += 1
                else:
                    buf[t] = order[i]
                    i += 1
        order, buf = buf, order
        width *= 2
    return order


@njit(nogil=True, cache=True)
def _projections(centers, axis):  # pragma: no cover
    """The centres' projections on the axis, ascending, and their order."""
    k, d = centers.shape
    proj = np.zeros(k)
    for a in range(k):
        for j in range(d):
            proj[a] += centers[a, j] * axis[j]
    order = _stable_argsort(proj)
    return proj[order], order


@njit(nogil=True, cache=True)
def _moved_kernel(new, old, top_upper, axis, lists):  # pragma: no cover
    """What a search needs after the centres moved from `old` to `new`."""
    k = len(new)
    shift = np.empty(k)
    for a in range(k):
        shift[a] = np.sqrt(_sq_dist(new, a, old, a))
    top_arg, second = 0, 0.0
    for a in range(1, k):
        if shift[a] > shift[top_arg]:
            top_arg = a
    for a in range(k):
        if a != top_arg:
            second = max(second, shift[a])
    # Far from its cluster a centre cannot take a point, so a point's bound on the
    # other centres falls by the largest shift among the centres near its cluster
    # (within _REACH cluster radii of its centre) and is capped by reach - upper
    # for the others.
    rad = top_upper + shift
    cap = _REACH * rad
    proj, order = _projections(new, axis)
    if lists:
        half_gap, nbr, nbr_dist, cnt, ext, local = _centre_graph(
            new, 2.0 * rad, shift, cap
        )
    else:
        half_gap, ext, local = np.zeros(k), np.zeros(0), np.zeros(k)
        nbr = np.zeros((0, 0), dtype=np.intp)
        nbr_dist = np.zeros((0, 0))
        cnt = np.zeros(0, dtype=np.intp)
    return (
        shift, top_arg, second, cap, proj, order,
        half_gap, nbr, nbr_dist, cnt, ext, local,
    )  # fmt: skip


@njit(nogil=True, cache=True)
def _centre_graph(centers, reach, shift, shift_reach):  # pragma: no cover
    """Half the gap to the nearest other centre, the neighbour lists (centres
    within `reach`, nearest first, ties by index) with the smallest gap to any
    centre left out, and the largest shift among the centres within
    `shift_reach`, for every centre."""
    k, d = centers.shape
    half_gap = np.empty(k)
    nbr = np.empty((k, k), dtype=np.intp)
    nbr_dist = np.empty((k, k))
    cnt = np.zeros(k, dtype=np.intp)
    ext = np.empty(k)
    local = np.zeros(k)
    # Row by row, every distance first (one loop over the other centres per
    # channel, which the compiler vectorises), then one scan without branches:
    # the pairwise loop with its stores into both rows was the slower part of
    # every Lloyd iteration at k=256.
    columns = np.ascontiguousarray(centers.T)
    sq = np.empty(k)
    for a in range(k):
        sq[:] = 0.0
        for j in range(d):
            x = centers[a, j]
            col = columns[j]
            for c in range(k):
                t = x - col[c]
                sq[c] += t * t
        sq[a] = np.inf
        r2 = reach[a] * reach[a]
        s2 = shift_reach[a] * shift_reach[a]
        nearest, out, top, n = np.inf, np.inf, 0.0, 0
        for c in range(k):
            g = sq[c]
            nearest = g if g < nearest else nearest
            inside = g < r2
            e = np.inf if inside else g
            out = e if e < out else out
            s = shift[c] if g < s2 else 0.0
            top = s if s > top else top
            # Written always, kept only when inside.
            nbr[a, n] = c
            nbr_dist[a, n] = g
            n += inside
        for t in range(n):
            nbr_dist[a, t] = np.sqrt(nbr_dist[a, t])
        half_gap[a], ext[a], local[a], cnt[a] = nearest, out, top, n
        _sort_row(nbr[a], nbr_dist[a], n)
    return 0.5 * np.sqrt(half_gap), nbr, nbr_dist, cnt, np.sqrt(ext), local


@njit(nogil=True, cache=True)
def _sort_row(nbr, dist, n):  # pragma: no cover
    """Insertion sort of the first `n` entries by distance, in place: stable, so
    ties stay in index order, and the lists are short."""
    for t in range(1, n):
        dt, ct = dist[t], nbr[t]
        q = t - 1
        while q >= 0 and dist[q] > dt:
            dist[q + 1] = dist[q]
            nbr[q + 1] = nbr[q]
            q -= 1
        dist[q + 1] = dt
        nbr[q + 1] = ct


@njit(nogil=True, cache=True)
def _means(centers, s_sum, w_sum, n_sum, overrelax):  # pragma: no cover
    """Each cluster's mean (stepped `overrelax` of its move further); centres of
    empty clusters stay."""
    new = centers.copy()
    for a in range(len(centers)):
        if n_sum[a] > 0:
            for j in range(centers.shape[1]):
                m = s_sum[a, j] / w_sum[a]
                if overrelax:
                    m = m + overrelax * (m - centers[a, j])
                new[a, j] = m
    return new


@njit(nogil=True, cache=True)
def _error(const, s_sum, w_sum, n_sum):  # pragma: no cover
    """Weighted squared error of the clusters around their means."""
    total = 0.0
    for a in range(len(w_sum)):
        if n_sum[a] > 0:
            sq = 0.0
            for j in range(s_sum.shape[1]):
                sq += s_sum[a, j] * s_sum[a, j]
            total += sq / w_sum[a]
    return const - total


@njit(nogil=True, cache=True)
def _sq_dist(points, i, centers, c):  # pragma: no cover
    # In float64 whatever the dtypes (integer colours would wrap around).
    dc = 0.0
    for j in range(points.shape[1]):
        t = float(points[i, j]) - float(centers[c, j])
        dc += t * t
    return dc


@njit(nogil=True, cache=True)
def _best_two(dc, c, b1, b2, i1):  # pragma: no cover
    """The two smallest squared distances (and the nearest centre) after `dc`."""
    if dc < b1:
        return dc, b1, c
    if dc < b2:
        return b1, dc, i1
    return b1, b2, i1
