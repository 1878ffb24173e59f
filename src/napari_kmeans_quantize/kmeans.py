"""Exact weighted k-means for colour points.

The fit minimises the same objective as k-means over every pixel: each distinct
colour is one point weighted by its pixel count. It runs in three steps:

1. a deterministic divisive initialisation (variance-based splits in the style of
   Wan et al. and Wu: always split the box with the largest weighted squared error
   at the cut that lowers it most);
2. weighted Lloyd iterations on a coarse grid of the points (cheap, gets close);
3. exact weighted Lloyd iterations on all points until no point changes cluster (or
   the relative change of the error falls below ``tol``), with Hamerly-style distance
   bounds so that only points whose nearest centre may have changed are searched.

Every step is deterministic; ties are broken by index.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["KMeansFit", "weighted_kmeans", "weighted_kmeans_iter"]

# Coarse stage: at most about this many grid cells are clustered before the full fit.
_COARSE_TARGET = 1 << 15


@dataclass(frozen=True)
class KMeansFit:
    """What a weighted k-means fit produced.

    Attributes
    ----------
    centers : (k, d) ndarray of float64
        Cluster centres.
    labels : (n,) ndarray of intp
        The centre each point belongs to (its nearest).
    inertia : float
        Weighted sum of squared distances of points to their centres.
    n_iter : int
        Lloyd iterations run on the full point set.
    converged : bool
        True when the last iteration moved no point (or met ``tol``).
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool


def weighted_kmeans(
    points: np.ndarray,
    weights: np.ndarray,
    n_clusters: int,
    *,
    max_iter: int = 300,
    tol: float = 1e-6,
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
        Most Lloyd iterations on the full point set.
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
    tol: float = 1e-6,
) -> Generator[float, None, KMeansFit]:
    """Generator form of :func:`weighted_kmeans`.

    Yields the fraction of the work done (0..1) after each stage and iteration, so
    a caller can show progress and stop early by closing the generator; the
    :class:`KMeansFit` is the generator's return value.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n = len(points)
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be between 1 and {n}, got {n_clusters}.")

    coarse_points, coarse_weights = _coarse_grid(points, weights)
    centers = _variance_split_init(coarse_points, coarse_weights, n_clusters)
    yield 0.05
    if len(coarse_points) < n:
        centers, *_ = yield from _lloyd(
            coarse_points, coarse_weights, centers, max_iter, tol, progress=(0.05, 0.3)
        )
    centers, labels, inertia, n_iter, converged = yield from _lloyd(
        points, weights, centers, max_iter, tol, progress=(0.3, 1.0)
    )
    return KMeansFit(centers, labels, inertia, n_iter, converged)


def _coarse_grid(
    points: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted means of the points in the cells of a regular grid."""
    n, d = points.shape
    if n <= _COARSE_TARGET:
        return points, weights
    lo = points.min(axis=0)
    span = np.maximum(points.max(axis=0) - lo, 1e-12)
    cells_per_axis = max(2, round(_COARSE_TARGET ** (1 / d)))
    cell = np.minimum(
        ((points - lo) / span * cells_per_axis).astype(np.int64), cells_per_axis - 1
    )
    key = np.zeros(n, dtype=np.int64)
    for j in range(d):
        key = key * cells_per_axis + cell[:, j]
    _, inverse = np.unique(key, return_inverse=True)
    m = inverse.max() + 1
    w = np.bincount(inverse, weights=weights, minlength=m)
    sums = np.stack(
        [
            np.bincount(inverse, weights=weights * points[:, j], minlength=m)
            for j in range(d)
        ],
        axis=1,
    )
    return sums / w[:, None], w


def _box_sse(points: np.ndarray, weights: np.ndarray) -> float:
    w = weights.sum()
    mean = (weights[:, None] * points).sum(axis=0) / w
    return float((weights * ((points - mean) ** 2).sum(axis=1)).sum())


def _best_cut(
    points: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray] | None:
    """The split of a box that lowers its weighted squared error most.

    Returns the error reduction and a boolean mask of the left part, or None if the
    box holds a single distinct point.
    """
    best = None
    total_w = weights.sum()
    total_s = (weights[:, None] * points).sum(axis=0)
    for axis in range(points.shape[1]):
        order = np.argsort(points[:, axis], kind="stable")
        x = points[order, axis]
        # Only cut between different values along this axis.
        valid = np.flatnonzero(x[1:] > x[:-1])
        if len(valid) == 0:
            continue
        cw = np.cumsum(weights[order])[valid]
        cs = np.cumsum(weights[order, None] * points[order], axis=0)[valid]
        rw = total_w - cw
        rs = total_s - cs
        # Between-group sum of squares; maximising it minimises the error of the halves.
        gain = (cs**2).sum(axis=1) / cw + (rs**2).sum(axis=1) / rw
        i = int(np.argmax(gain))
        g = float(gain[i] - (total_s**2).sum() / total_w)
        if best is None or g > best[0]:
            mask = np.zeros(len(points), dtype=bool)
            mask[order[: valid[i] + 1]] = True
            best = (g, mask)
    return best


