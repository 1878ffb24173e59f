"""Exact weighted k-means for colour points.

The fit minimises the same objective as k-means over every pixel: each distinct
colour is one point weighted by its pixel count. It runs in three steps:

1. a pyramid of coarser point sets: the weighted means of the points in the cells
   of nested regular grids (cell side halving from one level to the next);
2. a deterministic divisive initialisation on the coarsest level (variance-based
   splits in the style of Wan et al. and Wu: split the boxes with the largest
   weighted squared error at the cut that lowers it most);
3. weighted Lloyd iterations on every level, coarse to fine, until no point
   changes cluster (or the relative fall of the error in one iteration is below
   ``tol``); over-relaxed on the coarse levels, exact on the points themselves.

Lloyd iterations keep Hamerly's distance bounds for every point (an upper bound on
the distance to its own centre, a lower bound on the distance to any other), so
only points whose nearest centre may have changed are searched, and the cluster
sums are updated from the points that moved only. A level starts from the
previous level's clusters: a point inherits its cell's label and bounds, widened
by its distance to the cell mean, so that no level starts with a full search.
A point its bounds leave open is compared with the centres near its own centre
only, nearest first, up to the first one too far to matter (see ``_Centres``).
The pyramid does not depend on k beyond where it stops, so one ``_Pyramid``
serves the fits of every k of a sweep.

The per-point loops are numba kernels: serial, in point order, and free of the
GIL, so that the assignment can run on slices of the points in threads and a
sweep's fits can run side by side. Every step is deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.spatial import cKDTree

from . import gather
from .histogram import _bitmap_unique

__all__ = ["KMeansFit", "weighted_kmeans", "weighted_kmeans_iter"]

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
# On coarse levels a centre steps this fraction of its move past its cluster's
# mean (over-relaxed Lloyd). Plain Lloyd spends most of its iterations creeping
# along the same direction; a coarse level only has to bring the centres near a
# minimum for the next level, which ends with plain Lloyd steps on exact means.
# Measured on CQ100 at k=256: 65 instead of 152 Lloyd passes over the levels of
# adirondack_chairs, at equal mean error over the photos; 1.0 oscillates.
_OVERRELAX = 0.8
# Up to this many clusters, bounds use the shifts of nearby centres only ...
_LOCAL_MAX_CLUSTERS = 1024
# ... those within this many cluster radii. A short reach gives tighter bounds for
# the points near their centre, and the cap (reach - distance) for the others.
_REACH = 1.5
# Assignments over more points than this use every core.
_PARALLEL_POINTS = 1 << 16
# Iterations of a level that run in one kernel call between progress reports.
_KERNEL_ITERATIONS = 10
# Why _lloyd_run returned.
_CONVERGED, _STILL, _EMPTY, _RUN_OUT = 0, 1, 2, 3
# Fraction of the boxes split per round of the initialisation.
_SPLIT_FRACTION = 0.25


@dataclass(frozen=True)
class KMeansFit:
    """What a weighted k-means fit produced.

    Attributes
    ----------
    centers : (k, d) ndarray of float64
        Cluster centres: the weighted mean of each cluster.
    labels : (n,) ndarray of intp
        The cluster of every point (its nearest centre when ``converged`` is
        true because no point moved).
    inertia : float
        Weighted sum of squared distances of points to their centres.
    n_iter : int
        Lloyd iterations run on the full point set.
    converged : bool
        True when the last iteration moved no point (or met ``tol``).
    lower : (n,) ndarray of float64 or None
        For every point, a lower bound on its distance to every centre other than
        its own. Where the distance to its own centre is below it, the label is
        certainly the nearest centre; a caller that moves the centres (rounding
        them, say) by at most ``s`` can trust a label where the distance to the
        moved own centre is below ``lower - s``.
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    lower: np.ndarray | None = None


