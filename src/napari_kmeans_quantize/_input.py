"""Reading the command line's input images, with a pixel budget checked first.

Every reader checks the size the file *declares* (its header) against one budget
before it decodes anything, so a small file claiming 60000 x 60000 pixels (a
decompression bomb) is refused at once instead of filling the memory. The budget
counts pixels over every frame or page: height x width x frames, channels aside.

Files are read as they are: 16-bit PNGs keep their 16 bits, every frame of an
animated GIF (or APNG) and every series of a TIFF whose series share one shape
becomes one stack, and what cannot be read as it is gets a note or a clear refusal.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

#: Default pixel budget: a 16384 x 16384 image, or 64 frames of 2048 x 2048.
DEFAULT_PIXEL_LIMIT = 16384 * 16384
#: The command-line flag that raises the budget (named in the refusal).
PIXEL_LIMIT_FLAG = "--pixel-limit"
#: `channel_axis` of :func:`read_source` when the file says it. Not a string:
#: argparse would pass a string default through the option's type.
FROM_FILE: Any = object()

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Decoding errors of truncated or damaged files take many types across Pillow,
# tifffile, zlib and struct; each becomes one ImageFileError naming the file.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    struct.error,
    zlib.error,
)


class ImageFileError(ValueError):
    """An input file that cannot be read as an image; the message names the file."""


class PixelLimitError(ImageFileError):
    """An input file declaring more pixels than the budget allows."""


def read_image(
    path: Path, *, pixel_limit: int = DEFAULT_PIXEL_LIMIT
) -> tuple[np.ndarray, int | None]:
    """Read an image file; returns the array and its channel axis (None for grey).

    As :func:`read_input`, without saying whether the channels are colours.
    """
    read = read_input(path, pixel_limit=pixel_limit)
    return read.image, read.channel_axis


@dataclass(frozen=True)
class InputImage:
    """An image as read from its file."""

    image: np.ndarray
    #: None for one channel (grey).
    channel_axis: int | None
    #: False when the file says its channels are no colours: a TIFF whose
    #: metadata (ImageJ, OME) names them channels (C), e.g. 3 fluorescence
    #: channels, rather than the samples (S) of an RGB(A) pixel; with
    #: :func:`read_source`, also when the user says so.
    colors: bool = True


def read_source(
    path: Path,
    *,
    pixel_limit: int = DEFAULT_PIXEL_LIMIT,
    channel_axis: Any = FROM_FILE,
    plain_channels: bool = False,
) -> InputImage:
    """Read an image to quantise as every command reads it: the file's channel
    axis unless `channel_axis` gives one (None for grey), and its channels
    colours unless the file (a TIFF's metadata) or `plain_channels` says they are
    plain channels, e.g. fluorescence.

    Raises as :func:`read_input`.
    """
    read = read_input(path, pixel_limit=pixel_limit)
    if channel_axis is not FROM_FILE:
        read = replace(read, channel_axis=channel_axis)
    if plain_channels:
        read = replace(read, colors=False)
    return read


def read_input(path: Path, *, pixel_limit: int = DEFAULT_PIXEL_LIMIT) -> InputImage:
    """Read an image file, with its channel axis and whether its channels are
    colours (RGB, RGBA) or plain channels.

    Raises
    ------
    FileNotFoundError
        If `path` is not a file.
    PixelLimitError
        If the header declares more than `pixel_limit` pixels (before decoding).
    ImageFileError
        If the file is not an image, is damaged or truncated, or has a layout that
        cannot be quantised (e.g. 5 channels).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, "is a folder, not an image file", str(path)
        )
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {str(path)!r}")
    with open(path, "rb") as f:
        magic = f.read(4)
    try:
        if magic in _TIFF_MAGIC:
            return _read_tiff(path, pixel_limit)
        return InputImage(*_read_pillow(path, pixel_limit))
    except ImageFileError:
        raise
    except _DECODE_ERRORS as err:
        raise ImageFileError(
            f"{path}: cannot read this image file ({_reason(err)})."
        ) from err


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _check_budget(path: Path, declared: str, pixels: int, limit: int) -> None:
    if pixels > limit:
        raise PixelLimitError(
            f"{path} declares {declared} = {pixels:,} pixels, over the limit of "
            f"{limit:,}; if you trust the file, raise it with "
            f"{PIXEL_LIMIT_FLAG} {pixels}."
        )


def _size_text(width: int, height: int, frames: int = 1) -> str:
    plane = f"{width:,} x {height:,}"
    return plane if frames == 1 else f"{frames:,} frames of {plane}"


# --- TIFF ----------------------------------------------------------------------------


def _read_tiff(path: Path, limit: int) -> InputImage:
    # tifffile logs what it finds wrong (no pages, a tile that fails to decode)
    # through logging, which would print stray lines: after a good read each
    # becomes one note; after a failure the error says it all.
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        result = _read_tiff_series(path, limit)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    for message in handler.messages:
        warnings.warn(f"{path}: {message}", stacklevel=3)
    return result


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


