"""Serpentine Floyd-Steinberg error diffusion onto a fixed palette.

Error diffusion is sequential along each row: the colour chosen for a pixel sets the
error carried to its right-hand neighbour, and with serpentine scanning one row must
be finished before the next can start. The per-pixel loop is therefore one compiled
kernel (``_dither_kernel``), run on blocks of rows so that progress can be reported,
and the work stopped, between blocks; the nearest palette colour at every step comes
from an exact lookup grid over the palette's bounding box (the same answer as a full
search, not an approximation).

Memory stays bounded: a block of rows is converted to float64 only when the image
is not float64 already, the error carried between rows is one row, and the labels
take the smallest unsigned integer type that holds the palette's indices.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import numpy as np

from ._dither_kernel import build_grid, diffuse_rows

__all__ = ["error_diffusion", "error_diffusion_iter"]

# The kernel runs on blocks of about this many pixels (whole rows), so that a block
# converted to float64 stays small; progress is reported once at least
# _YIELD_SECONDS have passed since the last report, and at the end.
_BLOCK_PIXELS = 1 << 16
_YIELD_SECONDS = 0.05
# Pixel types the kernel reads as they are (widening each value to float64 as it
# goes); others are converted a block at a time.
_KERNEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float64))


def error_diffusion(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map colours onto a palette by serpentine Floyd-Steinberg error diffusion.

    Pixels are visited row by row, alternating left-to-right and right-to-left
    (serpentine, or boustrophedon, order). Each pixel's colour plus the error
    diffused to it is clamped to the bounding box of the palette, replaced by the
    nearest palette colour (squared Euclidean distance; ties go to the lower index),
    and the difference is spread to the unvisited neighbours with the Floyd-Steinberg
    weights 7/16 (next pixel in the row), 3/16, 5/16 and 1/16 (the row below, behind,
    under and ahead of the pixel), mirrored on right-to-left rows. Error that would
    leave the image is dropped. Clamping stops the error from running away where the
    image lies outside the palette's range. The result is deterministic.

    Parameters
    ----------
    image : (..., H, W, C) ndarray
        Colours in the space the palette lives in (for example a fit space such as
        CIELAB): integers, floats or booleans, worked on in float64. Any leading
        axes index independent planes, each dithered on its own.
    palette : (k, C) ndarray
        Palette colours in the same space, k >= 1. Converted to float64.

    Returns
    -------
    labels : (..., H, W) ndarray of unsigned integers
        Index into `palette` of the colour chosen for every pixel, in the smallest
        unsigned integer type that holds ``k - 1`` (uint8 up to 256 colours).

    Raises
    ------
    ValueError
        If `image` has fewer than two spatial dimensions, if `palette` is not a
        non-empty 2-D array, if their channel counts differ, or if either holds NaN
        or infinity.
    TypeError
        If `image` or `palette` is not a real numeric array.

    See Also
    --------
    error_diffusion_iter : the same, with progress and a way to stop.

    Notes
    -----
    The cost is a few tens of nanoseconds per pixel for palettes of up to a few
    hundred colours, plus a few milliseconds to build the lookup grid.

    References
    ----------
    .. [1] R. W. Floyd and L. Steinberg, "An adaptive algorithm for spatial
           greyscale", Proc. Soc. Inf. Disp. 17(2), 75-77, 1976.

    Examples
    --------
    A flat 50 % grey on a black-and-white palette becomes a pattern that is half
    white:

    >>> grey = np.full((8, 8, 1), 0.5)
    >>> labels = error_diffusion(grey, np.array([[0.0], [1.0]]))
    >>> labels.shape, float(labels.mean())
    ((8, 8), 0.5)
    """
    steps = error_diffusion_iter(image, palette)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def error_diffusion_iter(
    image: np.ndarray, palette: np.ndarray
) -> Generator[float, None, np.ndarray]:
    """:func:`error_diffusion` step by step: yields progress, returns the labels.

    The arguments are checked at the call; the work starts at the first ``next``.

    Parameters
    ----------
    image : (..., H, W, C) ndarray
        As for :func:`error_diffusion`.
    palette : (k, C) ndarray
        As for :func:`error_diffusion`.

    Yields
    ------
    fraction : float
        The share of the pixels done, rising to 1.0: about every 0.05 s of
        work, and at the end. Closing the generator stops the work there.

    Returns
    -------
    labels : (..., H, W) ndarray of unsigned integers
        As for :func:`error_diffusion`, as the generator's ``StopIteration.value``.

    Raises
    ------
    ValueError, TypeError
        As for :func:`error_diffusion`, when called.

    Examples
    --------
    >>> steps = error_diffusion_iter(np.full((4, 4, 1), 0.5), np.array([[0.0], [1.0]]))
    >>> while True:
    ...     try:
    ...         fraction = next(steps)
    ...     except StopIteration as done:
    ...         labels = done.value
    ...         break
    >>> fraction, labels.shape
    (1.0, (4, 4))
    """
    image, palette = _checked(image, palette)
    return _diffuse_iter(image, palette)


