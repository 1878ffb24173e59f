"""Indexed (palette) image files: the real compressed output of a quantisation.

A quantised image is fully described by its ``labels`` (one palette index per pixel)
and its ``palette`` (k colours). This module stores exactly that, in three formats:

* **PNG** (colour type 3): up to 256 colours, one 2-D plane. The bit depth is the
  smallest of 1, 2, 4 or 8 bits that holds the palette; rows are unfiltered (filter
  type 0, as the PNG specification advises for palette images) and compressed with
  libdeflate at level 9 (as small as zlib's level 9, four times faster). RGBA palettes keep their per-entry alpha in a
  ``tRNS`` chunk, trimmed after the last non-opaque entry.
* **GIF** (GIF87a, or GIF89a when an entry is transparent): up to 256 colours, one 2-D plane, *binary* transparency only: at
  most one palette entry may be transparent (alpha 0) and every other entry must be
  opaque (alpha 255). Partial alpha is refused; use PNG for it.
* **TIFF** (palette colour, ``PhotometricInterpretation = 3``, Deflate compressed):
  up to 256 colours as 8-bit indices, or up to 65536 as 16-bit indices. TIFF palettes
  have no alpha, so only opaque palettes are accepted. N-D label stacks are written
  as a **multi-page TIFF**: the leading axes are flattened into pages, and tifffile
  records the full shape so that ``tifffile.imread`` returns the original shape.

PNG and GIF hold a single plane; for N-D labels they raise a ValueError pointing at
the TIFF writer (leading axes of length 1 are dropped first, so ``(1, H, W)`` is fine).

**Indices and palette order are kept**: reading a file back gives ``labels`` as the
pixel values (``np.asarray(PIL.Image.open(f))``) and ``palette[labels]`` as the
colours (``.convert("RGB")`` or ``.convert("RGBA")``). GIF is the exception for
indices: Pillow may renumber unused entries away, but the colours are still exact.

**8-bit colours.** PNG and GIF store 8 bits per colour channel. TIFF colour maps
are 16-bit: a uint16 palette is stored exactly, any other as its 8-bit colours times
257. Palettes of other dtypes are converted to 8 bits by :func:`palette_to_uint8`: unsigned integers are scaled from their dtype's full
range (``round(v * 255 / max)``, so uint16 65535 -> 255); floats must lie in [0, 1]
(napari's and scikit-image's convention) and become ``round(v * 255)``; signed
integers are accepted when they already lie in 0..255 (``np.array([[255, 0, 0]])``);
anything else is refused with a ValueError. Grey palettes (``(k,)`` or ``(k, 1)``) are
stored as grey RGB entries.

**Atomic writes.** Every ``write_*`` function writes to a temporary file in the
target's folder and renames it onto the target (``os.replace``) only after the write
succeeded, so a failed or interrupted write never leaves a half-written file at the
target path (an existing file there is kept unchanged). A replaced file keeps its
permission bits; a read-only file is refused with a PermissionError.

**More formats, same rules** (defined in private modules, public here): animated PNG
and animated GIF of a ``(frames, H, W)`` stack with one palette
(:func:`write_apng`, :func:`write_animated_gif`), lossless WebP of the colours
(:func:`write_webp`), and :func:`file_sizes`, the real bytes of every exact format
that holds a result and the smallest.

This module needs only numpy, Pillow, tifffile and deflate (libdeflate); it never
imports napari or Qt.
"""

from __future__ import annotations

import os

import numpy as np

from . import _atomic
from ._animated import (
    to_animated_gif_bytes,
    to_apng_bytes,
    write_animated_gif,
    write_apng,
)
from ._atomic import atomic_write, check_target
from ._encode import (
    MAX_PNG_COLORS,
    MAX_TIFF_COLORS,
    check_gif_alpha,
    check_tiff_alpha,
    palette_to_uint8,
    png_bit_depth,
    prepare,
    save_gif,
    save_png,
    save_tiff,
    to_gif_bytes,
    to_png_bytes,
    to_tiff_bytes,
    writes_file_of,
)
from ._file_sizes import FileSizes, file_sizes
from ._webp import MAX_WEBP_SIDE, to_webp_bytes, write_webp

