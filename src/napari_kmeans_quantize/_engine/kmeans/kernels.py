"""The per-point kernels of the Lloyd iterations, and the compiled driver that
runs several iterations in one call.

Serial, in point order, and free of the GIL, so that the assignment can run on
slices of the points in threads and a sweep's fits can run side by side.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .centres import _best_two, _error, _means, _moved_kernel, _sq_dist

# Why _lloyd_run returned.
_CONVERGED, _STILL, _EMPTY, _RUN_OUT = 0, 1, 2, 3

# What _assign_kernel does besides the search: nothing (the labels are left
# for the caller), the sums' update on the way (one thread, all points), or the
# list of the points that moved (a slice of the points, in a thread).
_SEARCH, _FUSED, _COLLECT = 0, 1, 2


@njit(nogil=True, cache=True)
def _stop_rule(prev_err, err, tol, n_sum):  # pragma: no cover
    """The Lloyd stop rule, for the Python and the compiled driver alike: the
    error fell by at most `tol` of itself and no cluster is empty."""
    return (prev_err - err) <= tol * max(err, 0.0) and n_sum.min() > 0


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
            (points, labels, upper, lower, labels[:0]),
            (centers, half_gap, proj, order, axis, nbr, nbr_dist, cnt, ext),
            True,
            (shift, top_arg, second, local, cap),
            (weights, w_sum, s_sum, n_sum),
            0,
            n,
            _FUSED,
            np.empty((2, 0), dtype=np.intp),
        )
        err = _error(const, s_sum, w_sum, n_sum)
        if moved == 0:
            return centers, top_upper, run + 1, _STILL, moved, err
        if _stop_rule(prev_err, err, tol, n_sum):
            return centers, top_upper, run + 1, _CONVERGED, moved, err
        prev_err = err
    return centers, top_upper, max_run, _RUN_OUT, moved, prev_err


@njit(nogil=True, cache=True)
def _assign_kernel(
    pts, cen, widen, wid, sums, first, stop, mode, moved_at
):  # pragma: no cover
    # Grouped arguments: the per-point arrays (`pts`, updated in place; the
    # new labels go to `new` with _SEARCH only), the search structure of the centres (`cen`,
    # see _Centres), the pending bound widening (`wid`, applied first when
    # `widen`) and the cluster sums (`sums`, only touched when _FUSED).
    points, labels, upper, lower, new = pts
    centers, half_gap, proj, order, axis, nbr, nbr_dist, cnt, ext = cen
    weights, w_sum, s_sum, n_sum = sums
    # Points first..stop-1 only, so that threads can share the arrays. Both
    # other modes also find the clusters' largest upper bounds (what _radii
    # would find next) and relabel the points. _FUSED (one thread, all points)
    # moves the points as it goes: a point that moves updates the sums at once,
    # in point order, so the points are read once per iteration. _COLLECT
    # writes the points that moved and their old labels to moved_at[:, first:
    # first + moved]; _apply_moves then adds those up, slice after slice, in the
    # same point order: the sums are the same bit for bit.
    moved = 0
    top_upper = np.zeros(len(w_sum))
    d = points.shape[1]
    k = len(centers)
    # Unsigned: numba checks every signed index for a from-the-end value.
    for i in range(np.uint64(first), np.uint64(stop)):
        a = labels[i]
        b = a
        # One pass of this loop: a settled point breaks out to the tail below.
        for _ in range(1):
            if widen:
                _widen_point(i, a, upper, lower, wid)
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
                    b = i1
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
                b = i1
                upper[i] = np.sqrt(b1)
                lower[i] = np.sqrt(b2)
        if mode == _SEARCH:
            new[i] = b
            continue
        top_upper[b] = max(top_upper[b], upper[i])
        if b != a:
            if mode == _FUSED:
                _move_point(points, weights, i, a, b, w_sum, s_sum, n_sum)
            else:
                moved_at[0, first + moved] = i
                moved_at[1, first + moved] = a
            labels[i] = b
            moved += 1
    return moved, top_upper


@njit(nogil=True, cache=True)
def _widen_kernel(labels, upper, lower, wid):  # pragma: no cover
    for i in range(len(labels)):
        _widen_point(i, labels[i], upper, lower, wid)


@njit(nogil=True, cache=True)
def _widen_point(i, a, upper, lower, wid):  # pragma: no cover
    # `wid`: the centres' shifts, the index of the largest and the second
    # largest, the largest shift near each centre and the reach cap (see
    # _Centres.moved). Hamerly: the own centre moved by shift[a], every other centre by at most
    # the largest shift among the others, and (see update) by at most local[a]
    # among those that can still matter.
    shift, top_arg, second, local, reach = wid
    u = upper[i] + shift[a]
    upper[i] = u
    lo = lower[i]
    lower[i] = max(
        lo - (second if a == top_arg else shift[top_arg]),
        min(lo - local[a], reach[a] - u),
    )


@njit(nogil=True, cache=True)
def _apply_moves(
    points, weights, labels, moved_at, firsts, counts, w_sum, s_sum, n_sum
):  # pragma: no cover
    # The moves that _COLLECT slices listed, slice after slice: in point order,
    # without a pass over the points that stay.
    moved = 0
    for s in range(len(firsts)):
        for t in range(firsts[s], firsts[s] + counts[s]):
            i = moved_at[0, t]
            _move_point(
                points, weights, i, moved_at[1, t], labels[i], w_sum, s_sum, n_sum
            )
            moved += 1
    return moved


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


@njit(nogil=True, cache=True)
def _radii(labels, upper, k):  # pragma: no cover
    """Largest upper bound among the members of each cluster."""
    rad = np.zeros(k)
    for i in range(len(labels)):
        a = labels[i]
        rad[a] = max(rad[a], upper[i])
    return rad


@njit(nogil=True, cache=True)
def _gaps(centers):  # pragma: no cover
    """Distance from every centre to the nearest other one."""
    k = len(centers)
    gap = np.full(k, np.inf)
    for a in range(k):
        for c in range(a + 1, k):
            g = _sq_dist(centers, a, centers, c)
            gap[a] = min(gap[a], g)
            gap[c] = min(gap[c], g)
    return np.sqrt(gap)


@njit(nogil=True, cache=True)
def _lower_kernel(gap, labels, upper, lower):  # pragma: no cover
    """Every point's lower bound, raised to its centre's gap minus its upper
    bound where that is higher: one pass, no temporaries."""
    out = np.empty(len(labels))
    for i in range(len(labels)):
        out[i] = max(lower[i], gap[labels[i]] - upper[i])
    return out


@njit(nogil=True, cache=True)
def _inertia(points, weights, centers, labels):  # pragma: no cover
    """Weighted squared distance of the points to their centres (the k-means
    error; the metrics' squared error of colours against their palette entries)."""
    total = 0.0
    for i in range(len(labels)):
        total += weights[i] * _sq_dist(points, i, centers, labels[i])
    return total