def _read_tiff_series(path: Path, limit: int) -> InputImage:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except tifffile.TiffFileError as err:
        raise ImageFileError(
            f"{path}: cannot read this TIFF ({_reason(err)})."
        ) from err
    with tif:
        series = list(tif.series)
        if not series:
            raise ImageFileError(f"{path}: the TIFF holds no image.")
        first = series[0]
        if len(series) > 1 and any(
            (s.shape, s.dtype, s.axes) != (first.shape, first.dtype, first.axes)
            for s in series
        ):
            shapes = ", ".join(str(s.shape) for s in series)
            warnings.warn(
                f"{path} holds {len(series)} image series of different shapes "
                f"({shapes}); read only the first, {first.shape}.",
                stacklevel=2,
            )
            series = [first]
        shape, axes = tuple(first.shape), first.axes
        channel_axis = _tiff_channel_axis(path, shape, axes)
        # Channels the metadata names as such (ImageJ's channels=, OME's C) are no
        # colours, even three of them; samples (S) are RGB(A) but for other counts.
        colors = "C" not in axes and (
            "S" not in axes or shape[axes.index("S")] in (3, 4)
        )
        n_channels = 1 if channel_axis is None else shape[channel_axis]
        pixels = len(series) * math.prod(shape) // n_channels
        spatial = [
            n
            for i, n in enumerate(shape)
            if channel_axis is None or i != channel_axis % len(shape)
        ]
        height, width = (spatial[-2], spatial[-1]) if len(spatial) >= 2 else (1, 1)
        frames = pixels // max(1, height * width)
        _check_budget(path, _size_text(width, height, frames), pixels, limit)
        try:
            planes = [s.asarray() for s in series]
        except tifffile.TiffFileError as err:
            raise ImageFileError(
                f"{path}: cannot decode this TIFF ({_reason(err)})."
            ) from err
    if len(planes) == 1:
        return InputImage(planes[0], channel_axis, colors)
    if len(series) > 1:
        warnings.warn(
            f"{path} holds {len(planes)} image series of shape {shape}; read them "
            f"as one stack of shape {(len(planes), *shape)}.",
            stacklevel=2,
        )
    stack = np.stack(planes)
    if channel_axis is not None and channel_axis >= 0:
        channel_axis += 1
    return InputImage(stack, channel_axis, colors)


def _tiff_channel_axis(path: Path, shape: tuple[int, ...], axes: str) -> int | None:
    """The channel axis of a TIFF series, or a refusal naming an odd channel count."""
    from ._engine.image import MAX_CHANNELS

    # Channels as the metadata names them: C in ImageJ and OME files; samples S
    # (RGB(A) or any count), last for interleaved files and first for planar
    # ones, (3, H, W).
    for name in "CS":
        if name in axes:
            n = shape[axes.index(name)]
            if not 1 <= n <= MAX_CHANNELS:
                _refuse_channels(path, shape, n)
            return axes.index(name)
    if len(shape) >= 3 and shape[-1] in (3, 4):
        return -1
    # A last axis far shorter than the one before it is a channel axis, not the
    # width of a stack of strips: (32, 32, 5) is 32 x 32 pixels of 5 values.
    if (
        len(shape) >= 3
        and 2 <= shape[-1] <= MAX_CHANNELS
        and shape[-1] * 4 <= shape[-2]
    ):
        return -1
    if len(shape) < 2:
        raise ImageFileError(f"{path}: the TIFF holds a {shape} array, not an image.")
    return None


def _refuse_channels(path: Path, shape: tuple[int, ...], n: int) -> None:
    raise ImageFileError(
        f"{path} has {n} channels per pixel (shape {shape}); 1 to 16 channels can "
        "be quantised: save the channels to quantise as their own file."
    )


# --- Pillow formats (PNG, JPEG, GIF, BMP, WebP, ...) ------------------------------------


def _read_pillow(path: Path, limit: int) -> tuple[np.ndarray, int | None]:
    from PIL import Image, UnidentifiedImageError

    # The budget below replaces Pillow's own check, which raises a bare
    # DecompressionBombError and cannot be raised per call.
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        try:
            pil = Image.open(path)
        except UnidentifiedImageError:
            raise ImageFileError(
                f"{path}: not an image file that can be read (PNG, JPEG, GIF, TIFF, "
                "BMP, WebP, ...)."
            ) from None
        with pil:
            width, height = pil.size
            _check_budget(path, _size_text(width, height), width * height, limit)
            n_frames = getattr(pil, "n_frames", 1)
            _check_budget(
                path,
                _size_text(width, height, n_frames),
                n_frames * width * height,
                limit,
            )
            if _png_rawmode(pil) in ("RGB;16B", "RGBA;16B", "LA;16B"):
                return _read_png16(path, pil, n_frames)
            if n_frames == 1:
                return _pil_array(pil)
            return _pil_frames(path, pil, n_frames)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _png_rawmode(pil) -> str | None:
    """How Pillow unpacks a PNG's pixels ("RGB;16B" for 16-bit RGB), else None."""
    if pil.format != "PNG" or not pil.tile:
        return None
    # Pillow >= 11 gives a named tuple; older ones a plain (codec, box, offset,
    # args) tuple.
    args = pil.tile[0][3]
    return args[0] if isinstance(args, tuple) else args


