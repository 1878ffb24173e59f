"""Photos per second over a folder: our command line against pngquant's.

Both write one file per photo of a folder at k colours (default 64), from the
command line, timed from start to exit (interpreter start-up, imports and worker
processes included):

* **ours**: ``napari-kmeans-quantize quantize FOLDER -k K --out-dir OUT`` (one
  worker process per CPU, the default);
* **pngquant**: ``pngquant --nofs --force --output OUT/NAME K NAME`` per photo,
  its default speed, two at a time (``xargs -P 2``).

The runs alternate (ours, pngquant, ours, ...) after one untimed run of each
(numba's compiled kernels cached, the photos in the page cache); the table gives
the median of the rounds, photos per second and the ratio (of the medians, and
the median of the rounds' ratios: neighbouring runs see the same load), and the
mean bytes and PSNR of the files each wrote.

pngquant is a Debian package: ``apt-get install -y pngquant``.

Usage::

    python benchmarks/bench_folder.py [FOLDER] [-k 64] [--rounds 5] [--jobs N]

FOLDER defaults to ``../shared/data/cq100`` beside the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def ours(folder: Path, out: Path, k: int, jobs: int | None) -> float:
    command = [sys.executable, "-m", "napari_kmeans_quantize", "quantize", str(folder)]
    command += ["-k", str(k), "--out-dir", str(out)]
    if jobs is not None:
        command += ["--jobs", str(jobs)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def pngquant(folder: Path, names: list[str], out: Path, k: int) -> float:
    command = ["xargs", "-0", "-P", "2", "-I{}", "pngquant", "--nofs", "--force"]
    command += ["--output", f"{out}/{{}}", str(k), "{}"]
    t0 = time.perf_counter()
    subprocess.run(
        command,
        input="\0".join(names).encode(),
        check=True,
        capture_output=True,
        cwd=folder,
    )
    return time.perf_counter() - t0


def quality(folder: Path, names: list[str], out: Path, suffix) -> tuple[float, float]:
    """Mean bytes and mean PSNR of the files written into `out`."""
    from napari_kmeans_quantize import psnr

    sizes, psnrs = [], []
    for name in names:
        path = out / suffix(name)
        sizes.append(path.stat().st_size)
        with Image.open(folder / name) as a, Image.open(path) as b:
            original = np.asarray(a.convert("RGB"))
            written = np.asarray(b.convert("RGB"))
        psnrs.append(psnr(original, written))
    return statistics.mean(sizes), statistics.mean(psnrs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, default=ROOT.parent / "shared/data/cq100"
    )
    parser.add_argument("-k", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, help="ours: --jobs (default: CPUs)")
    args = parser.parse_args()
    if shutil.which("pngquant") is None:
        sys.exit("pngquant is not installed: apt-get install -y pngquant")
    names = sorted(p.name for p in args.folder.glob("*.png"))
    n = len(names)
    times: dict[str, list[float]] = {"ours": [], "pngquant": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def fresh(tag: str) -> Path:
            out = root / tag
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            return out

        ours(args.folder, fresh("ours"), args.k, args.jobs)  # untimed: warm caches
        pngquant(args.folder, names, fresh("pngquant"), args.k)
        for _ in range(args.rounds):
            out = fresh("ours")
            times["ours"].append(ours(args.folder, out, args.k, args.jobs))
            assert len(list(out.iterdir())) == n, "ours did not write every photo"
            out = fresh("pngquant")
            times["pngquant"].append(pngquant(args.folder, names, out, args.k))
            assert len(list(out.iterdir())) == n, "pngquant did not write every photo"
        ours_q = quality(
            args.folder, names, root / "ours", lambda s: f"{Path(s).stem}-k{args.k}.png"
        )
        peer_q = quality(args.folder, names, root / "pngquant", lambda s: s)
    t_ours = statistics.median(times["ours"])
    t_peer = statistics.median(times["pngquant"])
    jobs = args.jobs or os.cpu_count()
    print(f"{n} photos from {args.folder}, k = {args.k}, {args.rounds} rounds")
    print("rounds (s): ours " + ", ".join(f"{t:.2f}" for t in times["ours"]))
    print("            pngquant " + ", ".join(f"{t:.2f}" for t in times["pngquant"]))
    print()
    print(
        "| tool | median s | photos/s | mean bytes | mean PSNR dB |\n"
        "|---|---:|---:|---:|---:|\n"
        f"| ours, `quantize FOLDER --out-dir` ({jobs} processes) | {t_ours:.2f} | "
        f"{n / t_ours:.2f} | {ours_q[0]:,.0f} | {ours_q[1]:.2f} |\n"
        f"| pngquant `--nofs`, `xargs -P 2` | {t_peer:.2f} | {n / t_peer:.2f} | "
        f"{peer_q[0]:,.0f} | {peer_q[1]:.2f} |"
    )
    print()
    ratios = [p / o for o, p in zip(times["ours"], times["pngquant"], strict=True)]
    print("per round, ours / pngquant: " + ", ".join(f"{r:.2f}x" for r in ratios))
    print(
        f"photos per second, ours / pngquant: {t_peer / t_ours:.2f}x on the medians, "
        f"{statistics.median(ratios):.2f}x the median round (target >= 2x)"
    )


if __name__ == "__main__":
    main()
