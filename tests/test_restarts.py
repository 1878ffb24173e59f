"""init='k-means++' and n_init: scikit-learn's seeding, restarts by inertia."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kmeans_quantize import quantize


@pytest.fixture
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()[::4, ::4]


def test_kmeans_plus_plus_is_seeded_by_random_state(photo):
    a = quantize(photo, 12, init="k-means++", random_state=3)
    b = quantize(photo, 12, init="k-means++", random_state=3)
    c = quantize(photo, 12, init="k-means++", random_state=4)
    np.testing.assert_array_equal(a.palette, b.palette)
    assert not np.array_equal(a.palette, c.palette)
    assert not np.array_equal(a.palette, quantize(photo, 12).palette)
    assert a.converged


def test_restarts_keep_the_lowest_inertia(photo):
    # The first restart starts from the seed of the single run.
    one = quantize(photo, 12, init="k-means++", random_state=7)
    many = quantize(photo, 12, init="k-means++", n_init=5, random_state=7)
    assert many.inertia <= one.inertia


def test_kmeans_plus_plus_with_weights_and_locked_colours(photo):
    weights = np.zeros(photo.shape[:2])
    weights[:60] = 1
    fixed = np.array([[0, 0, 0]], dtype=np.uint8)
    result = quantize(
        photo, 6, init="k-means++", n_init=2, weights=weights, fixed_colors=fixed
    )
    assert (result.palette == 0).all(axis=1).any()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"init": "random"}, ValueError, "init must be one of"),
        ({"init": "k-means++", "n_init": 0}, ValueError, "n_init"),
        ({"init": "k-means++", "n_init": 1.5}, ValueError, "n_init"),
        ({"n_init": 3}, ValueError, "deterministic"),
    ],
)
def test_bad_init_options_are_refused(photo, kwargs, error, match):
    with pytest.raises(error, match=match):
        quantize(photo, 4, **kwargs)
