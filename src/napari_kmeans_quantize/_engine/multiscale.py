"""The multiscale implementation: one palette for every level of a pyramid.

The palette is fitted on one level (``fit_level``) exactly as ``quantize`` fits a
dask array; every other level is mapped lazily onto it (nearest colour, as
``apply_palette``). Counts: the fitted level's come from its histogram (exact, a
NumPy array); every other level's are its own, lazy (computing them reads it).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .dask_backend import (
    DITHER_MESSAGE,
    as_dask,
    dask_channels_last,
    dask_quantize_iter,
    lazy_apply,
)
from .image import is_dask
from .options import QuantizeOptions
from .result import QuantizeResult


def multiscale_iter(
    levels: Sequence[Any],
    options: QuantizeOptions,
    *,
    channel_axis: int | None,
    fit_level: int,
) -> Generator[float, None, list[QuantizeResult]]:
    """``chunked.quantize_multiscale_iter`` with checked options."""
    if isinstance(levels, np.ndarray) or is_dask(levels) or not len(levels):
        raise TypeError(
            "levels must be a non-empty list of arrays (finest first), got "
            f"{type(levels).__name__}."
        )
    if options.dither:
        raise ValueError(DITHER_MESSAGE)
    if isinstance(fit_level, bool) or not isinstance(fit_level, int | np.integer):
        raise TypeError(f"fit_level must be an integer, got {fit_level!r}.")
    if not -len(levels) <= fit_level < len(levels):
        raise ValueError(
            f"fit_level={fit_level} is out of range for {len(levels)} level(s)."
        )
    fit_level = int(fit_level) % len(levels)
    arrays = [as_dask(level) for level in levels]
    prepared = [dask_channels_last(a, channel_axis) for a in arrays]
    ref = prepared[fit_level][0]
    for i, (arr, _) in enumerate(prepared):
        if (
            arr.dtype != ref.dtype
            or arr.ndim != ref.ndim
            or arr.shape[-1] != (ref.shape[-1])
        ):
            raise ValueError(
                f"level {i} (shape {arrays[i].shape}, dtype {arrays[i].dtype}) does "
                f"not match level {fit_level} (shape {arrays[fit_level].shape}, "
                f"dtype {arrays[fit_level].dtype}): all levels need the same dtype, "
                "number of dimensions and channels."
            )
    fitted = yield from dask_quantize_iter(
        arrays[fit_level], options, channel_axis=channel_axis
    )
    results = []
    for i, (arr, axis) in enumerate(prepared):
        if i == fit_level:
            results.append(fitted)
            continue
        labels, image, counts = lazy_apply(
            arr, axis, fitted.palette, options.color_space
        )
        results.append(
            replace(fitted, image=image, labels=labels, counts=counts, n_distinct=0)
        )
    return results