__all__ = [
    "MAX_PNG_COLORS",
    "MAX_TIFF_COLORS",
    "MAX_WEBP_SIDE",
    "FileSizes",
    "file_sizes",
    "palette_csv_path",
    "palette_to_uint8",
    "png_bit_depth",
    "read_palette_csv",
    "to_animated_gif_bytes",
    "to_apng_bytes",
    "to_gif_bytes",
    "to_png_bytes",
    "to_tiff_bytes",
    "to_webp_bytes",
    "write_animated_gif",
    "write_apng",
    "write_indexed_gif",
    "write_indexed_png",
    "write_labels_tiff",
    "write_palette_tiff",
    "write_webp",
]

# --- public API: bytes -------------------------------------------------------------


# --- public API: files -------------------------------------------------------------


@writes_file_of(to_png_bytes)
def write_indexed_png(
    path: str | os.PathLike,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    bits: int | None = None,
    optimize: bool | str = True,
) -> str:
    """Write labels and palette as an indexed PNG file (atomically).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> labels = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    >>> palette = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_indexed_png(pathlib.Path(tmp) / "q.png", labels, palette)
    ...     back = np.asarray(Image.open(out).convert("RGB"))
    >>> bool((back == palette[labels]).all())
    True
    """
    prepare(labels, palette, fmt="PNG", max_colors=MAX_PNG_COLORS, planes=False)
    return atomic_write(
        path, lambda f: save_png(f, labels, palette, bits=bits, optimize=optimize)
    )


@writes_file_of(to_gif_bytes)
def write_indexed_gif(
    path: str | os.PathLike,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    optimize: bool = True,
) -> str:
    """Write labels and palette as a GIF file (atomically)."""
    check_gif_alpha(
        prepare(labels, palette, fmt="GIF", max_colors=MAX_PNG_COLORS, planes=False)[1]
    )
    return atomic_write(path, lambda f: save_gif(f, labels, palette, optimize=optimize))


@writes_file_of(to_tiff_bytes)
def write_palette_tiff(
    path: str | os.PathLike,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    compression: str | None = "zlib",
) -> str:
    """Write labels and palette as a palette-colour TIFF file (atomically); N-D
    label stacks become a multi-page TIFF."""
    check_tiff_alpha(
        prepare(labels, palette, fmt="TIFF", max_colors=MAX_TIFF_COLORS, planes=True)[1]
    )
    return atomic_write(
        path, lambda f: save_tiff(f, labels, palette, compression=compression)
    )


def palette_csv_path(path: str | os.PathLike) -> str:
    """Where :func:`write_labels_tiff` puts the palette of labels written to
    `path`: beside it, ``<stem>_palette.csv``.

    Examples
    --------
    >>> palette_csv_path("cells_k8.tif")
    'cells_k8_palette.csv'
    """
    root, _ = os.path.splitext(os.fspath(path))
    return f"{root}_palette.csv"


