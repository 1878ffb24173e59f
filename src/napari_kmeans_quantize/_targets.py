"""The command line's output files: which format an extension means, and every
check a target needs before any work starts (folder, extension, the input file,
read-only files, what the format can hold), then the writes themselves."""

from __future__ import annotations

import errno
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import palette_io
from ._atomic import atomic_write, check_target, is_read_only


@dataclass(frozen=True)
class IndexedFormat:
    """An indexed (palette) file format the CLI writes with ``quantize --out``."""

    name: str
    #: ``write(path, labels, palette) -> str``, atomic.
    write: Callable[..., str]
    max_colors: int
    #: Largest width or height the format can store (None: no limit of its own).
    max_side: int | None
    #: How many leading (stack) axes it holds: 0 for one 2-D image, 1 for the
    #: frames of an animation, None for any number (pages of a TIFF).
    stack_axes: int | None


_png = palette_io.MAX_PNG_COLORS
_tiff = palette_io.MAX_TIFF_COLORS

#: The indexed formats by extension: a new format is one entry here. PNG and GIF
#: given a stack write an animation (APNG, animated GIF; 2-D bytes as before).
INDEXED_FORMATS: dict[str, IndexedFormat] = {
    ".png": IndexedFormat("PNG", palette_io.write_apng, _png, 2**31 - 1, 1),
    ".apng": IndexedFormat("APNG", palette_io.write_apng, _png, 2**31 - 1, 1),
    ".gif": IndexedFormat("GIF", palette_io.write_animated_gif, _png, 65535, 1),
    ".webp": IndexedFormat("WebP", palette_io.write_webp, _tiff, 16383, 0),
    ".tif": IndexedFormat("TIFF", palette_io.write_palette_tiff, _tiff, None, None),
    ".tiff": IndexedFormat("TIFF", palette_io.write_palette_tiff, _tiff, None, None),
}


# Largest width or height Pillow's encoders store, for --rgb-out.
_PILLOW_MAX_SIDE = {"JPEG": 65535, "GIF": 65535, "WEBP": 16383, "PNG": 2**31 - 1}


def indexed_format(path: Path, k: int) -> IndexedFormat:
    """The indexed format of `path` by its extension, checked to hold k colours."""
    fmt = INDEXED_FORMATS.get(path.suffix.lower())
    if fmt is None:
        names = ", ".join(INDEXED_FORMATS)
        raise ValueError(
            f"cannot tell the format of {str(path)!r}: use a {names} file name for "
            "--out."
        )
    if k > fmt.max_colors:
        raise ValueError(
            f"{fmt.name} holds at most {fmt.max_colors} colours, k = {k}; write a "
            "palette TIFF (--out FILE.tif) for more."
        )
    return fmt


def rgb_format(path: Path) -> str:
    """Pillow's format name for an ordinary image file, by its extension."""
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(
            f"cannot tell an image format to write from the extension of "
            f"{str(path)!r}: use e.g. .png, .jpg, .tif or .webp."
        )
    return fmt


def check_output(path: Path, *, inputs: tuple[Path, ...] = (), force: bool) -> None:
    """Refuse, before any work, a target that cannot or should not be written:
    a missing folder, a folder, a name too long, the input file or a read-only
    file (the last two unless `force`)."""
    check_target(path, replace_read_only=True)
    if not force:
        for source in inputs:
            if same_file(path, source):
                raise ValueError(
                    f"{path} is the input image: writing it would replace the "
                    "original; choose another output name, or add --force to "
                    "replace it."
                )
        if is_read_only(path):
            raise PermissionError(
                errno.EACCES,
                "read-only file; add --force to replace it (it stays read-only)",
                str(path),
            )


def check_distinct(*paths: Path) -> None:
    """Refuse two outputs of one run that are the same file."""
    seen: dict[str, Path] = {}
    for p in paths:
        key = os.path.normcase(os.path.abspath(p))
        if key in seen or any(same_file(p, q) for q in seen.values()):
            raise ValueError(
                f"{p} is named twice as an output; give each its own name."
            )
        seen[key] = p


