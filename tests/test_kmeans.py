"""Tests for the weighted k-means fit (the engine's clustering step)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from sklearn.cluster import KMeans

from napari_kmeans_quantize._engine.kmeans import (
    centres,
    kernels,
    lloyd,
    pyramid,
    seeding,
)
from napari_kmeans_quantize.histogram import color_histogram
from napari_kmeans_quantize.kmeans import weighted_kmeans, weighted_kmeans_iter


def _photo_points(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hist = color_histogram(image.reshape(-1, 3))
    return hist.colors.astype(np.float64), hist.counts.astype(np.float64)


def _inertia(points, weights, centers):
    d = ((points[:, None, :] - centers[None]) ** 2).sum(axis=2)
    return float((weights * d.min(axis=1)).sum())


@pytest.fixture(scope="module")
def coffee_points():
    # ~40 k distinct colours: large enough to go through the grid pyramid.
    return _photo_points(data.coffee()[::2, ::2])


@pytest.mark.parametrize("search", ["neighbour lists", "principal-axis slab"])
def test_fit_is_a_fixed_point_of_lloyd_when_run_to_convergence(
    coffee_points, search, monkeypatch
):
    if search == "principal-axis slab":
        # The search used beyond _LOCAL_MAX_CLUSTERS centres.
        monkeypatch.setattr(lloyd, "_LOCAL_MAX_CLUSTERS", 4)
    points, weights = coffee_points
    fit = weighted_kmeans(points, weights, 24, tol=0)
    assert fit.converged
    # Every point sits in its nearest cluster ...
    d = ((points[:, None, :] - fit.centers[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(d[np.arange(len(points)), fit.labels], d.min(axis=1))
    # ... and every centre is the weighted mean of its cluster.
    for j in range(24):
        members = fit.labels == j
        assert members.any()
        mean = weights[members] @ points[members] / weights[members].sum()
        np.testing.assert_allclose(fit.centers[j], mean, rtol=1e-9, atol=1e-9)
    assert fit.inertia == pytest.approx(_inertia(points, weights, fit.centers))


@pytest.mark.parametrize("k", [4, 32])
def test_error_is_as_low_as_scikit_learn_kmeans(coffee_points, k):
    points, weights = coffee_points
    ours = weighted_kmeans(points, weights, k)
    theirs = KMeans(k, n_init=1, random_state=0).fit(points, sample_weight=weights)
    assert ours.inertia <= 1.01 * theirs.inertia_


def test_weights_count_like_repeated_points():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (300, 3))
    weights = rng.integers(1, 5, 300)
    weighted = weighted_kmeans(points, weights.astype(float), 5, tol=0)
    repeated = np.repeat(points, weights, axis=0)
    # The weighted fit's error equals the error of those centres on the repeats.
    assert weighted.inertia == pytest.approx(
        _inertia(repeated, np.ones(len(repeated)), weighted.centers)
    )


def test_deterministic(coffee_points):
    points, weights = coffee_points
    a = weighted_kmeans(points, weights, 16)
    b = weighted_kmeans(points.copy(), weights.copy(), 16)
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_k_equals_n_gives_every_point_its_own_cluster():
    points = np.array([[0.0, 0], [5, 5], [9, 1], [3, 8]])
    fit = weighted_kmeans(points, np.ones(4), 4)
    assert sorted(map(tuple, fit.centers)) == sorted(map(tuple, points))
    assert fit.inertia == pytest.approx(0.0)


def test_one_cluster_is_the_weighted_mean():
    points = np.array([[0.0], [10.0]])
    fit = weighted_kmeans(points, np.array([3.0, 1.0]), 1)
    np.testing.assert_allclose(fit.centers, [[2.5]])
    assert fit.inertia == pytest.approx(3 * 2.5**2 + 7.5**2)


def test_duplicate_points_still_give_k_distinct_centres():
    points = np.repeat(np.array([[0.0, 0], [1, 0], [0, 1], [1, 1]]), 50, axis=0)
    points = np.vstack([points, [[0.5, 0.5]]])
    fit = weighted_kmeans(points, np.ones(len(points)), 5)
    assert len(np.unique(fit.centers, axis=0)) == 5


def test_progress_is_monotonic_and_ends_at_one(coffee_points):
    points, weights = coffee_points
    gen = weighted_kmeans_iter(points, weights, 8)
    fractions = []
    while True:
        try:
            fractions.append(next(gen))
        except StopIteration as stop:
            fit = stop.value
            break
    assert fractions == sorted(fractions)
    assert fractions[0] >= 0 and fractions[-1] <= 1
    assert fit.centers.shape == (8, 3)


@pytest.mark.parametrize(
    "points,weights,k,match",
    [
        (np.zeros(4), np.ones(4), 2, r"shape \(n, d\)"),
        (np.zeros((4, 3)), np.ones(3), 2, "weights must have shape"),
        (np.zeros((4, 3)), np.ones(4), 0, "between 1 and 4"),
        (np.zeros((4, 3)), np.ones(4), 5, "between 1 and 4"),
        (np.zeros((4, 3)), np.ones(4), True, "between 1 and 4"),
    ],
)
def test_bad_arguments(points, weights, k, match):
    with pytest.raises(ValueError, match=match):
        weighted_kmeans(points, weights, k)


@pytest.mark.parametrize("k", [1, 2, 16, 200])
@pytest.mark.parametrize("tol", [0.0, 1e-2])
def test_lower_bounds_the_distance_to_every_other_centre(coffee_points, k, tol):
    points, weights = coffee_points
    fit = weighted_kmeans(points, weights, k, tol=tol)
    d = np.sqrt(((points[:, None, :] - fit.centers[None]) ** 2).sum(axis=2))
    own = d[np.arange(len(points)), fit.labels].copy()
    d[np.arange(len(points)), fit.labels] = np.inf
    assert fit.lower.shape == (len(points),)
    assert np.all(fit.lower <= d.min(axis=1) + 1e-9)
    if k > 1:
        # The bound must be useful, not just valid: it proves most labels.
        assert np.mean(own < fit.lower) > 0.5


def _python_loop_only(monkeypatch):
    """Run every Lloyd iteration through _lloyd's Python loop, none in a kernel."""
    from napari_kmeans_quantize import gather

    monkeypatch.setattr(lloyd, "_PARALLEL_POINTS", 0)
    monkeypatch.setattr(gather, "_cores", lambda: 2)


