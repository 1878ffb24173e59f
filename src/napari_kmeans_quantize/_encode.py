"""The encoders behind palette_io's writers, shared by every indexed format.

PNG chunks and rows, GIF and TIFF encoding, the 8-bit palette rule and the
checks of labels and palettes that every writer applies first. palette_io is the
public home of the writers; the animated and WebP writers use these pieces too.
"""

from __future__ import annotations

import functools
import inspect
import io
import struct
import zlib
from collections.abc import Callable
from typing import IO, Any, TypeVar

import deflate
import numpy as np
from numba import njit

from ._atomic import atomic_write

#: Largest palette an indexed PNG or GIF can hold.
MAX_PNG_COLORS = 256
#: Largest palette a palette TIFF can hold (16-bit indices).
MAX_TIFF_COLORS = 65536

_F = TypeVar("_F", bound=Callable[..., Any])
_PATH = "str | os.PathLike"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# libdeflate compression levels (1..12) of optimised and plain PNGs. Level 9
# matches zlib's best (level 9) in size at a quarter of its time; measured on the
# k = 2..256 results of astronaut: 657,552 against 657,500 bytes, 0.21 s against
# 0.84 s. Level 12 is 7 % smaller and as slow as zlib's best.
PNG_LEVEL = 9
PNG_LEVEL_FAST = 6
# optimize="max": libdeflate's slowest level, 4-7 % smaller than level 9 on
# photos at 4-15 times the time (benchmarks/FILES.md).
PNG_LEVEL_MAX = 12


def png_level(optimize: bool | str) -> int:
    """The libdeflate level of ``optimize``: False 6, True 9, ``"max"`` 12.

    Examples
    --------
    >>> [png_level(o) for o in (False, True, "max")]
    [6, 9, 12]
    """
    if isinstance(optimize, str):
        if optimize == "max":
            return PNG_LEVEL_MAX
    elif isinstance(optimize, bool | np.bool_):
        return PNG_LEVEL if optimize else PNG_LEVEL_FAST
    raise ValueError(f"optimize must be True, False or 'max', got {optimize!r}.")


def encode(save: Callable[..., None], *args: Any, **kwargs: Any) -> bytes:
    """The bytes ``save(buffer, *args, **kwargs)`` writes: a file, in memory."""
    buf = io.BytesIO()
    save(buf, *args, **kwargs)
    return buf.getvalue()


_WRITER_DOC = """
    Parameters and errors are those of :func:`{encoder}`; the data is checked
    before anything is written.

    Returns
    -------
    path : str
        The path written.
"""


def writes_file_of(encoder: Callable[..., bytes]) -> Callable[[_F], _F]:
    """Decorate a ``write_*`` function: its docstring gains what every file writer
    shares with its in-memory encoder `encoder` (parameters, errors, the path
    returned), before its Examples."""

    def decorate(func: _F) -> _F:
        head, sep, tail = (func.__doc__ or "").partition("\n    Examples\n")
        shared = _WRITER_DOC.format(encoder=encoder.__name__)
        func.__doc__ = head.rstrip() + "\n" + shared + sep + tail
        return func

    return decorate