def check_indexed_fits(
    path: Path, fmt: IndexedFormat, image: np.ndarray, channel_axis: int | None
) -> None:
    """Refuse an image the indexed format cannot hold (a stack, too wide)."""
    shape = _plane_shape(image, channel_axis)
    stack = shape[:-2]
    if fmt.stack_axes == 0 and math.prod(stack) > 1:
        raise ValueError(
            f"{path}: {fmt.name} holds one image, and the input is a stack of "
            f"{math.prod(stack)} planes (shape {image.shape}); write a "
            f"multi-page palette TIFF ({path.with_suffix('.tif').name}) or an "
            f"animation ({path.with_suffix('.png').name}) instead."
        )
    if fmt.stack_axes is not None and len(stack) > max(fmt.stack_axes, 1):
        raise ValueError(
            f"{path}: {fmt.name} holds one axis of frames, and the input has "
            f"{len(stack)} stack axes (shape {image.shape}); write a multi-page "
            f"palette TIFF ({path.with_suffix('.tif').name}) instead."
        )
    _check_sides(path, fmt.name, shape, fmt.max_side)


def check_channels_fit(
    path: Path,
    fmt: IndexedFormat,
    image: np.ndarray,
    channel_axis: int | None,
    *,
    plain: bool,
) -> bool:
    """Whether the image's channels are colours (grey, RGB, RGBA) that an indexed
    palette holds (not when `plain`: the file or the user says they are plain
    channels); channels that are not can only go to a TIFF (the labels, with the
    palette as CSV beside it): a ValueError says so for other formats."""
    n_channels = 1 if channel_axis is None else image.shape[channel_axis]
    if n_channels == 1 or (not plain and n_channels in (3, 4)):
        return True
    if fmt.name == "TIFF":
        return False
    plain = "plain " if n_channels in (3, 4) else ""
    raise ValueError(
        f"{path}: {n_channels} {plain}channels have no colours for a {fmt.name} "
        f"palette; write --out {path.with_suffix('.tif').name} (the labels as a "
        "TIFF, the palette as a CSV beside it)."
    )


def check_rgb_fits(
    path: Path, fmt: str, image: np.ndarray, channel_axis: int | None
) -> None:
    """Refuse an image Pillow's `fmt` encoder cannot hold: its mode or its size."""
    from PIL import Image

    shape = _plane_shape(image, channel_axis)
    n_channels = 1 if channel_axis is None else image.shape[channel_axis]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(n_channels, "RGB")
    try:
        Image.new(mode, (1, 1)).save(io.BytesIO(), format=fmt)
    except (OSError, ValueError, KeyError) as err:
        hint = " (or drop the alpha channel)" if mode == "RGBA" else ""
        raise ValueError(
            f"{path}: {fmt} cannot hold this {mode} image ({err}); use a .png "
            f"file for --rgb-out{hint}."
        ) from None
    _check_sides(path, fmt, shape, _PILLOW_MAX_SIDE.get(fmt))
    if math.prod(shape[:-2]) > 1:
        warnings.warn(
            f"{path} holds the first plane of the {math.prod(shape[:-2])}-plane "
            "stack only.",
            stacklevel=2,
        )


def write_indexed(
    path: Path,
    fmt: IndexedFormat,
    labels: np.ndarray,
    palette: np.ndarray,
    image: np.ndarray,
    *,
    effort: str = "default",
) -> str:
    """Write labels and palette in `fmt`, the palette scaled for the file as
    :func:`file_palette` says for the quantised `image`; ``effort="max"`` with
    the encoder's slowest, smallest settings."""
    options = _MAX_EFFORT.get(fmt.name, {}) if effort == "max" else {}
    return fmt.write(path, labels, file_palette(palette, image), **options)


# The writers' options for --effort max (the formats not named have none).
_MAX_EFFORT: dict[str, dict] = {
    "PNG": {"optimize": "max"},
    "APNG": {"optimize": "max"},
    "WebP": {"method": 6},
}