def test_kernel_iterations_equal_the_python_loop(coffee_points, monkeypatch):
    points, weights = coffee_points
    fast = weighted_kmeans(points, weights, 48)
    _python_loop_only(monkeypatch)
    slow = weighted_kmeans(points, weights, 48)
    np.testing.assert_array_equal(fast.centers, slow.centers)
    np.testing.assert_array_equal(fast.labels, slow.labels)
    assert (fast.n_iter, fast.inertia) == (slow.n_iter, slow.inertia)


def test_inherited_sums_and_radii_equal_a_fresh_pass(coffee_points):
    # _inherit finds the clusters' sums and largest upper bounds on its way; they
    # must be exactly what the separate passes would find.
    points, weights = coffee_points
    k = 24
    levels = pyramid.Pyramid(points, weights).levels(k)
    assert levels, "coffee should have a coarser level"
    coarse = levels[-1]
    fine = pyramid._Level(points, weights, None)
    axis = seeding._principal_axis(coarse.points, coarse.weights)
    centers = seeding._variance_split_init(coarse.points, coarse.weights, k)
    state = lloyd._inherit(
        fine, coarse, lloyd._initial_state(coarse.points, centers, axis)
    )
    fresh = kernels._sums_kernel(points, weights, state.labels, k)
    for got, want in zip(state.sums, fresh, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        state.top_upper, kernels._radii(state.labels, state.upper, k)
    )
    assert state.top_upper.max() > 0


