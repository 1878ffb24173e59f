"""Rate and distortion of the files we write, beside pngquant's and Pillow's.

For every photo of a folder and k = 16, 64, 256 (no dithering anywhere):

* **ours**: ``quantize(image, k)``, then the real bytes of the indexed PNG
  (``palette_io.to_png_bytes``), the lossless WebP (``palette_io.to_webp_bytes``) and
  the smallest exact file of the two (both from ``palette_io.file_sizes``);
* **pngquant** ``--nofs --speed 1 K`` (no dithering, its slowest, best setting);
* **Pillow** ``Image.quantize(K, dither=NONE)`` (median cut) saved as an optimised PNG.

PSNR is that of the file read back against the photo. The tables give the means over
the photos of our bytes over the peer's bytes, per format, and the PSNR differences
(ours minus peer, dB). The issue's target is our smallest exact file at no more than
0.85 x pngquant's bytes at equal or higher PSNR.

``--orders`` also measures palette orders for size: the PNG-8 bytes of the same
labels with the palette in frequency order (what ``quantize`` returns), in lightness
order and in a greedy order that puts colours which touch in the image next to each
other; the pixels are the same in all three. For each order it gives the file as
written (rows unfiltered, libdeflate level 9) and, since an order can only matter to
a filter that does arithmetic on the indices, the same rows with PNG's Sub filter.
It also gives the encoder's headroom: unfiltered rows at libdeflate level 12, with
the smallest bit depth and with 8 bits per index.

pngquant is a Debian package: ``apt-get install -y pngquant`` (or ``brew install
pngquant``, or https://pngquant.org).

``--effort max`` measures the writers at their slowest, smallest settings
(``file_sizes(..., effort="max")``: PNG ``optimize="max"``, WebP method 6), the
files ``quantize --effort max`` writes.

Usage::

    python benchmarks/bench_files.py [FOLDER] [--ks 16 64 256] [--limit N]
        [--effort max] [--webp-method M] [--orders] [--per-image]

FOLDER defaults to ``../shared/data/cq100`` beside the repository.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
from _photos import add_folder_argument
from PIL import Image

from napari_kmeans_quantize import palette_io, psnr, quantize


def pngquant(path: Path, k: int, tmp: Path) -> tuple[int, np.ndarray]:
    """Bytes and decoded RGB of ``pngquant --nofs --speed 1 K`` on `path`."""
    out = tmp / f"{path.stem}-{k}.png"
    command = ["pngquant", "--nofs", "--speed", "1", "--force", "--output"]
    subprocess.run(
        [*command, str(out), str(k), str(path)],
        check=True,
        capture_output=True,
    )
    data = out.read_bytes()
    return len(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def pillow(image: np.ndarray, k: int) -> tuple[int, np.ndarray]:
    """Bytes and decoded RGB of Pillow's median cut, no dithering, optimised PNG."""
    quantized = Image.fromarray(image).quantize(k, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    quantized.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    return len(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def lightness_order(palette: np.ndarray) -> np.ndarray:
    """Palette entries from dark to light (Rec. 601 luma)."""
    luma = palette[:, :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.argsort(luma, kind="stable")


def neighbour_order(labels: np.ndarray, k: int) -> np.ndarray:
    """Greedy chain: from the most frequent entry, always the unvisited entry that
    touches the last one most often (horizontal and vertical neighbours)."""
    touch = np.zeros((k, k), dtype=np.int64)
    for a, b in (
        (labels[:, :-1], labels[:, 1:]),
        (labels[:-1, :], labels[1:, :]),
    ):
        np.add.at(touch, (a.ravel(), b.ravel()), 1)
    touch += touch.T
    np.fill_diagonal(touch, -1)
    counts = np.bincount(labels.ravel(), minlength=k)
    order = [int(np.argmax(counts))]
    free = np.ones(k, dtype=bool)
    free[order[0]] = False
    for _ in range(k - 1):
        row = np.where(free, touch[order[-1]], -2)
        best = int(np.argmax(row))
        if row[best] <= 0:  # touches nothing left: the most frequent remaining
            best = int(np.argmax(np.where(free, counts, -1)))
        order.append(best)
        free[best] = False
    return np.array(order)


def reordered(labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The labels with palette entry ``order[i]`` moved to index i."""
    return np.argsort(order).astype(labels.dtype)[labels]


def idat_bytes(labels: np.ndarray, *, bits: int, level: int, sub: bool) -> int:
    """Compressed PNG image data: unfiltered rows, or all rows with the Sub filter."""
    import deflate

    from napari_kmeans_quantize.palette_io import _png_rows

    if not sub:
        return len(deflate.zlib_compress(_png_rows(labels, bits), level))
    lab = labels.astype(np.uint8)
    rows = np.ones((lab.shape[0], lab.shape[1] + 1), dtype=np.uint8)  # filter 1
    rows[:, 1] = lab[:, 0]
    rows[:, 2:] = lab[:, 1:] - lab[:, :-1]  # modulo 256, as PNG's Sub
    return len(deflate.zlib_compress(rows.tobytes(), level))


def _mean(values) -> float:
    return statistics.fmean(values)


def main(argv: list[str] | None = None) -> None:
    """Measure every photo at every k; print per-k tables of means and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_folder_argument(parser, "PNG/JPEG")
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--limit", type=int, default=None, help="photos used")
    parser.add_argument(
        "--webp-method", type=int, default=None, help="libwebp effort 0..6 (default 4)"
    )
    parser.add_argument(
        "--effort",
        choices=["default", "max"],
        default="default",
        help="the writers' effort: max = PNG optimize='max', WebP method 6",
    )
    parser.add_argument(
        "--orders", action="store_true", help="also measure palette orders for size"
    )
    parser.add_argument("--per-image", action="store_true", help="print every photo")
    args = parser.parse_args(argv)
    if shutil.which("pngquant") is None:
        raise SystemExit(
            "pngquant is not installed: apt-get install -y pngquant (Debian/Ubuntu), "
            "brew install pngquant (macOS), or see https://pngquant.org"
        )
    paths = sorted(
        p for p in args.folder.iterdir() if p.suffix.lower() in {".png", ".jpg"}
    )[: args.limit]
    if not paths:
        raise SystemExit(f"no .png or .jpg images in {args.folder}")
    version = subprocess.run(
        ["pngquant", "--version"], capture_output=True, text=True
    ).stdout.strip()
    print(f"{len(paths)} photos from {args.folder}; pngquant {version}; "
          f"effort {args.effort}, WebP method {args.webp_method}")  # fmt: skip

    rows: dict[int, list[dict]] = {k: [] for k in args.ks}
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            image = np.asarray(Image.open(path).convert("RGB"))
            for k in args.ks:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    result = quantize(image, k)
                labels, palette = result.labels, result.palette
                sizes = palette_io.file_sizes(
                    labels, palette, webp_method=args.webp_method, effort=args.effort
                ).sizes
                png, webp = sizes["png"], sizes["webp"]
                smallest = min(png, webp)
                pq_bytes, pq_rgb = pngquant(path, k, Path(tmp))
                pil_bytes, pil_rgb = pillow(image, k)
                row = {
                    "image": path.stem,
                    "png": png,
                    "webp": webp,
                    "smallest": smallest,
                    "psnr": psnr(image, result.image),
                    "pq": pq_bytes,
                    "pq_psnr": psnr(image, pq_rgb),
                    "pil": pil_bytes,
                    "pil_psnr": psnr(image, pil_rgb),
                }
                if args.orders:
                    bits = palette_io.png_bit_depth(len(palette))
                    for name, order in (
                        ("frequency", np.arange(len(palette))),
                        ("lightness", lightness_order(palette)),
                        ("neighbour", neighbour_order(labels, len(palette))),
                    ):
                        lab = reordered(labels, order)
                        row[name] = len(palette_io.to_png_bytes(lab, palette[order]))
                        row[name + "_sub"] = idat_bytes(lab, bits=8, level=9, sub=True)
                    row["idat9"] = idat_bytes(labels, bits=bits, level=9, sub=False)
                    row["idat12"] = idat_bytes(labels, bits=bits, level=12, sub=False)
                    row["idat12_8"] = idat_bytes(labels, bits=8, level=12, sub=False)
                rows[k].append(row)
                if args.per_image:
                    print(
                        f"{path.stem} k={k}: ours PNG {png:,} WebP {webp:,} "
                        f"({row['psnr']:.2f} dB); pngquant {pq_bytes:,} "
                        f"({row['pq_psnr']:.2f} dB); Pillow {pil_bytes:,} "
                        f"({row['pil_psnr']:.2f} dB)",
                        flush=True,
                    )

    print()
    print("Mean over the photos of our bytes / the peer's bytes (lower is smaller),")
    print("and of the PSNR difference ours - peer (dB, higher is better):")
    print()
    print("| k | ours PNG-8 B | ours WebP B | smallest / pngquant | PNG-8 / pngquant "
          "| WebP / pngquant | dPSNR vs pngquant | smallest / Pillow | PNG-8 / Pillow "
          "| dPSNR vs Pillow | target (<= 0.85, dPSNR >= 0) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for k, rs in rows.items():
        small_pq = _mean(r["smallest"] / r["pq"] for r in rs)
        d_pq = _mean(r["psnr"] - r["pq_psnr"] for r in rs)
        worst_d = min(r["psnr"] - r["pq_psnr"] for r in rs)
        met = small_pq <= 0.85 and d_pq >= 0
        print(
            f"| {k} | {_mean(r['png'] for r in rs):,.0f} "
            f"| {_mean(r['webp'] for r in rs):,.0f} "
            f"| **{small_pq:.3f}** | {_mean(r['png'] / r['pq'] for r in rs):.3f} "
            f"| {_mean(r['webp'] / r['pq'] for r in rs):.3f} | {d_pq:+.2f} "
            f"| {_mean(r['smallest'] / r['pil'] for r in rs):.3f} "
            f"| {_mean(r['png'] / r['pil'] for r in rs):.3f} "
            f"| {_mean(r['psnr'] - r['pil_psnr'] for r in rs):+.2f} "
            f"| {'met' if met else 'NOT met'} (smallest/pngquant per photo "
            f"{min(r['smallest'] / r['pq'] for r in rs):.3f}-"
            f"{max(r['smallest'] / r['pq'] for r in rs):.3f}; "
            f"worst dPSNR {worst_d:+.2f}) |"
        )
    print()
    print("Mean bytes: | k | ours smallest | pngquant | Pillow | "
          "ours PSNR | pngquant PSNR | Pillow PSNR |")  # fmt: skip
    for k, rs in rows.items():
        print(
            f"| {k} | {_mean(r['smallest'] for r in rs):,.0f} "
            f"| {_mean(r['pq'] for r in rs):,.0f} | {_mean(r['pil'] for r in rs):,.0f} "
            f"| {_mean(r['psnr'] for r in rs):.2f} "
            f"| {_mean(r['pq_psnr'] for r in rs):.2f} "
            f"| {_mean(r['pil_psnr'] for r in rs):.2f} |"
        )
    if args.orders:
        print()
        print("Palette order for size: mean PNG-8 file bytes of the same pixels, "
              "change against frequency order; Sub filter columns: image data bytes "
              "against the unfiltered image data")  # fmt: skip
        print()
        print("| k | frequency B | lightness | neighbour | frequency, Sub filter "
              "| lightness, Sub | neighbour, Sub |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for k, rs in rows.items():
            base = _mean(r["frequency"] for r in rs)
            base_sub = _mean(r["frequency_sub"] for r in rs)
            data = _mean(r["idat9"] for r in rs)  # Sub columns: image data only

            def change(key: str, ref: float, rs=rs) -> str:
                return f"{100 * (_mean(r[key] for r in rs) / ref - 1):+.2f} %"

            print(
                f"| {k} | {base:,.0f} | {change('lightness', base)} "
                f"| {change('neighbour', base)} | {base_sub:,.0f} "
                f"({change('frequency_sub', data)}) "
                f"| {change('lightness_sub', data)} | {change('neighbour_sub', data)} |"
            )
        print()
        print("Encoder headroom (image data bytes, frequency order): change against "
              "the written rows (level 9, smallest bit depth)")  # fmt: skip
        print()
        print("| k | level 9 B | level 12 | level 12, 8 bits per index |")
        print("|---:|---:|---:|---:|")
        for k, rs in rows.items():
            base = _mean(r["idat9"] for r in rs)
            print(
                f"| {k} | {base:,.0f} "
                f"| {100 * (_mean(r['idat12'] for r in rs) / base - 1):+.2f} % "
                f"| {100 * (_mean(r['idat12_8'] for r in rs) / base - 1):+.2f} % |"
            )


if __name__ == "__main__":
    main()
