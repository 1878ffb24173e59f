"""The exact colour histogram: distinct colours, their pixel counts, and the map back.

K-means over all pixels and weighted k-means over the distinct colours (weight =
count) have the same objective, so every later step works on the histogram, which is
far smaller than the image for photos and tiny for graphics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numba import njit

from . import gather
from ._engine import dense
from ._engine.keys import KeySpec, bitmap_unique

__all__ = ["ColorHistogram", "color_histogram"]

# Above this many pixels a dense bincount over the whole key space beats sorting, as
# long as the key space itself is small (KeySpec.dense: 8-bit RGB, 8- or 16-bit
# grey).
_DENSE_MIN_PIXELS = 1 << 21


@dataclass(frozen=True, eq=False)
class ColorHistogram:
    """Distinct colours of an image with their pixel counts.

    Attributes
    ----------
    colors : (n, C) ndarray
        The distinct colours, in the input's dtype, in ascending key order.
    counts : (n,) ndarray of int64
        How many pixels have each colour.
    inverse : (N,) ndarray of intp
        For every pixel, the row of `colors` it has (built on first use for big
        images, which keep their packed colour keys instead).
    """

    colors: np.ndarray
    counts: np.ndarray
    _inverse: np.ndarray | None = field(default=None, repr=False)
    # Big images with a small key space (8-bit RGB): the pixels themselves (never
    # written) and the packed key of every distinct colour. Per-pixel lookups go
    # through a table over the key space, indexed by each pixel's key made on the
    # fly: no per-pixel index is kept (an intp one would be 8 bytes a pixel).
    _pixels: np.ndarray | None = field(default=None, repr=False)
    _distinct: np.ndarray | None = field(default=None, repr=False)
    _n_keys: int = 0

    @property
    def n_colors(self) -> int:
        """Number of distinct colours."""
        return len(self.counts)

    @cached_property
    def inverse(self) -> np.ndarray:
        if self._inverse is not None:
            return self._inverse
        return self.expand(np.arange(self.n_colors, dtype=np.intp))

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Per-pixel values from per-colour values: ``values[inverse]``.

        Parameters
        ----------
        values : (n, ...) ndarray
            One value (or row) per distinct colour.

        Returns
        -------
        per_pixel : (N, ...) ndarray
            The value of every pixel's colour, in `values`' dtype.

        Examples
        --------
        >>> px = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 0]], dtype=np.uint8)
        >>> color_histogram(px).expand(np.array([7, 9])).tolist()
        [7, 9, 7]
        """
        values = np.asarray(values)
        if len(values) != self.n_colors:
            raise ValueError(
                f"values must have one row per distinct colour ({self.n_colors}), "
                f"got {len(values)}."
            )
        if self._pixels is None:
            return gather.take(values, self.inverse)
        table = self._table(values)
        if (
            table.ndim > 1
            or table.dtype.kind not in "buif"
            or table.dtype == np.float16
        ):
            # Rows, or a dtype numba lacks: through the keys (made here, dropped).
            return gather.take(table, self._spec().keys(self._pixels))
        pixels, bits, flip = dense.key_args(self._pixels, self._spec())
        out = np.empty(len(pixels), dtype=table.dtype)
        gather.each_slice(
            len(out),
            lambda lo, hi: dense.lookup(pixels, bits, flip, table, out, lo, hi),
        )
        return out

    def expand_pair(
        self, values: np.ndarray, table: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel values and the rows of `table` they pick, in one pass.

        Parameters
        ----------
        values : (n,) ndarray of int
            One row of `table` per distinct colour.
        table : (t, c) ndarray
            The rows (a palette, say).

        Returns
        -------
        per_pixel : (N,) ndarray
            ``values[inverse]``.
        rows : (N, c) ndarray
            ``table[values[inverse]]``.

        Raises
        ------
        ValueError
            If `values` does not hold one value per distinct colour.
        IndexError
            If a value is not a row of `table`.

        Examples
        --------
        >>> px = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 0]], dtype=np.uint8)
        >>> lab, rgb = color_histogram(px).expand_pair(
        ...     np.array([1, 0]), np.array([[9, 9, 9], [1, 2, 3]]))
        >>> lab.tolist(), rgb.tolist()
        ([1, 0, 1], [[1, 2, 3], [9, 9, 9], [1, 2, 3]])
        """
        values = np.asarray(values)
        if values.shape != (self.n_colors,):
            raise ValueError(
                f"values must have shape ({self.n_colors},), got {values.shape}."
            )
        # The histogram's own index is in range: only the values need a check.
        gather.check_range("values", values, len(table))
        if self._pixels is None:
            return gather.take_pair(values, table, self.inverse, check=False)
        lut = self._table(np.ascontiguousarray(values))
        pixels, bits, flip = dense.key_args(self._pixels, self._spec())
        return gather.take_pair_with(
            table,
            len(pixels),
            lambda rows_of, values_out, rows_out, lo, hi: dense.lookup_pair(
                pixels, bits, flip, lut, rows_of, values_out, rows_out, lo, hi
            ),
            lut.dtype,
        )

    def colour_entries(self, labels: np.ndarray) -> tuple[np.ndarray, bool]:
        """The label of every distinct colour, from per-pixel `labels`.

        Parameters
        ----------
        labels : (N,) ndarray of int
            A label for every pixel.

        Returns
        -------
        entries : (n,) ndarray of intp
            The label of one pixel of every colour (of its first pixel).
        consistent : bool
            Whether every pixel has its colour's label (as without dithering);
            when False, `entries` is incomplete.

        Examples
        --------
        >>> px = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 0]], dtype=np.uint8)
        >>> entries, same = color_histogram(px).colour_entries(np.array([4, 2, 4]))
        >>> entries.tolist(), same
        ([4, 2], True)
        """
        labels = np.ascontiguousarray(labels).ravel()
        if self._pixels is None:
            return _first_labels(self.inverse, labels, self.n_colors)
        # No per-pixel index is made: rows come from the keys' bitmap.
        words, rank = dense.key_bitmap(self._distinct, self._n_keys)
        pixels, bits, flip = dense.key_args(self._pixels, self._spec())
        return dense.colour_entries(
            pixels, bits, flip, words, rank, labels, self.n_colors
        )

    def _spec(self) -> KeySpec:
        return KeySpec(self._pixels.dtype, self._pixels.shape[1])

    def _table(self, values: np.ndarray) -> np.ndarray:
        """`values` spread over the key space: the value of every key."""
        table = np.zeros((self._n_keys, *values.shape[1:]), dtype=values.dtype)
        table[self._distinct] = values
        return table


def color_histogram(pixels: np.ndarray) -> ColorHistogram:
    """Count the distinct colours of a list of pixels.

    Parameters
    ----------
    pixels : (N, C) ndarray
        One pixel per row. Any integer or floating dtype.

    Returns
    -------
    hist : ColorHistogram
        Distinct colours, counts and the pixel -> colour map, such that
        ``hist.colors[hist.inverse]`` equals `pixels`.

    Raises
    ------
    ValueError
        If `pixels` is not two-dimensional.

    Examples
    --------
    >>> px = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 0]], dtype=np.uint8)
    >>> h = color_histogram(px)
    >>> h.colors.tolist(), h.counts.tolist(), h.inverse.tolist()
    ([[0, 0, 0], [255, 0, 0]], [2, 1], [0, 1, 0])
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"pixels must have shape (N, C), got {pixels.shape}.")
    return _histogram(pixels)