@pytest.mark.parametrize("loop", ["kernel", "python"])
def test_an_empty_cluster_gets_a_new_seed(monkeypatch, loop):
    if loop == "python":
        _python_loop_only(monkeypatch)
    reseeds = []
    reseed = lloyd._reseed
    monkeypatch.setattr(
        lloyd, "_reseed", lambda *a: reseeds.append(a[-1]) or reseed(*a)
    )
    rng = np.random.default_rng(0)
    points, weights = rng.random((500, 3)), rng.integers(1, 9, 500).astype(float)
    # Centre 5 is far from every point: its cluster starts empty.
    centers = np.concatenate([points[:5], [[10.0, 10.0, 10.0]]])
    axis = seeding._principal_axis(points, weights)
    state = lloyd._initial_state(points, centers, axis)
    assert not (state.labels == 5).any()
    gen = lloyd._lloyd(
        points, weights, state, axis, max_iter=300, tol=0, progress=(0.0, 1.0)
    )
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            state, n_iter, converged = stop.value
            break
    assert [list(r) for r in reseeds] == [[5]]
    assert converged and n_iter > 1
    assert np.bincount(state.labels, minlength=6).min() > 0
    d = ((points[:, None, :] - state.centers[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(d[np.arange(500), state.labels], d.min(axis=1))


@pytest.mark.parametrize("k", [1, 2, 40, 256])
def test_centre_graph_equals_all_pairs(k):
    rng = np.random.default_rng(k)
    # Integer centres: many equal distances, whose neighbours keep index order.
    centers = rng.integers(0, 12, (k, 3)).astype(np.float64)
    reach = rng.random(k) * 8
    shift = rng.random(k)
    shift_reach = 0.75 * reach
    half_gap, nbr, nbr_dist, cnt, ext, local = centres._centre_graph(
        centers, reach, shift, shift_reach
    )
    sq = ((centers[:, None, :] - centers[None]) ** 2).sum(axis=2)
    np.fill_diagonal(sq, np.inf)
    np.testing.assert_array_equal(half_gap, 0.5 * np.sqrt(sq.min(axis=1)))
    for a in range(k):
        inside = np.flatnonzero(sq[a] < reach[a] ** 2)
        want = inside[np.argsort(np.sqrt(sq[a, inside]), kind="stable")]
        np.testing.assert_array_equal(nbr[a, : cnt[a]], want)
        np.testing.assert_array_equal(nbr_dist[a, : cnt[a]], np.sqrt(sq[a, want]))
        outside = np.delete(sq[a], inside)
        assert ext[a] == np.sqrt(outside.min() if len(outside) else np.inf)
        near = sq[a] < shift_reach[a] ** 2
        assert local[a] == (shift[near].max() if near.any() else 0.0)
    if k == 256:
        assert (cnt > 1).any() and (ext < np.inf).any()
        assert any(len(set(nbr_dist[a, : cnt[a]])) < cnt[a] for a in range(k))


def test_variance_split_finds_separated_groups_and_their_means():
    rng = np.random.default_rng(3)
    # Five tight groups of different sizes and weights, far apart on every axis.
    means = np.array([[0, 0, 0], [90, 10, 0], [10, 90, 40], [50, 50, 90], [90, 90, 0]])
    sizes = [40, 7, 120, 15, 60]
    points = np.concatenate(
        [m + rng.normal(0, 1, (s, 3)) for m, s in zip(means, sizes, strict=True)]
    )
    weights = rng.integers(1, 5, len(points)).astype(np.float64)
    got = seeding._variance_split_init(points, weights, 5)
    group = np.repeat(np.arange(5), sizes)
    want = np.array(
        [
            weights[group == g] @ points[group == g] / weights[group == g].sum()
            for g in range(5)
        ]
    )
    order = np.lexsort(got.T[::-1])
    np.testing.assert_allclose(got[order], want[np.lexsort(want.T[::-1])])


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 1000])
def test_stable_argsort_equals_numpys(n):
    rng = np.random.default_rng(n)
    # Few distinct values: many ties, which must keep their index order.
    keys = rng.integers(0, 5, n).astype(np.float64) - 0.5 * (rng.random(n) < 0.1)
    np.testing.assert_array_equal(
        centres._stable_argsort(keys), np.argsort(keys, kind="stable")
    )


def test_kernels_compiled_after_a_fit():
    from napari_kmeans_quantize.kmeans import kernels_compiled

    rng = np.random.default_rng(0)
    weighted_kmeans(rng.random((3000, 3)), np.ones(3000), 300)  # runs both kernels
    assert kernels_compiled() is True
