"""npe2 writer commands: save a Labels layer as an indexed PNG or APNG, a GIF (animated
for stacks), a lossless WebP or a palette TIFF.

napari offers these in *File > Save Selected Layers...* for a Labels layer (and to
``viewer.layers.save(path, plugin="napari-kmeans-quantize")``). They work for any
Labels layer, not only the plugin's own: the palette is built from the colours napari
draws for the labels present: a ``DirectLabelColormap`` gives its ``color_dict``
colours (with its default colour for labels it does not list, and napari's
transparent background), any other label colormap its ``map(values)``. Layer opacity and blending are display settings
and are not saved. The file itself is written by :mod:`.palette_io` (smallest bit
depth, optimised, atomic).

**Indices.** The pixel values in the file are the label values when these all lie in
0..255 (0..65535 for TIFF and WebP): a layer made by the plugin (labels 0..k-1) reads
back as its labels and its palette. Labels outside that range but with at most 256
distinct values are renumbered 0..n-1 in ascending order. Palette entries
for values that do not occur are opaque black; they change nothing in the image.

**What each format holds.**

* PNG (``.png``, ``.apng``): at most 256 distinct labels, full per-entry alpha; one
  2-D image, or a ``(frames, H, W)`` stack as an animated PNG with one palette.
* GIF: at most 256 distinct labels, at most one fully transparent colour and no
  partial transparency; a ``(frames, H, W)`` stack becomes an animated GIF with one
  global colour table.
* WebP: the colours of one 2-D image, lossless (WebP stores colours, not indices).
* TIFF: label values 0..65535, any number of planes (an N-D layer becomes a
  multi-page TIFF). TIFF palettes have no alpha, so colours are stored without it
  (napari's "transparent" background becomes black).

Animations show each frame for ``metadata["frame_durations_ms"]`` (one number per
frame, as the plugin's reader records it; 100 ms without it) and play
``metadata["loop"]`` times (0 = for ever, the default).

Leading axes of length 1 are dropped; multiscale layers are written at full
resolution (level 0).

**When a layer does not fit** (too many labels, too many axes, partial
transparency for GIF, ...) the writer warns with the reason and returns an empty
list, as npe2 asks of writers. It does not raise a ValueError, because napari turns a
ValueError from a writer into a misleading "not a valid writer" message; the save
dialog shows the warning's text in its error message instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import palette_io

__all__ = [
    "write_apng",
    "write_indexed_gif",
    "write_indexed_png",
    "write_labels_with_csv",
    "write_palette_tiff",
    "write_webp",
]

# format -> (most axes, or None for any; most label values; alpha kept)
_HOLDS: dict[str, tuple[int | None, int, bool]] = {
    "indexed PNG": (3, palette_io.MAX_PNG_COLORS, True),
    "APNG": (3, palette_io.MAX_PNG_COLORS, True),
    "GIF": (3, palette_io.MAX_PNG_COLORS, True),
    "WebP": (2, palette_io.MAX_TIFF_COLORS, True),
    "palette TIFF": (None, palette_io.MAX_TIFF_COLORS, False),
}
_ANIMATED = {"indexed PNG", "APNG", "GIF"}


class _CannotWrite(ValueError):
    """The layer's data does not fit the format (reported, not raised)."""


