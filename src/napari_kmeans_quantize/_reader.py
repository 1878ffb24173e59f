"""npe2 reader: open an indexed image file as the labels and palette it holds.

napari's own readers open an indexed PNG, GIF or palette TIFF as plain RGB, so the
palette indices and the palette a quantisation saved are lost. Opened with this
plugin (``viewer.open(path, plugin="napari-kmeans-quantize")``, or the plugin's entry
in napari's reader choice), such a file gives a **Labels layer** of its indices,
coloured with the file's palette through a ``DirectLabelColormap`` (label 0
included), with the palette readout of the plugin's own labels: a ``features`` row
per palette entry (index, hex, R, G, B[, A], count, share %) shown when hovering a
pixel, and ``metadata`` holding ``palette``, ``palette_hex``, ``counts``,
``n_colors`` and the file's format (plus ``frame_durations_ms`` and ``loop`` for an
animation, which the plugin's writers use again). Below the labels comes the image
itself (``palette[labels]``, RGB or RGBA) as an image layer, hidden: tick its eye to
show it. (It is one reader rather than two: npe2 tries the readers of one plugin in
no fixed order, and napari's reader choice lists a plugin once.)

Which files napari offers it (napari.yaml): napari asks which reader to use
whenever two readers' filename patterns match a file, and it never asks the
readers themselves; its own reader claims every PNG, GIF and TIFF. So this reader
claims ``*.apng`` (napari's does not: such files open as labels at once) and the
names this plugin gives its files: ``IMAGE-kK.png`` (command line), ``IMAGE
k=K.png`` (widget) and ``kNNN_indexed.png`` (sweep), likewise for .gif, .tif and
.tiff. Only for those does napari ask (or follow a remembered choice); any other
PNG opens as napari's image without a question, and npe2 does not offer this reader
for it, not even by name.

Files opened: PNG with a palette (colour type 3), animated PNG (each frame a plane
of a ``(frames, H, W)`` layer), GIF (animated or not) and palette-colour TIFF (pages
in the shape tifffile records). For any other file (truecolour or grey PNG, a TIFF
without a colour map, a folder, several paths) the reader returns None, leaving it to
napari's readers.

GIF frames after the first are decoded by Pillow into colours; they are mapped back to
the first palette entry of the same colour (fully transparent pixels to the
transparent entry), which gives the written indices for any palette without repeated
colours. Colours a frame's local colour table adds are appended to the palette.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["IndexedFile", "get_reader", "read_indexed"]

PLUGIN = "napari-kmeans-quantize"
_PILLOW_SUFFIXES = (".png", ".apng", ".gif")
_TIFF_SUFFIXES = (".tif", ".tiff")

LayerData = list[tuple[Any, dict, str]]


@dataclass(frozen=True)
class IndexedFile:
    """What an indexed file holds: indices, palette, and animation timing."""

    labels: np.ndarray  # (H, W) or (frames / pages..., H, W)
    palette: np.ndarray  # (k, 3) or (k, 4), uint8 (uint16 from a 16-bit TIFF map)
    format: str  # "PNG", "APNG", "GIF" or "TIFF"
    frame_durations_ms: list[int] | None = None
    loop: int | None = None  # plays, 0 = for ever


def get_reader(path: str | list[str]) -> Callable[..., LayerData] | None:
    """npe2 reader: the labels (with their palette) of an indexed image file.

    Parameters
    ----------
    path : str or list of str
        What napari asks to open.

    Returns
    -------
    callable or None
        A function giving the layer data tuples (the hidden RGB(A) image, then the
        labels), or None when `path` is not a single indexed PNG / APNG / GIF /
        palette TIFF.
    """
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | os.PathLike) or not os.path.isfile(path):
        return None
    try:
        indexed = read_indexed(path)
    except (OSError, ValueError, SyntaxError):  # not an image we can read
        return None
    if indexed is None:
        return None

    def read(paths: Any, stack: bool = False) -> LayerData:
        return _layer_data(str(path), indexed)

    return read


def read_indexed(path: str | os.PathLike) -> IndexedFile | None:
    """The indices and palette of an indexed image file (None if it has none).

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, APNG, GIF or TIFF file.

    Returns
    -------
    IndexedFile or None
        None for files without a palette (or of another kind).
    """
    suffix = Path(path).suffix.lower()
    if suffix in _TIFF_SUFFIXES:
        return _read_tiff(path)
    if suffix in _PILLOW_SUFFIXES:
        return _read_pillow(path)
    return None


# --- files -------------------------------------------------------------------------


def _read_pillow(path: str | os.PathLike) -> IndexedFile | None:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode != "P" or im.format not in ("PNG", "GIF"):
            return None
        palette = _pillow_palette(im)
        n_frames = getattr(im, "n_frames", 1)
        frames, durations = [], []
        for i in range(n_frames):
            im.seek(i)
            if im.mode == "P":
                frames.append(np.asarray(im))
            else:
                index, palette = _indices_of_colors(
                    np.asarray(im.convert("RGBA")), palette
                )
                frames.append(index)
            durations.append(int(im.info.get("duration", 0)))
        animated = n_frames > 1
        fmt = "APNG" if im.format == "PNG" and animated else im.format
        loop = im.info.get("loop")
    labels = np.stack(frames) if animated else frames[0]
    if fmt == "GIF":
        # NETSCAPE counts repeats after the first play; no entry means one play.
        loop = 1 if loop is None else (0 if loop == 0 else loop + 1)
        palette = palette[: max(int(labels.max()) + 1, 1)]  # table padding
    if palette.shape[1] == 4 and (palette[:, 3] == 255).all():
        palette = palette[:, :3]
    return IndexedFile(
        labels=labels.astype(np.uint8 if len(palette) <= 256 else np.uint16),
        palette=palette,
        format=fmt,
        frame_durations_ms=durations if animated else None,
        loop=loop if animated else None,
    )


def _pillow_palette(im: Any) -> np.ndarray:
    """(k, 4) uint8 RGBA palette of a Pillow "P" image (tRNS / GIF transparency)."""
    rgb = np.array(im.getpalette(rawmode="RGB"), dtype=np.uint8).reshape(-1, 3)
    alpha = np.full(len(rgb), 255, dtype=np.uint8)
    transparency = im.info.get("transparency")
    if isinstance(transparency, bytes):
        n = min(len(transparency), len(rgb))
        alpha[:n] = np.frombuffer(transparency, dtype=np.uint8)[:n]
    elif isinstance(transparency, int) and 0 <= transparency < len(rgb):
        alpha[transparency] = 0
    return np.column_stack([rgb, alpha])


def _indices_of_colors(
    rgba: np.ndarray, palette: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Palette indices of (H, W, 4) colours: the first entry of each colour.

    Every fully transparent colour counts as one. Colours not in the palette are
    appended to it; returns (indices, palette).
    """

    def codes(colors: np.ndarray) -> np.ndarray:
        c = colors.astype(np.uint32)
        packed = (c[..., 0] << 24) | (c[..., 1] << 16) | (c[..., 2] << 8) | c[..., 3]
        return np.where(c[..., 3] == 0, 0, packed)

    pixel_codes = codes(rgba)
    new = np.setdiff1d(np.unique(pixel_codes), codes(palette))
    if len(new):
        added = np.zeros((len(new), 4), dtype=np.uint8)
        for j in range(4):
            added[:, j] = (new >> np.uint32(8 * (3 - j))) & np.uint32(255)
        palette = np.vstack([palette, added])
    palette_codes = codes(palette)
    order = np.argsort(palette_codes, kind="stable")
    unique, first = np.unique(palette_codes[order], return_index=True)
    where = np.searchsorted(unique, pixel_codes)
    return order[first][where], palette


