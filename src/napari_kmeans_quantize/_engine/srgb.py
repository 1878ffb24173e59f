"""The sRGB transfer curve and the sRGB-to-XYZ matrix (D65), shared by the public
colour spaces and the engine's integer CIELAB table."""

from __future__ import annotations

import numpy as np

# sRGB (D65) to CIE XYZ, as skimage.color's xyz_from_rgb.
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Linear light of sRGB values in [0, 1]."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
