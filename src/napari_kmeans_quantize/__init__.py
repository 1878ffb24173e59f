"""K-means colour quantisation for napari and for scripts.

The engine (``quantize``, ``apply_palette``, ``sweep`` and the metrics) needs only
numpy, scipy, numba and scikit-image; importing this package does not import
napari or Qt. ``quantize_layer`` (the napari-facing call) is imported on first use.
"""

from __future__ import annotations

from typing import Any

from .metrics import formula_bits, mean_ciede2000, mse, psnr
from .quantize import (
    MAX_COLORS,
    FewColorsWarning,
    QuantizeResult,
    apply_palette,
    apply_palette_iter,
    quantize,
    quantize_iter,
)
from .shared import quantize_shared, quantize_shared_iter
from .sweep import SweepTable, auto_k, sweep

__version__ = "0.1.0"

__all__ = [
    "MAX_COLORS",
    "FewColorsWarning",
    "QuantizeResult",
    "SweepTable",
    "__version__",
    "apply_palette",
    "apply_palette_iter",
    "auto_k",
    "formula_bits",
    "mean_ciede2000",
    "mse",
    "psnr",
    "quantize",
    "quantize_iter",
    "quantize_layer",
    "quantize_shared",
    "quantize_shared_iter",
    "sweep",
]

_LAZY = {
    "quantize_layer": ("._layers", "quantize_layer"),
}


def __getattr__(name: str) -> Any:
    # quantize_layer pulls in napari; keep `import napari_kmeans_quantize` Qt-free.
    if name in _LAZY:
        from importlib import import_module

        module, attr = _LAZY[name]
        value = getattr(import_module(module, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