def write_result(
    path: Path,
    fmt: IndexedFormat,
    result,
    image: np.ndarray,
    *,
    colors: bool,
    effort: str = "default",
) -> tuple[str, str | None]:
    """Write a quantize result to `path`; returns the file and, for channels that
    are no colours (`colors` False: the labels as a TIFF), the palette CSV."""
    if not colors:
        return palette_io.write_labels_tiff(path, result.labels, result.palette)
    written = write_indexed(
        path, fmt, result.labels, result.palette, image, effort=effort
    )
    _warn_if_dark(result.palette, fmt.name)
    return written, None


def _warn_if_dark(palette: np.ndarray, fmt: str) -> None:
    """Say so when an 8-bit file will show a 16-bit image far darker than it is."""
    if fmt == "TIFF" or palette.dtype != np.uint16:
        return
    top = int(palette.max())
    if top < 65535 // 8:
        warnings.warn(
            f"the palette only reaches {top} of uint16's 65535 (12-bit data?), "
            f"and {fmt} palettes hold 8 bits scaled from the full range, so the file "
            "looks dark; --out FILE.tif keeps the 16-bit values exactly.",
            stacklevel=3,
        )


def file_palette(palette: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The palette as a file stores it, by the range of the image it came from.

    Integers and floats in [0, 1] (scikit-image's convention) are kept; other
    floats become 8-bit values: kept as they are when the image lies in [0, 255]
    (a float copy of an 8-bit image), else stretched from the image's range. A
    note says which.
    """
    pal = np.asarray(palette)
    if pal.dtype.kind != "f" or pal.size == 0:
        return pal
    lo, hi = float(np.min(image)), float(np.max(image))
    if lo >= 0 and hi <= 1:
        return pal
    if lo >= 0 and hi <= 255:
        how = "written as 8-bit values (rounded)"
    else:
        how = f"stretched from [{lo:g}, {hi:g}] to 0..255 for the file"
    warnings.warn(
        f"the image holds floats in [{lo:g}, {hi:g}], not [0, 1]: its colours are "
        f"{how}.",
        stacklevel=3,
    )
    return _floats_to_uint8(pal, lo, hi)


def display_uint8(arr: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """An 8-bit (H, W[, C]) array for writing or showing: first plane of stacks."""
    a = np.asarray(arr)
    if channel_axis is not None:
        a = np.moveaxis(a, channel_axis, -1)
        while a.ndim > 3:
            a = a[0]
    else:
        while a.ndim > 2:
            a = a[0]
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "u":
        return np.rint(a / np.iinfo(a.dtype).max * 255).astype(np.uint8)
    if a.dtype.kind == "f":
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 1:
            return _floats_to_uint8(a * 255, 0, 255)
        return _floats_to_uint8(a, lo, hi)
    return np.clip(a, 0, 255).astype(np.uint8)


def _floats_to_uint8(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Floats outside [0, 1] as 8-bit values: 0..255 data kept as it is (a float
    copy of an 8-bit image), anything else stretched from its own range."""
    if lo < 0 or hi > 255:
        a = (a - lo) * (255 / max(hi - lo, 1e-12))
    return np.rint(np.clip(a, 0, 255)).astype(np.uint8)


def save_rgb(path: Path, arr: np.ndarray, channel_axis: int | None) -> str:
    """Save an image as an ordinary (8-bit per channel) file, atomically."""
    from PIL import Image

    pil = Image.fromarray(display_uint8(arr, channel_axis))
    fmt = rgb_format(Path(path))
    return atomic_write(path, lambda f: pil.save(f, format=fmt, optimize=True))


def write_text(path: Path, text: str) -> str:
    """Write a UTF-8 text file, atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def _plane_shape(image: np.ndarray, channel_axis: int | None) -> tuple[int, ...]:
    shape = list(image.shape)
    if channel_axis is not None:
        del shape[channel_axis]
    return tuple(shape)


def _check_sides(
    path: Path, fmt: str, shape: tuple[int, ...], max_side: int | None
) -> None:
    height, width = shape[-2], shape[-1]
    if max_side is not None and max(height, width) > max_side:
        raise ValueError(
            f"{path}: {fmt} stores at most {max_side:,} pixels a side, the image is "
            f"{width:,} x {height:,}; write a .tif file instead."
        )


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