def _pil_array(pil) -> tuple[np.ndarray, int | None]:
    mode = pil.mode
    if mode == "P":
        has_alpha = "transparency" in pil.info or pil.palette.mode == "RGBA"
        pil = pil.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        pil = pil.convert("RGBA")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        pil = pil.convert("L" if mode == "1" else "RGB")
    image = np.asarray(pil)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    return image, (None if image.ndim == 2 else -1)


def _pil_frames(path: Path, pil, n_frames: int) -> tuple[np.ndarray, int | None]:
    """Every frame as one (frames, H, W, C) stack; RGB unless a frame has alpha."""
    frames = []
    for i in range(n_frames):
        pil.seek(i)
        frames.append(np.asarray(pil.convert("RGBA")))
    if len({f.shape for f in frames}) > 1:
        pil.seek(0)
        warnings.warn(
            f"{path} holds {n_frames} frames of different sizes; read only the first.",
            stacklevel=3,
        )
        return _pil_array(pil)
    stack = np.stack(frames)
    if (stack[..., 3] == 255).all():
        stack = np.ascontiguousarray(stack[..., :3])
    return stack, -1


def _read_png16(path: Path, pil, n_frames: int) -> tuple[np.ndarray, int | None]:
    """A 16-bit RGB, RGBA or grey+alpha PNG with its 16 bits (Pillow keeps 8)."""
    width, height = pil.size
    data = path.read_bytes()
    ctype, interlace = data[25], data[28]  # IHDR colour type and interlace method
    if interlace or n_frames > 1:
        warnings.warn(
            f"{path} is a 16-bit {'interlaced ' if interlace else 'animated '}PNG; "
            "read as 8 bits per channel (the first frame). Save it as a 16-bit TIFF "
            "to keep every bit.",
            stacklevel=3,
        )
        return _pil_array(pil)
    channels = {2: 3, 4: 2, 6: 4}[ctype]
    stride = width * channels * 2
    expected = height * (stride + 1)
    idat, pos = [], 8
    while pos + 8 <= len(data):
        length, tag = struct.unpack(">I4s", data[pos : pos + 8])
        if tag == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        elif tag == b"IEND":
            break
        pos += 12 + length
    # max_length bounds the output to the declared size, whatever the stream holds.
    raw = zlib.decompressobj().decompress(b"".join(idat), expected)
    if len(raw) < expected:
        raise ImageFileError(
            f"{path}: the PNG is truncated ({len(raw):,} of {expected:,} bytes of "
            "pixel data)."
        )
    rows = _unfilter(np.frombuffer(raw, np.uint8), height, stride, channels * 2)
    if rows is None:
        raise ImageFileError(f"{path}: the PNG is damaged (unknown row filter).")
    image = rows.view(">u2").astype(np.uint16).reshape(height, width, channels)
    if channels == 2:  # grey + alpha: RGBA, as Pillow gives for 8-bit LA files
        image = np.concatenate(
            [np.repeat(image[..., :1], 3, axis=-1), image[..., 1:]], -1
        )
    return image, -1


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray | None:
    """PNG rows with their filters undone; None for an unknown filter type."""
    out = np.empty((height, stride), np.uint8)
    return out if _unfilter_kernel()(raw, out, bpp) else None


@functools.cache
def _unfilter_kernel():
    # Compiled on first use: only 16-bit PNGs need it, and importing numba for
    # every file would slow the header check that must answer within a second.
    import numba

    @numba.njit(cache=True, nogil=True)
    def unfilter(raw, out, bpp):  # pragma: no cover - compiled
        height, stride = out.shape
        for y in range(height):
            base = y * (stride + 1)
            kind = raw[base]
            if kind > 4:
                return False
            for x in range(stride):
                v = np.int32(raw[base + 1 + x])
                a = np.int32(out[y, x - bpp]) if x >= bpp else np.int32(0)
                b = np.int32(out[y - 1, x]) if y > 0 else np.int32(0)
                c = np.int32(out[y - 1, x - bpp]) if y > 0 and x >= bpp else np.int32(0)
                if kind == 1:
                    v += a
                elif kind == 2:
                    v += b
                elif kind == 3:
                    v += (a + b) // 2
                elif kind == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    if pa <= pb and pa <= pc:
                        v += a
                    elif pb <= pc:
                        v += b
                    else:
                        v += c
                out[y, x] = v & 0xFF
        return True

    return unfilter
