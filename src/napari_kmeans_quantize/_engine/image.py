"""Checks and conversions of the images (and palettes) the engine is given.

Everything that can be said about an image before any work is said here, with a
message that says what was wrong and what to do: dtype, byte order, shape and
channels, NaN and infinity, the value range the float64 fit can hold exactly,
and the range the perceptual spaces need.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Integer colours are fitted as float64, which holds every integer up to 2**53
# exactly; beyond that two colours could merge and the palette could not be
# rounded back into the dtype.
MAX_EXACT_INT = 1 << 53
# Squared distances between colours (times pixel counts) must stay finite in
# float64: |value| below 1e100 leaves a margin of 1e100 for the counts.
MAX_ABS_FLOAT = 1e100
#: The most channels an image may have (labels and palettes stay small; the
#: per-colour kernels loop over the channels).
MAX_CHANNELS = 16


def is_dask(image: object) -> bool:
    """Whether `image` is a dask array (or something that behaves as one)."""
    return hasattr(image, "__dask_graph__") and hasattr(image, "map_blocks")


def is_masked(image: object) -> bool:
    """Whether `image` is a masked array (numpy, or dask with masked chunks)."""
    if isinstance(image, np.ma.MaskedArray):
        return True
    return is_dask(image) and isinstance(
        getattr(image, "_meta", None), np.ma.MaskedArray
    )


def refuse_masked(image: object, what: str = "image") -> None:
    """Masked pixels have no colour to fit or map: refuse them up front."""
    if is_masked(image):
        raise TypeError(
            f"{what} is a masked array; its mask would be ignored. Pass the pixels "
            f"to keep: e.g. {what}.filled(0) (masked pixels as 0) or, for RGBA, "
            "set their alpha to 0 to make them transparent."
        )


def native_dtype(dtype: np.dtype, what: str = "image") -> np.dtype:
    """The native-byte-order dtype the kernels compute in; TypeError for dtypes
    they cannot (extended precision, non-numeric)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise TypeError(
            "Boolean images cannot be quantised (they already have 2 colours); "
            "convert them with image.astype(np.uint8) first."
        )
    if dtype.kind not in "uif":
        raise TypeError(
            f"{what} must be a numeric (integer or float) array, got dtype {dtype}."
        )
    if dtype.kind == "f" and dtype.itemsize > 8:
        raise TypeError(
            f"{what} has extended precision ({dtype}), which the compiled kernels "
            f"do not support; convert it with {what}.astype(np.float64)."
        )
    return dtype.newbyteorder("=")


def as_native(arr: np.ndarray, what: str = "image") -> np.ndarray:
    """`arr` in native byte order (a copy only if it was not)."""
    native = native_dtype(arr.dtype, what)
    return arr if arr.dtype == native else arr.astype(native)


