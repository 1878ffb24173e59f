"""Compiled parts of error diffusion: an exact nearest-colour grid and the row kernel.

Nearest colour
    The palette's bounding box is cut into a regular grid of roughly cubic cells
    (``2**10`` to ``2**18`` of them, more for larger palettes), and a cell with
    more than four candidates into sub-cells again. Every cell lists, in
    ascending order, the palette entries that can be nearest to some point of the
    cell; a point is then compared with its cell's list only, by the same squared
    distance and strict ``<`` a full search would use, so the answer is exactly
    the full search's (the nearest entry, the lowest index on a tie). The lists
    are made by halving cells one axis at a time from the whole box down, each
    child keeping the part of its parent's list that passes the test of
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

# The top grid has 2**(bits of k + _TOP_BITS_PER_ENTRY) cells, within these bounds;
# a top cell whose list is longer than _MAX_LIST is cut into 2**_SUB_BITS sub-cells.
_TOP_BITS_PER_ENTRY = 8
_MIN_TOP_BITS = 10
_MAX_TOP_BITS = 18
_MAX_LIST = 4
_SUB_BITS = 3
# Rounding allowance of the candidate test, relative to the box's size.
_SLACK = 1e-9


class PaletteGrid(NamedTuple):
    """Exact nearest-colour lookup for points inside the palette's bounding box.

    A point ``v`` (clamped to ``[lo, hi]``) has grid coordinates
    ``u = (v - lo) * scale`` and lies in top cell ``sum(int(u) * strides)``. A
    table entry ``e >= 0`` is the answer; ``e < 0`` points to ``lists[~e]``:
    a count ``n > 0`` followed by the ``n`` candidates to compare, or ``~base``
    for a sub-grid whose cell ``sum((int(u * factors) - int(u) * factors) *
    sub_strides)`` is ``table[base + cell]``, read the same way (factors are
    powers of two, so ``u * factors`` is exact and stays in the top cell).
    """

    palette: np.ndarray  # (k, C) float64, distinct rows
    lo: np.ndarray  # (C,) float64
    hi: np.ndarray  # (C,) float64
    scale: np.ndarray  # (C,) float64, 0 where the palette does not vary
    strides: np.ndarray  # (C,) int64
    factors: np.ndarray  # (C,) int64, sub-cells per top cell along each axis
    sub_strides: np.ndarray  # (C,) int64
    table: np.ndarray  # int32
    lists: np.ndarray  # int32


def build_grid(palette: np.ndarray) -> PaletteGrid:
    """Grid over `palette`, a (k, C) float64 array of distinct, finite rows, k >= 2."""
    k = len(palette)
    lo = palette.min(axis=0)
    hi = palette.max(axis=0)
    extent = hi - lo
    top_bits = (k - 1).bit_length() + _TOP_BITS_PER_ENTRY
    top_bits = min(max(top_bits, _MIN_TOP_BITS), _MAX_TOP_BITS)
    bits, schedule = _split_plan(extent, top_bits)
    n_cells = 1 << bits
    # Shrinking the scale by a hair keeps (hi - lo) * scale below n_cells, so the
    # clamped point hi still floors into the last cell.
    varying = extent > 0
    scale = np.where(varying, n_cells / np.where(varying, extent, 1.0), 0.0)
    scale *= 1 - 1e-9
    cell_side = np.where(varying, 1 / np.where(varying, scale, 1.0), 0.0)
    sub_bits, sub_schedule = _split_plan(cell_side, _SUB_BITS)
    size = float(np.sqrt(extent @ extent))
    magnitude = float(np.abs(palette).max())
    slack = _SLACK * size * (size + magnitude)
    strides = _c_strides(n_cells)
    sub_strides = _c_strides(1 << sub_bits)
    table, lists = _build_tables(
        palette,
        lo,
        cell_side,
        (bits, schedule, strides),
        (sub_bits, sub_schedule, sub_strides),
        slack,
    )
    factors = 1 << sub_bits
    return PaletteGrid(
        palette, lo, hi, scale, strides, factors, sub_strides, table, lists
    )


def _split_plan(sides: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Halve the longest side `total` times: bits per axis and the axis of each cut.

    Axes of zero length are never cut (all the palette agrees there).
    """
    sides = np.where(sides > 0, sides, -1.0)
    bits = np.zeros(len(sides), dtype=np.int64)
    schedule = np.empty(total if (sides > 0).any() else 0, dtype=np.int64)
    for step in range(len(schedule)):
        axis = int(np.argmax(sides))
        schedule[step] = axis
        bits[axis] += 1
        sides[axis] /= 2
    return bits, schedule


