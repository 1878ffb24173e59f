"""The ``demo`` and ``sweep`` commands: a table over k, and with a folder the
images, indexed files, tables, plot and contact sheet."""

from __future__ import annotations

import argparse
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _targets
from ._atomic import atomic_write
from ._input import read_source


def run_sweep(args: argparse.Namespace) -> int:
    """``sweep IMAGE``: the table for the user's image (and its files with --out)."""
    if args.out is not None:
        _check_sweep_folder(args.out, args.ks, inputs=(args.image,), force=args.force)
    read = read_source(
        args.image,
        pixel_limit=args.pixel_limit,
        channel_axis=args.channel_axis,
        plain_channels=args.plain_channels,
    )
    code = _sweep_and_report(
        read.image,
        channel_axis=read.channel_axis,
        colors=read.colors,
        name=str(args.image),
        source_bytes=args.image.stat().st_size,
        out=args.out,
        ks=args.ks,
        color_space=args.color_space,
        workers=args.workers,
        targets={"max_ciede2000": args.max_ciede2000, "min_psnr": args.min_psnr},
        data_range=args.data_range,
    )
    return code


# --- the sweep and its files ---------------------------------------------------------

_SWEEP_FILES = (
    "original.png",
    "table.md",
    "table.csv",
    "plot.png",
    "contact_sheet.png",
)


def _sweep_file_names(ks: list[int]) -> list[str]:
    """Every name the sweep's files may take (an indexed file is a PNG for one
    plane of up to 256 colours, else a palette TIFF; plain channels' labels are
    a TIFF with the palette as CSV beside it)."""
    names = list(_SWEEP_FILES)
    for k in sorted(set(ks)):
        names += [f"k{k:03d}_quantized.png", f"k{k:03d}_indexed.png"]
        names.append(f"k{k:03d}_indexed.tif")
        names.append(f"k{k:03d}_indexed_palette.csv")
    return names


def _check_sweep_folder(
    out: Path, ks: list[int], *, inputs: tuple[Path, ...] = (), force: bool
) -> None:
    """Refuse, before any work, an output folder whose files cannot be written."""
    if not out.exists():
        # Created when the files are written; its nearest existing folder must
        # take it.
        parent = next(p for p in out.absolute().parents if p.exists())
        if not parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "is not a folder", str(parent))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(
                errno.EACCES, "no permission to create a folder in it", str(parent)
            )
        return
    if not out.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            "exists and is not a folder; give a folder for --out",
            str(out),
        )
    for name in _sweep_file_names(ks):
        _targets.check_output(out / name, inputs=inputs, force=force)


def run_demo(args: argparse.Namespace) -> int:
    """``demo``: the sweep of a photo bundled with scikit-image, and its files."""
    from skimage import data

    _check_sweep_folder(args.out, args.ks, force=args.force)
    image = getattr(data, args.sample)()
    print(
        f"Quantising scikit-image's {args.sample!r} photo "
        f"({image.shape[0]} x {image.shape[1]}, height x width) at k = "
        f"{', '.join(map(str, sorted(set(args.ks))))} ..."
    )
    return _sweep_and_report(
        image,
        channel_axis=-1,
        name=f"scikit-image data.{args.sample}()",
        source_bytes=None,
        out=args.out,
        ks=args.ks,
        color_space=args.color_space,
        workers=args.workers,
    )


def _sweep_and_report(
    image: np.ndarray,
    *,
    channel_axis: int | None,
    colors: bool = True,
    name: str,
    source_bytes: int | None,
    out: Path | None,
    ks: list[int],
    color_space: str,
    workers: int | None,
    targets: dict[str, float | None] | None = None,
    data_range: float | None = None,
) -> int:
    from .sweep import sweep

    if out is not None:
        print(f"Writing into {out.resolve()}")
    t0 = time.perf_counter()
    table = sweep(
        image,
        ks,
        channel_axis=channel_axis,
        color_space=color_space,
        alpha=colors,
        source_bytes=source_bytes,
        keep_results=out is not None,
        workers=workers,
        data_range=data_range,
    )
    sweep_seconds = time.perf_counter() - t0
    preface = _preface(table, name)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write_files(out, table, image, channel_axis, preface, workers, colors)
    print()
    print("\n".join(preface))
    print()
    print(table.to_markdown())
    print()
    print(
        f"{len(table)} k values in {sweep_seconds:.1f} s; ratio = raw "
        f"{table.bits_per_pixel}-bit image bytes / indexed PNG bytes."
    )
    if targets and any(v is not None for v in targets.values()):
        row = table.smallest_k(**targets)
        wanted = ", ".join(
            f"{'mean CIEDE2000 <=' if key == 'max_ciede2000' else 'PSNR >='} {v:g}"
            for key, v in targets.items()
            if v is not None
        )
        if row is None:
            print(f"No k in {table.ks} reaches {wanted}.")
        else:
            print(f"Smallest k reaching {wanted}: k = {row.k}.")
    if out is not None:
        print(f"Files written to {out.resolve()}")
    return 0