def _histogram(pixels: np.ndarray) -> ColorHistogram:
    # One key per pixel (see KeySpec): packed integers that sort like the
    # colours, or for floats and wide integers the raw bytes (-0.0 made 0.0).
    spec = KeySpec(pixels.dtype, pixels.shape[1])
    if spec.dense and len(pixels) >= _DENSE_MIN_PIXELS:
        unsigned, bits, flip = dense.key_args(pixels, spec)
        distinct, counts = dense.count_keys(
            unsigned, bits, flip, spec.n_keys, np.empty(0, spec.key_dtype)
        )
        return ColorHistogram(
            spec.colors(distinct),
            counts,
            _pixels=pixels,
            _distinct=distinct,
            _n_keys=spec.n_keys,
        )
    keys = spec.keys(pixels)
    if spec.dense:
        distinct, inverse, counts = bitmap_unique(keys, spec.n_keys, True)
    else:
        distinct, inverse, counts = np.unique(
            keys, return_inverse=True, return_counts=True
        )
    colors = spec.colors(distinct)
    return ColorHistogram(colors, counts.astype(np.int64), inverse.ravel())


@njit(nogil=True, cache=True)
def _first_labels(inverse, labels, n_colors):  # pragma: no cover
    lut = np.full(n_colors, -1, dtype=np.intp)
    for i in range(len(inverse)):
        c = inverse[i]
        if lut[c] < 0:
            lut[c] = labels[i]
        elif lut[c] != labels[i]:
            return lut, False
    return lut, True