def _variance_split_init(
    points: np.ndarray, weights: np.ndarray, n_clusters: int
) -> np.ndarray:
    """Deterministic divisive initialisation: k boxes by greedy best splits."""
    boxes: list[np.ndarray] = [np.arange(len(points))]
    heap: list[tuple[float, int, np.ndarray]] = []

    def push(box_id: int) -> None:
        idx = boxes[box_id]
        if len(idx) < 2:
            return
        cut = _best_cut(points[idx], weights[idx])
        if cut is not None:
            heapq.heappush(heap, (-cut[0], box_id, cut[1]))

    push(0)
    while len(boxes) < n_clusters and heap:
        _, box_id, mask = heapq.heappop(heap)
        idx = boxes[box_id]
        boxes[box_id] = idx[mask]
        boxes.append(idx[~mask])
        push(box_id)
        push(len(boxes) - 1)
    centers = np.stack(
        [np.average(points[idx], axis=0, weights=weights[idx]) for idx in boxes]
    )
    if len(centers) < n_clusters:
        # Fewer distinct coarse points than clusters: the full-point stage re-seeds
        # the missing centres at the worst-served points.
        extra = np.repeat(centers[:1], n_clusters - len(centers), axis=0)
        centers = np.concatenate([centers, extra])
    return centers


def _lloyd(
    points: np.ndarray,
    weights: np.ndarray,
    centers: np.ndarray,
    max_iter: int,
    tol: float,
    progress: tuple[float, float],
) -> Generator[float, None, tuple[np.ndarray, np.ndarray, float, int, bool]]:
    n, _d = points.shape
    k = len(centers)
    centers = centers.copy()
    if k == 1:
        c = np.average(points, axis=0, weights=weights)[None]
        err = float((weights * ((points - c) ** 2).sum(axis=1)).sum())
        return c, np.zeros(n, dtype=np.intp), err, 1, True

    dist, idx = cKDTree(centers).query(points, k=2)
    labels = idx[:, 0].astype(np.intp)
    upper = dist[:, 0]
    lower = dist[:, 1]
    prev_err = np.inf
    converged = False
    n_iter = 0
    start, stop = progress
    for n_iter in range(1, max_iter + 1):
        new_centers = _weighted_means(points, weights, labels, k, centers)
        new_centers = _reseed_empty(points, weights, labels, upper, new_centers, k)
        shift = np.sqrt(((new_centers - centers) ** 2).sum(axis=1))
        centers = new_centers
        # Exact distance to the own centre; the lower bound shrinks by the largest move.
        upper = np.sqrt(((points - centers[labels]) ** 2).sum(axis=1))
        lower = lower - shift.max()
        stale = np.flatnonzero(upper > lower)
        changed = 0
        if len(stale):
            dist, idx = cKDTree(centers).query(points[stale], k=2)
            new_labels = idx[:, 0]
            changed = int(np.count_nonzero(new_labels != labels[stale]))
            labels[stale] = new_labels
            upper[stale] = dist[:, 0]
            lower[stale] = dist[:, 1]
        err = float((weights * upper**2).sum())
        yield start + (stop - start) * min(1.0, n_iter / 50)
        if changed == 0 or (prev_err - err) <= tol * err:
            converged = True
            break
        prev_err = err
    if changed:
        # Centres must be the means of the final clusters.
        centers = _weighted_means(points, weights, labels, k, centers)
        upper = np.sqrt(((points - centers[labels]) ** 2).sum(axis=1))
        err = float((weights * upper**2).sum())
    return centers, labels, err, n_iter, converged


def _weighted_means(
    points: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    k: int,
    old: np.ndarray,
) -> np.ndarray:
    w = np.bincount(labels, weights=weights, minlength=k)
    sums = np.stack(
        [
            np.bincount(labels, weights=weights * points[:, j], minlength=k)
            for j in range(points.shape[1])
        ],
        axis=1,
    )
    out = old.copy()
    nonempty = w > 0
    out[nonempty] = sums[nonempty] / w[nonempty, None]
    return out


def _reseed_empty(
    points: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    dist: np.ndarray,
    centers: np.ndarray,
    k: int,
) -> np.ndarray:
    """Move centres of empty clusters to the worst-served points."""
    empty = np.flatnonzero(np.bincount(labels, minlength=k) == 0)
    if len(empty) == 0:
        return centers
    cost = weights * dist**2
    taken = set()
    order = np.argsort(-cost, kind="stable")
    centers = centers.copy()
    it = iter(order)
    for j in empty:
        for i in it:
            key = points[i].tobytes()
            if key not in taken and cost[i] > 0:
                taken.add(key)
                centers[j] = points[i]
                break
    return centers