def write_labels_tiff(
    path: str | os.PathLike,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    channel_names: list[str] | None = None,
    compression: str | None = "zlib",
) -> tuple[str, str]:
    """Write labels as a grey TIFF and the palette, any channel count, as CSV.

    The form for multichannel results (fluorescence, spectral), whose palette
    entries are no colours a palette TIFF could hold: the TIFF holds the labels
    as its pixel values (8-bit for up to 256 entries, else 16-bit; N-D stacks as
    a multi-page TIFF that ``tifffile.imread`` returns in their shape), the CSV
    beside it (:func:`palette_csv_path`) one row per entry: ``label``, one
    column per channel with the exact values, ``pixels`` and ``share`` (the
    fraction of the pixels). Both files are written atomically, the CSV last,
    and both targets are checked before either is written: a CSV that cannot be
    written (read-only, an unwritable folder, a name too long) leaves an older
    TIFF untouched.

    Parameters
    ----------
    path : str or path-like
        The TIFF's path.
    labels : (..., H, W) integer ndarray
        Palette index of every pixel.
    palette : (k, C) or (k,) ndarray
        The palette, in the image's dtype.
    channel_names : list of str, optional
        The CSV's channel column names (default ``channel_0``, ...).
    compression : str or None, optional
        tifffile compression of the TIFF ('zlib' by default).

    Returns
    -------
    paths : (str, str)
        The TIFF and CSV paths written.

    Raises
    ------
    TypeError
        If the labels are not integers or the palette is not numeric.
    ValueError
        If the labels are not at least 2-D, are empty or do not index the
        palette, or `channel_names` does not name every channel once.
    OSError
        If either file cannot be written (raised before anything is written
        when the target itself refuses it, e.g. a read-only CSV).

    Examples
    --------
    >>> import tempfile, pathlib, tifffile
    >>> labels = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    >>> palette = np.array([[100, 2000, 7], [4000, 10, 9]], dtype=np.uint16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     tif, csv = write_labels_tiff(pathlib.Path(tmp) / "q.tif", labels, palette)
    ...     back = tifffile.imread(tif)
    ...     pal, names = read_palette_csv(csv)
    >>> bool((back == labels).all()), pal.tolist(), names
    (True, [[100, 2000, 7], [4000, 10, 9]], ['channel_0', 'channel_1', 'channel_2'])
    """
    import tifffile

    pal = np.asarray(palette)
    if pal.ndim == 1:
        pal = pal[:, None]
    if pal.ndim != 2 or len(pal) == 0 or len(pal) > MAX_TIFF_COLORS:
        raise ValueError(
            f"palette must have shape (k, C) with 1 <= k <= {MAX_TIFF_COLORS}, got "
            f"shape {np.shape(palette)}."
        )
    if pal.dtype.kind not in "uif":
        raise TypeError(f"palette must be numeric, got dtype {pal.dtype}.")
    names = [f"channel_{c}" for c in range(pal.shape[1])]
    if channel_names is not None:
        names = [str(n) for n in channel_names]
        reserved = {"label", "pixels", "share"}
        if len(names) != pal.shape[1] or len(set(names)) != len(names):
            raise ValueError(
                f"channel_names must name each of the {pal.shape[1]} channels once, "
                f"got {channel_names!r}."
            )
        if reserved & set(names):
            raise ValueError(f"channel_names must not use the names {reserved}.")
    lab = np.asarray(labels)
    if lab.dtype.kind not in "ui":
        raise TypeError(
            f"labels must be an integer array of palette indices, got dtype "
            f"{lab.dtype}."
        )
    if lab.ndim < 2 or lab.size == 0:
        raise ValueError(
            f"labels must be a non-empty (..., H, W) array, got shape {lab.shape}."
        )
    lo, hi = int(lab.min()), int(lab.max())
    if lo < 0 or hi >= len(pal):
        raise ValueError(
            f"labels must index the palette (0 to {len(pal) - 1}), but they hold "
            f"values from {lo} to {hi}."
        )
    counts = np.bincount(lab.ravel(), minlength=len(pal))
    rows = [",".join(["label", *names, "pixels", "share"])]
    for i, (entry, n) in enumerate(zip(pal.tolist(), counts.tolist(), strict=True)):
        # repr keeps every float exactly (it reads back to the same value).
        values = [repr(v) if isinstance(v, float) else str(v) for v in entry]
        rows.append(",".join([str(i), *values, str(n), repr(n / lab.size)]))
    text = ("\n".join(rows) + "\n").encode()
    dtype = np.uint8 if len(pal) <= 256 else np.uint16
    csv_path = palette_csv_path(path)
    _check_targets(path, csv_path)
    tif = atomic_write(
        path,
        lambda f: tifffile.imwrite(
            f,
            lab.astype(dtype),
            photometric="minisblack",
            compression=compression,
            metadata=None if lab.ndim == 2 else {},
        ),
    )
    csv = atomic_write(csv_path, lambda f: f.write(text))
    return tif, csv


def _check_targets(*paths: str | os.PathLike) -> None:
    """Refuse, before any of several files is written, a set that could not be
    written whole: each write is atomic, the set of them is not."""
    for path in paths:
        # Read at call time: a command run with --force replaces read-only files.
        check_target(path, replace_read_only=_atomic._replace_read_only)


def read_palette_csv(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a palette written by :func:`write_labels_tiff`.

    Parameters
    ----------
    path : str or path-like
        The CSV file.

    Returns
    -------
    palette : (k, C) ndarray
        int64 if every value is a whole number as written for integer palettes,
        else float64; row i is label i.
    channel_names : list of str
        The channel column names.

    Raises
    ------
    ValueError
        If the file is not such a table.

    Examples
    --------
    See :func:`write_labels_tiff`.
    """
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    header = lines[0].split(",") if lines else []
    if len(header) < 4 or header[0] != "label" or header[-2:] != ["pixels", "share"]:
        raise ValueError(
            f"{os.fspath(path)!r} is not a palette table (expected a header "
            "'label,<channels...>,pixels,share')."
        )
    cells = [line.split(",")[1:-2] for line in lines[1:]]
    integer = all("." not in v and "e" not in v.lower() for row in cells for v in row)
    palette = np.array(cells, dtype=np.int64 if integer else np.float64)
    return palette.reshape(len(cells), len(header) - 3), header[1:-2]
