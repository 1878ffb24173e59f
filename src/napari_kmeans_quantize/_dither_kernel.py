"""Compiled parts of error diffusion: an exact nearest-colour grid and the row kernel.

Nearest colour
    The palette's bounding box is cut into a regular grid of cells (about
    ``2**12`` to ``2**20`` of them, more for larger palettes, roughly cubic). Every
    cell lists, in ascending order, the palette entries that can be nearest to
    some point of the cell; a point is then compared with its cell's list only, by
    the same squared distance and strict ``<`` a full search would use, so the
    answer is exactly the full search's (the nearest entry, the lowest index on a
    tie). The lists are made by halving cells one axis at a time from the whole box
    down, each child keeping the part of its parent's list that passes the test of
    :func:`_filter_cell`; the work therefore follows the list lengths, not cells
    times palette size.

Diffusion
    :func:`diffuse_rows` runs serpentine Floyd-Steinberg over a block of rows of
    one plane, carrying the error sent to the next row in a caller-owned buffer,
    so that a plane can be dithered block by block with progress between blocks.
    The arithmetic is fixed: each value is ``(pixel + from_above) + 7/16 * left
    error``, and the error a row sends below is ``(5/16 e[x] + 3/16 e[x + 1]) +
    1/16 e[x - 1]`` in scan order, so the result does not depend on the blocks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

# Floyd-Steinberg weights in scan order; right-to-left rows mirror them.
_RIGHT = 7 / 16  # to the next pixel of the same row
_BELOW_BACK = 3 / 16  # to the pixel below and one step back
_BELOW = 5 / 16  # to the pixel straight below
_BELOW_AHEAD = 1 / 16  # to the pixel below and one step ahead

# Cells of the grid: 2**(bits of k + _CELL_BITS_PER_ENTRY), within these bounds.
_CELL_BITS_PER_ENTRY = 8
_MIN_CELL_BITS = 12
_MAX_CELL_BITS = 20
# Rounding allowance of the candidate test, relative to the box's size.
_SLACK = 1e-9


class PaletteGrid(NamedTuple):
    """Exact nearest-colour lookup for points inside the palette's bounding box.

    A point ``v`` (clamped to ``[lo, hi]``) lies in the cell
    ``sum(int((v - lo) * scale) * strides)``, whose candidates are
    ``members[offsets[cell]:offsets[cell + 1]]``, rows of `palette`.
    """

    palette: np.ndarray  # (k, C) float64, distinct rows
    lo: np.ndarray  # (C,) float64
    hi: np.ndarray  # (C,) float64
    scale: np.ndarray  # (C,) float64, 0 where the palette does not vary
    strides: np.ndarray  # (C,) int64
    offsets: np.ndarray  # (n_cells + 1,) int64
    members: np.ndarray  # int64


def build_grid(palette: np.ndarray) -> PaletteGrid:
    """Grid over `palette`, a (k, C) float64 array of distinct, finite rows, k >= 2."""
    k, n_channels = palette.shape
    lo = palette.min(axis=0)
    hi = palette.max(axis=0)
    extent = hi - lo
    varying = extent > 0
    # Split the longest side of the cell each time: roughly cubic cells, and the
    # order of the splits is the order in which the lists are refined.
    total = (k - 1).bit_length() + _CELL_BITS_PER_ENTRY
    total = min(max(total, _MIN_CELL_BITS), _MAX_CELL_BITS)
    bits = np.zeros(n_channels, dtype=np.int64)
    side = np.where(varying, extent, -1.0)
    schedule = np.empty(total, dtype=np.int64)
    for step in range(total):
        axis = int(np.argmax(side))
        schedule[step] = axis
        bits[axis] += 1
        side[axis] /= 2
    n_cells = np.where(varying, 1 << bits, 1)
    # Shrinking the scale by a hair keeps (hi - lo) * scale below n_cells, so the
    # clamped point hi still floors into the last cell.
    scale = np.where(varying, n_cells / np.where(varying, extent, 1.0), 0.0)
    scale *= 1 - 1e-9
    size = float(np.sqrt(extent @ extent))
    magnitude = float(np.abs(palette).max())
    slack = _SLACK * size * (size + magnitude)
    strides = np.ones(n_channels, dtype=np.int64)
    for c in range(n_channels - 2, -1, -1):
        strides[c] = strides[c + 1] * n_cells[c + 1]
    offsets, members = _build_lists(palette, lo, scale, bits, schedule, strides, slack)
    return PaletteGrid(palette, lo, hi, scale, strides, offsets, members)


@njit(nogil=True, cache=True)
def _build_lists(palette, lo, scale, bits, schedule, strides, slack):
    """Candidate lists of every cell of the grid, in table order (see module doc)."""
    k, n_channels = palette.shape
    coords = np.zeros((1, n_channels), dtype=np.int64)
    offsets = np.array([0, k], dtype=np.int64)
    members = np.arange(k, dtype=np.int64)
    done = np.zeros(n_channels, dtype=np.int64)
    sides = np.zeros(n_channels)
    centre = np.empty(n_channels)
    gaps = np.empty(k)
    for axis in schedule:
        done[axis] += 1
        for c in range(n_channels):
            if scale[c] > 0:
                sides[c] = 2.0 ** (bits[c] - done[c]) / scale[c]
        n = coords.shape[0]
        child_coords = np.empty((2 * n, n_channels), dtype=np.int64)
        child_offsets = np.empty(2 * n + 1, dtype=np.int64)
        child_members = np.empty(2 * len(members), dtype=np.int64)
        m = 0
        for cell in range(n):
            for half in range(2):
                child = 2 * cell + half
                child_coords[child] = coords[cell]
                child_coords[child, axis] = 2 * coords[cell, axis] + half
                for c in range(n_channels):
                    centre[c] = lo[c] + (child_coords[child, c] + 0.5) * sides[c]
                child_offsets[child] = m
                m = _filter_cell(
                    palette,
                    members[offsets[cell] : offsets[cell + 1]],
                    centre,
                    sides,
                    slack,
                    gaps,
                    child_members,
                    m,
                )
        child_offsets[2 * n] = m
        coords, offsets, members = child_coords, child_offsets, child_members[:m]

    # From splitting order to table order.
    n = coords.shape[0]
    where = np.zeros(n, dtype=np.int64)
    for c in range(n_channels):
        where += coords[:, c] * strides[c]
    table_offsets = np.zeros(n + 1, dtype=np.int64)
    for cell in range(n):
        table_offsets[where[cell] + 1] = offsets[cell + 1] - offsets[cell]
    table_offsets = np.cumsum(table_offsets)
    table_members = np.empty(len(members), dtype=np.int64)
    for cell in range(n):
        start = table_offsets[where[cell]]
        length = offsets[cell + 1] - offsets[cell]
        table_members[start : start + length] = members[
            offsets[cell] : offsets[cell + 1]
        ]
    return table_offsets, table_members


@njit(nogil=True, cache=True, inline="always")
def _filter_cell(palette, candidates, centre, sides, slack, gaps, out, m):
    """Append to ``out[m:]`` the `candidates` that can be nearest in the cell.

    With ``p`` the candidate nearest to the cell's centre ``c``, another entry
    ``q`` can only be nearest at points ``x`` where ``|x - q|^2 - |x - p|^2 <= 0``;
    that difference is linear in ``x``, so its minimum over the cell is
    ``f(c) - sum(sides * |p - q|)``. Entries whose minimum exceeds `slack` (an
    allowance for rounding: points a few ulps outside their cell, rounded
    distances) are strictly farther than ``p`` everywhere in the cell, in floating
    point too. Returns the new end of ``out``.
    """
    n_channels = palette.shape[1]
    best, nearest = np.inf, candidates[0]
    for i in range(len(candidates)):
        q = candidates[i]
        d = 0.0
        for c in range(n_channels):
            t = centre[c] - palette[q, c]
            d += t * t
        gaps[i] = d
        if d < best:
            best, nearest = d, q
    for i in range(len(candidates)):
        q = candidates[i]
        reach = 0.0
        for c in range(n_channels):
            reach += sides[c] * abs(palette[nearest, c] - palette[q, c])
        if gaps[i] - best <= reach + slack:
            out[m] = q
            m += 1
    return m


@njit(nogil=True, cache=True, inline="always")
def _nearest(grid, point):
    """Index of the palette row nearest to `point` (lowest on a tie)."""
    cell = 0
    for c in range(len(point)):
        cell += int((point[c] - grid.lo[c]) * grid.scale[c]) * grid.strides[c]
    start, stop = grid.offsets[cell], grid.offsets[cell + 1]
    best_j = grid.members[start]
    if stop - start > 1:
        palette = grid.palette
        best = np.inf
        for m in range(start, stop):
            j = grid.members[m]
            d = 0.0
            for c in range(len(point)):
                t = point[c] - palette[j, c]
                d += t * t
            if d < best:  # strict: the lowest index wins a tie
                best, best_j = d, j
    return best_j


@njit(nogil=True, cache=True)
def diffuse_rows(rows, first_row, below, errors, grid, index, labels):
    """Dither `rows`, rows ``first_row, first_row + 1, ...`` of one plane.

    rows : (n, W, C) float64, the plane's colours.
    below : (W, C) float64, the error sent down by the previous row (zeros above
        the first row); updated in place for the row after the block.
    errors : (W, C) float64 scratch.
    index : (k,) map from grid palette rows to the labels written.
    labels : (n, W) output.
    """
    n, width, n_channels = rows.shape
    palette, lo, hi = grid.palette, grid.lo, grid.hi
    point = np.empty(n_channels)
    carry = np.empty(n_channels)
    for r in range(n):
        backwards = (first_row + r) % 2 == 1
        carry[:] = 0.0
        for i in range(width):
            x = width - 1 - i if backwards else i
            for c in range(n_channels):
                v = (rows[r, x, c] + below[x, c]) + carry[c]
                if v < lo[c]:
                    v = lo[c]
                elif v > hi[c]:
                    v = hi[c]
                point[c] = v
            j = _nearest(grid, point)
            labels[r, x] = index[j]
            for c in range(n_channels):
                e = point[c] - palette[j, c]
                errors[i, c] = e
                carry[c] = _RIGHT * e
        # Scan order i is image column x; the last row's result goes unused.
        for i in range(width):
            x = width - 1 - i if backwards else i
            for c in range(n_channels):
                b = _BELOW * errors[i, c]
                if i + 1 < width:
                    b += _BELOW_BACK * errors[i + 1, c]
                if i > 0:
                    b += _BELOW_AHEAD * errors[i - 1, c]
                below[x, c] = b
