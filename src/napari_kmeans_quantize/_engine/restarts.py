"""The k-means fit with the chosen initialisation and restarts.

``init="variance-split"`` (the default) is the deterministic divisive split of
``kmeans.seeding``: one fit. ``init="k-means++"`` seeds with scikit-learn's
``kmeans_plusplus`` on the distinct colours (their weights as sample weights),
as users of ``sklearn.cluster.KMeans`` expect; ``n_init`` such fits run from
seeds drawn from ``random_state`` and the one of lowest inertia is kept (the
first of equals).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from .kmeans import KMeansFit, Pyramid, fit_iter
from .options import DEFAULT_INIT, QuantizeOptions
from .progress import scaled


def seeded_fit_iter(
    pyramid: Pyramid, k: int, options: QuantizeOptions
) -> Generator[float, None, KMeansFit]:
    """The fit of `k` centres to the pyramid's points as `options` ask."""
    if options.init == DEFAULT_INIT or k == 1:
        return (
            yield from fit_iter(pyramid, k, max_iter=options.max_iter, tol=options.tol)
        )
    from sklearn.cluster import kmeans_plusplus

    seeds = np.random.default_rng(options.random_state).integers(
        0, 2**31 - 1, size=options.n_init
    )
    best: KMeansFit | None = None
    for i, seed in enumerate(seeds):
        centers, _ = kmeans_plusplus(
            pyramid.points,
            k,
            sample_weight=pyramid.weights,
            random_state=int(seed),
        )
        fit = yield from scaled(
            fit_iter(
                pyramid,
                k,
                max_iter=options.max_iter,
                tol=options.tol,
                init_centers=centers,
            ),
            i / len(seeds),
            (i + 1) / len(seeds),
        )
        if best is None or fit.inertia < best.inertia:
            best = fit
    return best