def file_form(
    encoder: Callable[..., bytes],
) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Make the decorated stub the file writer of the in-memory `encoder`.

    The stub carries only the docstring (its summary and Examples); the function
    returned takes ``path`` and then `encoder`'s parameters, encodes (so bad data
    raises before anything is written) and writes the bytes to `path` atomically.
    """

    def decorate(stub: Callable[..., str]) -> Callable[..., str]:
        signature = inspect.signature(encoder)
        path = inspect.Parameter(
            "path", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_PATH
        )
        signature = signature.replace(
            parameters=[path, *signature.parameters.values()],
            return_annotation="str",
        )

        @functools.wraps(stub)
        def writer(*args: Any, **kwargs: Any) -> str:
            bound = _bind(signature, stub.__name__, args, kwargs)
            target, *rest = bound.args
            data = encoder(*rest, **bound.kwargs)
            return atomic_write(target, lambda f: f.write(data))

        writer.__signature__ = signature  # type: ignore[attr-defined]
        return writes_file_of(encoder)(writer)

    return decorate


def _bind(
    signature: inspect.Signature, name: str, args: tuple, kwargs: dict[str, Any]
) -> inspect.BoundArguments:
    """The arguments bound to `signature`; a TypeError naming `name` if they
    do not fit (rather than the function the call is passed on to)."""
    try:
        return signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{name}() {error}") from None


def png_bit_depth(n_colors: int) -> int:
    """The smallest PNG palette bit depth (1, 2, 4 or 8) that holds `n_colors`.

    Examples
    --------
    >>> [png_bit_depth(k) for k in (1, 2, 3, 4, 5, 16, 17, 256)]
    [1, 1, 2, 2, 4, 4, 8, 8]
    """
    if not 1 <= n_colors <= MAX_PNG_COLORS:
        raise ValueError(
            f"an indexed PNG holds 1 to {MAX_PNG_COLORS} colours, got {n_colors}."
        )
    for bits in (1, 2, 4):
        if n_colors <= 1 << bits:
            return bits
    return 8


def palette_to_uint8(palette: np.ndarray) -> np.ndarray:
    """Convert a palette to 8-bit colours, the depth of PNG and GIF palettes.

    Rules: uint8 is kept; other unsigned integers are scaled from their dtype's full
    range, ``round(v * 255 / max)``; floats must lie in [0, 1] and become
    ``round(v * 255)``; signed integers must already lie in 0..255. A 1-D palette is
    read as grey, ``(k, 1)``.

    Parameters
    ----------
    palette : (k, C) or (k,) array_like
        Colours, C in {1, 3, 4}.

    Returns
    -------
    palette8 : (k, C) ndarray of uint8

    Raises
    ------
    ValueError
        If the shape is wrong, values are out of range, or there are NaNs.
    TypeError
        If the palette is not numeric.

    Examples
    --------
    >>> palette_to_uint8(np.array([[65535, 0, 32768]], dtype=np.uint16)).tolist()
    [[255, 0, 128]]
    >>> palette_to_uint8(np.array([[1.0, 0.5, 0.0]])).tolist()
    [[255, 128, 0]]
    """
    pal = np.asarray(palette)
    if pal.ndim == 1:
        pal = pal[:, np.newaxis]
    if pal.ndim != 2 or pal.shape[1] not in (1, 3, 4) or len(pal) == 0:
        raise ValueError(
            "palette must have shape (k, 1), (k, 3) or (k, 4) with k >= 1 (grey, "
            f"RGB or RGBA), got shape {np.shape(palette)}."
        )
    kind = pal.dtype.kind
    if kind == "b" or kind not in "uif":
        raise TypeError(f"palette must be numeric, got dtype {pal.dtype}.")
    if pal.dtype == np.uint8:
        return pal
    if kind == "u":
        scale = 255.0 / float(np.iinfo(pal.dtype).max)
        return np.rint(pal.astype(np.float64) * scale).astype(np.uint8)
    if kind == "f":
        if not np.isfinite(pal).all():
            raise ValueError("palette contains NaN or infinity.")
        lo, hi = float(pal.min()), float(pal.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"a float palette must lie in [0, 1] to be stored as 8-bit colours, "
                f"got values in [{lo}, {hi}]; rescale it (e.g. to uint8) first."
            )
        return np.rint(pal.astype(np.float64) * 255.0).astype(np.uint8)
    lo, hi = int(pal.min()), int(pal.max())
    if lo < 0 or hi > 255:
        raise ValueError(
            f"a signed-integer palette must lie in 0..255 to be stored as 8-bit "
            f"colours, got values in [{lo}, {hi}]; convert it to uint8 or uint16."
        )
    return pal.astype(np.uint8)


# --- bytes of each format ---------------------------------------------------------


def to_png_bytes(
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    bits: int | None = None,
    optimize: bool | str = True,
) -> bytes:
    """Encode labels and palette as an indexed PNG, in memory.

    Use it to measure the real size of a quantised image without touching the disk.

    Parameters
    ----------
    labels : (H, W) integer ndarray
        Palette index of every pixel, each in ``[0, len(palette))``. Leading axes of
        length 1 are dropped.
    palette : (k, C) ndarray
        k <= 256 colours, C = 1 (grey), 3 (RGB) or 4 (RGBA). Converted to 8 bits by
        :func:`palette_to_uint8`.
    bits : {1, 2, 4, 8} or None, optional
        Bit depth of the indices. None (default) picks the smallest that holds k
        (:func:`png_bit_depth`); a larger value can be forced (one index per byte
        sometimes compresses better for 5 to 16 colours).
    optimize : bool or "max", optional
        Compress harder (libdeflate level 9 instead of 6). ``"max"``: level 12,
        and with `bits` None also 8 bits per index, whichever is smaller (4-8 %
        smaller than level 9 on photos, 4-15 times slower).

    Returns
    -------
    png : bytes
        The complete PNG file.

    Raises
    ------
    ValueError
        If the palette has more than 256 colours, the labels are not 2-D or refer
        to entries outside the palette, or the palette cannot be made 8-bit.
    TypeError
        If `labels` is not an integer array.

    Examples
    --------
    >>> labels = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    >>> palette = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    >>> data = to_png_bytes(labels, palette)
    >>> data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    return encode(save_png, labels, palette, bits=bits, optimize=optimize)


