"""Every Examples section of the library's docstrings runs and shows what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import napari_kmeans_quantize

# The napari side's examples need a viewer; its tests cover it in a real one.
_NAPARI_SIDE = {"_widget", "_layers", "_writer", "_sample_data", "__main__"}


# Public modules whose functions all carry an Examples section.
_WITH_EXAMPLES = {
    "quantize", "chunked", "sweep", "metrics", "kmeans", "histogram", "gather",
    "colorspace",
}  # fmt: skip


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(
        napari_kmeans_quantize.__path__, napari_kmeans_quantize.__name__ + "."
    ):
        if info.name.split(".")[1] not in _NAPARI_SIDE:
            names.append(info.name)
    return sorted(names)


def test_the_engine_modules_are_all_found():
    found = set(_modules())
    assert {
        "napari_kmeans_quantize.quantize",
        "napari_kmeans_quantize.sweep",
        "napari_kmeans_quantize.metrics",
        "napari_kmeans_quantize._engine.pipeline",
    } <= found


@pytest.mark.slow
@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    failed, attempted = doctest.testmod(module, optionflags=flags, report=True)
    assert failed == 0, f"{failed} docstring example(s) of {name} failed (see above)"
    if name.split(".")[1] in _WITH_EXAMPLES:
        assert attempted > 0
