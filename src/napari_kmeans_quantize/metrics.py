"""Quality and size figures shared by the widget, the command line and benchmarks.

Conventions: ``mse`` is the mean over pixels of the squared error summed over
channels (Celebi's convention for colour quantisation); ``psnr`` uses the
per-channel MSE, ``10 log10(peak**2 / (mse / C))``, as image-processing tools do.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["formula_bits", "mean_ciede2000", "mse", "original_bits", "psnr"]


def mse(
    original: np.ndarray, quantized: np.ndarray, *, channel_axis: int | None = -1
) -> float:
    """Mean squared error per pixel, summed over the colour channels.

    Parameters
    ----------
    original, quantized : ndarray
        Images of the same shape.
    channel_axis : int or None, optional
        Axis of the channels; None for single-channel images.

    Returns
    -------
    mse : float
        ``mean over pixels of sum over channels of (original - quantized)**2``.

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> mse(np.zeros((1, 2, 3)), np.ones((1, 2, 3)))
    3.0
    """
    a, b = _pair(original, quantized)
    diff = a.astype(np.float64) - b.astype(np.float64)
    sq = diff * diff
    if channel_axis is None:
        return float(sq.mean())
    return float(sq.sum(axis=channel_axis).mean())


def psnr(
    original: np.ndarray,
    quantized: np.ndarray,
    *,
    channel_axis: int | None = -1,
    data_range: float | None = None,
) -> float:
    """Peak signal-to-noise ratio in dB (per-channel MSE).

    Parameters
    ----------
    original, quantized : ndarray
        Images of the same shape.
    channel_axis : int or None, optional
        Axis of the channels; None for single-channel images.
    data_range : float, optional
        The peak value. Defaults to the dtype's maximum for integers and 1 for floats.

    Returns
    -------
    psnr : float
        ``10 log10(data_range**2 / mse_per_channel)``; ``inf`` for identical images.

    Examples
    --------
    >>> a = np.zeros((4, 4, 3), dtype=np.uint8)
    >>> round(psnr(a, a + 1), 2)
    48.13
    """
    a, b = _pair(original, quantized)
    if data_range is None:
        data_range = float(np.iinfo(a.dtype).max) if a.dtype.kind in "ui" else 1.0
    n_channels = 1 if channel_axis is None else a.shape[channel_axis]
    per_channel = mse(a, b, channel_axis=channel_axis) / n_channels
    if per_channel == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / per_channel)


def mean_ciede2000(
    original: np.ndarray, quantized: np.ndarray, *, channel_axis: int = -1
) -> float:
    """Mean CIEDE2000 colour difference between two RGB(A) images.

    Colours are read as sRGB (integers scaled by their dtype's maximum, floats in
    [0, 1]) and compared in CIELAB (D65) with scikit-image's
    ``deltaE_ciede2000``. Alpha is ignored. A mean below about 2.3 is roughly one
    just-noticeable difference.

    Parameters
    ----------
    original, quantized : ndarray
        RGB or RGBA images of the same shape.
    channel_axis : int, optional
        Axis of the channels.

    Returns
    -------
    delta_e : float
        Mean CIEDE2000 over pixels.

    Raises
    ------
    ValueError
        If the shapes differ or the images have fewer than 3 channels.

    Examples
    --------
    >>> a = np.zeros((2, 2, 3), dtype=np.uint8)
    >>> mean_ciede2000(a, a)
    0.0
    """
    from skimage.color import deltaE_ciede2000, rgb2lab

    a, b = _pair(original, quantized)
    if a.shape[channel_axis] < 3:
        raise ValueError(
            "mean_ciede2000 needs RGB or RGBA images, got "
            f"{a.shape[channel_axis]} channel(s) along axis {channel_axis}."
        )
    a = np.moveaxis(a, channel_axis, -1)[..., :3]
    b = np.moveaxis(b, channel_axis, -1)[..., :3]
    # Distinct colour pairs are far fewer than pixels; convert each pair once.
    pairs = np.concatenate([a.reshape(-1, 3), b.reshape(-1, 3)], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    scale = float(np.iinfo(a.dtype).max) if a.dtype.kind in "ui" else 1.0
    lab_a = rgb2lab(np.clip(uniq[np.newaxis, :, :3] / scale, 0, 1))
    lab_b = rgb2lab(np.clip(uniq[np.newaxis, :, 3:] / scale, 0, 1))
    de = deltaE_ciede2000(lab_a, lab_b)[0]
    return float((de * counts).sum() / counts.sum())


def formula_bits(n_pixels: int, n_colors: int, bits_per_color: int = 24) -> int:
    """Size of an indexed image by the seed article's formula, in bits.

    ``n_pixels * ceil(log2 k) + k * bits_per_color``: one index per pixel plus the
    palette.

    Parameters
    ----------
    n_pixels : int
        Pixels in the image (H * W, times planes for stacks).
    n_colors : int
        Palette size k.
    bits_per_color : int, optional
        Bits of one palette entry (24 for RGB, 32 for RGBA).

    Returns
    -------
    bits : int

    Examples
    --------
    >>> formula_bits(750 * 1000, 64)
    4501536
    """
    index_bits = math.ceil(math.log2(n_colors)) if n_colors > 1 else 0
    return int(n_pixels) * index_bits + int(n_colors) * bits_per_color


def original_bits(n_pixels: int, bits_per_pixel: int = 24) -> int:
    """Size of the uncompressed image in bits: ``n_pixels * bits_per_pixel``.

    Examples
    --------
    >>> original_bits(750 * 1000)
    18000000
    """
    return int(n_pixels) * bits_per_pixel


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"images must have the same shape, got {a.shape} and {b.shape}."
        )
    return a, b