def to_gif_bytes(
    labels: np.ndarray, palette: np.ndarray, *, optimize: bool = True
) -> bytes:
    """Encode labels and palette as a GIF, in memory.

    GIF has binary transparency only: an RGBA palette may have at most one entry
    with alpha 0 and every other entry must have alpha 255.

    Parameters
    ----------
    labels : (H, W) integer ndarray
        Palette index of every pixel. Leading axes of length 1 are dropped.
    palette : (k, C) ndarray
        k <= 256 colours, C = 1, 3 or 4.
    optimize : bool, optional
        Let Pillow drop unused palette entries (the palette then shrinks to the next
        power of two; colours stay exact, indices may be renumbered).

    Returns
    -------
    gif : bytes

    Raises
    ------
    ValueError
        As :func:`to_png_bytes`, and for partially transparent palettes or more than
        one transparent entry.

    Examples
    --------
    >>> labels = np.zeros((2, 2), dtype=np.uint8)
    >>> to_gif_bytes(labels, np.array([[1, 2, 3]], dtype=np.uint8))[:3]
    b'GIF'
    """
    return encode(save_gif, labels, palette, optimize=optimize)


def to_tiff_bytes(
    labels: np.ndarray, palette: np.ndarray, *, compression: str | None = "zlib"
) -> bytes:
    """Encode labels and palette as a palette-colour TIFF, in memory.

    Parameters
    ----------
    labels : (..., H, W) integer ndarray
        Palette index of every pixel. N-D stacks become a multi-page TIFF, one page
        per 2-D plane (leading axes flattened, shape kept in tifffile's metadata).
    palette : (k, C) ndarray
        k <= 65536 opaque colours (C = 1, 3, or 4 with every alpha 255). Indices are
        8-bit for k <= 256, else 16-bit. The 16-bit colour map holds a uint16
        palette as it is and any other as ``palette8 * 257``, padded to 2**bits
        entries.
    compression : str or None, optional
        tifffile compression: 'zlib' (Deflate, the default), None, or any codec
        tifffile can write here.

    Returns
    -------
    tiff : bytes

    Raises
    ------
    ValueError
        If the palette has more than 65536 colours, is translucent, the labels are
        not at least 2-D or refer to entries outside the palette.

    Examples
    --------
    >>> labels = np.zeros((2, 2), dtype=np.uint8)
    >>> to_tiff_bytes(labels, np.array([[1, 2, 3]], dtype=np.uint8))[:2] in (b"II", b"MM")
    True
    """
    return encode(save_tiff, labels, palette, compression=compression)


# --- encoders ----------------------------------------------------------------------


def save_png(
    fp: IO[bytes],
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    bits: int | None,
    optimize: bool | str,
) -> None:
    lab, pal = prepare(labels, palette, fmt="PNG", max_colors=MAX_PNG_COLORS)
    level = png_level(optimize)
    min_bits = png_bit_depth(len(pal))
    if bits is None:
        # At the slowest level, one index per byte is sometimes smaller (deflate
        # finds longer matches in whole bytes); both are tried.
        depths = sorted({min_bits, 8}) if level == PNG_LEVEL_MAX else [min_bits]
    elif bits not in (1, 2, 4, 8) or bits < min_bits:
        raise ValueError(
            f"bits must be one of 1, 2, 4, 8 and at least {min_bits} for "
            f"{len(pal)} colours, got {bits!r}."
        )
    else:
        depths = [bits]
    idat, bits = min(
        ((deflate.zlib_compress(png_rows(lab, b), level), b) for b in depths),
        key=lambda pair: len(pair[0]),
    )
    write_png_header(fp, lab.shape[1], lab.shape[0], bits, pal)
    write_chunk(fp, b"IDAT", idat)
    write_chunk(fp, b"IEND", b"")


