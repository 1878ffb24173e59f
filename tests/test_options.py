"""The options object: every value checked once, at construction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize._engine.options import (
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    QuantizeOptions,
    label_dtype,
)


def test_defaults_and_normalised_values():
    opts = QuantizeOptions(np.int64(16), tol=0, max_iter=np.int32(5))
    assert (opts.n_colors, opts.max_iter, opts.tol) == (16, 5, 0.0)
    assert type(opts.n_colors) is int and type(opts.tol) is float
    assert QuantizeOptions(2).max_iter == DEFAULT_MAX_ITER
    assert QuantizeOptions(2).tol == DEFAULT_TOL


def test_frozen_and_replace_checks_again():
    opts = QuantizeOptions(4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.n_colors = 5
    assert dataclasses.replace(opts, n_colors=8).n_colors == 8
    with pytest.raises(ValueError, match="n_colors"):
        dataclasses.replace(opts, n_colors=0)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"n_colors": True}, TypeError),
        ({"n_colors": 65537}, ValueError),
        ({"max_iter": True}, ValueError),
        ({"max_iter": 0}, ValueError),
        ({"max_iter": 2.0}, ValueError),
        ({"tol": float("nan")}, ValueError),
        ({"tol": -1e-9}, ValueError),
        ({"tol": True}, TypeError),
        ({"random_state": -1}, ValueError),
        ({"random_state": "seed"}, TypeError),
        ({"max_pixels": 0}, ValueError),
        ({"dither": 1}, TypeError),
        ({"color_space": "hsv"}, ValueError),
    ],
)
def test_every_value_is_checked(changes, error):
    params = {"n_colors": 4, **changes}
    with pytest.raises(error):
        QuantizeOptions(**params)


def test_quantize_refuses_max_iter_true():
    # True used to pass as one iteration.
    with pytest.raises(ValueError, match="max_iter"):
        quantize(np.zeros((4, 4, 3), np.uint8), 2, max_iter=True)


def test_from_params_takes_the_options_only():
    opts = QuantizeOptions.from_params(
        {"image": None, "n_colors": 3, "channel_axis": 0, "tol": 0.5}
    )
    assert opts == QuantizeOptions(3, tol=0.5)


def test_label_dtype():
    assert label_dtype(256) == np.uint8
    assert label_dtype(257) == np.uint16
