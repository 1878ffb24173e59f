"""Palette control outside Python: locked colours given as hex values and
importance maps read from image files."""

from __future__ import annotations

import re

import numpy as np

_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{8})")


def parse_hex_colors(text: str) -> np.ndarray:
    """``"#ffffff,#000000"`` as an (m, 3) (or (m, 4) with alpha) uint8 array."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("--fixed-colors is empty; give e.g. '#ffffff,#000000'.")
    colors = []
    for item in items:
        match = _HEX.fullmatch(item)
        if match is None:
            raise ValueError(
                f"--fixed-colors: {item!r} is not a hex colour; write #rrggbb or "
                "#rrggbbaa, separated by commas (e.g. '#ffffff,#000000')."
            )
        digits = match.group(1)
        colors.append([int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)])
    if len({len(c) for c in colors}) > 1:
        raise ValueError(
            "--fixed-colors mixes #rrggbb and #rrggbbaa; give all with or all "
            "without alpha."
        )
    return np.array(colors, dtype=np.uint8)


def colors_for_image(
    colors: np.ndarray, dtype: np.dtype, n_channels: int
) -> np.ndarray:
    """8-bit colours in an image's dtype and channels: scaled to 16 bits or to
    [0, 1] floats, opaque alpha added for RGBA, grey for single-channel images."""
    dtype = np.dtype(dtype)
    if colors.shape[1] == 3 and n_channels == 4:
        colors = np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], 1)
    if n_channels == 1:
        if colors.shape[1] != 3 or not (colors == colors[:, :1]).all():
            raise ValueError(
                "--fixed-colors for a grey image must be greys (#rrggbb with equal "
                "r, g and b, e.g. #808080)."
            )
        colors = colors[:, :1]
    if colors.shape[1] != n_channels:
        raise ValueError(
            f"--fixed-colors has {colors.shape[1]} channels per colour, the image "
            f"{n_channels}; use #rrggbb for RGB and #rrggbb or #rrggbbaa for RGBA."
        )
    values = colors.astype(np.float64)
    if dtype.kind == "f":
        return (values / 255).astype(dtype)
    if dtype == np.uint8:
        return colors
    if dtype == np.uint16:
        return (colors.astype(np.uint16) * 257).astype(dtype)
    raise ValueError(
        f"--fixed-colors needs an 8- or 16-bit or float image, this one is {dtype}."
    )


def weight_map(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """An image file's pixels as weights: grey values as they are, colour
    images as the mean of their colour channels (alpha left out)."""
    values = np.asarray(image, dtype=np.float64)
    if channel_axis is None:
        return values
    values = np.moveaxis(values, channel_axis, -1)
    return values[..., :3].mean(axis=-1)
