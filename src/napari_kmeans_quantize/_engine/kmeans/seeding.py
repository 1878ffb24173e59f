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
    n, d = pts.shape
    box = np.zeros(n, dtype=np.intp)
    gain = np.full(k, -np.inf)
    axis = np.zeros(k, dtype=np.intp)
    thr = np.zeros(k)
    # Row a < d lists the points by box, each box's in the order of axis a
    # (ties in point order); row d by box in point order. A box is the same
    # segment of every row, so a split partitions its segments only (stably:
    # each half stays in order), and a box's cut is found from its own
    # segments, not from a pass over every point.
    rows = np.empty((d + 1, n), dtype=np.intp)
    rows[:d] = order
    rows[d] = np.arange(n)
    seg = np.zeros(k, dtype=np.intp)
    seg_end = np.zeros(k, dtype=np.intp)
    seg_end[0] = n
    buf = np.empty(n, dtype=np.intp)
    _best_cuts(
        pts, weights, rows, seg, seg_end, np.zeros(1, dtype=np.intp), gain, axis, thr
    )
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
        for r in range(m):
            b, nb = chosen[r], n_boxes + r
            lo, hi = seg[b], seg_end[b]
            ax, t = axis[b], thr[b]
            for row in range(d + 1):
                left, right = lo, 0
                for q in range(lo, hi):
                    i = rows[row, q]
                    if pts[i, ax] > t:
                        buf[right] = i
                        right += 1
                    else:
                        rows[row, left] = i
                        left += 1
                rows[row, left:hi] = buf[:right]
            for q in range(left, hi):
                box[rows[d, q]] = nb
            seg_end[b] = left
            seg[nb], seg_end[nb] = left, hi
        new = np.empty(2 * m, dtype=np.intp)
        new[:m] = chosen
        new[m:] = n_boxes + np.arange(m)
        n_boxes += m
        _best_cuts(pts, weights, rows, seg, seg_end, new, gain, axis, thr)
    return box, n_boxes


@njit(nogil=True, cache=True)
def _best_cuts(
    pts, weights, rows, seg, seg_end, boxes, gain, axis, thr
):  # pragma: no cover
    """Find, for each of `boxes`, the axis cut that lowers its error most.

    Writes the error reduction (-inf if the box holds one distinct point), the axis
    and the threshold (left part: coordinate <= threshold) into `gain`, `axis` and
    `thr`. A box's segment of ``rows[a]`` lists its points by coordinate `a`
    (stably), that of ``rows[d]`` in point order (see _split_kernel). Ties go to
    the first axis, then to the lowest cut.
    """
    d = pts.shape[1]
    ls = np.empty(d)
    ts = np.empty(d)
    for j in range(len(boxes)):
        b = boxes[j]
        gain[b] = -np.inf
        lo, hi = seg[b], seg_end[b]
        # The box's totals in point order, as a pass over all points adds them.
        tw = 0.0
        ts[:] = 0.0
        for q in range(lo, hi):
            i = rows[d, q]
            tw += weights[i]
            for c in range(d):
                ts[c] += weights[i] * pts[i, c]
        for a in range(d):
            members = rows[a]
            lw = 0.0
            ls[:] = 0.0
            best, best_i = -np.inf, -1
            for q in range(lo, hi - 1):
                i = members[q]
                lw += weights[i]
                for c in range(d):
                    ls[c] += weights[i] * pts[i, c]
                if pts[members[q + 1], a] > pts[i, a]:
                    rw = tw - lw
                    dist = 0.0
                    for c in range(d):
                        diff = ls[c] / lw - (ts[c] - ls[c]) / rw
                        dist += diff * diff
                    g = lw * rw / tw * dist
                    if g > best:
                        best, best_i = g, i
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