def _preface(table: Any, name: str) -> list[str]:
    from .metrics import describe_shape

    shape = describe_shape(table.shape)
    lines = [
        f"Image: {name}, {shape}, {table.n_distinct:,} distinct colours.",
        f"Raw size: {table.original_bits:,} bits ({table.original_bits // 8:,} bytes)"
        f" at {table.bits_per_pixel} bits per pixel."
        + (
            f" Source file: {table.source_bytes:,} bytes."
            if table.source_bytes is not None
            else ""
        ),
        "Formula bits = H*W*ceil(log2 k) + k*"
        f"{table.bits_per_pixel} (the indices plus the palette, uncompressed); "
        "PNG bytes = the real "
        "indexed PNG (smallest bit depth, optimised).",
    ]
    return lines


def _write_files(
    out: Path,
    table: Any,
    image: np.ndarray,
    channel_axis: int | None,
    preface: list[str],
    workers: int | None = None,
    colors: bool = True,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from . import palette_io

    plain = not colors and channel_axis is not None and image.shape[channel_axis] > 1
    draw = _drawing(image, channel_axis, plain)

    def indexed(row: Any, result: Any) -> str:
        stem = f"k{row.k:03d}_indexed"
        if plain:
            # As ``quantize`` writes them: plain channels have no palette colours.
            tiff, _ = palette_io.write_labels_tiff(
                out / f"{stem}.tif", result.labels, result.palette
            )
            return tiff
        if result.n_colors <= palette_io.MAX_PNG_COLORS and result.labels.ndim == 2:
            path = out / f"{stem}.png"
        else:
            path = out / f"{stem}.tif"
        fmt = _targets.INDEXED_FORMATS[path.suffix]
        return _targets.write_indexed(path, fmt, result.labels, result.palette, image)

    # The encoders (zlib) release the GIL: write the files in parallel threads.
    n_threads = workers or min(4, os.cpu_count() or 1)
    pairs = list(zip(table.rows, table.results, strict=True))
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        original_job = pool.submit(_save_drawn, out / "original.png", image, draw)
        rgb_jobs = {
            row.k: pool.submit(
                _save_drawn, out / f"k{row.k:03d}_quantized.png", result.image, draw
            )
            for row, result in pairs
        }
        jobs = [pool.submit(indexed, row, result) for row, result in pairs]
        jobs.append(
            pool.submit(
                _save_contact_sheet, out / "contact_sheet.png", table, image, draw
            )
        )
        try:
            _save_plot(out / "plot.png", table)
            for job in jobs:
                job.result()
            original_bytes = os.path.getsize(original_job.result())
            rgb_sizes = {k: os.path.getsize(j.result()) for k, j in rgb_jobs.items()}
        except BaseException:
            # One failed write (a full disk) stops the files not yet started.
            pool.shutdown(cancel_futures=True)
            raise

    lines = ["# K-means colour quantisation over k", "", *preface, ""]
    lines.append(
        f"The original saved as an ordinary PNG (`original.png`) takes "
        f"{original_bytes:,} bytes."
    )
    lines += ["", table.to_markdown(), ""]
    lines += [
        "## Indexed PNG against the same quantised image saved as an ordinary PNG",
        "",
        "| k | indexed PNG bytes | ordinary PNG bytes | indexed / ordinary | "
        "indexed / original PNG |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in table.rows:
        if row.png_bytes is None:
            continue
        lines.append(
            f"| {row.k} | {row.png_bytes:,} | {rgb_sizes[row.k]:,} | "
            f"{row.png_bytes / rgb_sizes[row.k]:.1%} | "
            f"{row.png_bytes / original_bytes:.1%} |"
        )
    _targets.write_text(out / "table.md", "\n".join(lines) + "\n")
    _targets.write_text(out / "table.csv", table.to_csv())


def _save_plot(path: Path, table: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .sweep import plot_sweep

    ax = plot_sweep(table)
    atomic_write(path, lambda f: ax.figure.savefig(f, format="png", dpi=120))


# The colours napari gives channel layers (``add_image(channel_axis=)``):
# magenta and green for two channels, else cyan, yellow, magenta, red, green and
# blue in turn.
_TWO_CHANNELS = ((1, 0, 1), (0, 1, 0))
_CHANNEL_COLORS = ((0, 1, 1), (1, 1, 0), (1, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1))


def _drawing(
    image: np.ndarray, channel_axis: int | None, plain: bool
) -> Callable[[np.ndarray], np.ndarray]:
    """How the image and its quantised forms are drawn as 8-bit pictures: their
    colours as they are, or plain channels each scaled from the original's own
    range, coloured and added up, as napari shows them."""
    if not plain or channel_axis is None:
        return lambda arr: _targets.display_uint8(arr, channel_axis)
    axis = channel_axis % image.ndim
    others = tuple(i for i in range(image.ndim) if i != axis)
    lo = np.min(image, axis=others).astype(np.float64)
    span = np.max(image, axis=others) - lo
    span = np.where(span > 0, span, 1.0)
    n = len(lo)
    cycle = _TWO_CHANNELS if n == 2 else _CHANNEL_COLORS
    mix = np.array([cycle[i % len(cycle)] for i in range(n)], np.float64)

    def draw(arr: np.ndarray) -> np.ndarray:
        a = np.moveaxis(np.asarray(arr), axis, -1)
        while a.ndim > 3:
            a = a[0]
        rgb = np.clip((a - lo) / span, 0, 1) @ mix
        return np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)

    return draw


def _save_drawn(
    path: Path, arr: np.ndarray, draw: Callable[[np.ndarray], np.ndarray]
) -> str:
    picture = draw(arr)
    return _targets.save_rgb(path, picture, None if picture.ndim == 2 else -1)


def _save_contact_sheet(
    path: Path,
    table: Any,
    image: np.ndarray,
    draw: Callable[[np.ndarray], np.ndarray],
    tile: int = 384,
) -> None:
    """Original and every k side by side, each tile captioned with k, size, quality."""
    from PIL import Image, ImageDraw, ImageFont

    def to_pil(arr: np.ndarray) -> Image.Image:
        pil = Image.fromarray(draw(arr))
        if max(pil.size) > tile:
            scale = tile / max(pil.size)
            size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
            pil = pil.resize(size, Image.Resampling.LANCZOS)
        return pil.convert("RGBA")

    tiles = [(to_pil(image), "original")]
    for row, result in zip(table.rows, table.results, strict=True):
        size = "n/a" if row.png_bytes is None else f"{row.png_bytes / 1024:,.1f} KiB"
        de = "" if row.ciede2000 is None else f", dE {row.ciede2000:.1f}"
        psnr = "inf" if row.psnr == float("inf") else f"{row.psnr:.1f}"
        tiles.append((to_pil(result.image), f"k={row.k}: {size}, {psnr} dB{de}"))
    font = ImageFont.load_default(size=16)
    cols = 3
    rows = -(-len(tiles) // cols)
    tw = max(t.width for t, _ in tiles)
    th = max(t.height for t, _ in tiles)
    caption, pad = 26, 6
    sheet = Image.new(
        "RGB", (cols * (tw + pad) + pad, rows * (th + caption + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for i, (pil, text) in enumerate(tiles):
        x = pad + (i % cols) * (tw + pad)
        y = pad + (i // cols) * (th + caption + pad)
        sheet.paste(pil, (x, y), pil)
        draw.text((x + 2, y + th + 4), text, fill="black", font=font)
    atomic_write(path, lambda f: sheet.save(f, format="PNG"))