def weighted_kmeans(
    points: np.ndarray,
    weights: np.ndarray,
    n_clusters: int,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> KMeansFit:
    """Cluster weighted points with exact Lloyd k-means.

    Parameters
    ----------
    points : (n, d) ndarray of float
        The points (distinct colours in the fit space).
    weights : (n,) ndarray
        Positive weight of each point (its pixel count).
    n_clusters : int
        Number of clusters k, 1 <= k <= n.
    max_iter : int, optional
        Most Lloyd iterations on the full point set (and on each coarser level).
    tol : float, optional
        Stop when the weighted error falls by less than this fraction in one
        iteration. 0 runs until no point changes cluster.

    Returns
    -------
    fit : KMeansFit
        Centres, labels, inertia and iteration count.

    Raises
    ------
    ValueError
        If `n_clusters` is not between 1 and the number of points.

    Examples
    --------
    >>> pts = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> fit = weighted_kmeans(pts, np.ones(4), 2)
    >>> sorted(fit.centers.ravel().tolist())
    [0.5, 10.5]
    """
    gen = weighted_kmeans_iter(points, weights, n_clusters, max_iter=max_iter, tol=tol)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def weighted_kmeans_iter(
    points: np.ndarray,
    weights: np.ndarray,
    n_clusters: int,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> Generator[float, None, KMeansFit]:
    """Generator form of :func:`weighted_kmeans`.

    Yields the fraction of the work done (0..1) after each stage and iteration, so
    a caller can show progress and stop early by closing the generator; the
    :class:`KMeansFit` is the generator's return value.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"points must have shape (n, d), got {points.shape}.")
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    n = len(points)
    if weights.shape != (n,):
        raise ValueError(
            f"weights must have shape ({n},) to match points, got {weights.shape}."
        )
    if isinstance(n_clusters, bool) or not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be between 1 and {n}, got {n_clusters}.")
    k = int(n_clusters)
    return (
        yield from _fit_iter(_Pyramid(points, weights), k, max_iter=max_iter, tol=tol)
    )


def _fit_iter(
    pyramid: _Pyramid, k: int, *, max_iter: int, tol: float
) -> Generator[float, None, KMeansFit]:
    """The fit of :func:`weighted_kmeans_iter` on the (checked) points of a
    pyramid, which several fits (a sweep over k) may share."""
    points, weights = pyramid.points, pyramid.weights
    n = len(points)
    if k == 1:
        c = _weighted_mean(points, weights)[None]
        labels = np.zeros(n, dtype=np.intp)
        yield 1.0
        inertia = _inertia(points, weights, c, labels)
        return KMeansFit(c, labels, inertia, 1, True, np.full(n, np.inf))

    levels = pyramid.levels(k)
    yield 0.05
    coarse = levels[0] if levels else _Level(points, weights, None)
    centers = _variance_split_init(coarse.points, coarse.weights, k)
    yield 0.1

    axis = _principal_axis(coarse.points, coarse.weights)
    state = _initial_state(coarse.points, centers, axis)
    all_levels = [*levels, _Level(points, weights, None)]
    n_iter, converged = 0, False
    for i, level in enumerate(all_levels):
        if i > 0:
            state = _inherit(level, all_levels[i - 1], state)
        last = i == len(all_levels) - 1
        lo = 0.1 + 0.4 * i / len(all_levels) if not last else 0.5
        hi = 0.1 + 0.4 * (i + 1) / len(all_levels) if not last else 1.0
        state, n_iter, converged = yield from _lloyd(
            level.points,
            level.weights,
            state,
            axis,
            max_iter=max_iter,
            tol=tol,
            progress=(lo, hi),
            overrelax=0.0 if last else _OVERRELAX,
        )
    centers, labels = state.centers, state.labels
    inertia = _inertia(points, weights, centers, labels)
    return KMeansFit(centers, labels, inertia, n_iter, converged, _lower(state))


# --- pyramid ------------------------------------------------------------------------


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
        distinct, inverse, _ = _bitmap_unique(keys, n_keys, True)
        return distinct, inverse
    distinct, inverse = np.unique(keys, return_inverse=True)
    return distinct, inverse.ravel()


class _Pyramid:
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
        self._b = max(1, _MAX_KEY_BITS // d)
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


# --- initialisation -------------------------------------------------------------------


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


# --- Lloyd iterations -----------------------------------------------------------------


@dataclass
class _State:
    """Clusters of one point set with Hamerly's distance bounds.

    For the current ``centers``, ``upper[i]`` is at least the distance of point
    ``i`` to its own centre and ``lower[i]`` at most its distance to every other
    centre; a point with ``upper <= lower`` need not be searched.
    """

    centers: np.ndarray
    labels: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    # The clusters' sums (see _sums_kernel) and largest upper bounds (_radii),
    # when the pass that made the state found them on its way.
    sums: tuple | None = None
    top_upper: np.ndarray | None = None


class _Centres:
    """What the searches of one Lloyd iteration need to know of the centres.

    A point that its bounds do not settle is compared with its own centre's
    neighbours: the centres within ``reach[a]`` of its centre ``a``. Every other
    centre is at least ``ext[a] - u`` from a point at distance ``u`` from ``a``,
    which bounds them all at once (and sends the point to a full search in the
    rare case that bound is not enough). With ``reach`` twice the cluster radius
    the lists always suffice; they hold a few dozen centres at k=256.

    Without ``reach`` (the first assignment, or more than
    ``_LOCAL_MAX_CLUSTERS`` centres, where k x k gaps cost too much) a search
    walks along the points' principal axis instead: a centre whose projection is
    farther from the point's than the second nearest centre found so far cannot
    be among the two nearest. Colours spread mostly along one axis (the grey
    line), so few centres lie in that slab.
    """

    def __init__(self, centers: np.ndarray, axis: np.ndarray) -> None:
        """The centres before the first assignment: no lists, no widening."""
        k = len(centers)
        self.centers = centers
        self.axis = axis
        self.proj, self.order = _projections(centers, axis)
        # The bound widening (see _Clusters.update) that the next search applies
        # to each point before it looks at it; none for the first assignment.
        self.widen = False
        self.shift = self.local_shift = self.cap = np.zeros(k)
        self.top_arg, self.second = 0, 0.0
        self._no_lists()

    @classmethod
    def moved(
        cls, new: np.ndarray, old: np.ndarray, top_upper: np.ndarray, axis: np.ndarray
    ) -> _Centres:
        """The centres after a move from `old` to `new`, with the widening of the
        bounds that it calls for; `top_upper` is each cluster's largest upper
        bound (before the move)."""
        cen = cls.__new__(cls)
        cen.centers, cen.axis, cen.widen = new, axis, True
        lists = len(new) <= _LOCAL_MAX_CLUSTERS
        (
            cen.shift, cen.top_arg, cen.second, cen.cap, cen.proj, cen.order,
            cen.half_gap, cen.nbr, cen.nbr_dist, cen.cnt, cen.ext, cen.local_shift,
        ) = _moved_kernel(new, old, top_upper, axis, lists)  # fmt: skip
        if not lists:
            cen._no_lists()
            cen.local_shift = np.full(len(new), np.inf)
        return cen

    def _no_lists(self) -> None:
        # k x k gaps cost too much: the searches walk the principal axis, and the
        # half gaps come from a tree.
        k = len(self.centers)
        self.nbr = np.zeros((0, 0), dtype=np.intp)
        self.nbr_dist = np.zeros((0, 0))
        self.cnt = np.zeros(0, dtype=np.intp)
        self.ext = np.zeros(0)
        self.half_gap = np.zeros(k)
        if k > 1:
            tree = cKDTree(self.centers)
            self.half_gap = 0.5 * tree.query(self.centers, k=2)[0][:, 1]


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


# The weights and sums that _assign_kernel does not touch when not fused.
_NO_SUMS = (np.zeros(0), np.zeros(0), np.zeros((0, 3)), np.zeros(0, dtype=np.intp))


def _search_all(points: np.ndarray, cen: _Centres, state: _State) -> np.ndarray:
    """Labels after moving every point whose bounds allow it to its nearest centre.

    Updates ``state.upper`` and ``state.lower`` in place; ``state.labels`` is
    left as it was so that the caller can see which points moved.
    """
    new = np.empty_like(state.labels)

    def run(lo: int, hi: int) -> None:
        _assign_kernel(
            points,
            cen.centers,
            state.labels,
            state.upper,
            state.lower,
            cen.half_gap,
            cen.proj,
            cen.order,
            cen.axis,
            cen.nbr,
            cen.nbr_dist,
            cen.cnt,
            cen.ext,
            cen.widen,
            cen.shift,
            cen.top_arg,
            cen.second,
            cen.local_shift,
            cen.cap,
            new,
            lo,
            hi,
            False,
            *_NO_SUMS,
        )

    gather.each_slice(len(points), run, _PARALLEL_POINTS)
    return new


def _initial_state(points: np.ndarray, centers: np.ndarray, axis: np.ndarray) -> _State:
    n = len(points)
    centers = centers.copy()
    # No bounds yet: every point is searched (the half-gap test still applies).
    state = _State(
        centers, np.zeros(n, dtype=np.intp), np.full(n, np.inf), np.full(n, -np.inf)
    )
    state.labels = _search_all(points, _Centres(centers, axis), state)
    return state


def _inherit(fine: _Level, coarse: _Level, state: _State) -> _State:
    """Clusters of a finer level from those of the coarser one.

    Each point takes its cell's label; its bounds widen by its distance to the
    cell mean (triangle inequality), so they stay valid.
    """
    lab, up, lo, w, s, cnt, const, top_upper = _inherit_kernel(
        fine.points,
        fine.weights,
        coarse.points,
        coarse.parent,
        state.labels,
        state.upper,
        state.lower,
        len(state.centers),
    )
    return _State(state.centers, lab, up, lo, (w, s, cnt, const), top_upper)


@njit(nogil=True, cache=True)
def _inherit_kernel(
    fine, weights, coarse, parent, labels, upper, lower, k
):  # pragma: no cover
    # Also the clusters' sums and largest upper bounds, which the level's first
    # iteration needs: one pass over the points instead of three. The sums add up
    # in point order, as _sums_kernel's do.
    n = len(parent)
    d = fine.shape[1]
    lab = np.empty(n, dtype=np.intp)
    up = np.empty(n)
    lo = np.empty(n)
    w = np.zeros(k)
    s = np.zeros((k, d))
    cnt = np.zeros(k, dtype=np.intp)
    top_upper = np.zeros(k)
    const = 0.0
    for i in range(n):
        p = parent[i]
        off = np.sqrt(_sq_dist(fine, i, coarse, p))
        a = labels[p]
        lab[i] = a
        u = upper[p] + off
        up[i] = u
        lo[i] = lower[p] - off
        top_upper[a] = max(top_upper[a], u)
        const += _add_point(fine, weights, i, a, w, s, cnt)
    return lab, up, lo, w, s, cnt, const, top_upper


def _lower(state: _State) -> np.ndarray:
    """Lower bound of the distance to every other centre, per point."""
    lower = state.lower.copy()
    if len(state.centers) > 1:
        # Another centre is at least the own centre's gap minus upper away.
        gap = cKDTree(state.centers).query(state.centers, k=2)[0][:, 1]
        np.maximum(lower, np.take(gap, state.labels) - state.upper, out=lower)
    return lower


@njit(nogil=True, cache=True)
def _sums_kernel(points, weights, labels, k):  # pragma: no cover
    """Weight, weighted coordinate sums and member count of each cluster, and the
    weighted sum of the points' squared norms (the error's constant part)."""
    # One pass in point order (bincount's order), where numpy needs d + 2.
    d = points.shape[1]
    w = np.zeros(k)
    s = np.zeros((k, d))
    cnt = np.zeros(k, dtype=np.intp)
    const = 0.0
    for i in range(len(labels)):
        const += _add_point(points, weights, i, labels[i], w, s, cnt)
    return w, s, cnt, const


@njit(nogil=True, cache=True, inline="always")
def _add_point(points, weights, i, a, w, s, cnt):  # pragma: no cover
    """Add point i to cluster a's sums; returns its weighted squared norm."""
    wi = weights[i]
    w[a] += wi
    cnt[a] += 1
    sq = 0.0
    for j in range(points.shape[1]):
        s[a, j] += wi * points[i, j]
        sq += points[i, j] * points[i, j]
    return wi * sq


def _lloyd(
    points: np.ndarray,
    weights: np.ndarray,
    state: _State,
    axis: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    progress: tuple[float, float],
    overrelax: float = 0.0,
) -> Generator[float, None, tuple[_State, int, bool]]:
    """Weighted Lloyd iterations with Hamerly's distance bounds on one point set.

    With `overrelax` > 0 the centres step past their clusters' means (see
    ``_OVERRELAX``); the error that `tol` is checked against is still that of the
    clusters around their means.
    """
    cl = _Clusters(points, weights, state, axis)
    start, stop = progress
    # Small levels (or when another thread has the other cores) run their plain
    # iterations in one kernel call: per iteration, Python's glue cost more than
    # the kernels on a few thousand points.
    in_kernel = cl.k <= _LOCAL_MAX_CLUSTERS and (
        len(points) <= _PARALLEL_POINTS or gather._workers() == 1
    )
    prev_err = np.inf
    converged = False
    n_iter = 0
    moved = 1
    force = np.zeros(0, dtype=np.intp)
    while n_iter < max_iter:
        if in_kernel and len(force) == 0:
            st = cl.state
            st.centers, cl.top_upper, n_run, status, moved, prev_err = _lloyd_run(
                points, weights, st.labels, st.upper, st.lower, st.centers,
                cl.w_sum, cl.s_sum, cl.n_sum, cl.const, axis, cl._top_upper(),
                min(_KERNEL_ITERATIONS, max_iter - n_iter), tol, overrelax, prev_err,
            )  # fmt: skip
            # The kernel's last move left no widening pending.
            cl.cen.widen = False
            n_iter += n_run
            yield start + (stop - start) * min(1.0, n_iter / 30)
            if status == _CONVERGED:
                converged = True
                break
            if status == _STILL:
                force = _duplicates(cl.centers)
                if len(force) == 0:
                    converged = True
                    break
            if status != _EMPTY:
                continue
            # An empty cluster: this iteration re-seeds it, in Python.
        n_iter += 1
        reseeded = cl.update(force, overrelax)
        force = np.zeros(0, dtype=np.intp)
        moved = cl.assign()
        err = cl.error()
        yield start + (stop - start) * min(1.0, n_iter / 30)
        if moved == 0 and not reseeded:
            force = _duplicates(cl.centers)
            if len(force) == 0:
                converged = True
                break
        elif (
            not reseeded
            and (prev_err - err) <= tol * max(err, 0.0)
            and (cl.n_sum > 0).all()
        ):
            converged = True
            break
        prev_err = err
    if moved:
        cl.update(force, overrelax)
        cl.widen()
    return cl.state, n_iter, converged


@njit(nogil=True, cache=True)
def _lloyd_run(
    points, weights, labels, upper, lower, centers, w_sum, s_sum, n_sum, const,
    axis, top_upper, max_run, tol, overrelax, prev_err,
):  # fmt: skip  # pragma: no cover
    """Up to `max_run` of _lloyd's iterations without re-seeding, in one call.

    Returns the centres, the largest upper bound of each cluster, the iterations
    run, why it stopped (_CONVERGED, _STILL: no point moved, _EMPTY: an empty
    cluster needs re-seeding first, _RUN_OUT), the points moved in the last
    iteration and the error after it.
    """
    n, k = len(points), len(centers)
    new_labels = np.empty(n, dtype=np.intp)
    moved = 1
    for run in range(max_run):
        for a in range(k):
            if n_sum[a] == 0:
                return centers, top_upper, run, _EMPTY, moved, prev_err
        new = _means(centers, s_sum, w_sum, n_sum, overrelax)
        (
            shift, top_arg, second, cap, proj, order,
            half_gap, nbr, nbr_dist, cnt, ext, local,
        ) = _moved_kernel(new, centers, top_upper, axis, True)  # fmt: skip
        centers = new
        moved, top_upper = _assign_kernel(
            points, centers, labels, upper, lower, half_gap, proj, order, axis,
            nbr, nbr_dist, cnt, ext, True, shift, top_arg, second, local, cap,
            new_labels, 0, n, True, weights, w_sum, s_sum, n_sum,
        )  # fmt: skip
        err = _error(const, s_sum, w_sum, n_sum)
        if moved == 0:
            return centers, top_upper, run + 1, _STILL, moved, err
        if (prev_err - err) <= tol * max(err, 0.0) and n_sum.min() > 0:
            return centers, top_upper, run + 1, _CONVERGED, moved, err
        prev_err = err
    return centers, top_upper, max_run, _RUN_OUT, moved, prev_err


class _Clusters:
    """Points, their clusters and running cluster sums."""

    def __init__(
        self, points: np.ndarray, weights: np.ndarray, state: _State, axis: np.ndarray
    ):
        self.points = points
        self.weights = weights
        self.state = state
        self.axis = axis
        k = len(state.centers)
        self.k = k
        sums = state.sums
        if sums is None:
            sums = _sums_kernel(points, weights, state.labels, k)
        self.w_sum, self.s_sum, self.n_sum, self.const = sums
        self.cen = _Centres(state.centers, axis)
        # Largest upper bound in each cluster, from the last assignment.
        self.top_upper: np.ndarray | None = state.top_upper
        # Only valid for the state as it was: the iterations update both.
        state.sums = state.top_upper = None

    @property
    def centers(self) -> np.ndarray:
        return self.state.centers

    def error(self) -> float:
        """Weighted squared error of the clusters around their means."""
        return _error(self.const, self.s_sum, self.w_sum, self.n_sum)

    def update(self, force: np.ndarray, overrelax: float = 0.0) -> bool:
        """Move the centres to their clusters' means and widen the bounds.

        With `overrelax` > 0 a centre moves that fraction of its step further.
        Centres of empty clusters, and those in `force`, move to badly served
        points. Returns whether any centre was moved that way.
        """
        st = self.state
        new = _means(st.centers, self.s_sum, self.w_sum, self.n_sum, overrelax)
        nz = self.n_sum > 0
        nz[force] = False
        empty = np.flatnonzero(~nz)
        if len(empty):
            new = _reseed(self.points, self.weights, st.upper, new, empty)
        # The bounds widen in the next search's pass over the points (or in
        # widen()), not in a pass of their own.
        self.cen = _Centres.moved(new, st.centers, self._top_upper(), self.axis)
        st.centers = new
        self.top_upper = None
        return len(empty) > 0

    def _top_upper(self) -> np.ndarray:
        if self.top_upper is None:
            self.top_upper = _radii(self.state.labels, self.state.upper, self.k)
        return self.top_upper

    def widen(self) -> None:
        """Widen the bounds for the last update now (no search follows)."""
        cen = self.cen
        if cen.widen:
            st = self.state
            _widen_kernel(
                st.labels, st.upper, st.lower, cen.shift, cen.top_arg, cen.second,
                cen.local_shift, cen.cap,
            )  # fmt: skip
            cen.widen = False

    def assign(self) -> int:
        """Move every point to its nearest centre; returns how many moved.

        Call after :meth:`update`, which widens the bounds.
        """
        st = self.state
        new = _search_all(self.points, self.cen, st)
        self.cen.widen = False
        moved, self.top_upper = _move_kernel(
            self.points,
            self.weights,
            st.labels,
            new,
            st.upper,
            self.w_sum,
            self.s_sum,
            self.n_sum,
        )
        return moved


@njit(nogil=True, cache=True)
def _radii(labels, upper, k):  # pragma: no cover
    """Largest upper bound among the members of each cluster."""
    rad = np.zeros(k)
    for i in range(len(labels)):
        a = labels[i]
        rad[a] = max(rad[a], upper[i])
    return rad


@njit(nogil=True, cache=True)
def _centre_graph(centers, reach, shift, shift_reach):  # pragma: no cover
    """Half the gap to the nearest other centre, the neighbour lists (centres
    within `reach`) with the smallest gap to any centre left out, and the largest
    shift among the centres within `shift_reach`, for every centre."""
    k = len(centers)
    half_gap = np.full(k, np.inf)
    nbr = np.empty((k, k), dtype=np.intp)
    nbr_dist = np.empty((k, k))
    cnt = np.zeros(k, dtype=np.intp)
    ext = np.full(k, np.inf)
    local = np.zeros(k)
    # Each pair once; both rows take it (a row's list stays in index order).
    for a in range(k):
        for c in range(a + 1, k):
            g = _sq_dist(centers, a, centers, c)
            half_gap[a] = min(half_gap[a], g)
            half_gap[c] = min(half_gap[c], g)
            for x, y in ((a, c), (c, a)):
                if g < reach[x] * reach[x]:
                    nbr[x, cnt[x]] = y
                    nbr_dist[x, cnt[x]] = np.sqrt(g)
                    cnt[x] += 1
                else:
                    ext[x] = min(ext[x], g)
                if g < shift_reach[x] * shift_reach[x]:
                    local[x] = max(local[x], shift[y])
    for a in range(k):
        # Insertion sort by distance: stable, in place, and the lists are short.
        for t in range(1, cnt[a]):
            dt, ct = nbr_dist[a, t], nbr[a, t]
            q = t - 1
            while q >= 0 and nbr_dist[a, q] > dt:
                nbr_dist[a, q + 1] = nbr_dist[a, q]
                nbr[a, q + 1] = nbr[a, q]
                q -= 1
            nbr_dist[a, q + 1] = dt
            nbr[a, q + 1] = ct
    return 0.5 * np.sqrt(half_gap), nbr, nbr_dist, cnt, np.sqrt(ext), local


@njit(nogil=True, cache=True)
def _widen_kernel(
    labels, upper, lower, shift, top_arg, second, local, reach
):  # pragma: no cover
    for i in range(len(labels)):
        _widen_point(i, labels[i], upper, lower, shift, top_arg, second, local, reach)


@njit(nogil=True, cache=True)
def _widen_point(
    i, a, upper, lower, shift, top_arg, second, local, reach
):  # pragma: no cover
    # Hamerly: the own centre moved by shift[a], every other centre by at most
    # the largest shift among the others, and (see update) by at most local[a]
    # among those that can still matter.
    u = upper[i] + shift[a]
    upper[i] = u
    lo = lower[i]
    lower[i] = max(
        lo - (second if a == top_arg else shift[top_arg]),
        min(lo - local[a], reach[a] - u),
    )


@njit(nogil=True, cache=True)
def _assign_kernel(
    points,
    centers,
    labels,
    upper,
    lower,
    half_gap,
    proj,
    order,
    axis,
    nbr,
    nbr_dist,
    cnt,
    ext,
    widen,
    shift,
    top_arg,
    second,
    local,
    cap,
    new,
    first,
    stop,
    fused,
    weights,
    w_sum,
    s_sum,
    n_sum,
):  # pragma: no cover
    # Points first..stop-1 only, so that threads can share the arrays. With
    # `fused` (one thread, all points) it also does _move_kernel's work as it
    # goes: a point that moves updates the sums at once, in point order as
    # _move_kernel does, so the sums are the same bit for bit and the points
    # are read once per iteration instead of twice.
    moved = 0
    top_upper = np.zeros(len(w_sum))
    d = points.shape[1]
    k = len(centers)
    for i in range(first, stop):
        a = labels[i]
        new[i] = a
        # One pass of this loop: a settled point breaks out to the tail below.
        for _ in range(1):
            if widen:
                _widen_point(i, a, upper, lower, shift, top_arg, second, local, cap)
            if upper[i] <= max(lower[i], half_gap[a]):
                break
            du = _sq_dist(points, i, centers, a)
            u = np.sqrt(du)
            # Every other centre is at least the own centre's gap minus u away.
            lo_b = max(lower[i], 2.0 * half_gap[a] - u)
            upper[i] = u
            lower[i] = lo_b
            if u <= lo_b:
                break
            if len(cnt):
                b1 = du
                b2 = np.inf
                i1 = a
                for t in range(cnt[a]):
                    # The list is sorted by distance from the own centre: the rest
                    # are at least nbr_dist - u away, too far to be among the two
                    # nearest once that exceeds the second nearest found.
                    gap = nbr_dist[a, t] - u
                    if gap > 0 and gap * gap >= b2:
                        break
                    c = nbr[a, t]
                    b1, b2, i1 = _best_two(
                        _sq_dist(points, i, centers, c), c, b1, b2, i1
                    )
                # Centres off the list are at least ext - u away.
                far = ext[a] - u
                if far >= 0 and far * far >= b1:
                    new[i] = i1
                    upper[i] = np.sqrt(b1)
                    lower[i] = min(np.sqrt(b2), far)
                    break
            p = 0.0
            for j in range(d):
                p += points[i, j] * axis[j]
            hi = np.searchsorted(proj, p)
            lo = hi - 1
            b1 = np.inf
            b2 = np.inf
            i1 = -1
            while lo >= 0 or hi < k:
                gl = p - proj[lo] if lo >= 0 else np.inf
                gh = proj[hi] - p if hi < k else np.inf
                if gl <= gh:
                    g = gl
                    c = order[lo]
                    lo -= 1
                else:
                    g = gh
                    c = order[hi]
                    hi += 1
                if g * g >= b2:
                    break
                b1, b2, i1 = _best_two(_sq_dist(points, i, centers, c), c, b1, b2, i1)
            if i1 == a or du <= b1 * (1.0 + 1e-12):
                # Keep the own centre on ties, so that no point flips back and forth.
                upper[i] = u
                lower[i] = np.sqrt(b2 if i1 == a else b1)
            else:
                new[i] = i1
                upper[i] = np.sqrt(b1)
                lower[i] = np.sqrt(b2)
        if fused:
            b = new[i]
            top_upper[b] = max(top_upper[b], upper[i])
            if b != a:
                moved += 1
                _move_point(points, weights, i, a, b, w_sum, s_sum, n_sum)
                labels[i] = b
    return moved, top_upper


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


@njit(nogil=True, cache=True)
def _move_kernel(
    points, weights, labels, new, upper, w_sum, s_sum, n_sum
):  # pragma: no cover
    # Serial, in point order, so that the sums are the same on every run. Also
    # the largest upper bound in each cluster (what _radii would find next).
    moved = 0
    top_upper = np.zeros(len(w_sum))
    for i in range(len(labels)):
        b = new[i]
        a = labels[i]
        top_upper[b] = max(top_upper[b], upper[i])
        if a == b:
            continue
        moved += 1
        _move_point(points, weights, i, a, b, w_sum, s_sum, n_sum)
        labels[i] = b
    return moved, top_upper


@njit(nogil=True, cache=True, inline="always")
def _move_point(points, weights, i, a, b, w_sum, s_sum, n_sum):  # pragma: no cover
    """Move point i from cluster a's sums to cluster b's."""
    w = weights[i]
    w_sum[a] -= w
    w_sum[b] += w
    n_sum[a] -= 1
    n_sum[b] += 1
    for j in range(points.shape[1]):
        s_sum[a, j] -= w * points[i, j]
        s_sum[b, j] += w * points[i, j]


def _duplicates(centers: np.ndarray) -> np.ndarray:
    """Indices of centres equal to an earlier centre."""
    _, first = np.unique(centers, axis=0, return_index=True)
    if len(first) == len(centers):
        return np.zeros(0, dtype=np.intp)
    keep = np.zeros(len(centers), dtype=bool)
    keep[first] = True
    return np.flatnonzero(~keep)


def _reseed(
    points: np.ndarray,
    weights: np.ndarray,
    upper: np.ndarray,
    centers: np.ndarray,
    empty: np.ndarray,
) -> np.ndarray:
    """Move the centres of empty clusters to the worst-served points.

    A point qualifies if it is not on any other centre; each gets at most one.
    """
    centers = centers.copy()
    live = np.setdiff1d(np.arange(len(centers)), empty)
    n = len(points)
    for n_cand in (min(n, 8 * len(empty) + 64), n):
        cost = weights * upper**2
        if n_cand < n:
            cand = np.argpartition(-cost, n_cand - 1)[:n_cand]
        else:
            cand = np.arange(n)
        if len(live):
            dist = cKDTree(centers[live]).query(points[cand])[0]
        else:
            dist = np.full(len(cand), np.inf)
        cost = weights[cand] * dist**2
        order = np.lexsort((cand, -cost))
        chosen: list[int] = []
        seen: set[bytes] = set()
        for i in order:
            if cost[i] <= 0 or len(chosen) == len(empty):
                break
            key = points[cand[i]].tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(cand[i])
        if len(chosen) == len(empty) or n_cand == n:
            break
    centers[empty[: len(chosen)]] = points[chosen]
    return centers


@njit(nogil=True, cache=True)
def _inertia(points, weights, centers, labels):  # pragma: no cover
    """Weighted squared distance of the points to their centres (the k-means
    error; the metrics' squared error of colours against their palette entries)."""
    total = 0.0
    for i in range(len(labels)):
        total += weights[i] * _sq_dist(points, i, centers, labels[i])
    return total
