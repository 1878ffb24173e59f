"""Which file holds a result, its real size, and writing it.

The rules here import no Qt (the size is measured in the worker that computes the
result); only :func:`ask_save_path` and :func:`confirm_replace` open dialogs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .. import palette_io


class SaveFormat(NamedTuple):
    """A file type Save offers: the dialog's filter entry, the button's tooltip and
    the writer all come from it."""

    name: str
    extensions: tuple[str, ...]
    write: Callable[..., Any]
    #: What `write` puts beside the file it is given, each a function of that
    #: file's path (palette_io's own rule), so that a save asks before replacing
    #: any of them.
    beside: tuple[Callable[[str], str], ...] = ()
    note: str = ""


#: The file types a result saves to; the first is the default for one 2-D plane.
FORMATS = (
    SaveFormat(
        "indexed PNG", (".png",), palette_io.write_apng, note="a stack: animated"
    ),
    SaveFormat(
        "palette GIF",
        (".gif",),
        palette_io.write_animated_gif,
        note="a stack: animated",
    ),
    SaveFormat(
        "palette TIFF",
        (".tif", ".tiff"),
        palette_io.write_palette_tiff,
        note="a stack: multi-page",
    ),
    SaveFormat("animated PNG", (".apng",), palette_io.write_apng),
    SaveFormat(
        "lossless WebP", (".webp",), palette_io.write_webp, note="one plane only"
    ),
)
#: The file type of a channel result (e.g. fluorescence), whose palette entries
#: are no colours a palette file holds: the labels as a grey TIFF with the exact
#: palette as CSV beside it, each written atomically.
CHANNEL_FORMATS = (
    SaveFormat(
        "labels TIFF + CSV",
        (".tif", ".tiff"),
        palette_io.write_labels_tiff,
        beside=(palette_io.palette_csv_path,),
        note="(the CSV holds the exact channel values)",
    ),
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


def format_of(path: str | os.PathLike, formats: tuple = FORMATS) -> SaveFormat:
    """The entry of `formats` (those of a colour result by default, or
    ``CHANNEL_FORMATS``) for the extension of `path`.

    Raises
    ------
    ValueError
        For an extension no writer has.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    for fmt in formats:
        if ext in fmt.extensions:
            return fmt
    known = ", ".join(e for fmt in formats for e in fmt.extensions)
    names = ", ".join(fmt.name for fmt in formats)
    raise ValueError(
        f"Cannot save {os.fspath(path)!r}: the file name must end in one of {known} "
        f"({names})."
    )


def writer_for(path: str | os.PathLike, formats: tuple = FORMATS) -> tuple[str, Any]:
    """(format name, palette_io writer) for the extension of `path` (see
    :func:`format_of`)."""
    fmt = format_of(path, formats)
    return fmt.name, fmt.write


def files_written(path: str | os.PathLike, formats: tuple = FORMATS) -> tuple[str, ...]:
    """Every file a save to `path` writes: `path`, then those its format writes
    beside it (a labels TIFF's palette CSV).

    Raises
    ------
    ValueError
        For an extension no writer has.
    """
    path = os.fspath(path)
    return (path, *(beside(path) for beside in format_of(path, formats).beside))


def _identity(path: str) -> tuple[int, int, int] | None:
    """What tells the file at `path` from the one an atomic write puts there."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _half_written(files: tuple[str, ...], before: list, err: OSError) -> OSError:
    """`err`, or when some of `files` were written before it, an error naming
    those written and those not (each write is atomic, the set of them is not)."""
    written = [f for f, old in zip(files, before, strict=True) if _identity(f) != old]
    if not written:
        return err
    missing = [f for f in files if f not in written]
    return OSError(
        f"{', '.join(map(repr, written))} was written but {', '.join(map(repr, missing))}"
        f" was not ({err}); save again to write them all."
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
    atomically by :mod:`.palette_io`, which checks every one of them first (a
    read-only CSV is refused before the TIFF is written).
    """
    channels = channel_names is not None
    formats = CHANNEL_FORMATS if channels else FORMATS
    fmt = format_of(path, formats)
    files = files_written(path, formats)
    yield 0.0
    array = np.asarray(labels)
    yield 0.5
    options = {"channel_names": list(channel_names)} if channels else {}
    before = [_identity(file) for file in files]
    try:
        fmt.write(path, array, palette, **options)
    except OSError as err:
        raise _half_written(files, before, err) from err
    yield 1.0
    name = fmt.name
    if len(files) > 1:
        name += ", with " + ", ".join(map(repr, files[1:])) + " beside it"
    return files[0], name, sum(os.path.getsize(f) for f in files)


def _filter_entries(formats: tuple) -> dict[str, str]:
    return {
        fmt.name: f"{fmt.name} (" + " ".join(f"*{e}" for e in fmt.extensions) + ")"
        for fmt in formats
    }


