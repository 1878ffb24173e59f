"""Conversions between RGB and the spaces the palette can be fitted in.

The fit space only changes *which* colours are grouped together; the palette is
always returned in the input's own dtype and value range.
"""

from __future__ import annotations

import numpy as np

from ._engine.srgb import XYZ_FROM_RGB as _XYZ_FROM_RGB
from ._engine.srgb import srgb_to_linear as _srgb_to_linear

__all__ = ["COLOR_SPACES", "from_fit_space", "rgb_to_lab", "to_fit_space"]

#: Names accepted by ``quantize(..., color_space=...)``.
COLOR_SPACES = ("rgb", "lab", "oklab")

# Oklab matrices, B. Ottosson, "A perceptual color space for image processing", 2020.
_OKLAB_M1 = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
_OKLAB_M2 = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)
# Alpha is clustered as one more coordinate; these factors put a full alpha range on
# the same footing as the full lightness range of each space.
_ALPHA_SCALE = {"lab": 100.0, "oklab": 1.0}


def _linear_map(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``x @ matrix.T`` for (n, 3) colours, one column at a time.

    Not through BLAS: OpenBLAS runs a product of this size in threads that then
    spin for a while on the other core, where a sweep's second fit (or a fit's
    second thread) should be running; that cost a sweep 10-15 % of its time.
    """
    return (
        x[:, 0:1] * matrix[:, 0] + x[:, 1:2] * matrix[:, 1] + x[:, 2:3] * matrix[:, 2]
    )


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65, 2 degree observer) of sRGB colours in [0, 1].

    The formulas and constants of ``skimage.color.rgb2lab``, without BLAS (see
    ``_linear_map``); the values agree with scikit-image's to round-off (tested to
    1e-12).

    Parameters
    ----------
    rgb : (..., 3) ndarray of float
        sRGB colours with values in [0, 1], the channels on the last axis.

    Returns
    -------
    lab : (..., 3) ndarray of float64
        L* in [0, 100], a* and b* in about [-128, 128].

    Raises
    ------
    ValueError
        If the last axis does not hold 3 channels.
    TypeError
        If `rgb` is not a float array (scale integer colours to [0, 1] first).

    See Also
    --------
    skimage.color.rgb2lab : the same conversion for images, with more options.

    Examples
    --------
    >>> rgb_to_lab(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))[:, 0].round(6)
    array([  0., 100.])
    """
    from skimage.color import xyz_tristimulus_values

    rgb = np.asarray(rgb)
    if rgb.dtype.kind != "f":
        raise TypeError(
            f"rgb_to_lab expects float colours in [0, 1], got dtype {rgb.dtype}; "
            "divide integer colours by their dtype's maximum (255 for uint8) first."
        )
    if rgb.ndim == 0 or rgb.shape[-1] != 3:
        raise ValueError(
            f"rgb_to_lab expects the 3 RGB channels on the last axis, got shape "
            f"{rgb.shape}."
        )
    arr = rgb.reshape(-1, 3).astype(np.float64)  # a copy: written below
    mask = arr > 0.04045
    arr[mask] = np.power((arr[mask] + 0.055) / 1.055, 2.4)
    arr[~mask] /= 12.92
    arr = _linear_map(arr, _XYZ_FROM_RGB)
    arr /= xyz_tristimulus_values(illuminant="D65", observer="2", dtype=np.float64)
    mask = arr > 0.008856
    arr[mask] = np.cbrt(arr[mask])
    arr[~mask] = 7.787 * arr[~mask] + 16.0 / 116.0
    x, y, z = arr[:, 0], arr[:, 1], arr[:, 2]
    lab = np.stack([116.0 * y - 16.0, 500.0 * (x - y), 200.0 * (y - z)], axis=1)
    return lab.reshape(rgb.shape)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, None)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _rgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    lms = _linear_map(_srgb_to_linear(rgb), _OKLAB_M1)
    return _linear_map(np.cbrt(lms), _OKLAB_M2)


def _oklab_to_rgb(lab: np.ndarray) -> np.ndarray:
    lms = _linear_map(lab, np.linalg.inv(_OKLAB_M2)) ** 3
    return _linear_to_srgb(_linear_map(lms, np.linalg.inv(_OKLAB_M1)))


def to_fit_space(colors: np.ndarray, color_space: str) -> np.ndarray:
    """Convert colours scaled to [0, 1] into the space the palette is fitted in.

    Parameters
    ----------
    colors : (N, C) ndarray of float
        Colours with values in [0, 1]. C is 1 (intensity), 3 (RGB) or 4 (RGBA).
    color_space : {'rgb', 'lab', 'oklab'}
        The fit space. Perceptual spaces need C >= 3; alpha, if present, is kept as
        one more coordinate.

    Returns
    -------
    points : (N, C) ndarray of float64
        Coordinates in the fit space.

    Raises
    ------
    ValueError
        If `color_space` is unknown, or perceptual for a single-channel image.

    Examples
    --------
    >>> abs(to_fit_space(np.array([[1.0, 1.0, 1.0]]), "oklab")).round(3)
    array([[1., 0., 0.]])
    """
    colors = np.asarray(colors, dtype=np.float64)
    if color_space == "rgb":
        return colors.copy()
    _check_space(color_space, colors.shape[-1])
    rgb = colors[:, :3]
    out = rgb_to_lab(rgb) if color_space == "lab" else _rgb_to_oklab(rgb)
    if colors.shape[-1] == 4:
        out = np.concatenate([out, colors[:, 3:] * _ALPHA_SCALE[color_space]], axis=1)
    return out


def from_fit_space(points: np.ndarray, color_space: str) -> np.ndarray:
    """Convert fit-space coordinates back to colours scaled to [0, 1].

    The inverse of :func:`to_fit_space`; colours outside the RGB gamut are clipped.

    Parameters
    ----------
    points : (N, C) ndarray of float
        Fit-space coordinates.
    color_space : {'rgb', 'lab', 'oklab'}
        The space `points` are in.

    Returns
    -------
    colors : (N, C) ndarray of float64
        Colours in [0, 1] (for 'rgb' the values are returned unchanged).

    Examples
    --------
    >>> c = np.array([[0.2, 0.5, 0.9]])
    >>> np.allclose(from_fit_space(to_fit_space(c, "lab"), "lab"), c)
    True
    """
    points = np.asarray(points, dtype=np.float64)
    if color_space == "rgb":
        return points.copy()
    _check_space(color_space, points.shape[-1])
    if color_space == "lab":
        from skimage.color import lab2rgb

        rgb = lab2rgb(points[np.newaxis, :, :3])[0]
    else:
        rgb = _oklab_to_rgb(points[:, :3])
    rgb = np.clip(rgb, 0.0, 1.0)
    if points.shape[-1] == 4:
        alpha = np.clip(points[:, 3:] / _ALPHA_SCALE[color_space], 0.0, 1.0)
        rgb = np.concatenate([rgb, alpha], axis=1)
    return rgb


def _check_space(color_space: str, n_channels: int) -> None:
    if color_space not in COLOR_SPACES:
        raise ValueError(
            f"color_space must be one of {COLOR_SPACES}, got {color_space!r}."
        )
    if n_channels < 3:
        raise ValueError(
            f"color_space={color_space!r} needs RGB or RGBA data, but the image has "
            f"{n_channels} channel(s); use color_space='rgb' for intensity images."
        )
