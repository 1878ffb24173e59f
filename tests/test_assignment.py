"""Tests for the assignment step (nearest palette entries of the colours)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from napari_kmeans_quantize._engine import assignment, pipeline
from napari_kmeans_quantize._engine.options import QuantizeOptions
from napari_kmeans_quantize._engine.progress import drain


@pytest.mark.parametrize("seed", [0, 1])
def test_near_guess_finds_the_unique_nearest_or_leaves_it(seed):
    rng = np.random.default_rng(seed)
    # Integer coordinates: many points are equally far from two entries.
    palette = np.unique(rng.integers(0, 40, (60, 3)), axis=0).astype(np.float64)
    points = rng.integers(0, 40, (5000, 3)).astype(np.float64)
    guess = rng.integers(0, len(palette), len(points))
    out = assignment._near_guess(points, palette, guess)
    d = ((points[:, None, :] - palette[None]) ** 2).sum(axis=2)
    two = np.sort(d, axis=1)[:, :2]
    unique = two[:, 0] < two[:, 1]
    found = out >= 0
    # Found entries are the nearest; ties are left to the tree search.
    np.testing.assert_array_equal(out[found], d[found].argmin(axis=1))
    assert not found[~unique].any()
    assert found[unique].all()
    assert (~unique).any()


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_labels_from_the_fit_guess_equal_a_full_search(color_space):
    image = data.astronaut()[::2, ::2]
    hist, _ = pipeline.pixel_histogram(image)
    inputs = pipeline.FitInputs(
        hist.colors,
        hist.counts,
        hist.counts.astype(np.float64),
        image.dtype,
        color_space,
    )
    options = QuantizeOptions(n_colors=64, color_space=color_space)
    fit = drain(pipeline.fit_palette(inputs, options))
    assert fit.guess is not None and not fit.guess[1].all()
    args = (hist.colors, hist.counts, image.dtype, fit.palette, color_space)
    with_guess = assignment.color_labels(*args, guess=fit.guess)
    without = assignment.color_labels(*args)
    np.testing.assert_array_equal(with_guess[0], without[0])
    np.testing.assert_array_equal(with_guess[1], without[1])
