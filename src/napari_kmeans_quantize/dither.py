"""Serpentine Floyd-Steinberg error diffusion onto a fixed palette.

Error diffusion is sequential along each row: the colour chosen for a pixel sets the
error carried to its right-hand neighbour, and with serpentine scanning one row must
be finished before the next can start, so no wavefront vectorisation is possible.
This module therefore keeps the one unavoidable per-pixel step as lean as it can be:

* The errors a row sends to the row below (3/16, 5/16, 1/16) are accumulated with
  whole-row numpy operations once the row is done; only the 7/16 in-row carry is
  handled pixel by pixel, on plain Python floats (far cheaper than numpy calls on
  three-element arrays).
* The nearest palette colour comes from a lookup table over a grid that covers the
  palette's bounding box (the diffused value is clamped to that box, so it never
  leaves the grid). Each grid cell stores either the single palette entry that is
  nearest to *every* point of the cell, or the short list of entries that can be
  nearest somewhere in the cell, which are then compared exactly. The result is the
  same as a full nearest-colour search, not an approximation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["error_diffusion"]

# Floyd-Steinberg weights for a left-to-right row; right-to-left rows mirror them.
_RIGHT = 7 / 16  # carried to the next pixel of the same row
_BELOW_BACK = 3 / 16  # to the pixel below and one step back
_BELOW = 5 / 16  # to the pixel straight below
_BELOW_AHEAD = 1 / 16  # to the pixel below and one step ahead

# About this many cells in the top grid of the nearest-colour lookup table.
_GRID_CELLS = 1 << 12
# A cell whose candidate list is longer than this is split into finer cells (so
# a pixel compares against a few entries at most), down to _MAX_DEPTH levels, with
# at most _SPLIT_CELLS new cells per level (large palettes would need many more;
# the longest lists are split first and the rest are compared in full).
_MAX_LIST = 4
_MAX_DEPTH = 4
_SPLIT_CELLS = 1 << 16
# Nearest neighbours fetched per ambiguous cell; more means a cell is split (or,
# at the last level, queried again with a larger count).
_FIRST_CANDIDATES = 16


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
        CIELAB). Any leading axes index independent planes, each dithered on its
        own. Converted to float64.
    palette : (k, C) ndarray
        Palette colours in the same space, k >= 1. Converted to float64.

    Returns
    -------
    labels : (..., H, W) ndarray of intp
        Index into `palette` of the colour chosen for every pixel.

    Raises
    ------
    ValueError
        If `image` has fewer than two spatial dimensions, if `palette` is not a
        non-empty 2-D array, if their channel counts differ, or if either holds NaN
        or infinity.

    Notes
    -----
    The cost is one pass of Python-level work per pixel, about 1 to 2 s per
    megapixel, plus ~0.2 s to build the lookup table; it barely depends on the
    palette size.

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
    image = np.asarray(image, dtype=np.float64)
    palette = np.asarray(palette, dtype=np.float64)
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
    if not (np.isfinite(palette).all() and np.isfinite(image).all()):
        raise ValueError("image and palette must not contain NaN or infinity.")

    out_shape = image.shape[:-1]
    lookup = _NearestLookup(palette)
    if lookup.constant or image.size == 0:
        # One distinct palette colour: nothing to choose. Duplicates tie everywhere
        # and ties go to the lowest index, so the answer is entry 0.
        return np.zeros(out_shape, dtype=np.intp)
    planes = image.reshape(-1, *image.shape[-3:])
    labels = np.empty(planes.shape[:-1], dtype=np.intp)
    for i, plane in enumerate(planes):
        labels[i] = _diffuse_plane(plane, lookup)
    # Back from the de-duplicated palette to the caller's indices.
    return lookup.index[labels.reshape(out_shape)]


class _Grid:
    """A block of lookup-table cells: the top grid, or the children of one cell.

    With ``u`` a point's scaled coordinates (``(v - lo) * scale``, fixed for the
    whole tree), the point lies in cell ``floor(u * factor)`` of the level this
    grid belongs to; ``origin`` is the index of the grid's first cell, so the
    table position is ``sum((floor(u * factor) - origin) * strides)``. Factors
    are powers of two, so ``u * factor`` is exact and a point always lands in a
    child of the cell it was found in.
    """

    __slots__ = ("factor", "origin", "strides", "table")

    def __init__(self, factor: float, origin: list[int], strides: list[int]) -> None:
        self.factor = factor
        self.origin = origin
        self.strides = strides
        self.table: list[int] = []


class _NearestLookup:
    """Exact nearest-palette-colour search for points inside the palette's box.

    The box [lo, hi] is cut into a grid of cells. A table entry ``j >= 0`` means
    palette entry ``j`` is nearest to every point of the cell; ``j < 0`` points to
    ``nodes[~j]``, which is either a tuple listing (in ascending order) every
    entry that can be nearest somewhere in the cell, to be compared exactly, or a
    finer :class:`_Grid` over the cell, used where that list would be long
    (dense parts of large palettes).

    Duplicate palette rows are dropped first (ties go to the lowest index, so the
    first copy always wins); ``index`` maps the remaining rows back.
    """

    def __init__(self, palette: np.ndarray) -> None:
        _, first = np.unique(palette, axis=0, return_index=True)
        self.index = np.sort(first)
        palette = palette[self.index]
        n_channels = palette.shape[1]
        self.columns = [palette[:, c].tolist() for c in range(n_channels)]
        self.lo = palette.min(axis=0)
        self.hi = palette.max(axis=0)
        self.nodes: list[tuple[int, ...] | _Grid] = []
        self.constant = len(palette) == 1
        if self.constant:
            return
        extent = self.hi - self.lo
        varying = extent > 0

        # Roughly cubic top cells in the channels that vary; a channel in which
        # every palette colour agrees is clamped to that value and never split.
        side = (np.prod(extent[varying]) / _GRID_CELLS) ** (1 / varying.sum())
        n_cells = np.where(varying, np.ceil(extent / side), 1).astype(np.int64)
        # A point's scaled coordinates are u = (v - lo) * scale. Shrinking the
        # scale by a hair keeps (hi - lo) * scale below n_cells, so the clamped
        # point hi still floors into the last cell.
        scale = np.where(varying, n_cells / np.where(varying, extent, 1), 0.0)
        self.scale = scale * (1 - 1e-9)
        step = np.where(varying, 1 / np.where(varying, self.scale, 1), 0.0)
        root = _Grid(1.0, [0] * n_channels, _c_strides(n_cells))

        # x4 per varying channel per split (x2 beyond three channels), so a split
        # makes at most 64 children; powers of two keep u * factor exact.
        branch = 4 if varying.sum() <= 3 else 2
        widen = np.where(varying, branch, 0)
        child_shape = np.where(varying, branch, 1)
        child_offsets = _grid_indices(child_shape)
        child_strides = _c_strides(child_shape)
        max_split = _SPLIT_CELLS // len(child_offsets)

        tree = cKDTree(palette)
        # Rounding errors scale with the size of the coordinates, not of the cells.
        slack = 1e-9 * max(float(np.abs(self.lo).max()), float(np.abs(self.hi).max()))
        grids = [root]
        cells = _grid_indices(n_cells)  # level indices of all cells of `grids`
        factor = 1.0
        for depth in range(_MAX_DEPTH + 1):
            centres = self.lo + (cells + 0.5) * (step / factor)
            entries, lists, split = _classify(
                tree,
                centres,
                step / factor,
                slack,
                max_split=max_split if depth < _MAX_DEPTH else 0,
            )
            for cell, members in lists:
                entries[cell] = ~len(self.nodes)
                self.nodes.append(members)
            children = []
            for cell in split.tolist():
                entries[cell] = ~len(self.nodes)
                origin = (cells[cell] * widen).tolist()
                child = _Grid(factor * branch, origin, child_strides)
                self.nodes.append(child)
                children.append(child)
            blocks = entries.reshape(len(grids), -1)
            for grid, block in zip(grids, blocks, strict=True):
                grid.table = block.tolist()
            if not children:
                break
            grids = children
            cells = (cells[split][:, None, :] * widen + child_offsets).reshape(
                -1, n_channels
            )
            factor *= branch
        self.table = root.table
        self.strides = root.strides


def _c_strides(shape: np.ndarray) -> list[int]:
    """Row-major (C order) strides, in elements, of an array of `shape`."""
    return [int(np.prod(shape[c + 1 :])) for c in range(len(shape))]


def _grid_indices(shape: np.ndarray) -> np.ndarray:
    """All integer index vectors of an array of `shape`, in C order, as (n, C)."""
    axes = [np.arange(n) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(shape))


def _classify(
    tree: cKDTree,
    centres: np.ndarray,
    step: np.ndarray,
    slack: float,
    *,
    max_split: int,
) -> tuple[np.ndarray, list[tuple[int, tuple[int, ...]]], np.ndarray]:
    """Find, for each cell, the palette entries that can be nearest inside it.

    With ``c`` the cell centre, ``p`` the entry nearest to ``c`` and ``r`` the
    cell's half-diagonal, no point of the cell is farther than ``|c - p| + r`` from
    ``p`` or nearer than ``|c - q| - r`` to another entry ``q``; so only entries
    with ``|c - q| <= |c - p| + 2 r`` can win anywhere in the cell, and they are
    among the nearest neighbours of ``c``. The list is then pruned with the exact
    test of ``q`` against ``p`` over the box: ``|x - q|^2 - |x - p|^2`` is linear in
    ``x``, with minimum ``f(c) - sum(step * |p - q|)`` over the cell. The slack
    keeps every decision safe against rounding (points a few ulps outside their
    cell, distances rounded), so an entry left out is always strictly farther than
    the best one kept, in floating point too.

    Returns the table entries (the winner where there is only one), the
    ``(cell, candidates)`` pairs of cells with a list, and up to `max_split` cells
    to split instead (those with the longest lists, longer than ``_MAX_LIST``).
    """
    palette = tree.data
    k = len(palette)
    radius = 0.5 * math.sqrt(float(step @ step))
    magnitude = slack * 1e9

    dist, idx = tree.query(centres, k=2)
    entries = idx[:, 0].astype(np.int64)
    bound = dist[:, 0] + 2 * radius + slack
    pending = np.flatnonzero(dist[:, 1] <= bound)

    lists: list[tuple[int, tuple[int, ...]]] = []
    split = np.empty(0, dtype=np.intp)
    n_query = min(k, _FIRST_CANDIDATES)
    first = True
    while len(pending):
        dist, idx = tree.query(centres[pending], k=n_query)
        complete = (dist[:, -1] > bound[pending]) | (n_query == k)
        centre = centres[pending, None, :]
        p = palette[idx[:, :1]]
        q = palette[idx]
        gap = ((centre - q) ** 2).sum(-1) - ((centre - p) ** 2).sum(-1)
        reach = (np.abs(p - q) * step).sum(-1)
        keep = (dist <= bound[pending, None]) & (gap <= reach + slack * magnitude)
        keep[:, 0] = True
        n_keep = keep.sum(axis=1)
        if first and max_split > 0:
            # Long lists (unfinished ones count as longest) are cheaper to look
            # at more closely than to compare pixel by pixel.
            length = np.where(complete, n_keep, k + 1)
            order = np.argsort(-length, kind="stable")[:max_split]
            order = order[length[order] > _MAX_LIST]
            split = np.sort(pending[order])
            complete[order] = False
            pending[order] = -1
        done = np.flatnonzero(complete)
        single = done[n_keep[done] == 1]
        entries[pending[single]] = idx[single, 0]
        listed = done[n_keep[done] > 1]
        members = np.where(keep[listed], idx[listed], k)  # k sorts after all
        members.sort(axis=1)
        for cell, row, n in zip(pending[listed], members, n_keep[listed], strict=True):
            lists.append((int(cell), tuple(row[:n].tolist())))
        pending = pending[~complete]
        pending = pending[pending >= 0]
        n_query = min(k, 4 * n_query)
        first = False
    return entries, lists, split


def _diffuse_plane(plane: np.ndarray, lookup: _NearestLookup) -> np.ndarray:
    """Dither one (H, W, C) plane; returns (H, W) labels."""
    height, width, n_channels = plane.shape
    row_kernel = _ROW_KERNELS.get(n_channels, _row_any)
    labels = np.empty((height, width), dtype=np.intp)
    below = np.zeros((width, n_channels))
    for y in range(height):
        backwards = y % 2 == 1
        values = plane[y] + below
        if backwards:
            # Reverse the row so the kernel always runs left to right; the error
            # sent below is reversed back afterwards, which mirrors the weights.
            values = values[::-1]
        row_labels, errors = row_kernel(values.T.tolist(), lookup)
        row_labels = np.asarray(row_labels, dtype=np.intp)
        labels[y] = row_labels[::-1] if backwards else row_labels
        if y + 1 < height:
            err = np.asarray(errors).T
            below = _BELOW * err
            below[:-1] += _BELOW_BACK * err[1:]
            below[1:] += _BELOW_AHEAD * err[:-1]
            if backwards:
                below = below[::-1]
    return labels


def _walk(
    node: tuple[int, ...] | _Grid,
    coords: list[float],
    point: list[float],
    lookup: _NearestLookup,
) -> int:
    """Resolve a negative table entry: descend finer grids, then compare a list."""
    while isinstance(node, _Grid):
        f = node.factor
        cell = 0
        for u, o, st in zip(coords, node.origin, node.strides, strict=True):
            cell += (int(u * f) - o) * st
        j = node.table[cell]
        if j >= 0:
            return j
        node = lookup.nodes[~j]
    best, best_d = -1, math.inf
    for j in node:
        d = 0.0
        for v, col in zip(point, lookup.columns, strict=True):
            t = v - col[j]
            d += t * t
        if d < best_d:  # strict: the lowest index wins a tie
            best, best_d = j, d
    return best


def _row_any(values: list[list[float]], lookup: _NearestLookup):
    """Diffuse along one row, left to right, for any number of channels.

    `values` holds one list per channel (the colours plus the error from the row
    above). Returns the labels and one list of errors per channel.
    """
    n_channels = len(values)
    width = len(values[0])
    lo = lookup.lo.tolist()
    hi = lookup.hi.tolist()
    scale = lookup.scale.tolist()
    table, nodes, columns = lookup.table, lookup.nodes, lookup.columns
    strides = lookup.strides
    channels = range(n_channels)
    carry = [0.0] * n_channels
    point = [0.0] * n_channels
    coords = [0.0] * n_channels
    errors = [[0.0] * width for _ in channels]
    labels = [0] * width
    for x in range(width):
        cell = 0
        for c in channels:
            v = values[c][x] + carry[c]
            v = lo[c] if v < lo[c] else hi[c] if v > hi[c] else v
            point[c] = v
            u = (v - lo[c]) * scale[c]
            coords[c] = u
            cell += int(u) * strides[c]
        j = table[cell]
        if j < 0:
            j = _walk(nodes[~j], coords, point, lookup)
        labels[x] = j
        for c in channels:
            e = point[c] - columns[c][j]
            errors[c][x] = e
            carry[c] = _RIGHT * e
    return labels, errors


def _row_1(values: list[list[float]], lookup: _NearestLookup):
    """:func:`_row_any` unrolled for one channel (the per-pixel loop dominates)."""
    (v0s,) = values
    width = len(v0s)
    (lo0,) = lookup.lo.tolist()
    (hi0,) = lookup.hi.tolist()
    (s0,) = lookup.scale.tolist()
    table, nodes = lookup.table, lookup.nodes
    (p0,) = lookup.columns
    e0s = [0.0] * width
    labels = [0] * width
    k0 = 0.0
    for x in range(width):
        v0 = v0s[x] + k0
        if v0 < lo0:
            v0 = lo0
        elif v0 > hi0:
            v0 = hi0
        u0 = (v0 - lo0) * s0
        j = table[int(u0)]
        if j < 0:
            node = nodes[~j]
            while node.__class__ is _Grid:
                j = node.table[int(u0 * node.factor) - node.origin[0]]
                if j >= 0:
                    break
                node = nodes[~j]
            else:
                best = math.inf
                for q in node:
                    t = v0 - p0[q]
                    d = t * t
                    if d < best:
                        best, j = d, q
        labels[x] = j
        e0 = v0 - p0[j]
        e0s[x] = e0
        k0 = _RIGHT * e0
    return labels, [e0s]


def _row_3(values: list[list[float]], lookup: _NearestLookup):
    """:func:`_row_any` unrolled for three channels (the common RGB/Lab case)."""
    v0s, v1s, v2s = values
    width = len(v0s)
    lo0, lo1, lo2 = lookup.lo.tolist()
    hi0, hi1, hi2 = lookup.hi.tolist()
    s0, s1, s2 = lookup.scale.tolist()
    st0, st1, _ = lookup.strides
    table, nodes = lookup.table, lookup.nodes
    p0, p1, p2 = lookup.columns
    e0s, e1s, e2s = [0.0] * width, [0.0] * width, [0.0] * width
    labels = [0] * width
    k0 = k1 = k2 = 0.0
    for x in range(width):
        v0 = v0s[x] + k0
        if v0 < lo0:
            v0 = lo0
        elif v0 > hi0:
            v0 = hi0
        v1 = v1s[x] + k1
        if v1 < lo1:
            v1 = lo1
        elif v1 > hi1:
            v1 = hi1
        v2 = v2s[x] + k2
        if v2 < lo2:
            v2 = lo2
        elif v2 > hi2:
            v2 = hi2
        u0 = (v0 - lo0) * s0
        u1 = (v1 - lo1) * s1
        u2 = (v2 - lo2) * s2
        j = table[int(u0) * st0 + int(u1) * st1 + int(u2)]
        if j < 0:
            node = nodes[~j]
            while node.__class__ is _Grid:
                f = node.factor
                o0, o1, o2 = node.origin
                t0, t1, _ = node.strides
                j = node.table[
                    (int(u0 * f) - o0) * t0 + (int(u1 * f) - o1) * t1 + int(u2 * f) - o2
                ]
                if j >= 0:
                    break
                node = nodes[~j]
            else:
                best = math.inf
                for q in node:
                    t = v0 - p0[q]
                    d = t * t
                    t = v1 - p1[q]
                    d += t * t
                    t = v2 - p2[q]
                    d += t * t
                    if d < best:
                        best, j = d, q
        labels[x] = j
        e0 = v0 - p0[j]
        e1 = v1 - p1[j]
        e2 = v2 - p2[j]
        e0s[x] = e0
        e1s[x] = e1
        e2s[x] = e2
        k0 = _RIGHT * e0
        k1 = _RIGHT * e1
        k2 = _RIGHT * e2
    return labels, [e0s, e1s, e2s]


_ROW_KERNELS = {1: _row_1, 3: _row_3}