def write_indexed_png(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer as an indexed (palette) PNG; a stack as an animated PNG.

    Parameters
    ----------
    path : str
        Target file path.
    data : array_like
        The layer's labels (or a list of levels for a multiscale layer).
    meta : dict
        The layer's metadata from ``layer.as_layer_data_tuple()``; its
        ``colormap`` gives the colours.

    Returns
    -------
    paths : list of str
        ``[path]``, or ``[]`` (with a warning saying why) when the layer does not
        fit an indexed PNG.
    """
    return _write(path, data, meta, "indexed PNG", palette_io.write_apng)


def write_apng(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer (a ``(frames, H, W)`` stack) as an animated PNG.

    One palette for all frames; a 2-D layer gives an ordinary indexed PNG.
    Parameters and return value as :func:`write_indexed_png`.
    """
    return _write(path, data, meta, "APNG", palette_io.write_apng)


def write_indexed_gif(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer as a GIF (<= 256 colours, binary transparency only).

    A ``(frames, H, W)`` stack becomes an animated GIF with one global colour
    table. Parameters and return value as :func:`write_indexed_png`.
    """
    return _write(path, data, meta, "GIF", palette_io.write_animated_gif)


def write_webp(path: str, data: Any, meta: dict) -> list[str]:
    """Save the colours of a 2-D Labels layer as a lossless WebP.

    Parameters and return value as :func:`write_indexed_png`.
    """
    return _write(path, data, meta, "WebP", palette_io.write_webp)


def write_palette_tiff(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer as a palette-colour TIFF (multi-page for N-D layers).

    Label values 0..65535 are kept as the pixel values (8-bit when all are below
    256). Colours are stored without alpha. Parameters and return value as
    :func:`write_indexed_png`.
    """
    return _write(path, data, meta, "palette TIFF", palette_io.write_palette_tiff)


def write_labels_with_csv(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer as a grey TIFF of its labels plus its palette as CSV.

    For multichannel results: the CSV (``<stem>_palette.csv`` beside the TIFF)
    holds every cluster's channel values exactly, taken from the layer's
    ``metadata["palette"]`` (the plugin's layers; ``channel_names`` there name
    the columns); any other Labels layer gets the RGBA colours napari draws.
    Parameters as :func:`write_indexed_png`.

    Returns
    -------
    paths : list of str
        The TIFF and the CSV, or ``[]`` with a warning when the layer does not
        fit.

    Raises
    ------
    OSError
        If either file cannot be written; a read-only CSV (napari's dialog asks
        about the TIFF only) is refused before the TIFF is written
        (:func:`.palette_io.write_labels_tiff` checks both first).
    """
    extra = meta.get("metadata") or {}

    def write(target: str, labels: np.ndarray, palette: np.ndarray) -> list[str]:
        own = extra.get("palette")
        names = None
        if own is not None and len(own) >= len(palette):
            palette, names = np.asarray(own), extra.get("channel_names")
        return list(
            palette_io.write_labels_tiff(target, labels, palette, channel_names=names)
        )

    return _write(path, data, meta, "palette TIFF", write, name="labels TIFF + CSV")


def _animation_options(meta: dict, labels: np.ndarray) -> dict[str, Any]:
    """Frame times and loop count recorded in the layer's metadata, if they fit."""
    recorded = meta.get("metadata") or {}
    duration = recorded.get("frame_durations_ms", 100)
    n_frames = labels.shape[0] if labels.ndim == 3 else 1
    if np.ndim(duration) == 1:
        # Times recorded for another number of frames are not this layer's.
        duration = list(duration) if len(duration) == n_frames else 100
    return {"duration": duration, "loop": recorded.get("loop", 0)}


def _write(
    path: str, data: Any, meta: dict, fmt: str, write: Any, name: str | None = None
) -> list[str]:
    layer = meta.get("name") or "labels"
    try:
        labels, palette = _labels_and_palette(data, meta, fmt)
        options = _animation_options(meta, labels) if fmt in _ANIMATED else {}
        written = write(path, labels, palette, **options)
    except ValueError as err:  # includes _CannotWrite and palette_io's checks
        warnings.warn(
            f"napari-kmeans-quantize cannot save layer {layer!r} as {name or fmt}: "
            f"{err}",
            UserWarning,
            stacklevel=3,
        )
        return []
    return written if isinstance(written, list) else [written]


def _labels_and_palette(
    data: Any, meta: dict, fmt: str
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, uint8 palette) for `fmt` from a Labels layer's data and meta."""
    if meta.get("multiscale") or isinstance(data, list | tuple):
        data = data[0]  # multiscale: the full-resolution level
    labels = np.asarray(data)
    colormap = meta.get("colormap")
    if colormap is None or not hasattr(colormap, "map"):
        raise _CannotWrite(
            "the layer has no label colormap to take the palette from (expected "
            "a napari DirectLabelColormap)."
        )
    if labels.dtype.kind not in "uib":
        raise _CannotWrite(f"labels must be integers, got dtype {labels.dtype}.")
    while labels.ndim > 2 and labels.shape[0] == 1:
        labels = labels[0]
    most_axes, limit, alpha = _HOLDS[fmt]
    if most_axes is not None and labels.ndim > most_axes:
        holds = (
            "one 2-D image"
            if most_axes == 2
            else "a 2-D image or a (frames, height, width) stack"
        )
        raise _CannotWrite(
            f"{fmt} holds {holds}, but the layer has shape {labels.shape}. Save it "
            "as a palette TIFF (.tif) for a multi-page file"
            + (", as an animated PNG (.apng)" if most_axes == 2 else "")
            + ", or save one plane at a time."
        )
    if labels.size == 0:
        raise _CannotWrite("the layer is empty.")
    values = np.unique(labels)
    lo, hi = int(values[0]), int(values[-1])
    if lo >= 0 and hi < limit:
        # Label values are the indices.
        indices = labels.astype(np.uint8 if hi < 256 else np.uint16, copy=False)
        n_entries, rows = hi + 1, values
    elif len(values) <= palette_io.MAX_PNG_COLORS:
        # Renumber the distinct values 0..n-1 in ascending order.
        indices = np.searchsorted(values, labels).astype(np.uint8)
        n_entries, rows = len(values), np.arange(len(values))
    elif limit > palette_io.MAX_PNG_COLORS:
        raise _CannotWrite(
            f"{fmt} stores label values 0 to {limit - 1}, but the layer has "
            f"values from {lo} to {hi}."
        )
    else:
        raise _CannotWrite(
            f"it has {len(values)} distinct labels, and {fmt} palettes hold at most "
            f"{limit} colours. Use a palette TIFF (.tif) for up to 65536."
        )
    colors = _label_colors(colormap, values)
    palette = np.zeros((n_entries, 4), dtype=np.uint8)
    palette[:, 3] = 255  # unused entries: opaque black
    palette[rows] = palette_io.palette_to_uint8(np.clip(colors, 0.0, 1.0))
    if not alpha or (palette[:, 3] == 255).all():
        palette = np.ascontiguousarray(palette[:, :3])
    return indices, palette


def _label_colors(colormap: Any, values: np.ndarray) -> np.ndarray:
    """(n, 4) RGBA floats of the label values, as napari colours them.

    A direct colormap is read from its ``color_dict`` (missing labels take its
    default colour; napari has already put the transparent background in the dict),
    which works for label values of any size and ignores the display-only "show
    selected label" mode. Other label colormaps are asked through ``map``.
    """
    color_dict = getattr(colormap, "color_dict", None)
    if color_dict is not None:
        default = colormap.default_color
        colors = [color_dict.get(int(v), default) for v in values]
    else:
        colors = colormap.map(values)
    return np.asarray(colors, dtype=np.float64).reshape(-1, 4)
