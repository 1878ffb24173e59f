"""The multiscale implementation: one palette for every level of a pyramid.

The palette is fitted on one level (``fit_level``) exactly as ``quantize`` fits
it, and ordered by that level's shares; every other level is mapped onto it
(nearest colour, or error diffusion, as ``apply_palette``). Counts: every
level's result holds that level's own counts; the fitted level's come from its
histogram. Lazy (the default): levels are dask arrays, the other levels'
labels, images and counts are lazy, and dithering is refused. Eager
(``lazy=False``): every level is read into memory and mapped at once, and
dithering is allowed.
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
from .image import as_channels_last, is_dask
from .options import QuantizeOptions, check_bool
from .pipeline import memory_apply_iter, memory_quantize_iter
from .progress import scaled
from .result import QuantizeResult


def multiscale_iter(
    levels: Sequence[Any],
    options: QuantizeOptions,
    *,
    channel_axis: int | None,
    fit_level: int,
    lazy: bool = True,
) -> Generator[float, None, list[QuantizeResult]]:
    """``chunked.quantize_multiscale_iter`` with checked options."""
    if isinstance(levels, np.ndarray) or is_dask(levels) or not len(levels):
        raise TypeError(
            "levels must be a non-empty list of arrays (finest first), got "
            f"{type(levels).__name__}."
        )
    lazy = check_bool("lazy", lazy)
    if options.dither and lazy:
        raise ValueError(DITHER_MESSAGE + " Or pass lazy=False.")
    if isinstance(fit_level, bool) or not isinstance(fit_level, int | np.integer):
        raise TypeError(f"fit_level must be an integer, got {fit_level!r}.")
    if not -len(levels) <= fit_level < len(levels):
        raise ValueError(
            f"fit_level={fit_level} is out of range for {len(levels)} level(s)."
        )
    fit_level = int(fit_level) % len(levels)
    arrays, prepared, fit_step = prepare(levels, channel_axis, lazy=lazy)
    _check_levels(arrays, [arr for arr, _ in prepared], fit_level)
    fitted = yield from scaled(
        fit_step(arrays[fit_level], options, channel_axis=channel_axis), 0.0, 0.5
    )
    results = yield from scaled(
        map_onto(
            fitted,
            arrays,
            prepared,
            options,
            channel_axis=channel_axis,
            lazy=lazy,
            fitted_index=fit_level,
        ),
        0.5,
        1.0,
    )
    yield 1.0
    return results


def prepare(
    images: Sequence[Any], channel_axis: int | None, *, lazy: bool
) -> tuple[list, list[tuple[Any, int | None]], Any]:
    """The images as arrays (dask ones if `lazy`), channels last with their
    axes (metadata checked, values later), and the fit step that takes them."""
    if lazy:
        arrays = [as_dask(image) for image in images]
        prepared = [dask_channels_last(a, channel_axis) for a in arrays]
        return arrays, prepared, dask_quantize_iter
    arrays = [np.asarray(image) for image in images]
    prepared = [as_channels_last(a, channel_axis, check_values=False) for a in arrays]
    return arrays, prepared, memory_quantize_iter


def map_onto(
    fitted: QuantizeResult,
    arrays: Sequence[Any],
    prepared: Sequence[tuple[Any, int | None]],
    options: QuantizeOptions,
    *,
    channel_axis: int | None,
    lazy: bool,
    fitted_index: int | None = None,
) -> Generator[float, None, list[QuantizeResult]]:
    """One result per array, mapped onto ``fitted.palette`` in its order (the
    array at `fitted_index`, if any, is `fitted` itself); each holds its own
    assignment and counts and the shared fit's details. `prepared` are the
    arrays channels last with their axes; lazy: dask arrays, lazy results."""
    results = []
    span = 1.0 / len(arrays)
    for i, level in enumerate(arrays):
        if i == fitted_index:
            results.append(fitted)
        elif lazy:
            arr, axis = prepared[i]
            labels, image, counts = lazy_apply(
                arr,
                axis,
                fitted.palette,
                options.color_space,
                options.alpha,
                fitted.channel_scale,
            )
            results.append(
                replace(
                    fitted,
                    image=image,
                    labels=labels,
                    counts=counts,
                    n_distinct=0,
                    channel_axis=axis,
                )
            )
        else:
            mapped = yield from scaled(
                memory_apply_iter(
                    level,
                    fitted.palette,
                    channel_axis=channel_axis,
                    color_space=options.color_space,
                    dither=options.dither,
                    alpha=options.alpha,
                    scale=fitted.channel_scale,
                ),
                i * span,
                (i + 1) * span,
            )
            # The shared fit's details, the level's own assignment and counts.
            results.append(
                replace(
                    mapped,
                    n_colors_requested=fitted.n_colors_requested,
                    inertia=fitted.inertia,
                    n_iter=fitted.n_iter,
                    converged=fitted.converged,
                )
            )
    yield 1.0
    return results


def _check_levels(arrays: list, prepared: list, fit_level: int) -> None:
    """All levels need the fit level's dtype, number of dimensions and channels."""
    ref = prepared[fit_level]
    for i, arr in enumerate(prepared):
        if (
            arr.dtype != ref.dtype
            or arr.ndim != ref.ndim
            or arr.shape[-1] != ref.shape[-1]
        ):
            raise ValueError(
                f"level {i} (shape {arrays[i].shape}, dtype {arrays[i].dtype}) does "
                f"not match level {fit_level} (shape {arrays[fit_level].shape}, "
                f"dtype {arrays[fit_level].dtype}): all levels need the same dtype, "
                "number of dimensions and channels."
            )
