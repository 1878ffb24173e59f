"""Peak extra memory of ``quantize`` on a 12-megapixel uint8 photo, as a multiple
of the input's bytes.

The photo is bench_peers.py's (scikit-image's astronaut upscaled bicubically to
4000 x 3000, plus Gaussian noise of sigma 2). Every k runs in a fresh process
("spawn"): one untimed warm-up call on a 64 x 64 crop (compiles and caches the
kernels), then the kernel's resident-set high-water mark (VmHWM) is reset through
``/proc/self/clear_refs`` and ``quantize(image, k)`` runs once. "Extra" is that
high-water mark minus the resident set just before the call; the result is kept
alive until the peak is read, so it counts (image and labels: 4 bytes a pixel,
1.33x the input). The target is extra / input at most 4.

Usage::

    python benchmarks/bench_memory.py [--ks 16,64,256] [--md benchmarks/MEMORY.md]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from bench_peers import (
    _current_rss,
    _proc_status_kb,
    _reset_high_water_mark,
    make_large_photo,
)

MB = 1e6
TARGET = 4.0


def _child(path: str, k: int, warm: int, conn) -> None:
    from napari_kmeans_quantize import quantize

    image = np.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize(np.ascontiguousarray(image[:warm, :warm]), min(k, 16))
    before = _current_rss()
    if not _reset_high_water_mark():
        conn.send(None)
        return
    start = time.perf_counter()
    result = quantize(image, k)
    seconds = time.perf_counter() - start
    peak = _proc_status_kb("VmHWM")
    conn.send((image.nbytes, peak - before, seconds, len(result.palette)))


def measure(path: str, k: int, warm: int) -> tuple[int, int, float, int] | None:
    """(input bytes, peak extra bytes, seconds, colours) of one call in a fresh
    process; None where VmHWM cannot be reset."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(path, k, warm, child))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure every k; print (and optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="16,64,256", help="comma-separated k")
    parser.add_argument("--md", default=None, help="also write the table here")
    parser.add_argument(
        "--cold", action="store_true", help="warm up on a 64 x 64 crop only"
    )
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    warm = 64 if args.cold else 1500
    lines = [
        f"warm-up on a {warm} x {warm} crop; {os.cpu_count()} cores; load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "",
        "| k | input (MB) | peak extra (MB) | extra / input | target | seconds |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "photo.npy")
        make_large_photo(path)
        for k in ks:
            out = measure(path, k, warm)
            if out is None:
                raise SystemExit("VmHWM cannot be reset here (needs Linux /proc)")
            nbytes, extra, seconds, _ = out
            ratio = extra / nbytes
            verdict = "PASS" if ratio <= TARGET else "FAIL"
            line = (
                f"| {k} | {nbytes / MB:.0f} | {extra / MB:.0f} | {ratio:.2f} | "
                f"{verdict} (<= {TARGET:g}) | {seconds:.2f} |"
            )
            print(line, flush=True)
            lines.append(line)
    tail = f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    print(tail)
    lines += ["", tail]
    if args.md:
        Path(args.md).write_text(
            "# Memory of quantize on a 12-MP uint8 photo\n\n"
            "Command: `python benchmarks/bench_memory.py`\n\n" + "\n".join(lines) + "\n"
        )


if __name__ == "__main__":
    main()