def _checked(image: object, palette: object) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    palette = np.asarray(palette)
    for name, arr in (("image", image), ("palette", palette)):
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} must be a real numeric array (integers, floats or "
                f"booleans), got dtype {arr.dtype}."
            )
    palette = palette.astype(np.float64)
    if image.ndim < 3:
        raise ValueError(
            f"image must have shape (..., H, W, C) with at least two spatial "
            f"dimensions and a channel axis, got shape {image.shape}."
        )
    if palette.ndim != 2 or len(palette) == 0:
        raise ValueError(
            f"palette must have shape (k, C) with k >= 1, got shape {palette.shape}."
        )
    if palette.shape[1] != image.shape[-1]:
        raise ValueError(
            f"palette has {palette.shape[1]} channel(s) but the image has "
            f"{image.shape[-1]} (image shape {image.shape}, palette shape "
            f"{palette.shape}); both must be in the same colour space."
        )
    # min and max see any NaN or infinity without a full-size temporary.
    image_finite = (
        image.dtype.kind != "f"
        or image.size == 0
        or (np.isfinite(image.min()) and np.isfinite(image.max()))
    )
    if not (image_finite and np.isfinite(palette).all()):
        raise ValueError("image and palette must not contain NaN or infinity.")
    return image, palette


def _diffuse_iter(
    image: np.ndarray, palette: np.ndarray
) -> Generator[float, None, np.ndarray]:
    """The work of :func:`error_diffusion_iter`, on checked arguments."""
    label_dtype = np.min_scalar_type(len(palette) - 1)
    labels = np.zeros(image.shape[:-1], dtype=label_dtype)
    # Duplicate rows tie everywhere and ties go to the lowest index, so only the
    # first copy of each colour can be chosen.
    _, first = np.unique(palette, axis=0, return_index=True)
    index = np.sort(first).astype(label_dtype)
    if len(index) == 1 or image.size == 0:
        return labels
    grid = build_grid(palette[index])

    height, width, n_channels = image.shape[-3:]
    planes = list(np.ndindex(image.shape[:-3]))
    total = len(planes) * height
    done = 0
    rows = max(1, _BLOCK_PIXELS // width)
    below = np.empty((width, n_channels))
    reported = time.perf_counter()
    for plane in planes:
        below[:] = 0.0
        for y in range(0, height, rows):
            block = image[plane][y : y + rows]
            if block.dtype not in _KERNEL_DTYPES or not block.flags.c_contiguous:
                block = np.ascontiguousarray(block, dtype=np.float64)
            diffuse_rows(
                block,
                y,
                below,
                grid,
                index,
                labels[plane][y : y + rows],
                (0,) * n_channels,
            )
            done += len(block)
            if done == total or time.perf_counter() - reported >= _YIELD_SECONDS:
                yield done / total
                reported = time.perf_counter()
    return labels
