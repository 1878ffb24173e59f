"""Exact weighted k-means for colour points.

The fit minimises the same objective as k-means over every pixel: each distinct
colour is one point weighted by its pixel count. A pyramid of coarser point
sets, a deterministic variance-split initialisation on the coarsest, then
weighted Lloyd iterations with Hamerly's distance bounds on every level, coarse
to fine; the compiled kernels release the GIL, and every step is
deterministic. The method is described in the private ``_engine.kmeans``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from ._engine.api import plain_form, with_options
from ._engine.kmeans import KMeansFit, Pyramid, fit_iter, kernels_compiled
from ._engine.kmeans.kernels import _assign_kernel, _lloyd_run  # noqa: F401
from ._engine.options import check_positive_int, check_tol

# (_lloyd_run and _assign_kernel stay importable from here for callers that
# probe numba's cache directly; kernels_compiled() is the public check.)
__all__ = ["KMeansFit", "kernels_compiled", "weighted_kmeans", "weighted_kmeans_iter"]


@with_options(only=("max_iter", "tol"))
def weighted_kmeans_iter(
    points: np.ndarray, weights: np.ndarray, n_clusters: int, **options: Any
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
    max_iter = check_positive_int("max_iter", options["max_iter"], none=False)
    tol = check_tol(options["tol"])
    return (
        yield from fit_iter(Pyramid(points, weights), k, max_iter=max_iter, tol=tol)
    )


@plain_form(weighted_kmeans_iter)
def weighted_kmeans() -> KMeansFit:
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