def _read_tiff(path: str | os.PathLike) -> IndexedFile | None:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        if page.photometric != tifffile.PHOTOMETRIC.PALETTE or page.colormap is None:
            return None
        labels = tif.asarray()
        colormap = np.asarray(page.colormap)
    if labels.dtype.kind != "u" or labels.size == 0:
        return None
    rgb16 = colormap[:, : int(labels.max()) + 1].T
    # The writers store 8-bit colours as v * 257; anything else is a 16-bit map.
    palette = (rgb16 // 257).astype(np.uint8) if not (rgb16 % 257).any() else rgb16
    return IndexedFile(
        labels=labels, palette=np.ascontiguousarray(palette), format="TIFF"
    )


# --- layers ------------------------------------------------------------------------


def _layer_data(path: str, indexed: IndexedFile) -> LayerData:
    from napari.utils.colormaps import DirectLabelColormap

    name = Path(path).stem
    pal = indexed.palette
    full = float(np.iinfo(pal.dtype).max)
    colors = np.ones((len(pal), 4))
    colors[:, : pal.shape[1]] = pal / full
    pal8 = np.rint(colors * 255).astype(int)
    hexes = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b, _ in pal8]
    counts = np.bincount(indexed.labels.ravel(), minlength=len(pal))
    features: dict[str, Any] = {"index": np.arange(len(pal)), "hex": hexes}
    for j, channel in enumerate("RGBA"[: pal.shape[1]]):
        features[channel] = pal[:, j]
    features["count"] = counts
    features["share %"] = np.round(100.0 * counts / max(int(counts.sum()), 1), 2)
    metadata: dict[str, Any] = {
        "plugin": PLUGIN,
        "file": path,
        "file_format": indexed.format,
        "n_colors": len(pal),
        "palette": pal.copy(),
        "palette_hex": hexes,
        "counts": counts,
    }
    if indexed.frame_durations_ms is not None:
        metadata["frame_durations_ms"] = list(indexed.frame_durations_ms)
        metadata["loop"] = indexed.loop
    # Label 0 is listed, so it is drawn in its palette colour, not as background.
    color_dict: dict[int | None, Any] = {
        i: tuple(float(v) for v in c) for i, c in enumerate(colors)
    }
    color_dict[None] = "transparent"
    labels = (
        indexed.labels,
        {
            "name": f"{name} labels",
            "colormap": DirectLabelColormap(color_dict=color_dict),
            "opacity": 1.0,
            "features": features,
            "metadata": metadata,
        },
        "labels",
    )
    image_meta = {
        "name": name,
        "rgb": True,
        "visible": False,
        "metadata": dict(metadata),
    }
    return [(pal[indexed.labels], image_meta, "image"), labels]
