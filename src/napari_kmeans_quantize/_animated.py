"""Animated PNG (APNG) and animated GIF of a label stack, with one global palette.

A time-lapse or a z stack quantised with one palette is a ``(frames, H, W)`` label
array and one palette. Both formats here store exactly that: the palette once (PNG's
``PLTE``/``tRNS``, GIF's global colour table, no per-frame tables) and every frame as
indices. A 2-D label image gives the ordinary single-image file of
:mod:`.palette_io` (``to_png_bytes`` / ``to_gif_bytes``), so one call serves both.

**Frames.** The first axis is the frame axis; leading axes of length 1 are dropped,
and more than three axes are refused (reshape to ``(frames, H, W)`` first, or write a
multi-page palette TIFF). Each frame after the first stores only the smallest
rectangle holding the pixels that changed since the previous frame (drawn over it:
APNG ``dispose_op = NONE, blend_op = SOURCE``; GIF disposal 1), so a still background
costs nothing. An unchanged frame stores one pixel, so the frame count is kept.

**Exact.** Reading frame ``i`` back (``PIL.Image.open(f)``, ``seek(i)``) gives
``palette[labels[i]]``; APNG frames also keep the indices themselves. GIF holds only
binary transparency (one entry with alpha 0, all others 255); with a transparent
entry every GIF frame is stored whole and cleared after it is shown (disposal 2), as
a transparent pixel drawn over an older frame would show the older frame.

**Timing.** `duration` is the time each frame is shown, in milliseconds (one number,
or one per frame), 0 to 65535. GIF counts in hundredths of a second, so its
durations are rounded to the nearest 10 ms. `loop` is how many times the animation
plays, 0 (the default) for ever.

The public home of these functions is :mod:`.palette_io`; files are written
atomically like every other.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Sequence
from typing import IO

import numpy as np

from ._encode import encode, file_form

__all__ = [
    "to_animated_gif_bytes",
    "to_apng_bytes",
    "write_animated_gif",
    "write_apng",
]

_MAX_DURATION_MS = 65535
_Duration = int | Sequence[int]


def to_apng_bytes(
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    duration: _Duration = 100,
    loop: int = 0,
    optimize: bool | str = True,
) -> bytes:
    """Encode a label stack as an animated PNG with one palette, in memory.

    Parameters
    ----------
    labels : (frames, H, W) or (H, W) integer ndarray
        Palette index of every pixel of every frame. A 2-D image gives a plain
        indexed PNG (:func:`~napari_kmeans_quantize.palette_io.to_png_bytes`).
    palette : (k, C) ndarray
        k <= 256 colours, C = 1, 3 or 4 (alpha kept in ``tRNS``).
    duration : int or sequence of int, optional
        Milliseconds each frame is shown (one value per frame, or one for all).
    loop : int, optional
        How many times the animation plays; 0 (default) for ever.
    optimize : bool or "max", optional
        Compress harder (libdeflate level 9 instead of 6; ``"max"``: level 12).

    Returns
    -------
    apng : bytes
        The complete file (PNG signature; ``acTL``, ``fcTL`` and ``fdAT`` chunks).

    Raises
    ------
    ValueError
        If the palette has more than 256 colours, the labels have more than three
        axes or refer to entries outside the palette, or `duration` / `loop` are out
        of range.
    TypeError
        If `labels` is not an integer array.

    Examples
    --------
    >>> from PIL import Image
    >>> frames = np.array([[[0, 1]], [[1, 1]], [[1, 0]]], dtype=np.uint8)
    >>> palette = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    >>> im = Image.open(io.BytesIO(to_apng_bytes(frames, palette, duration=50)))
    >>> im.n_frames, im.info["duration"]
    (3, 50.0)
    """
    return encode(
        _save_apng, *_frames(labels, palette, "APNG", duration, loop), optimize
    )


@file_form(to_apng_bytes)
def write_apng() -> str:
    """Write a label stack as an animated PNG file (atomically).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> frames = np.arange(4, dtype=np.uint8).repeat(15).reshape(4, 3, 5) % 2
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_apng(f"{tmp}/q.png", frames, [[0, 0, 0], [9, 9, 9]])
    ...     Image.open(out).n_frames
    4
    """


def to_animated_gif_bytes(
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    duration: _Duration = 100,
    loop: int = 0,
) -> bytes:
    """Encode a label stack as an animated GIF with one global colour table.

    Parameters
    ----------
    labels : (frames, H, W) or (H, W) integer ndarray
        Palette index of every pixel of every frame. A 2-D image gives a plain GIF
        (:func:`~napari_kmeans_quantize.palette_io.to_gif_bytes`).
    palette : (k, C) ndarray
        k <= 256 colours, C = 1, 3 or 4; at most one entry transparent (alpha 0),
        all others opaque.
    duration : int or sequence of int, optional
        Milliseconds each frame is shown, rounded to 10 ms.
    loop : int, optional
        How many times the animation plays; 0 (default) for ever.

    Returns
    -------
    gif : bytes
        The complete GIF89a file: the global colour table, then every frame.

    Raises
    ------
    ValueError
        As :func:`to_apng_bytes`; also for a palette GIF cannot hold (an entry
        partly transparent, or two transparent entries).
    TypeError
        If `labels` is not an integer array.

    Examples
    --------
    >>> from PIL import Image
    >>> frames = np.array([[[0, 1]], [[1, 1]]], dtype=np.uint8)
    >>> palette = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    >>> Image.open(io.BytesIO(to_animated_gif_bytes(frames, palette))).n_frames
    2
    """
    return encode(save_gif, *_frames(labels, palette, "GIF", duration, loop))


@file_form(to_animated_gif_bytes)
def write_animated_gif() -> str:
    """Write a label stack as an animated GIF file (atomically).

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     target = os.path.join(tmp, "blink.gif")
    ...     blink = np.array([[[0]], [[1]]], dtype=np.uint8)
    ...     _ = write_animated_gif(target, blink, [[0, 0, 0], [255, 255, 255]], loop=3)
    ...     os.listdir(tmp)
    ['blink.gif']
    """


# --- checks ------------------------------------------------------------------------


def _frames(
    labels: np.ndarray,
    palette: np.ndarray,
    fmt: str,
    duration: _Duration,
    loop: int,
) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """(labels, 8-bit palette, per-frame ms, loop) after every check of `fmt`."""
    from ._encode import MAX_PNG_COLORS, check_gif_alpha, prepare

    lab, pal = prepare(labels, palette, fmt=fmt, max_colors=MAX_PNG_COLORS, planes=True)
    if lab.ndim > 3:
        raise ValueError(
            f"an animated {fmt} holds one stack of 2-D frames (frames, height, width), "
            f"got labels of shape {np.shape(labels)}. Reshape them to "
            "(frames, height, width) first, or write a multi-page palette TIFF."
        )
    if fmt == "GIF":
        check_gif_alpha(pal)
    n_frames = lab.shape[0] if lab.ndim == 3 else 1
    if isinstance(duration, int | np.integer):
        durations = [int(duration)] * n_frames
    else:
        durations = [int(d) for d in duration]
        if len(durations) != n_frames:
            raise ValueError(
                f"duration gives {len(durations)} frame times for {n_frames} frames; "
                "give one per frame or a single number."
            )
    if any(not 0 <= d <= _MAX_DURATION_MS for d in durations):
        raise ValueError(
            f"frame durations must lie in 0..{_MAX_DURATION_MS} ms, got "
            f"{min(durations)}..{max(durations)}."
        )
    if not isinstance(loop, int | np.integer) or not 0 <= loop <= 65535:
        raise ValueError(
            f"loop is how many times the animation plays (0 = for ever, at most "
            f"65535), got {loop!r}."
        )
    return lab, pal, durations, int(loop)


def _changed_boxes(lab: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of the pixels each frame changes; frame 0 whole.

    An unchanged frame gets the first pixel, since both formats need a non-empty
    rectangle.
    """
    h, w = lab.shape[1:]
    boxes = [(0, 0, h, w)]
    for prev, cur in itertools.pairwise(lab):
        diff = prev != cur
        rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
        if len(rows) == 0:
            boxes.append((0, 0, 1, 1))
        else:
            boxes.append((rows[0], cols[0], rows[-1] + 1, cols[-1] + 1))
    return boxes