def check_value_range(lo: Any, hi: Any, dtype: np.dtype, what: str = "image") -> None:
    """Refuse values the float64 fit cannot hold exactly (64-bit integers beyond
    2**53) or whose squared distances would overflow (floats beyond 1e100)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui" and dtype.itemsize == 8:
        if int(hi) > MAX_EXACT_INT or int(lo) < -MAX_EXACT_INT:
            raise ValueError(
                f"{what} holds {dtype} values from {lo} to {hi}; colours are fitted "
                "in float64, which is exact only up to 2**53 in magnitude. Shift or "
                f"scale the values into that range (e.g. {what} >> 11), or use "
                "a 32-bit dtype if they fit."
            )
    elif dtype.kind == "f" and max(abs(float(lo)), abs(float(hi))) >= MAX_ABS_FLOAT:
        raise ValueError(
            f"{what} holds float values from {lo} to {hi}; beyond 1e100 in magnitude "
            "the squared colour distances would overflow. Rescale the values "
            f"(e.g. {what} / abs({what}).max())."
        )


def check_n_channels(n_channels: int, axis: int, shape: tuple[int, ...]) -> None:
    """Refuse a channel axis of 0 or more than :data:`MAX_CHANNELS` channels."""
    if 1 <= n_channels <= MAX_CHANNELS:
        return
    if n_channels == 0:
        problem = "no channels"
        hint = " Pass an image with at least one channel."
    else:
        problem = f"{n_channels} channels"
        hint = (
            " Is the channel axis right? For a single-channel image pass "
            "channel_axis=None; to quantise more channels, reduce them first "
            "(e.g. pick the channels you need, or keep the first 16 principal "
            "components)."
        )
    raise ValueError(
        f"image has {problem} along axis {axis} (shape {shape}); quantize takes "
        f"1 to {MAX_CHANNELS} channels.{hint}"
    )


def _only_channels_empty(shape: tuple[int, ...], channel_axis: object) -> bool:
    # Pixels but no channels: the channel check says so, not "empty".
    if not isinstance(channel_axis, int | np.integer) or len(shape) < 2:
        return False
    if not -len(shape) <= channel_axis < len(shape):
        return False
    axis = int(channel_axis) % len(shape)
    return shape[axis] == 0 and all(n for i, n in enumerate(shape) if i != axis)


def has_alpha(n_channels: int, alpha: bool = True) -> bool:
    """Whether the last of `n_channels` channels is alpha: 4 channels are RGBA
    unless the caller says they are plain channels (``alpha=False``)."""
    return alpha and n_channels == 4


def needs_value_range(dtype: np.dtype) -> bool:
    """Whether :func:`check_value_range` can refuse values of this dtype."""
    return np.dtype(dtype).itemsize == 8


def as_channels_last(
    image: object, channel_axis: int | None, *, check_values: bool = True
) -> tuple[np.ndarray, int | None]:
    """Validate `image` and return a (..., C) view of it plus the normalised axis.

    Without `check_values` only the dtype, shape and channels are checked (the
    dask path checks the values chunk by chunk).
    """
    refuse_masked(image)
    arr = as_native(np.asarray(image))
    if arr.size == 0 and not _only_channels_empty(arr.shape, channel_axis):
        raise ValueError(
            f"image is empty (shape {arr.shape}); pass at least one pixel."
        )
    if channel_axis is None:
        arr = arr[..., np.newaxis]
        axis = None
    else:
        if isinstance(channel_axis, bool) or not isinstance(
            channel_axis, int | np.integer
        ):
            raise TypeError(
                f"channel_axis must be an integer or None, got {channel_axis!r}."
            )
        if not -arr.ndim <= channel_axis < arr.ndim:
            raise ValueError(
                f"channel_axis={channel_axis} is out of range for an image with "
                f"{arr.ndim} dimension(s)."
            )
        axis = int(channel_axis) % arr.ndim
        check_n_channels(arr.shape[axis], axis, arr.shape)
        if arr.ndim == 2 and arr.shape[axis] not in (1, 3, 4):
            # A row of multichannel pixels is far less likely than a grey
            # image passed without channel_axis=None.
            raise ValueError(
                f"image of shape {arr.shape} would be a single row of "
                f"{arr.shape[1 - axis]} pixels with {arr.shape[axis]} channels. "
                "For a single-channel (grey) image pass channel_axis=None; for a "
                "row of multichannel pixels add an axis (image[None])."
            )
        if arr.ndim < 2:
            raise ValueError(
                f"image of shape {arr.shape} has no spatial axes besides the channel "
                "axis; pass channel_axis=None for a 1-D signal."
            )
        arr = np.moveaxis(arr, axis, -1)
    if not check_values:
        return arr, axis
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"image contains {int(bad.sum())} NaN or infinite value(s); replace "
                "them (e.g. with np.nan_to_num) before quantising."
            )
    if needs_value_range(arr.dtype):
        check_value_range(arr.min(), arr.max(), arr.dtype)
    return arr, axis


def check_fit_space_range(
    arr: np.ndarray, color_space: str, alpha: bool = True
) -> None:
    if color_space == "rgb":
        return
    check_color_channels(arr.shape[-1], color_space, alpha)
    if arr.dtype.kind in "ui" and arr.dtype.itemsize > 2:
        # The perceptual spaces need to know what full intensity is: 255 for
        # 8 bits, 65535 for 16, 1.0 for floats. A 32- or 64-bit integer (what a
        # nested list becomes) says nothing about it.
        raise TypeError(
            f"color_space={color_space!r} needs colours on a known scale (uint8, "
            f"uint16, or float in [0, 1]), but the image is {arr.dtype}; convert "
            "it (e.g. image.astype(np.uint8) for values 0-255) or use "
            "color_space='rgb'."
        )
    lo, hi = arr.min(), arr.max()
    if arr.dtype.kind == "f" and (lo < 0 or hi > 1):
        raise ValueError(
            f"color_space={color_space!r} needs float colours in [0, 1], but the "
            f"image spans [{lo}, {hi}]; rescale it or use color_space='rgb'."
        )
    if arr.dtype.kind == "i" and lo < 0:
        raise ValueError(
            f"color_space={color_space!r} needs non-negative colours, but the image "
            f"has values down to {lo}; use color_space='rgb'."
        )


def check_color_channels(n_channels: int, color_space: str, alpha: bool = True) -> None:
    """The perceptual spaces are defined for RGB (plus alpha) only."""
    if color_space == "rgb" or n_channels == 3 or has_alpha(n_channels, alpha):
        return
    if n_channels == 1:
        what = "1 channel; use color_space='rgb' for intensity images."
    else:
        plain = " plain" if n_channels == 4 else ""
        what = (
            f"{n_channels}{plain} channels; the perceptual spaces are defined for "
            "colours only. Use color_space='rgb' (the squared error over all "
            "channels), with standardize=True if the channels are on different "
            "scales."
        )
    raise ValueError(
        f"color_space={color_space!r} needs RGB or RGBA data, but the image has {what}"
    )


def palette_in_dtype(palette: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`palette` in the image's dtype; ValueError if a colour would change.

    A plain cast would wrap 300 to 44 in uint8 and truncate 0.5 to 0, silently
    mapping the image onto other colours than the ones passed.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        converted = palette.astype(dtype)
    if dtype.kind == "f":
        if np.isfinite(converted).all():
            return converted
        problem = f"values beyond the range of {dtype}"
    elif np.array_equal(converted, palette):
        return converted
    else:
        info = np.iinfo(dtype)
        problem = f"values that are not whole numbers in {info.min}..{info.max}"
    lo, hi = palette.min(), palette.max()
    hint = (
        f"; for colours given in [0, 1], multiply them by {np.iinfo(dtype).max}"
        if dtype.kind in "ui" and palette.dtype.kind == "f" and lo >= 0 and hi <= 1
        else ""
    )
    raise ValueError(
        f"palette must hold colours in the image's dtype ({dtype}), but it has "
        f"{problem} (they run from {lo} to {hi}){hint}."
    )


def checked_palette(palette: object, dtype: np.dtype, n_channels: int) -> np.ndarray:
    """A palette to map an image of `dtype` and `n_channels` onto, as (k, C) in
    that dtype; TypeError or ValueError for anything else."""
    from .options import MAX_COLORS

    refuse_masked(palette, "palette")
    palette = np.asarray(palette)
    if palette.ndim == 1 and n_channels == 1:
        palette = palette[:, None]
    if palette.ndim != 2 or palette.shape[1] != n_channels or len(palette) == 0:
        raise ValueError(
            f"palette must have shape (k, {n_channels}) with k >= 1 to match the "
            f"image's {n_channels} channel(s), got shape {palette.shape}."
        )
    if len(palette) > MAX_COLORS:
        raise ValueError(
            f"palette has {len(palette)} colours; at most {MAX_COLORS} are supported."
        )
    if palette.dtype.kind not in "uif":
        raise TypeError(f"palette must be numeric, got dtype {palette.dtype}.")
    palette = as_native(palette, "palette")
    if palette.dtype.kind == "f" and not np.isfinite(palette).all():
        raise ValueError("palette contains NaN or infinity; pass finite colours.")
    palette = palette_in_dtype(palette, dtype)
    if needs_value_range(palette.dtype):
        check_value_range(palette.min(), palette.max(), palette.dtype, "palette")
    return palette


def checked_image(
    image: object, channel_axis: int | None, color_space: str, alpha: bool = True
) -> tuple[np.ndarray, int | None]:
    """The validated image, channels last, and its normalised channel axis."""
    arr, axis = as_channels_last(image, channel_axis)
    check_fit_space_range(arr, color_space, alpha)
    return arr, axis


def merge_transparent(pixels: np.ndarray, alpha: bool = True) -> np.ndarray:
    """Make all fully transparent RGBA pixels the same colour, (0, 0, 0, 0).

    Their colour is never seen, and one palette entry then holds them all.
    Returns `pixels` itself when no pixel changes (always for plain channels).
    """
    if not has_alpha(pixels.shape[1], alpha):
        return pixels
    clear = pixels[:, 3] == 0
    if not clear.any():
        return pixels
    pixels = pixels.copy()
    pixels[clear] = 0
    return pixels


def one_entry_rgba() -> ValueError:
    return ValueError(
        "n_colors=1 cannot keep the image's fully transparent pixels apart from its "
        "visible ones; use n_colors >= 2 (one entry then stays transparent)."
    )


def check_one_entry(arr: np.ndarray, k: int, alpha: bool = True) -> None:
    """Refuse k = 1 for a channels-last RGBA image with both fully transparent and
    visible pixels, before any work (see ``pipeline.transparent_slot``)."""
    if k == 1 and has_alpha(arr.shape[-1], alpha):
        alpha = arr[..., 3]
        if (alpha == 0).any() and (alpha != 0).any():
            raise one_entry_rgba()
