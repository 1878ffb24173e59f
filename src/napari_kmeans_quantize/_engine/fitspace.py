"""Colours as points of the fit space, and back: the scale and space a fit and
its nearest-entry searches run in."""

from __future__ import annotations

import numpy as np

from ..colorspace import to_fit_space


def _unit_scale(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


def to_unit(
    colors: np.ndarray,
    dtype: np.dtype,
    color_space: str,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """Colours of `dtype` as float64, scaled to [0, 1] for a perceptual space,
    or divided by the per-channel `scale` (see :func:`channel_scale`)."""
    colors = colors.astype(np.float64)
    if scale is not None:
        return colors / scale
    if color_space == "rgb":
        return colors
    return colors / _unit_scale(dtype)


def from_unit(
    colors: np.ndarray,
    dtype: np.dtype,
    color_space: str,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """The inverse of :func:`to_unit`, rounded and clipped into `dtype`."""
    if scale is not None:
        colors = colors * scale
    elif color_space != "rgb":
        colors = colors * _unit_scale(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        colors = np.clip(np.rint(colors), info.min, info.max)
    return colors.astype(dtype)


def fit_points(
    colors: np.ndarray,
    dtype: np.dtype,
    color_space: str,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """Colours of `dtype` as points of the fit space."""
    unit = to_unit(colors, dtype, color_space, scale)
    # rgb's fit space is the unit colours themselves, already a new array: no
    # second copy (to_fit_space returns one).
    return unit if color_space == "rgb" else to_fit_space(unit, color_space)


def channel_scale(colors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted standard deviation of every channel of the `colors` (1 for a
    constant channel): dividing by it gives every channel unit variance."""
    values = colors.astype(np.float64)
    total = weights.sum()
    if total <= 0:
        return np.ones(values.shape[1])
    mean = weights @ values / total
    std = np.sqrt(weights @ (values - mean) ** 2 / total)
    return np.where(std > 0, std, 1.0)
