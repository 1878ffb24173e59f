"""The public functions' signatures and docs, built from the options written once."""

from __future__ import annotations

import inspect
import pydoc

import numpy as np
import pytest

from napari_kmeans_quantize import (
    apply_palette,
    chunked,
    kmeans,
    quantize,
    quantize_iter,
    shared,
)
from napari_kmeans_quantize._engine.api import OPTIONS, plain_form, with_options
from napari_kmeans_quantize.sweep import auto_k, sweep, sweep_iter

_PUBLIC = [
    quantize,
    quantize_iter,
    apply_palette,
    shared.quantize_shared,
    chunked.quantize_dask_iter,
    chunked.quantize_multiscale,
    sweep,
    auto_k,
    kmeans.weighted_kmeans,
]


@pytest.mark.parametrize("func", _PUBLIC, ids=lambda f: f.__name__)
def test_signatures_list_every_parameter_keyword_only(func):
    params = inspect.signature(func).parameters
    assert not any(p.kind == p.VAR_KEYWORD for p in params.values())
    # (weighted_kmeans's positional weights are its points', no option.)
    for name in (set(params) & set(OPTIONS)) - {"weights"}:
        assert params[name].kind == inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == OPTIONS[name].default


def test_the_generator_forms_stay_generator_functions():
    for func in (quantize_iter, sweep_iter, chunked.quantize_multiscale_iter):
        assert inspect.isgeneratorfunction(func)
    assert not inspect.isgeneratorfunction(quantize)


def test_quantize_shows_its_options_and_their_docs():
    sig = inspect.signature(quantize)
    assert list(sig.parameters)[:3] == ["image", "n_colors", "channel_axis"]
    assert sig.return_annotation == "QuantizeResult"
    assert set(OPTIONS) <= set(sig.parameters)
    text = pydoc.render_doc(quantize, renderer=pydoc.plaintext)
    assert "%(" not in text
    assert "standardize : bool, optional" in text
    assert "n_init : int, optional" in text
    assert "Examples" in text


def test_sweep_keeps_its_own_parameters_and_a_progress_callback():
    params = inspect.signature(sweep).parameters
    assert {"ks", "keep_results", "workers", "progress", "weights"} <= set(params)
    assert "max_pixels" not in params
    assert "progress" not in inspect.signature(sweep_iter).parameters


def test_a_misspelt_option_is_a_type_error_naming_the_function():
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(TypeError, match=r"quantize\(\).*colour_space"):
        quantize(image, 2, colour_space="lab")
    with pytest.raises(TypeError, match=r"quantize_iter\(\).*colour_space"):
        next(quantize_iter(image, 2, colour_space="lab"))
    with pytest.raises(TypeError, match=r"sweep\(\).*max_pixels"):
        sweep(image, (2,), max_pixels=10)


def test_options_are_bound_with_their_defaults_and_docs_filled():
    @with_options(only=("tol", "dither"))
    def demo(x, *, own=1, **options):
        """Demo.

        Parameters
        ----------
        x : int
            A number.
        %(options)s
        """
        return x, own, options

    assert list(inspect.signature(demo).parameters) == ["x", "own", "dither", "tol"]
    assert demo(3) == (3, 1, {"dither": False, "tol": OPTIONS["tol"].default})
    assert "tol : float, optional" in demo.__doc__
    assert "dither : bool, optional" in demo.__doc__


def test_the_plain_form_drains_the_generator_and_reports_progress():
    def counting(n, *, step=1):
        """Counts."""
        for i in range(0, n, step):
            yield i / n
        return n

    @plain_form(counting, progress=True)
    def plain() -> int:
        """Plain."""

    seen = []
    assert plain(4, step=2, progress=seen.append) == 4
    assert seen == [0.0, 0.5]
    assert plain.__doc__ == "Plain."
    assert list(inspect.signature(plain).parameters) == ["n", "step", "progress"]


def test_an_unknown_option_name_is_refused_when_the_function_is_made():
    with pytest.raises(ValueError, match="no such options"):
        with_options(only=("colour_space",))