# --- APNG --------------------------------------------------------------------------


def _save_apng(
    fp: IO[bytes],
    lab: np.ndarray,
    pal: np.ndarray,
    durations: list[int],
    loop: int,
    optimize: bool | str,
) -> None:
    import deflate

    from ._encode import (
        png_bit_depth,
        png_level,
        png_rows,
        save_png,
        write_chunk,
        write_png_header,
    )

    if lab.ndim == 2:
        save_png(fp, lab, pal, bits=None, optimize=optimize)
        return
    bits = png_bit_depth(len(pal))
    level = png_level(optimize)
    h, w = lab.shape[1:]
    actl = (b"acTL", struct.pack(">II", len(lab), loop))
    write_png_header(fp, w, h, bits, pal, after_ihdr=(actl,))
    sequence = 0
    for i, (top, left, bottom, right) in enumerate(_changed_boxes(lab)):
        # delay = duration / 1000 s; dispose_op 0 (none), blend_op 0 (source)
        write_chunk(
            fp,
            b"fcTL",
            struct.pack(
                ">IIIIIHHBB",
                sequence,
                right - left,
                bottom - top,
                left,
                top,
                durations[i],
                1000,
                0,
                0,
            ),
        )
        sequence += 1
        data = deflate.zlib_compress(
            png_rows(lab[i, top:bottom, left:right], bits), level
        )
        if i == 0:
            write_chunk(fp, b"IDAT", data)
        else:
            write_chunk(fp, b"fdAT", struct.pack(">I", sequence) + data)
            sequence += 1
    write_chunk(fp, b"IEND", b"")


