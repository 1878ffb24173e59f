"""Exact weighted k-means for colour points: the fit as one generator.

The fit minimises the same objective as k-means over every pixel: each distinct
colour is one point weighted by its pixel count. It runs in three steps:

1. a pyramid of coarser point sets (``pyramid``): the weighted means of the
   points in the cells of nested regular grids;
2. a deterministic divisive initialisation on the coarsest level (``seeding``);
3. weighted Lloyd iterations on every level, coarse to fine (``lloyd``), until no
   point changes cluster (or the relative fall of the error in one iteration is
   below ``tol``); over-relaxed on the coarse levels, exact on the points.

Lloyd iterations keep Hamerly's distance bounds for every point (an upper bound on
the distance to its own centre, a lower bound on the distance to any other), so
only points whose nearest centre may have changed are searched, and the cluster
sums are updated from the points that moved only. A level starts from the
previous level's clusters: a point inherits its cell's label and bounds, widened
by its distance to the cell mean, so that no level starts with a full search.
The pyramid does not depend on k beyond where it stops, so one ``Pyramid``
serves the fits of every k of a sweep. Every step is deterministic.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from .kernels import _inertia
from .lloyd import _OVERRELAX, _inherit, _initial_state, _lloyd, _lower
from .pyramid import Pyramid, _Level
from .seeding import _principal_axis, _variance_split_init, _weighted_mean


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


def fit_iter(
    pyramid: Pyramid,
    k: int,
    *,
    max_iter: int,
    tol: float,
    init_centers: np.ndarray | None = None,
) -> Generator[float, None, KMeansFit]:
    """The fit of :func:`weighted_kmeans_iter` on the (checked) points of a
    pyramid, which several fits (a sweep over k) may share; `init_centers`
    (k, d) replace the deterministic initialisation."""
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
    if init_centers is None:
        centers = _variance_split_init(coarse.points, coarse.weights, k)
    else:
        centers = np.array(init_centers, dtype=np.float64)
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
