"""Exact weighted k-means for colour points (see ``fit`` for the method)."""

from .fit import KMeansFit, fit_iter
from .kernels import _assign_kernel, _inertia, _lloyd_run
from .pyramid import Pyramid

__all__ = ["KMeansFit", "Pyramid", "fit_iter", "kernels_compiled", "weighted_inertia"]

weighted_inertia = _inertia


def kernels_compiled() -> bool:
    """Whether numba's on-disk cache holds the k-means' main kernels (so the next
    fit does not compile them). False when the cache cannot be read."""
    try:
        kernels = (_lloyd_run, _assign_kernel)
        return all(bool(k._cache._cache_file._load_index()) for k in kernels)
    except Exception:  # a hint only: never break a run over it
        return False