# --- GIF ---------------------------------------------------------------------------


def save_gif(
    fp: IO[bytes],
    lab: np.ndarray,
    pal: np.ndarray,
    durations: list[int],
    loop: int,
) -> None:
    from ._encode import check_gif_alpha, save_gif, split_alpha

    if lab.ndim == 2:
        save_gif(fp, lab, pal, optimize=True)
        return
    transparent = check_gif_alpha(pal)
    rgb, _ = split_alpha(pal)
    table_bits = max(1, int(len(rgb) - 1).bit_length())
    table = np.zeros((1 << table_bits, 3), dtype=np.uint8)
    table[: len(rgb)] = rgb
    h, w = lab.shape[1:]
    fp.write(b"GIF89a")
    # logical screen: global colour table present, its size, background entry 0
    fp.write(struct.pack("<HHBBB", w, h, 0xF0 | (table_bits - 1), 0, 0))
    fp.write(table.tobytes())
    if loop != 1:
        # NETSCAPE2.0 counts the repeats after the first play; absent = play once.
        repeats = 0 if loop == 0 else loop - 1
        fp.write(
            b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", repeats) + b"\0"
        )
    if transparent is None:
        boxes = _changed_boxes(lab)
        disposal, flags = 1, 0
    else:
        boxes = [(0, 0, h, w)] * len(lab)
        disposal, flags = 2, 1
    for i, (top, left, bottom, right) in enumerate(boxes):
        delay = (durations[i] + 5) // 10  # hundredths of a second
        fp.write(
            struct.pack(
                "<BBBBHBB",
                0x21,
                0xF9,
                4,
                (disposal << 2) | flags,
                delay,
                transparent or 0,
                0,
            )
        )
        fp.write(struct.pack("<BHHHHB", 0x2C, left, top, right - left, bottom - top, 0))
        fp.write(_lzw_data(lab[i, top:bottom, left:right], rgb))
    fp.write(b"\x3b")


def _lzw_data(frame: np.ndarray, rgb: np.ndarray) -> bytes:
    """A frame's GIF image data (LZW code size and sub-blocks), encoded by Pillow.

    Pillow writes the frame as a one-image GIF; its image data is cut out after the
    image descriptor, to sit under this file's own descriptor and global table.
    """
    from ._encode import p_image

    buf = io.BytesIO()
    p_image(frame, rgb).save(buf, format="GIF", optimize=False, interlace=False)
    data = buf.getvalue()
    packed = data[10]
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    while data[pos] == 0x21:  # skip extensions: introducer, label, sub-blocks
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    if data[pos] != 0x2C or data[pos + 9] & 0x80:  # pragma: no cover - Pillow's layout
        raise RuntimeError("unexpected GIF layout from Pillow (local colour table).")
    return data[pos + 10 : -1]  # up to the trailer
