"""Importance maps: one non-negative weight per pixel, turned into the weight
of every distinct colour (a weighted colour histogram).

The fit then minimises the weighted squared error; a pixel of weight 0 takes no
part in it but is mapped like every other. Numpy weights are checked in full
up front; dask weights are checked for shape up front and for their values in
the pass that sums them.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from .image import is_dask, refuse_masked


def _check_weights_type(weights: object) -> None:
    refuse_masked(weights, "weights")
    dtype = getattr(weights, "dtype", None)
    if dtype is None:
        dtype = np.asarray(weights).dtype
    if np.dtype(dtype).kind not in "buif":
        raise TypeError(
            "weights must be an array of numbers (one non-negative weight per "
            f"pixel), got dtype {dtype}."
        )


def checked_weights(weights: Any, spatial_shape: tuple[int, ...]) -> Any:
    """`weights` as float64 of the image's spatial shape; numpy ones are checked
    for NaN, infinity, negative values and all zeros (dask ones later)."""
    _check_weights_type(weights)
    shape = tuple(int(s) for s in getattr(weights, "shape", np.shape(weights)))
    if shape != tuple(spatial_shape):
        raise ValueError(
            f"weights must have the image's spatial shape {tuple(spatial_shape)} "
            f"(one weight per pixel, no channel axis), got shape {shape}."
        )
    if is_dask(weights):
        return weights.astype(np.float64)
    values = np.asarray(weights, dtype=np.float64)
    check_weight_values(
        int(values.size - np.count_nonzero(np.isfinite(values))),
        float(values.min()) if values.size else 0.0,
        float(values.sum()) if np.isfinite(values).all() else 1.0,
    )
    return values


def check_weight_values(n_bad: int, lowest: float, total: float) -> None:
    """Refuse NaN or infinite, negative or all-zero weights."""
    if n_bad:
        raise ValueError(
            f"weights contain {n_bad} NaN or infinite value(s); give every pixel a "
            "finite weight (0 leaves it out of the fit)."
        )
    if lowest < 0:
        raise ValueError(
            f"weights must be >= 0, got a smallest weight of {lowest}; use 0 for "
            "pixels that should not count in the fit."
        )
    if not total > 0:
        raise ValueError(
            "weights are all zero, so no pixel would count in the fit; give the "
            "pixels that matter a positive weight."
        )


def colour_weights(
    inverse: np.ndarray,
    n_colors: int,
    pixel_weights: np.ndarray,
    sample: np.ndarray | None,
) -> np.ndarray:
    """The summed weight of every distinct colour (over the `sample` of pixels
    if one is given); `inverse` is each pixel's colour row."""
    flat = pixel_weights.reshape(-1)
    if sample is not None:
        inverse, flat = inverse[sample], flat[sample]
    return np.bincount(inverse, weights=flat, minlength=n_colors).astype(np.float64)


def _block_weights(
    block: np.ndarray, weights: np.ndarray, spec: Any, keys_sorted: np.ndarray
) -> tuple[np.ndarray, int, float]:
    from .image import merge_transparent

    pixels = merge_transparent(block.reshape(-1, block.shape[-1]))
    idx = np.searchsorted(keys_sorted, spec.keys(pixels))
    flat = weights.reshape(-1)
    n_bad = int(flat.size - np.count_nonzero(np.isfinite(flat)))
    lowest = float(flat.min()) if flat.size else 0.0
    if n_bad:
        return np.zeros(len(keys_sorted)), n_bad, lowest
    sums = np.bincount(idx, weights=flat, minlength=len(keys_sorted))
    return sums, 0, lowest


def dask_colour_weights(
    arr: Any, weights: Any, spec: Any, keys_sorted: np.ndarray
) -> Generator[float, None, np.ndarray]:
    """The summed weight of every distinct key (in `keys_sorted` order) of a
    channels-last dask image, in one pass over image and weights together."""
    import dask
    import dask.array as da

    weights = da.asarray(weights).rechunk(arr.chunks[:-1])
    blocks = arr.to_delayed()[..., 0].ravel()
    w_blocks = weights.to_delayed().ravel()
    task = dask.delayed(_block_weights, pure=True)
    parts = dask.compute(
        *[task(b, w, spec, keys_sorted) for b, w in zip(blocks, w_blocks, strict=True)]
    )
    yield 1.0
    check_weight_values(
        sum(p[1] for p in parts),
        min(p[2] for p in parts),
        float(sum(p[0].sum() for p in parts)),
    )
    return np.sum([p[0] for p in parts], axis=0)


def weighted_psnr(
    original: Any,
    quantized: Any,
    weights: Any,
    channel_axis: int | None,
    peak: float,
) -> float:
    """PSNR of the weighted mean squared error: the quality inside the region
    the weights mark (for a 0/1 mask, the PSNR of the masked pixels alone).

    As for the plain PSNR, RGBA counts only the colour channels of the pixels
    visible in the original; inf where no weighted pixel differs (or none is
    visible).
    """
    orig = np.asarray(original)
    quant = np.asarray(quantized)
    if channel_axis is None:
        orig, quant = orig[..., None], quant[..., None]
    else:
        orig = np.moveaxis(orig, channel_axis, -1)
        quant = np.moveaxis(quant, channel_axis, -1)
    w = checked_weights(weights, orig.shape[:-1])
    w = np.asarray(w, dtype=np.float64)
    if orig.shape[-1] == 4:
        w = w * (orig[..., 3] != 0)
        orig, quant = orig[..., :3], quant[..., :3]
    diff = orig.astype(np.float64) - quant.astype(np.float64)
    err = (diff * diff).mean(axis=-1)
    total = float(w.sum())
    mse = float((w * err).sum()) / total if total > 0 else 0.0
    return np.inf if mse == 0 else float(10 * np.log10(peak * peak / mse))
