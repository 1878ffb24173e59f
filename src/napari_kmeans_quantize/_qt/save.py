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
#: The file type of a channel result (e.g. fluorescence), whose palette entries
#: are no colours a palette file holds: the labels as a grey TIFF with the exact
#: palette as CSV beside it, both written atomically.
CHANNEL_FORMATS = (
    ("labels TIFF + CSV", (".tif", ".tiff"), palette_io.write_labels_tiff),
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


def writer_for(path: str | os.PathLike, formats: tuple = FORMATS) -> tuple[str, Any]:
    """(format name, palette_io writer) for the extension of `path`, among
    `formats` (those of a colour result by default, or ``CHANNEL_FORMATS``).

    Raises
    ------
    ValueError
        For an extension no writer has.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    for name, extensions, write in formats:
        if ext in extensions:
            return name, write
    known = ", ".join(e for _, exts, _ in formats for e in exts)
    names = ", ".join(name for name, _, _ in formats)
    raise ValueError(
        f"Cannot save {os.fspath(path)!r}: the file name must end in one of {known} "
        f"({names})."
    )


def save_iter(
    path: str,
    labels: Any,
    palette: np.ndarray,
    channel_names: list[str] | None = None,
):
    """Write a result's labels and palette to `path` (a generator, for a worker).

    With `channel_names` (a channel result) the labels go to a TIFF and the
    palette, its columns so named, to the CSV beside it (``CHANNEL_FORMATS``).
    Returns ``(path, format name, bytes written)``, the bytes of every file
    written. Lazy labels are computed here, in the worker; the files are written
    atomically by :mod:`.palette_io`.
    """
    channels = channel_names is not None
    name, write = writer_for(path, CHANNEL_FORMATS if channels else FORMATS)
    yield 0.0
    array = np.asarray(labels)
    yield 0.5
    if channels:
        files = write(path, array, palette, channel_names=list(channel_names))
        name = f"{name}, the palette in {files[1]!r}"
    else:
        files = (write(path, array, palette),)
    yield 1.0
    return files[0], name, sum(os.path.getsize(f) for f in files)


def file_filter(default: str, formats: tuple = FORMATS) -> tuple[str, str]:
    """The dialog's file-type list and the entry for `default` (a format name)."""
    entries = {
        name: f"{name} (" + " ".join(f"*{e}" for e in exts) + ")"
        for name, exts, _ in formats
    }
    return ";;".join(entries.values()), entries[default]


def ask_save_path(
    parent: Any, suggested: str, default_format: str, formats: tuple = FORMATS
) -> str | None:
    """Ask for a file name with Qt's save dialog (among `formats`); None when
    cancelled."""
    from qtpy.QtWidgets import QFileDialog

    filters, selected = file_filter(default_format, formats)
    path, chosen = QFileDialog.getSaveFileName(
        parent, "Save the quantised result", suggested, filters, selected
    )
    if not path:
        return None
    if not os.path.splitext(path)[1]:
        ext = next(exts[0] for name, exts, _ in formats if chosen.startswith(name))
        path += ext
    return path


def channel_names(outcome: Any) -> list[str] | None:
    """The channels' names of a channel result (saved as ``CHANNEL_FORMATS``);
    None for a colour or grey result."""
    source = getattr(outcome, "source", None)
    channels = getattr(source, "channels", None)
    return None if channels is None else [c.name for c in channels]


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
    outcome, _source, name = current
    names = channel_names(outcome)
    writer_for(path, FORMATS if names is None else CHANNEL_FORMATS)
    path = os.fspath(path)
    args = (path, outcome.result.labels, outcome.result.palette, names)
    return args, f"Saving {name!r} to {path!r}..."


def ask_result_path(parent: Any, current: Any) -> str | None:
    """Ask where to save the shown result, offering the file type that holds it."""
    outcome, _source, name = current
    if channel_names(outcome) is not None:
        format_name, extensions, _ = CHANNEL_FORMATS[0]
        return ask_save_path(parent, name + extensions[0], format_name, CHANNEL_FORMATS)
    file = outcome.file
    ext = file.extension if file is not None else ".png"
    return ask_save_path(parent, name + ext, file.format if file else "indexed PNG")
