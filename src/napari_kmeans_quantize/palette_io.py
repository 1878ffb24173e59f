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

from ._animated import (
    to_animated_gif_bytes,
    to_apng_bytes,
    write_animated_gif,
    write_apng,
)
from ._atomic import atomic_write
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
)
from ._file_sizes import FileSizes, file_sizes
from ._webp import MAX_WEBP_SIDE, to_webp_bytes, write_webp

__all__ = [
    "MAX_PNG_COLORS",
    "MAX_TIFF_COLORS",
    "MAX_WEBP_SIDE",
    "FileSizes",
    "file_sizes",
    "palette_to_uint8",
    "png_bit_depth",
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
    "write_palette_tiff",
    "write_webp",
]

# --- public API: bytes -------------------------------------------------------------


# --- public API: files -------------------------------------------------------------


def write_indexed_png(
    path: str | os.PathLike,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    bits: int | None = None,
    optimize: bool = True,
) -> str:
    """Write labels and palette as an indexed PNG file (atomically).

    Parameters and errors are those of :func:`to_png_bytes`; the data is checked
    before anything is written.

    Returns
    -------
    path : str
        The path written.

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


def write_indexed_gif(
    path: str | os.PathLike,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    optimize: bool = True,
) -> str:
    """Write labels and palette as a GIF file (atomically).

    Parameters and errors are those of :func:`to_gif_bytes`.

    Returns
    -------
    path : str
        The path written.
    """
    check_gif_alpha(
        prepare(labels, palette, fmt="GIF", max_colors=MAX_PNG_COLORS, planes=False)[1]
    )
    return atomic_write(path, lambda f: save_gif(f, labels, palette, optimize=optimize))


def write_palette_tiff(
    path: str | os.PathLike,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    compression: str | None = "zlib",
) -> str:
    """Write labels and palette as a palette-colour TIFF file (atomically).

    N-D label stacks become a multi-page TIFF. Parameters and errors are those of
    :func:`to_tiff_bytes`.

    Returns
    -------
    path : str
        The path written.
    """
    check_tiff_alpha(
        prepare(labels, palette, fmt="TIFF", max_colors=MAX_TIFF_COLORS, planes=True)[1]
    )
    return atomic_write(
        path, lambda f: save_tiff(f, labels, palette, compression=compression)
    )