def write_png_header(
    fp: IO[bytes],
    width: int,
    height: int,
    bits: int,
    pal: np.ndarray,
    *,
    after_ihdr: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """The signature, IHDR (palette colour type), `after_ihdr` chunks (APNG's
    acTL), PLTE and tRNS (only for a palette with transparency)."""
    rgb, alpha = split_alpha(pal)
    fp.write(PNG_SIGNATURE)
    write_chunk(fp, b"IHDR", struct.pack(">IIBBBBB", width, height, bits, 3, 0, 0, 0))
    for tag, data in after_ihdr:
        write_chunk(fp, tag, data)
    write_chunk(fp, b"PLTE", rgb.tobytes())
    if alpha is not None and (alpha < 255).any():
        # tRNS may be shorter than PLTE: entries past its end are opaque.
        last = int(np.flatnonzero(alpha < 255)[-1])
        write_chunk(fp, b"tRNS", alpha[: last + 1].tobytes())


def write_chunk(fp: IO[bytes], tag: bytes, data: bytes) -> None:
    fp.write(struct.pack(">I", len(data)) + tag)
    fp.write(data)
    fp.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(tag))))


def png_rows(labels: np.ndarray, bits: int) -> np.ndarray:
    """The raw PNG scanlines of palette indices: filter byte 0, then packed pixels.

    Filter type 0 (none) is what the PNG specification recommends for palette
    images: the other filters predict colour values, not indices. Returned as a
    contiguous (height, 1 + row bytes) uint8 array, which deflate reads as it
    is: made in one pass, with no copy to bytes.
    """
    h, w = labels.shape
    per = 8 // bits
    rows = np.empty((h, 1 + -(-w // per)), dtype=np.uint8)
    _pack_rows(labels.astype(np.uint8, copy=False), bits, rows)
    return rows


@njit(nogil=True, cache=True)
def _pack_rows(labels, bits, rows):  # pragma: no cover
    # Each row: its filter byte, then 8 / bits indices a byte, the first in the
    # high bits; the last byte's unused low bits stay 0. One loop per depth,
    # with the shifts written out, so that LLVM vectorises each.
    h, w = labels.shape
    per = 8 // bits
    full = w // per
    for y in range(h):
        row, lab = rows[y], labels[y]
        row[0] = 0
        if per == 1:
            for x in range(w):
                row[1 + x] = lab[x]
        elif per == 2:
            for b in range(full):
                row[1 + b] = (lab[2 * b] << 4) | lab[2 * b + 1]
        elif per == 4:
            for b in range(full):
                x = 4 * b
                row[1 + b] = (
                    (lab[x] << 6) | (lab[x + 1] << 4) | (lab[x + 2] << 2) | lab[x + 3]
                )
        else:
            for b in range(full):
                x = 8 * b
                row[1 + b] = (
                    (lab[x] << 7) | (lab[x + 1] << 6) | (lab[x + 2] << 5)
                    | (lab[x + 3] << 4) | (lab[x + 4] << 3) | (lab[x + 5] << 2)
                    | (lab[x + 6] << 1) | lab[x + 7]
                )  # fmt: skip
        if full * per < w:
            byte = 0
            for i in range(per):
                x = full * per + i
                byte = (byte << bits) | (lab[x] if x < w else 0)
            row[1 + full] = byte


def save_gif(
    fp: IO[bytes], labels: np.ndarray, palette: np.ndarray, *, optimize: bool
) -> None:
    lab, pal = prepare(labels, palette, fmt="GIF", max_colors=MAX_PNG_COLORS)
    if max(lab.shape) > 65535:
        raise ValueError(
            f"GIF stores at most 65535 pixels a side, the labels are {lab.shape[1]} "
            f"x {lab.shape[0]} (width x height); write a PNG or TIFF instead."
        )
    transparent = check_gif_alpha(pal)
    rgb, _ = split_alpha(pal)
    im = p_image(lab, rgb)
    options: dict = {"optimize": optimize}
    if transparent is not None:
        options["transparency"] = transparent
    im.save(fp, format="GIF", **options)


def save_tiff(
    fp: IO[bytes],
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    compression: str | None,
) -> None:
    import tifffile

    try:
        # A 1-pixel trial: a codec missing here (LZW needs imagecodecs) is a
        # KeyError deep in tifffile once the real data is being written.
        tifffile.imwrite(
            io.BytesIO(), np.zeros((1, 1), np.uint8), compression=compression
        )
    except (KeyError, ValueError, TypeError, ImportError) as err:
        raise ValueError(
            f"TIFF compression {compression!r} cannot be written here ({err}); use "
            "'zlib' (the default) or None."
        ) from None
    lab, pal = prepare(
        labels, palette, fmt="TIFF", max_colors=MAX_TIFF_COLORS, planes=True
    )
    check_tiff_alpha(pal)
    rgb, _ = split_alpha(pal)
    dtype = np.uint8 if len(rgb) <= 256 else np.uint16
    n_entries = 1 << (8 * np.dtype(dtype).itemsize)
    colormap = np.zeros((3, n_entries), dtype=np.uint16)
    colormap[:, : len(rgb)] = colormap16(palette, rgb).T
    tifffile.imwrite(
        fp,
        lab.astype(dtype, copy=False),
        photometric="palette",
        colormap=colormap,
        compression=compression,
        # A 2-D page needs no shape record; a stack keeps its N-D shape.
        metadata=None if lab.ndim == 2 else {},
    )


def colormap16(palette: np.ndarray, rgb8: np.ndarray) -> np.ndarray:
    """The (k, 3) 16-bit TIFF colour map: a uint16 palette as it is (16-bit
    microscopy keeps its values exactly), any other as its 8-bit colours * 257."""
    pal = np.asarray(palette)
    if pal.dtype != np.uint16:
        return rgb8.astype(np.uint16) * 257
    return split_alpha(pal.reshape(len(pal), -1))[0]


def p_image(labels: np.ndarray, rgb: np.ndarray):
    """A Pillow mode "P" image with exactly ``len(rgb)`` palette entries."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8))
    im.putpalette(rgb.tobytes(), rawmode="RGB")
    if im.mode != "P":  # pragma: no cover - Pillow turns "L" into "P" here
        raise RuntimeError(f"expected a palette image, Pillow gave mode {im.mode}.")
    return im


# --- validation --------------------------------------------------------------------


def prepare(
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    fmt: str,
    max_colors: int,
    planes: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return (labels, 8-bit palette) for the format `fmt`."""
    pal = palette_to_uint8(palette)
    if len(pal) > max_colors:
        hint = (
            " Write a palette TIFF (up to 65536 colours) or quantise to k <= 256."
            if max_colors == MAX_PNG_COLORS
            else ""
        )
        raise ValueError(
            f"{fmt} palettes hold at most {max_colors} colours, this palette has "
            f"{len(pal)}.{hint}"
        )
    lab = np.asarray(labels)
    if lab.dtype.kind not in "ui":
        raise TypeError(
            f"labels must be an integer array of palette indices, got dtype "
            f"{lab.dtype}."
        )
    while lab.ndim > 2 and lab.shape[0] == 1:
        lab = lab[0]
    if lab.ndim < 2 or (lab.ndim > 2 and not planes):
        extra = (
            f" {fmt} holds one 2-D plane: for a stack, write a multi-page palette "
            "TIFF (a .tif file) or one file per plane."
            if lab.ndim > 2
            else ""
        )
        raise ValueError(
            f"labels must be a 2-D (height, width) array, got shape "
            f"{np.shape(labels)}.{extra}"
        )
    if lab.size == 0:
        raise ValueError(f"labels are empty (shape {np.shape(labels)}).")
    lo, hi = int(lab.min()), int(lab.max())
    if lo < 0 or hi >= len(pal):
        raise ValueError(
            f"labels must index the palette (0 to {len(pal) - 1}), but they hold "
            f"values from {lo} to {hi}."
        )
    return lab, pal


def split_alpha(pal: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(k, 3) RGB palette and (k,) alpha (None without alpha); grey becomes RGB."""
    if pal.shape[1] == 1:
        return np.ascontiguousarray(np.repeat(pal, 3, axis=1)), None
    rgb = np.ascontiguousarray(pal[:, :3])
    return rgb, (np.ascontiguousarray(pal[:, 3]) if pal.shape[1] == 4 else None)


def check_gif_alpha(pal: np.ndarray) -> int | None:
    """The transparent index of a GIF palette, after checking it fits GIF."""
    _, alpha = split_alpha(pal)
    if alpha is None:
        return None
    partial = np.flatnonzero((alpha > 0) & (alpha < 255))
    clear = np.flatnonzero(alpha == 0)
    if len(partial) or len(clear) > 1:
        raise ValueError(
            "GIF has binary transparency only (one fully transparent entry, all "
            f"others opaque); this palette has {len(clear)} transparent and "
            f"{len(partial)} partially transparent entries. Write a PNG instead."
        )
    return int(clear[0]) if len(clear) else None


def check_tiff_alpha(pal: np.ndarray) -> None:
    _, alpha = split_alpha(pal)
    if alpha is not None and (alpha < 255).any():
        raise ValueError(
            "palette TIFFs have no alpha channel, but this palette has "
            f"{int((alpha < 255).sum())} non-opaque entries. Write a PNG instead."
        )
