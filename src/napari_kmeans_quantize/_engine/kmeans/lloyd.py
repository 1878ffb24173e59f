"""Weighted Lloyd iterations with Hamerly's distance bounds: the Python driver,
the state it keeps and the searches over the centres (see ``fit``)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ... import gather
from .centres import _error, _means, _moved_kernel, _projections
from .kernels import (
    _COLLECT,
    _CONVERGED,
    _EMPTY,
    _SEARCH,
    _STILL,
    _apply_moves,
    _assign_kernel,
    _gaps,
    _inherit_kernel,
    _lloyd_run,
    _lower_kernel,
    _radii,
    _stop_rule,
    _sums_kernel,
    _widen_kernel,
)
from .pyramid import _Level

# On coarse levels a centre steps this fraction of its move past its cluster's
# mean (over-relaxed Lloyd). Plain Lloyd spends most of its iterations creeping
# along the same direction; a coarse level only has to bring the centres near a
# minimum for the next level, which ends with plain Lloyd steps on exact means.
# Measured on CQ100 at k=256: 65 instead of 152 Lloyd passes over the levels of
# adirondack_chairs, at equal mean error over the photos; 1.0 oscillates.
_OVERRELAX = 0.8


# Up to this many clusters, bounds use the shifts of nearby centres only ...
_LOCAL_MAX_CLUSTERS = 1024


# Assignments over more points than this use every core ...
_PARALLEL_POINTS = 1 << 16


# ... in this many chunks, which the threads take in turn (see
# gather.each_chunk): a thread kept waiting for a core delays the others by one
# chunk, not by half the points.
_SEARCH_CHUNKS = 8


# Iterations of a level that run in one kernel call between progress reports.
_KERNEL_ITERATIONS = 10


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

    def search_args(self) -> tuple:
        """The centres' search structure, as _assign_kernel takes it."""
        return (
            self.centers, self.half_gap, self.proj, self.order, self.axis,
            self.nbr, self.nbr_dist, self.cnt, self.ext,
        )  # fmt: skip

    def widen_args(self) -> tuple:
        """The bound widening of the last move, as _widen_point takes it."""
        return self.shift, self.top_arg, self.second, self.local_shift, self.cap

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


# The weights and sums, and the list of moves, that _assign_kernel does not
# touch in a plain search.
_NO_SUMS = (np.zeros(0), np.zeros(0), np.zeros((0, 3)), np.zeros(0, dtype=np.intp))
_NO_MOVES = np.zeros((2, 0), dtype=np.intp)


def _search_all(points: np.ndarray, cen: _Centres, state: _State) -> np.ndarray:
    """Labels after moving every point whose bounds allow it to its nearest centre.

    Updates ``state.upper`` and ``state.lower`` in place; ``state.labels`` is
    left as it was so that the caller can see which points moved.
    """
    new = np.empty_like(state.labels)

    def run(lo: int, hi: int) -> None:
        _assign_kernel(
            (points, state.labels, state.upper, state.lower, new),
            cen.search_args(),
            cen.widen,
            cen.widen_args(),
            _NO_SUMS,
            lo,
            hi,
            _SEARCH,
            _NO_MOVES,
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


def _lower(state: _State) -> np.ndarray:
    """Lower bound of the distance to every other centre, per point."""
    k = len(state.centers)
    if k == 1:
        return state.lower.copy()
    # Another centre is at least the own centre's gap minus upper away. The
    # gaps by all pairs up to the neighbour lists' limit (a tree beyond).
    if k <= _LOCAL_MAX_CLUSTERS:
        gap = _gaps(state.centers)
    else:
        gap = cKDTree(state.centers).query(state.centers, k=2)[0][:, 1]
    return _lower_kernel(gap, state.labels, state.upper, state.lower)


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
        len(points) <= _PARALLEL_POINTS or gather.workers() == 1
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
        elif not reseeded and _stop_rule(prev_err, err, tol, cl.n_sum):
            converged = True
            break
        prev_err = err
    if moved:
        cl.update(force, overrelax)
        cl.widen()
    return cl.state, n_iter, converged


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
        self._moves: np.ndarray | None = None
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
            _widen_kernel(st.labels, st.upper, st.lower, cen.widen_args())
            cen.widen = False

    def assign(self) -> int:
        """Move every point to its nearest centre; returns how many moved.

        Call after :meth:`update`, which widens the bounds.
        """
        st = self.state
        sums = (self.weights, self.w_sum, self.s_sum, self.n_sum)
        if self._moves is None:
            # The points that moved and their old labels, each slice's in its own
            # columns: kept from one iteration to the next.
            self._moves = np.empty((2, len(self.points)), dtype=np.intp)
        slices: list[tuple[int, int, np.ndarray]] = []

        def run(lo: int, hi: int) -> None:
            moved, top_upper = _assign_kernel(
                (self.points, st.labels, st.upper, st.lower, st.labels[:0]),
                self.cen.search_args(),
                self.cen.widen,
                self.cen.widen_args(),
                sums,
                lo,
                hi,
                _COLLECT,
                self._moves,
            )
            slices.append((lo, moved, top_upper))

        gather.each_chunk(len(self.points), run, _SEARCH_CHUNKS, _PARALLEL_POINTS)
        self.cen.widen = False
        firsts, counts, tops = zip(*sorted(slices, key=lambda s: s[0]), strict=True)
        # A maximum is the same whatever the order: the slices' maxima are
        # those over all points.
        self.top_upper = np.maximum.reduce(tops) if len(tops) > 1 else tops[0]
        return _apply_moves(
            self.points,
            self.weights,
            st.labels,
            self._moves,
            np.array(firsts, dtype=np.intp),
            np.array(counts, dtype=np.intp),
            *sums[1:],
        )


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