def file_filter(default: str, formats: tuple = FORMATS) -> tuple[str, str]:
    """The dialog's file-type list and the entry for `default` (a format name)."""
    entries = _filter_entries(formats)
    return ";;".join(entries.values()), entries[default]


def confirm_replace(parent: Any, files: tuple[str, ...], existing: list[str]) -> bool:
    """Ask whether to replace the `existing` ones of the `files` a save writes."""
    from qtpy.QtWidgets import QMessageBox

    def names(paths):
        quoted = [repr(os.path.basename(p)) for p in paths]
        return " and ".join(
            [", ".join(quoted[:-1]), quoted[-1]] if quoted[1:] else quoted
        )

    verb = "exists" if len(existing) == 1 else "exist"
    text = (
        f"Saving writes {names(files)} in {os.path.dirname(files[0])!r}.\n\n"
        f"{names(existing)} already {verb}. Replace {'it' if verb == 'exists' else 'them'}?"
    )
    yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
    return QMessageBox.question(parent, "Replace?", text, yes | no, no) == yes


def ask_save_path(
    parent: Any, suggested: str, default_format: str, formats: tuple = FORMATS
) -> str | None:
    """Ask for a file name with Qt's save dialog (among `formats`); None when
    cancelled.

    One question covers every file the save would replace (:func:`files_written`,
    not only the one named); No goes back to the dialog.
    """
    from qtpy.QtWidgets import QFileDialog

    filters, selected = file_filter(default_format, formats)
    while True:
        path, selected = QFileDialog.getSaveFileName(
            parent,
            "Save the quantised result",
            suggested,
            filters,
            selected,
            QFileDialog.Option.DontConfirmOverwrite,
        )
        if not path:
            return None
        if not os.path.splitext(path)[1]:
            path += next(
                f.extensions[0] for f in formats if selected.startswith(f.name)
            )
        try:
            files = files_written(path, formats)
        except ValueError:  # Save refuses it with the known extensions
            return path
        existing = [f for f in files if os.path.lexists(f)]
        if not existing or confirm_replace(parent, files, existing):
            return path
        suggested = path


def channel_names(outcome: Any) -> list[str] | None:
    """The channels' names of a channel result (saved as ``CHANNEL_FORMATS``);
    None for a colour or grey result."""
    source = getattr(outcome, "source", None)
    channels = getattr(source, "channels", None)
    return None if channels is None else [c.name for c in channels]


def formats_of(outcome: Any) -> tuple[SaveFormat, ...]:
    """The file types a result saves to: ``CHANNEL_FORMATS`` for a channel
    result, else ``FORMATS``."""
    return FORMATS if channel_names(outcome) is None else CHANNEL_FORMATS


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
    format_of(path, formats_of(outcome))
    path = os.fspath(path)
    args = (path, outcome.result.labels, outcome.result.palette, channel_names(outcome))
    return args, f"Saving {name!r} to {path!r}..."


def _default_format(current: Any) -> tuple[tuple, SaveFormat, str]:
    """(formats, the default one, its suggested file name) of the shown result."""
    outcome, _source, name = current
    formats = formats_of(outcome)
    file = outcome.file if formats is FORMATS else None
    default = file.format if file is not None else formats[0].name
    fmt = next(f for f in formats if f.name == default)
    ext = file.extension if file is not None else fmt.extensions[0]
    return formats, fmt, name + ext


def ask_result_path(parent: Any, current: Any) -> str | None:
    """Ask where to save the shown result, offering the file type that holds it."""
    formats, fmt, suggested = _default_format(current)
    return ask_save_path(parent, suggested, fmt.name, formats)


def save_tooltip(current: Any) -> str:
    """The Save button's tooltip: the file types the shown result `current`
    saves to (those the dialog offers) and the files each writes."""
    if current is None:
        return "Nothing to save yet: run a quantisation first."
    formats, default, suggested = _default_format(current)
    entries = _filter_entries(formats)
    stem = os.path.splitext(suggested)[0]

    def describe(fmt: SaveFormat) -> str:
        files = files_written(stem + fmt.extensions[0], formats)
        if len(files) == 1:
            return entries[fmt.name] + (f"; {fmt.note}" if fmt.note else "")
        # a line each: plain-text tooltips do not wrap
        lines = [f"writes {f!r}" for f in files] + ([fmt.note] if fmt.note else [])
        return entries[fmt.name] + ":" + "".join(f"\n    {line}" for line in lines)

    if len(formats) == 1:
        return f"Save {current[2]!r} as {describe(formats[0])}"
    return "\n".join(
        [
            f"Save {current[2]!r}; the file name's extension picks the type",
            f"(the dialog starts on {default.name}):",
            *(f"• {describe(fmt)}" for fmt in formats),
        ]
    )
