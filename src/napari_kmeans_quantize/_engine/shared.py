"""One palette for many images: the fit of their combined histogram.

The pixels of all images (and their weights) are put end to end as one
``(N, C)`` image, which is fitted exactly as ``quantize`` fits an image; the
palette is therefore that of quantising the concatenation, bit for bit. Every
image is then mapped onto it in its order (``multiscale.map_onto``), so all
results hold the identical palette. Dask images stay lazy.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .image import is_dask
from .multiscale import map_onto, prepare
from .options import QuantizeOptions
from .progress import scaled
from .result import QuantizeResult
from .weights import checked_weights


def shared_iter(
    images: Sequence[Any], options: QuantizeOptions, *, channel_axis: int | None
) -> Generator[float, None, list[QuantizeResult]]:
    """``quantize_shared_iter`` with checked options; ``options.weights`` is
    None or one weight map (or None) per image."""
    if isinstance(images, np.ndarray) or is_dask(images) or not len(images):
        raise TypeError(
            "images must be a non-empty list of arrays, got "
            f"{type(images).__name__}; for one image use quantize."
        )
    lazy = any(is_dask(image) for image in images)
    arrays, prepared, fit_step = prepare(images, channel_axis, lazy=lazy)
    _check_alike(arrays, [arr for arr, _ in prepared])
    n_channels = prepared[0][0].shape[-1]
    pieces = [arr.reshape(-1, n_channels) for arr, _ in prepared]
    if lazy:
        import dask.array as da

        combined = da.concatenate(pieces)
    else:
        combined = np.concatenate(pieces)
    # One row of pixels: a 2-D (N, C) array would read as an image for C > 4.
    combined = combined[np.newaxis]
    weights = _combined_weights(options.weights, prepared)
    fit_options = replace(
        options, weights=None if weights is None else weights[np.newaxis]
    )
    fitted = yield from scaled(
        fit_step(combined, fit_options, channel_axis=-1), 0.0, 0.6
    )
    return (
        yield from scaled(
            map_onto(
                fitted, arrays, prepared, options, channel_axis=channel_axis, lazy=lazy
            ),
            0.6,
            1.0,
        )
    )


def _combined_weights(weights: object, prepared: list) -> Any:
    """The weight maps of all images end to end (ones where an image has none)."""
    if weights is None:
        return None
    if isinstance(weights, np.ndarray) or is_dask(weights):
        raise TypeError(
            "weights of quantize_shared must be a list with one weight map (or "
            "None) per image, got a single array."
        )
    weights = list(weights)
    if len(weights) != len(prepared):
        raise ValueError(
            f"weights has {len(weights)} entries for {len(prepared)} images; give "
            "one weight map (or None) per image."
        )
    lazy = any(is_dask(w) for w in weights) or is_dask(prepared[0][0])
    flat = []
    for w, (arr, _) in zip(weights, prepared, strict=True):
        spatial = arr.shape[:-1]
        w = np.ones(spatial) if w is None else checked_weights(w, spatial)
        flat.append(w.reshape(-1))
    if lazy:
        import dask.array as da

        return da.concatenate([da.asarray(w) for w in flat])
    return np.concatenate(flat)


def _check_alike(arrays: list, prepared: list) -> None:
    """All images need the first one's dtype and number of channels."""
    ref = prepared[0]
    for i, arr in enumerate(prepared):
        if arr.dtype != ref.dtype or arr.shape[-1] != ref.shape[-1]:
            raise ValueError(
                f"image {i} (shape {arrays[i].shape}, dtype {arrays[i].dtype}) does "
                f"not match image 0 (shape {arrays[0].shape}, dtype "
                f"{arrays[0].dtype}): all images need the same dtype and number of "
                "channels (their shapes may differ)."
            )
