"""Floyd-Steinberg dithering of a 12-megapixel photo: ours against Pillow's.

Both dither the same uint8 RGB image onto the same palette (``quantize(image,
k).palette``) at k = 16, 64 and 256:

* ours: ``error_diffusion_iter(image, palette)`` drained (what ``error_diffusion``
  does), serpentine Floyd-Steinberg with the exact nearest colour at every step;
* Pillow: ``Image.quantize(palette=pal_image, dither=Image.Dither.FLOYDSTEINBERG)``
  (the palette padded to 256 entries with copies of its first colour).

Times are interleaved in one run (the order alternates every repeat) and the
median is quoted, with the ratio, since the machine may be shared; so is the
median CPU time of the process (``time.process_time``), which a busy machine
inflates less than the wall time. Peak extra
memory is measured in a child process per case (Linux): the peak RSS is reset
before the call (after a warm-up call on a small image) and the RSS before the
call is subtracted from the peak after it, so every allocation counts, Pillow's C
heap included. PSNR is against the original photo. The longest
gap between two progress reports of ours is printed too (the widget's Cancel and
progress bar depend on it).

Usage::

    python benchmarks/bench_dither.py [--image PATH] [--repeat R] [--md FILE]

Without ``--image`` the photo is scikit-image's astronaut resized (bicubic) to
4000 x 3000; a given image is resized to 4000 x 3000 too.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from napari_kmeans_quantize import psnr, quantize
from napari_kmeans_quantize.dither import error_diffusion_iter

SIZE = (4000, 3000)  # width, height: 12 megapixels
KS = (16, 64, 256)


def photo(path: str | None) -> np.ndarray:
    source = (
        Image.open(path).convert("RGB") if path else Image.fromarray(data.astronaut())
    )
    return np.asarray(source.resize(SIZE, Image.Resampling.BICUBIC))


def ours(image: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, float]:
    """Labels and the longest gap in seconds between two progress reports."""
    steps = error_diffusion_iter(image, palette)
    gap, last = 0.0, time.perf_counter()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value, max(gap, time.perf_counter() - last)
        now = time.perf_counter()
        gap, last = max(gap, now - last), now


def pillow_palette(palette: np.ndarray) -> Image.Image:
    padded = np.concatenate([palette, np.repeat(palette[:1], 256 - len(palette), 0)])
    pal_image = Image.new("P", (1, 1))
    pal_image.putpalette(padded.astype(np.uint8).ravel().tolist())
    return pal_image


def pillow(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    out = Image.fromarray(image).quantize(
        palette=pillow_palette(palette), dither=Image.Dither.FLOYDSTEINBERG
    )
    return np.asarray(out)


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, the peak resident set size.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(method: str, image_file: str, palette_file: str) -> None:
    """Print the peak extra bytes of one call (run in a fresh process)."""
    image, palette = np.load(image_file), np.load(palette_file)
    run = {
        "ours": lambda im: ours(im, palette)[0],
        "pillow": lambda im: pillow(im, palette),
    }[method]
    run(image[:64, :64].copy())  # load compiled kernels, Pillow's codecs
    _reset_peak_rss()
    before = _rss_kib("VmRSS")
    run(image)
    print((_rss_kib("VmHWM") - before) * 1024)


def peak_extra(method: str, image_file: str, palette_file: str) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, image_file, palette_file],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="photo to resize to 12 MP (default: astronaut)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--md", help="write the table to this Markdown file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    image = photo(args.image)
    megapixels = image.shape[0] * image.shape[1] / 1e6
    print(
        f"image {image.shape} uint8, {megapixels:.1f} MP, {image.nbytes / 2**20:.0f} MiB"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        image_file = str(Path(tmp) / "image.npy")
        np.save(image_file, image)
        for k in KS:
            palette = quantize(image, k).palette
            palette_file = str(Path(tmp) / "palette.npy")
            np.save(palette_file, palette)
            pal = palette.astype(np.float64)
            ours(image[:64, :64], pal)  # compiled code loaded before timing
            times = {"ours": [], "pillow": []}
            cpu = {"ours": [], "pillow": []}
            gaps = []
            for rep in range(args.repeat):
                order = ("ours", "pillow") if rep % 2 == 0 else ("pillow", "ours")
                for method in order:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    if method == "ours":
                        labels, gap = ours(image, pal)
                        gaps.append(gap)
                    else:
                        pil_labels = pillow(image, palette)
                    times[method].append(time.perf_counter() - start)
                    cpu[method].append(time.process_time() - start_cpu)
            padded = np.asarray(pillow_palette(palette).getpalette(), np.uint8)
            row = {
                "k": k,
                "ours_s": statistics.median(times["ours"]),
                "pillow_s": statistics.median(times["pillow"]),
                "ours_cpu": statistics.median(cpu["ours"]),
                "pillow_cpu": statistics.median(cpu["pillow"]),
                "gap_s": max(gaps),
                "ours_mem": peak_extra("ours", image_file, palette_file),
                "pillow_mem": peak_extra("pillow", image_file, palette_file),
                "ours_psnr": psnr(image, palette[labels]),
                "pillow_psnr": psnr(image, padded.reshape(-1, 3)[pil_labels]),
            }
            rows.append(row)
            print(_line(row, image.nbytes), flush=True)
    if args.md:
        write_md(Path(args.md), rows, image, args)
        print(f"table written to {args.md}")


def _line(row: dict, input_bytes: int) -> str:
    return (
        f"k={row['k']:>3}  ours {row['ours_s']:.3f} s  Pillow {row['pillow_s']:.3f} s  "
        f"ours/Pillow {row['ours_s'] / row['pillow_s']:.2f}  "
        f"(CPU s: ours {row['ours_cpu']:.3f}, Pillow {row['pillow_cpu']:.3f})  "
        f"peak extra: ours {row['ours_mem'] / 2**20:.0f} MiB "
        f"({row['ours_mem'] / input_bytes:.2f}x input), "
        f"Pillow {row['pillow_mem'] / 2**20:.0f} MiB  "
        f"PSNR ours {row['ours_psnr']:.2f} dB, Pillow {row['pillow_psnr']:.2f} dB  "
        f"longest progress gap {row['gap_s']:.3f} s"
    )


def write_md(path: Path, rows: list[dict], image: np.ndarray, args) -> None:
    source = f"`{args.image}`" if args.image else "scikit-image's astronaut"
    lines = [
        "# Dithering benchmark",
        "",
        f"Produced by `python benchmarks/bench_dither.py --md {path.as_posix()}` "
        f"on {os.cpu_count()} cores ({platform.platform()}; load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; "
        f"numpy {np.__version__}, Pillow {Image.__version__}, "
        f"python {platform.python_version()}).",
        "",
        f"Input: {source} resized (bicubic) to {image.shape[1]} x {image.shape[0]} "
        f"uint8 RGB ({image.nbytes / 2**20:.0f} MiB). Palette: "
        "`quantize(image, k).palette`. Both sides dither that image onto that "
        "palette with Floyd-Steinberg; medians of "
        f"{args.repeat} interleaved runs. Peak extra memory: peak RSS minus RSS "
        "before the call (peak reset first), in a fresh process per case. "
        "The machine is a shared 2-core one, loaded by other jobs while this ran "
        "(see the load average): wall times are inflated and noisy, so read the "
        "ratios and the CPU times.",
        "",
        "| k | ours (s) | Pillow (s) | ours / Pillow | ours CPU (s) | Pillow CPU (s) | "
        "ours peak extra | "
        "Pillow peak extra | PSNR ours (dB) | PSNR Pillow (dB) | "
        "longest progress gap (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['k']} | {r['ours_s']:.3f} | {r['pillow_s']:.3f} | "
            f"{r['ours_s'] / r['pillow_s']:.2f} | "
            f"{r['ours_cpu']:.3f} | {r['pillow_cpu']:.3f} | "
            f"{r['ours_mem'] / 2**20:.0f} MiB ({r['ours_mem'] / image.nbytes:.2f}x input) | "
            f"{r['pillow_mem'] / 2**20:.0f} MiB ({r['pillow_mem'] / image.nbytes:.2f}x) | "
            f"{r['ours_psnr']:.2f} | {r['pillow_psnr']:.2f} | {r['gap_s']:.3f} |"
        )
    lines += [
        "",
        "Ours diffuses the error in float64 along serpentine rows and takes the exact "
        "nearest palette colour (squared RGB distance) at every pixel, from a grid "
        "over the palette's bounding box that lists the candidates of every cell. "
        "The kernel reads uint8 rows as they are (no float64 copy) and writes the "
        "error sent to the next row as it goes (no second pass over each row). The "
        "labels it returns are uint8 for k <= 256 (one byte per pixel, a third of "
        "the input).",
        "",
    ]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)


if __name__ == "__main__":
    main()
