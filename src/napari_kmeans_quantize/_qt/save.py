"""Which file holds a result, its real size, and writing it.

The rules here import no Qt (the size is measured in the worker that computes the
result); only :func:`ask_save_path` opens a dialog.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import palette_io

#: The file types a result saves to: (name, extensions, writer), the first is the
#: default for one 2-D plane. PNG and GIF save a stack as an animation (frames
#: along the first axis); WebP holds one plane.
FORMATS = (
    ("indexed PNG", (".png",), palette_io.write_apng),
    ("palette GIF", (".gif",), palette_io.write_animated_gif),
    ("palette TIFF", (".tif", ".tiff"), palette_io.write_palette_tiff),
    ("animated PNG", (".apng",), palette_io.write_apng),
    ("lossless WebP", (".webp",), palette_io.write_webp),
)


@dataclass(frozen=True)
class ResultFile:
    """The file type that holds a result and its real size.

    Attributes
    ----------
    format : str
        "indexed PNG" or "palette TIFF" (multi-page for a stack).
    extension : str
        ".png" or ".tif".
    n_bytes : int or None
        The encoded size; None when it was not measured (lazy data) or no format
        holds the result (then `why` says why).
    why : str
        Why the PNG does not hold it, or why no size is given ("" otherwise).
    """

    format: str
    extension: str
    n_bytes: int | None
    why: str = ""


def planes(labels: Any) -> tuple[int, ...]:
    """The labels' shape with leading axes of length 1 dropped (as the writers do)."""
    shape = tuple(int(n) for n in np.shape(labels))
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]
    return shape


def format_for(
    labels: Any, palette: np.ndarray, png_bytes: int | None, lazy: bool
) -> tuple[str, str, str]:
    """(format, extension, why not PNG) of the file type that holds a result.

    One 2-D plane whose palette fits an indexed PNG (`png_bytes` measured, or for
    lazy data at most 256 colours) is a PNG; a stack, or a palette a PNG cannot
    hold, is a palette TIFF.
    """
    if len(planes(labels)) > 2:
        return (
            "palette TIFF",
            ".tif",
            "a stack: the multi-page TIFF keeps every plane (PNG and GIF save one "
            "axis of frames as an animation)",
        )
    fits = len(palette) <= 256 if lazy else png_bytes is not None
    if not fits:
        return "palette TIFF", ".tif", "an indexed PNG cannot hold this palette"
    return "indexed PNG", ".png", ""


def result_file(
    labels: Any, palette: np.ndarray, png_bytes: int | None, lazy: bool
) -> ResultFile:
    """The file that holds a result and its real size (encodes it if need be).

    Runs in the worker: a TIFF is encoded here to be measured. Lazy labels are
    never read (their size would need every pixel).
    """
    name, ext, why = format_for(labels, palette, png_bytes, lazy)
    if lazy:
        return ResultFile(name, ext, None, "not measured: it would read every pixel")
    if name == "indexed PNG":
        return ResultFile(name, ext, int(png_bytes), why)
    try:
        n_bytes = len(palette_io.to_tiff_bytes(np.asarray(labels), palette))
    except ValueError as exc:  # e.g. partial transparency, which TIFF cannot hold
        return ResultFile(name, ext, None, str(exc))
    return ResultFile(name, ext, n_bytes, why)


def writer_for(path: str | os.PathLike) -> tuple[str, Any]:
    """(format name, palette_io writer) for the extension of `path`.

    Raises
    ------
    ValueError
        For an extension no writer has.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    for name, extensions, write in FORMATS:
        if ext in extensions:
            return name, write
    known = ", ".join(e for _, exts, _ in FORMATS for e in exts)
    raise ValueError(
        f"Cannot save {os.fspath(path)!r}: the file name must end in one of {known} "
        "(indexed PNG, palette GIF, palette TIFF, animated PNG, lossless WebP)."
    )


def save_iter(path: str, labels: Any, palette: np.ndarray):
    """Write a result's labels and palette to `path` (a generator, for a worker).

    Returns ``(path, format name, bytes written)``. Lazy labels are computed here,
    in the worker; the file is written atomically by :mod:`.palette_io`.
    """
    name, write = writer_for(path)
    yield 0.0
    array = np.asarray(labels)
    yield 0.5
    written = write(path, array, palette)
    yield 1.0
    return written, name, os.path.getsize(written)


def file_filter(default: str) -> tuple[str, str]:
    """The dialog's file-type list and the entry for `default` (a format name)."""
    entries = {
        name: f"{name} (" + " ".join(f"*{e}" for e in exts) + ")"
        for name, exts, _ in FORMATS
    }
    return ";;".join(entries.values()), entries[default]


def ask_save_path(parent: Any, suggested: str, default_format: str) -> str | None:
    """Ask for a file name with Qt's save dialog; None when cancelled."""
    from qtpy.QtWidgets import QFileDialog

    filters, selected = file_filter(default_format)
    path, chosen = QFileDialog.getSaveFileName(
        parent, "Save the quantised result", suggested, filters, selected
    )
    if not path:
        return None
    if not os.path.splitext(path)[1]:
        ext = next(exts[0] for name, exts, _ in FORMATS if chosen.startswith(name))
        path += ext
    return path


def save_job(current: Any, path: str | os.PathLike) -> tuple[tuple, str]:
    """The arguments of :func:`save_iter` for the shown result `current`
    (outcome, source, name) and the status message.

    Raises
    ------
    ValueError
        If there is no result or the extension has no writer (before any work).
    """
    if current is None:
        raise ValueError("Nothing to save yet: run a quantisation first.")
    writer_for(path)
    outcome, _source, name = current
    path = os.fspath(path)
    args = (path, outcome.result.labels, outcome.result.palette)
    return args, f"Saving {name!r} to {path!r}..."


def ask_result_path(parent: Any, current: Any) -> str | None:
    """Ask where to save the shown result, offering the file type that holds it."""
    outcome, _source, name = current
    file = outcome.file
    ext = file.extension if file is not None else ".png"
    return ask_save_path(parent, name + ext, file.format if file else "indexed PNG")