def _c_strides(shape: np.ndarray) -> np.ndarray:
    """Row-major (C order) strides, in elements, of an array of `shape`."""
    strides = np.ones(len(shape), dtype=np.int64)
    for c in range(len(shape) - 2, -1, -1):
        strides[c] = strides[c + 1] * shape[c + 1]
    return strides


@njit(nogil=True, cache=True)
def _build_tables(palette, lo, cell_side, top, sub, slack):
    """The table and lists of a :class:`PaletteGrid` (see there for the layout).

    `top` and `sub` are each (bits per axis, axis of each cut, strides) of the
    top grid and of a sub-grid.
    """
    k, n_channels = palette.shape
    bits, _, strides = top
    n_cells = 1 << bits
    offsets, members = _grid_lists(
        palette, np.arange(k), lo, cell_side * n_cells, top, slack
    )
    n_top = len(offsets) - 1
    n_sub = 1 << sub[0].sum()
    long_list = (offsets[1:] - offsets[:-1]) > _MAX_LIST
    n_split = long_list.sum() if n_sub > 1 else 0
    table = np.empty(n_top + n_split * n_sub, dtype=np.int32)
    lists = np.empty(2 * len(members) + n_split, dtype=np.int32)
    origin = np.empty(n_channels)
    end = 0  # of `lists`
    base = n_top  # of the next sub-grid in `table`
    for cell in range(n_top):
        candidates = members[offsets[cell] : offsets[cell + 1]]
        if n_sub == 1 or not long_list[cell]:
            table[cell], lists, end = _entry(candidates, lists, end)
            continue
        table[cell] = ~end
        lists, end = _append(lists, end, np.array([~base]))
        for c in range(n_channels):
            origin[c] = lo[c] + (cell // strides[c] % n_cells[c]) * cell_side[c]
        sub_offsets, sub_members = _grid_lists(
            palette, candidates, origin, cell_side, sub, slack
        )
        for i in range(n_sub):
            table[base + i], lists, end = _entry(
                sub_members[sub_offsets[i] : sub_offsets[i + 1]], lists, end
            )
        base += n_sub
    return table, lists[:end].copy()


@njit(nogil=True, cache=True)
def _entry(candidates, lists, end):
    """The table entry for a cell with `candidates`, appending a list if needed."""
    if len(candidates) == 1:
        return candidates[0], lists, end
    entry = ~end
    lists, end = _append(lists, end, np.array([len(candidates)]))
    lists, end = _append(lists, end, candidates)
    return entry, lists, end


@njit(nogil=True, cache=True)
def _append(buffer, end, values):
    """Write `values` at ``buffer[end:]``, growing the buffer if needed."""
    if end + len(values) > len(buffer):
        grown = np.empty(2 * (end + len(values)), dtype=buffer.dtype)
        grown[:end] = buffer[:end]
        buffer = grown
    buffer[end : end + len(values)] = values
    return buffer, end + len(values)


@njit(nogil=True, cache=True)
def _grid_lists(palette, candidates, origin, box, plan, slack):
    """Candidate lists of the cells of a grid over a box, in table order.

    The box starts at `origin` with sides `box`; `plan` is (bits per axis, axis of
    each cut, strides of the final grid). Returns offsets and members: the list of
    cell ``i`` is ``members[offsets[i]:offsets[i + 1]]``, ascending.
    """
    _, schedule, strides = plan
    n_channels = palette.shape[1]
    coords = np.zeros((1, n_channels), dtype=np.int64)
    offsets = np.array([0, len(candidates)], dtype=np.int64)
    members = candidates.astype(np.int64)
    done = np.zeros(n_channels, dtype=np.int64)
    sides = np.zeros(n_channels)
    centre = np.empty(n_channels)
    gaps = np.empty(len(candidates))
    for axis in schedule:
        done[axis] += 1
        for c in range(n_channels):
            sides[c] = box[c] / 2.0 ** done[c]
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
                    centre[c] = origin[c] + (child_coords[child, c] + 0.5) * sides[c]
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


@njit(nogil=True, cache=True)
def diffuse_rows(rows, first_row, below, grid, index, labels, channels):
    """Dither `rows`, rows ``first_row, first_row + 1, ...`` of one plane.

    rows : (n, W, C) float64, uint8 or uint16, the plane's colours.
    below : (W, C) float64, the error sent down by the previous row (zeros above
        the first row); updated in place for the row after the block: a pixel's
        entry is rewritten once the next pixel's error is known, after the
        current row has read it.
    grid : the :class:`PaletteGrid` of the palette.
    index : (k,) map from grid palette rows to the labels written.
    labels : (n, W) output.
    channels : a tuple of C zeros: its length is part of its type, so the
        channel loops are compiled for exactly C (and unrolled).

    The grid lookup is written out here rather than called: the per-pixel loop
    runs about a third faster with the grid's arrays in locals.
    """
    n_channels = len(channels)
    n, width = rows.shape[:2]
    palette, lo, hi, scale = grid.palette, grid.lo, grid.hi, grid.scale
    strides, factors, sub_strides = grid.strides, grid.factors, grid.sub_strides
    table, lists = grid.table, grid.lists
    point = np.empty(n_channels)
    carry = np.empty(n_channels)
    u = np.empty(n_channels)  # grid coordinates of the point
    last = np.empty(n_channels)  # the error of the previous pixel in scan order
    before = np.empty(n_channels)  # and of the one before it
    for r in range(n):
        backwards = (first_row + r) % 2 == 1
        carry[:] = 0.0
        previous = 0  # column of the previous pixel in scan order
        for i in range(width):
            x = width - 1 - i if backwards else i
            cell = 0
            for c in range(n_channels):
                v = (rows[r, x, c] + below[x, c]) + carry[c]
                if v < lo[c]:
                    v = lo[c]
                elif v > hi[c]:
                    v = hi[c]
                point[c] = v
                u[c] = (v - lo[c]) * scale[c]
                cell += int(u[c]) * strides[c]
            j = table[cell]
            if j < 0:
                count = lists[~j]
                if count < 0:  # a sub-grid
                    cell = ~count
                    for c in range(n_channels):
                        f = factors[c]
                        cell += (int(u[c] * f) - int(u[c]) * f) * sub_strides[c]
                    j = table[cell]
                    count = lists[~j] if j < 0 else 0
                if count > 0:
                    best = np.inf
                    for m in range(~j + 1, ~j + 1 + count):
                        q = lists[m]
                        d = 0.0
                        for c in range(n_channels):
                            t = point[c] - palette[q, c]
                            d += t * t
                        if d < best:  # strict: the lowest index wins a tie
                            best, j = d, q
            labels[r, x] = index[j]
            for c in range(n_channels):
                e = point[c] - palette[j, c]
                carry[c] = _RIGHT * e
                if i > 0:
                    # The previous pixel's error below, now that this one's is
                    # known; the last row's goes unused.
                    b = _BELOW * last[c] + _BELOW_BACK * e
                    if i > 1:
                        b += _BELOW_AHEAD * before[c]
                    below[previous, c] = b
                before[c] = last[c]
                last[c] = e
            previous = x
        for c in range(n_channels):
            b = _BELOW * last[c]
            if width > 1:
                b += _BELOW_AHEAD * before[c]
            below[previous, c] = b
