"""The deterministic initialisation: variance-based splits on the coarsest level
(in the style of Wan et al. and Wu), and the points' principal axis."""

from __future__ import annotations

import numpy as np
from numba import njit

from .centres import _stable_argsort
from .kernels import _sums_kernel

# Fraction of the boxes split per round of the initialisation.
_SPLIT_FRACTION = 0.25


def _variance_split_init(
    points: np.ndarray, weights: np.ndarray, n_clusters: int
) -> np.ndarray:
    """Deterministic divisive initialisation: k boxes by greedy best splits.

    Every box knows the axis-aligned cut that lowers its weighted squared error
    most; each round splits the boxes with the largest such gain (a fraction of all
    boxes, so that the number of rounds grows like log k) and evaluates the halves.
    """
    k = n_clusters
    mean = _weighted_mean(points, weights)
    pts = np.ascontiguousarray(points - mean)
    # Every axis sorted once (stably: ties in point order); numpy's sort is
    # several times faster than numba's.
    order = np.stack(
        [np.argsort(pts[:, j], kind="stable") for j in range(pts.shape[1])]
    )
    box, n_boxes = _split_kernel(pts, weights, order, k, _SPLIT_FRACTION)
    w, sums, _, _ = _sums_kernel(pts, weights, box, n_boxes)
    centers = sums / w[:, None] + mean
    if n_boxes < k:
        # Fewer distinct points than clusters: Lloyd re-seeds what it can.
        centers = np.concatenate([centers, np.repeat(centers[:1], k - n_boxes, 0)])
    return centers


@njit(nogil=True, cache=True)
def _split_kernel(pts, weights, order, k, fraction):  # pragma: no cover
    """The box of every point after the greedy splits, and how many boxes."""
    n = len(pts)
    box = np.zeros(n, dtype=np.intp)
    gain = np.full(k, -np.inf)
    axis = np.zeros(k, dtype=np.intp)
    thr = np.zeros(k)
    _best_cuts(pts, weights, order, box, np.zeros(1, dtype=np.intp), gain, axis, thr)
    n_boxes = 1
    while n_boxes < k:
        splittable = np.empty(n_boxes, dtype=np.intp)
        n_split = 0
        for b in range(n_boxes):
            if gain[b] > -np.inf:
                splittable[n_split] = b
                n_split += 1
        splittable = splittable[:n_split]
        if len(splittable) == 0:
            break
        m = min(k - n_boxes, max(1, int(n_boxes * fraction)), len(splittable))
        # Largest gain first; a stable sort leaves ties in box order.
        rank = _stable_argsort(-gain[splittable])
        chosen = splittable[rank[:m]]
        slot = np.full(n_boxes, -1, dtype=np.intp)
        for r in range(m):
            slot[chosen[r]] = r
        for i in range(n):
            r = slot[box[i]]
            if r >= 0 and pts[i, axis[chosen[r]]] > thr[chosen[r]]:
                box[i] = n_boxes + r
        new = np.empty(2 * m, dtype=np.intp)
        new[:m] = chosen
        new[m:] = n_boxes + np.arange(m)
        n_boxes += m
        _best_cuts(pts, weights, order, box, new, gain, axis, thr)
    return box, n_boxes


@njit(nogil=True, cache=True)
def _best_cuts(pts, weights, order, box, boxes, gain, axis, thr):  # pragma: no cover
    """Find, for each of `boxes`, the axis cut that lowers its error most.

    Writes the error reduction (-inf if the box holds one distinct point), the axis
    and the threshold (left part: coordinate <= threshold) into `gain`, `axis` and
    `thr`. ``order[a]`` sorts all points by coordinate `a` (stably), so one pass
    over it lists every box's members in that order without sorting them again.
    Ties go to the first axis, then to the lowest cut.
    """
    n, d = pts.shape
    nb = len(boxes)
    slot = np.full(len(gain), -1, dtype=np.intp)
    for j in range(nb):
        slot[boxes[j]] = j
        gain[boxes[j]] = -np.inf
    start = np.zeros(nb + 1, dtype=np.intp)
    tw = np.zeros(nb)
    ts = np.zeros((nb, d))
    for i in range(n):
        j = slot[box[i]]
        if j >= 0:
            start[j + 1] += 1
            tw[j] += weights[i]
            for c in range(d):
                ts[j, c] += weights[i] * pts[i, c]
    for j in range(nb):
        start[j + 1] += start[j]
    members = np.empty(start[-1], dtype=np.intp)
    ls = np.empty(d)
    for a in range(d):
        fill = start[:-1].copy()
        for q in range(n):
            i = order[a, q]
            j = slot[box[i]]
            if j >= 0:
                members[fill[j]] = i
                fill[j] += 1
        for j in range(nb):
            lw = 0.0
            ls[:] = 0.0
            best, best_i = -np.inf, -1
            for q in range(start[j], start[j + 1] - 1):
                i = members[q]
                lw += weights[i]
                for c in range(d):
                    ls[c] += weights[i] * pts[i, c]
                if pts[members[q + 1], a] > pts[i, a]:
                    rw = tw[j] - lw
                    dist = 0.0
                    for c in range(d):
                        diff = ls[c] / lw - (ts[j, c] - ls[c]) / rw
                        dist += diff * diff
                    g = lw * rw / tw[j] * dist
                    if g > best:
                        best, best_i = g, i
            b = boxes[j]
            if best > gain[b]:
                gain[b] = best
                axis[b] = a
                thr[b] = pts[best_i, a]


def _principal_axis(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Unit vector along which the weighted points spread most."""
    cov = _weighted_cov(points, weights, _weighted_mean(points, weights))
    return np.ascontiguousarray(np.linalg.eigh(cov)[1][:, -1])


# Kernels rather than ``weights @ points``: OpenBLAS runs such products in
# threads, which then spin for a while on the core another fit should use.
@njit(nogil=True, cache=True)
def _weighted_mean(points, weights):  # pragma: no cover
    """Weighted mean of the points (rows)."""
    d = points.shape[1]
    s = np.zeros(d)
    total = 0.0
    for i in range(len(weights)):
        total += weights[i]
        for j in range(d):
            s[j] += weights[i] * points[i, j]
    return s / total


@njit(nogil=True, cache=True)
def _weighted_cov(points, weights, mean):  # pragma: no cover
    """Weighted scatter matrix of the points around `mean`."""
    d = points.shape[1]
    cov = np.zeros((d, d))
    c = np.empty(d)
    for i in range(len(weights)):
        for j in range(d):
            c[j] = points[i, j] - mean[j]
        for j in range(d):
            for m in range(d):
                cov[j, m] += weights[i] * c[j] * c[m]
    return cov
