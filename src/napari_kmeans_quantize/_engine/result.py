"""What a quantisation returns, and the warning it gives when the image has fewer
colours than asked for."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class FewColorsWarning(UserWarning):
    """The image has fewer distinct colours than ``n_colors``: they are all kept.

    Filter it by class, e.g. ``warnings.simplefilter("ignore", FewColorsWarning)``.
    """


@dataclass(frozen=True, eq=False)
class QuantizeResult:
    """The outcome of a colour quantisation.

    Attributes
    ----------
    image : ndarray
        The quantised image: same shape and dtype as the input, and exactly
        ``palette[labels]`` (with the channel axis where the input had it).
    labels : ndarray of uint8 or uint16
        Palette index of every pixel, over the spatial shape (the input shape
        without its channel axis). uint8 when the palette has at most 256 colours.
    palette : (k, C) ndarray
        The palette colours in the input's dtype and value range, most frequent
        first. C is 1 for single-channel images.
    counts : (k,) ndarray of int64
        Number of pixels mapped to each palette entry.
    n_colors_requested : int
        The ``n_colors`` asked for; ``len(palette)`` is smaller when the image has
        fewer distinct colours.
    color_space : str
        The space the palette was fitted (and pixels assigned) in.
    inertia : float
        Weighted sum of squared distances of the pixels to their palette colour in
        the fit space, at the end of the fit (0 when every colour is kept).
    n_iter : int
        Lloyd iterations run on the full colour set.
    converged : bool
        Whether the fit stopped because it converged rather than at ``max_iter``.
    n_distinct : int
        Distinct colours in the input (after transparent pixels are merged).
    channel_axis : int or None
        Channel axis of `image` (None for single-channel images).
    dither : bool
        Whether error diffusion was used to assign pixels.
    seconds : float
        Wall time of the whole call.
    channel_scale : (C,) ndarray of float64 or None
        With ``standardize=True``, the standard deviation of every channel that
        the fit divided the channels by (distances are measured in these
        units); None otherwise.
    alpha : bool
        Whether a 4-channel image was read as RGBA (False: 4 plain channels).
    """

    image: np.ndarray
    labels: np.ndarray
    palette: np.ndarray
    counts: np.ndarray
    n_colors_requested: int
    color_space: str = "rgb"
    inertia: float = 0.0
    n_iter: int = 0
    converged: bool = True
    n_distinct: int = 0
    channel_axis: int | None = -1
    dither: bool = False
    seconds: float = field(default=0.0)
    channel_scale: np.ndarray | None = None
    alpha: bool = True

    @property
    def n_colors(self) -> int:
        """Number of palette entries actually used."""
        return len(self.palette)

    @property
    def bits_per_index(self) -> int:
        """Bits one cluster index needs, ``ceil(log2 k)`` (0 for a single colour)."""
        return math.ceil(math.log2(self.n_colors)) if self.n_colors > 1 else 0
