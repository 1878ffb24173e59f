"""Gigapixel benchmark: quantise a 1-gigapixel RGB zarr array chunk by chunk.

Generates a (size x size x 3) uint8 zarr array (default 32768 x 32768, 1.07
gigapixels) in a temporary folder, chunk by chunk in a child process (never the
whole array in memory): scikit-image's astronaut, tiled 4 x 4 and upscaled
bilinearly, plus Gaussian noise. Then, in this process, it quantises the array at
k = 64 through ``quantize_iter`` (the dask path: exact histogram chunk by chunk,
weighted k-means, lazy labels), writes the labels to a uint8 zarr with
``dask.array.store``, and prints the time, the throughput in megapixels per second
and the peak memory (resident set size of this process: the kernel's
``ru_maxrss`` and a 10 ms psutil sampler per phase).

In the same run it times the floor: the I/O that a histogram-then-map method
cannot avoid, with no quantisation (a dask pass reading every chunk, and one
reading every chunk again and writing a uint8 zarr of the labels' shape), and
prints ours / floor. ``--workers 1,2`` runs the same call and floor again on a
``dask.distributed.LocalCluster`` of that many single-threaded worker processes.

The result is checked bit for bit against the in-memory path: a full in-memory fit
of a gigapixel is not feasible, so a crop (straddling chunk borders) is read into
memory and mapped with the in-memory ``apply_palette`` onto the shared palette; its
labels and image must equal the crop of the zarr outputs. For sizes up to 8192 the
whole array is also quantised in memory with ``quantize`` and compared (palette,
counts, labels, image).

Usage::

    python benchmarks/bench_gigapixel.py --size 4096          # quick try
    python benchmarks/bench_gigapixel.py --size 12288 --chunk 2048 --workers 1,2
    python benchmarks/bench_gigapixel.py --md benchmarks/GIGAPIXEL.md
    python benchmarks/bench_gigapixel.py --methods auto,sparse  # compare histograms

The temporary folder (source and outputs, several GB at full size) is deleted at
the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

TILES = 4  # the photo is tiled TILES x TILES over the array


# --- data generation (runs in a child process) -----------------------------------


def _interp_matrix(coords: np.ndarray, n_src: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear weights (len(coords) x m) over the m source rows they touch."""
    coords = np.clip(coords, 0, n_src - 1)
    lo = np.floor(coords).astype(np.intp)
    hi = np.minimum(lo + 1, n_src - 1)
    frac = (coords - lo).astype(np.float32)
    used = np.unique(np.concatenate([lo, hi]))
    w = np.zeros((len(coords), len(used)), dtype=np.float32)
    rows = np.arange(len(coords))
    np.add.at(w, (rows, np.searchsorted(used, lo)), 1 - frac)
    np.add.at(w, (rows, np.searchsorted(used, hi)), frac)
    return w, used


def _source_coords(start: int, stop: int, size: int, n_src: int) -> np.ndarray:
    tile = size / TILES
    pos = np.arange(start, stop) % tile
    return (pos + 0.5) * (n_src / tile) - 0.5


def _make_chunk(
    photo: np.ndarray, size: int, rows: slice, cols: slice, noise: float, seed: int
) -> np.ndarray:
    wy, ys = _interp_matrix(
        _source_coords(rows.start, rows.stop, size, len(photo)), len(photo)
    )
    wx, xs = _interp_matrix(
        _source_coords(cols.start, cols.stop, size, photo.shape[1]), photo.shape[1]
    )
    rng = np.random.default_rng(seed)
    out = np.empty((rows.stop - rows.start, cols.stop - cols.start, 3), np.uint8)
    for c in range(3):
        sub = photo[np.ix_(ys, xs)][..., c].astype(np.float32)
        plane = wy @ sub @ wx.T
        plane += rng.standard_normal(plane.shape, dtype=np.float32) * noise
        np.clip(np.rint(plane, out=plane), 0, 255, out=plane)
        out[..., c] = plane
    return out


def generate(path: str, size: int, chunk: int, noise: float) -> None:
    """Write the test image to a zarr array at `path`, one chunk at a time."""
    import zarr
    from skimage import data

    photo = data.astronaut()
    z = zarr.create_array(
        store=path, shape=(size, size, 3), chunks=(chunk, chunk, 3), dtype=np.uint8
    )
    jobs = [
        (slice(i, min(i + chunk, size)), slice(j, min(j + chunk, size)))
        for i in range(0, size, chunk)
        for j in range(0, size, chunk)
    ]

    def write(n: int) -> None:
        rows, cols = jobs[n]
        z[rows, cols] = _make_chunk(photo, size, rows, cols, noise, seed=n)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, range(len(jobs))))


# --- memory sampling --------------------------------------------------------------


class PeakRSS:
    """Sample the resident set size of this process (and its children) in a thread."""

    def __init__(self, interval: float = 0.01, children: bool = False) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.children = children
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        if self.children:
            for child in self.proc.children(recursive=True):
                with contextlib.suppress(Exception):
                    total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def reset(self) -> int:
        """Return the peak so far and start a new phase."""
        peak, self.peak = max(self.peak, self.rss()), 0
        return peak

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# --- benchmark --------------------------------------------------------------------


def run_quantize(
    src, k: int, method: str, log, sampler: PeakRSS
) -> tuple[object, dict[str, float], dict[str, int]]:
    """Run the dask path; return the result, seconds and peak RSS per phase."""
    from napari_kmeans_quantize import chunked
    from napari_kmeans_quantize._engine.dask_backend import _HIST_END

    times: dict[str, float] = {}
    peaks: dict[str, int] = {}
    sampler.reset()
    t0 = last_print = time.perf_counter()
    gen = chunked.quantize_dask_iter(src, k, histogram_method=method)
    while True:
        try:
            frac = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        now = time.perf_counter()
        if frac > _HIST_END and "histogram" not in times:
            times["histogram"] = now - t0
            peaks["histogram"] = sampler.reset()
        if now - last_print > 15:
            log(f"  progress {frac:.2f} after {now - t0:.0f} s")
            last_print = now
    times["fit"] = time.perf_counter() - t0 - times["histogram"]
    peaks["fit"] = sampler.reset()
    return result, times, peaks


def quantize_to_zarr(
    src, k: int, method: str, log, sampler: PeakRSS, path: Path
) -> tuple[object, dict[str, float], dict[str, int], float]:
    """Histogram, fit, then the labels written to a new uint8 zarr at `path`: the
    result, seconds and peak RSS per phase, and the total seconds."""
    import dask.array as da
    import zarr

    t = time.perf_counter()
    result, times, peaks = run_quantize(src, k, method, log, sampler)
    zlab = zarr.create_array(
        store=str(path),
        shape=result.labels.shape,
        chunks=src.chunksize[:2],
        dtype=result.labels.dtype,
    )
    t_write = time.perf_counter()
    da.store(result.labels, zlab, lock=False)
    times["map + write"] = time.perf_counter() - t_write
    peaks["map + write"] = sampler.reset()
    return result, times, peaks, time.perf_counter() - t


def warm_up(src, k: int, method: str, path: Path) -> None:
    """One untimed call on a corner of `src` in small chunks: the kernels' compile
    (or cache load) is paid once per process, not per gigapixel."""
    with PeakRSS() as sampler:
        corner = src[:512, :512].rechunk((256, 256, -1))
        quantize_to_zarr(corner, k, method, lambda msg: None, sampler, path)
    shutil.rmtree(path, ignore_errors=True)


def time_floor(src, path: Path) -> tuple[float, float]:
    """The I/O a histogram-then-map method cannot avoid, with no quantisation:
    seconds of a dask pass that reads every chunk (``src.max()``) and of one that
    reads every chunk again and writes a uint8 zarr of the labels' shape (the first
    channel)."""
    import dask.array as da
    import zarr

    t = time.perf_counter()
    src.max().compute()
    t_read = time.perf_counter() - t
    out = zarr.create_array(
        store=str(path), shape=src.shape[:2], chunks=src.chunksize[:2], dtype=np.uint8
    )
    t = time.perf_counter()
    da.store(src[..., 0], out, lock=False)
    t_write = time.perf_counter() - t
    shutil.rmtree(path, ignore_errors=True)
    return t_read, t_write


def on_local_cluster(
    src, k: int, method: str, n_workers: int, tmp: Path, mp: float, log
) -> tuple[int, float, float]:
    """The same call and floor on a LocalCluster of `n_workers` single-threaded
    worker processes: (workers, our seconds, floor seconds)."""
    import logging
    import warnings

    import distributed

    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster),
    ):
        warnings.simplefilter("ignore", UserWarning)  # large graph warnings
        path = tmp / f"labels-{n_workers}.zarr"
        with PeakRSS() as sampler:
            _, _, _, total = quantize_to_zarr(src, k, method, log, sampler, path)
        shutil.rmtree(path, ignore_errors=True)
        floor = sum(time_floor(src, tmp / f"floor-{n_workers}.zarr"))
    log(
        f"LocalCluster, {n_workers} worker process(es) x 1 thread: ours {total:.1f} s "
        f"({mp / total:.1f} MP/s), floor {floor:.1f} s, ours / floor "
        f"{total / floor:.2f}"
    )
    return n_workers, total, floor


def fit_only(args: argparse.Namespace) -> int:
    import dask.array as da
    import zarr

    src = da.from_zarr(zarr.open_array(args.source, mode="r"))
    with PeakRSS() as sampler:
        result, times, peaks = run_quantize(src, args.k, args.methods, print, sampler)
    fig = {
        "times": times,
        "peaks": peaks,
        "maxrss": maxrss_bytes(),
        "palette": result.palette.tolist(),
        "counts": result.counts.tolist(),
    }
    print(json.dumps(fig))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32768, help="side in pixels")
    parser.add_argument("--chunk", type=int, default=4096, help="chunk side")
    parser.add_argument("--k", type=int, default=64, help="palette size")
    parser.add_argument("--noise", type=float, default=6.0, help="noise sigma")
    parser.add_argument("--crop", type=int, default=2048, help="checked crop side")
    parser.add_argument(
        "--methods",
        default="auto",
        help="histogram methods, comma separated; the first is written and checked, "
        "the others only timed and compared (auto, dense, sparse)",
    )
    parser.add_argument(
        "--workers",
        default="",
        type=lambda text: [int(n) for n in text.split(",") if n],
        help="also run on a dask.distributed LocalCluster of each of these numbers "
        "of single-threaded worker processes, e.g. 1,2",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of ours and the floor, alternating; the run with the median "
        "ratio is reported",
    )
    parser.add_argument("--workdir", default=None, help="parent of the temp folder")
    parser.add_argument("--source", default=None, help="reuse this zarr array")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--md", default=None, help="write the figures to this file")
    parser.add_argument("--generate", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fit-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.generate:  # child process: write the source array and exit
        generate(args.generate, args.size, args.chunk, args.noise)
        return 0
    if args.fit_only:  # child process: histogram + fit of --source, JSON figures
        return fit_only(args)

    import dask
    import dask.array as da
    import zarr

    import napari_kmeans_quantize
    from napari_kmeans_quantize import apply_palette, quantize

    lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    tmp = Path(tempfile.mkdtemp(prefix="kmq-gigapixel-", dir=args.workdir))
    try:
        if args.source:
            src_path = args.source
            size = zarr.open_array(src_path, mode="r").shape[0]
            gen_seconds = float("nan")
        else:
            src_path = str(tmp / "source.zarr")
            size = args.size
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--generate",
                    src_path,
                    "--size",
                    str(size),
                    "--chunk",
                    str(args.chunk),
                    "--noise",
                    str(args.noise),
                ],
                check=True,
            )
            gen_seconds = time.perf_counter() - t
        zsrc = zarr.open_array(src_path, mode="r")
        mp = zsrc.shape[0] * zsrc.shape[1] / 1e6
        log(
            f"source: {zsrc.shape} {zsrc.dtype}, chunks {zsrc.chunks}, {mp:.0f} MP, "
            f"generated in {gen_seconds:.0f} s (child process)"
        )
        src = da.from_zarr(zsrc)
        methods = args.methods.split(",")
        baseline = maxrss_bytes()
        log(f"RSS after imports: {gib(baseline)}")

        load_before = os.getloadavg()
        warm_up(src, args.k, methods[0], tmp / "warm-up.zarr")
        runs, cpu_ratios = [], []
        for i in range(max(1, args.repeat)):
            shutil.rmtree(tmp / "labels.zarr", ignore_errors=True)
            cpu = time.process_time()
            with PeakRSS() as sampler:
                run = quantize_to_zarr(
                    src, args.k, methods[0], log, sampler, tmp / "labels.zarr"
                )
            cpu_ours = time.process_time() - cpu
            floor = time_floor(src, tmp / "floor.zarr")
            cpu_floor = time.process_time() - cpu - cpu_ours
            runs.append((run[3] / sum(floor), i, run, floor))
            cpu_ratios.append(cpu_ours / cpu_floor)
            log(
                f"run {i + 1}: ours {run[3]:.2f} s, floor {sum(floor):.2f} s, ours / "
                f"floor {run[3] / sum(floor):.2f}; CPU seconds (every thread) ours "
                f"{cpu_ours:.2f}, floor {cpu_floor:.2f}, ratio {cpu_ratios[-1]:.2f}"
            )
        # The labels kept on disk (and checked below) are the last run's; every
        # run's result is the same.
        _, _, (result, times, peaks, total), floor = sorted(runs)[len(runs) // 2]
        peak_total = maxrss_bytes()
        load_after = os.getloadavg()
        zlab = zarr.open_array(str(tmp / "labels.zarr"), mode="r")

        log(
            f"method {methods[0]}: {result.n_distinct} distinct colours -> "
            f"{result.n_colors} (k = {args.k}), {result.n_iter} Lloyd iterations, "
            f"converged {result.converged}"
        )
        for name, sec in times.items():
            log(
                f"  {name:12s} {sec:8.1f} s  {mp / sec:8.1f} MP/s  peak RSS "
                f"{gib(peaks[name])} (sampled)"
            )
        log(f"  {'total':12s} {total:8.1f} s  {mp / total:8.1f} MP/s")
        log(
            f"floor: read pass {floor[0]:.1f} s + read-and-write pass {floor[1]:.1f} s "
            f"= {sum(floor):.1f} s; ours / floor = {total / sum(floor):.2f} "
            "(target <= 1.5)"
        )
        log(f"peak RSS: {gib(peak_total)} (ru_maxrss, whole run)")
        log(
            f"load average (1, 5, 15 min) before {_load(load_before)}, after "
            f"{_load(load_after)} "
            f"on {os.cpu_count()} cores"
        )
        cluster_rows = []
        for n_workers in args.workers:
            cluster_rows.append(
                on_local_cluster(src, args.k, methods[0], n_workers, tmp, mp, log)
            )

        # 3. bit-for-bit check of a crop against the in-memory path
        c = min(args.crop, zsrc.shape[0] // 2)
        r0 = max(0, min(zsrc.shape[0] - c, zsrc.chunks[0] - c // 2))
        c0 = max(0, min(zsrc.shape[1] - c, 3 * zsrc.chunks[1] - c // 2))
        crop = (slice(r0, r0 + c), slice(c0, c0 + c))
        mem = apply_palette(zsrc[crop], result.palette)
        labels_ok = np.array_equal(zlab[crop], mem.labels)
        image_ok = np.array_equal(result.image[crop].compute(), mem.image)
        crop_ok = labels_ok and image_ok
        log(
            f"crop [{r0}:{r0 + c}, {c0}:{c0 + c}] (straddles chunk borders) vs "
            f"in-memory apply_palette: labels equal {labels_ok}, image equal "
            f"{image_ok}"
        )
        full_ok = None
        if zsrc.shape[0] * zsrc.shape[1] <= 8192 * 8192:
            whole = zsrc[...]
            ref = quantize(whole, args.k)
            full_ok = (
                np.array_equal(ref.palette, result.palette)
                and np.array_equal(ref.counts, result.counts)
                and np.array_equal(ref.labels, zlab[...])
                and np.array_equal(ref.image, result.image.compute())
            )
            log(f"whole array vs in-memory quantize: identical {full_ok}")

        # 4. histogram methods compared, each in a fresh process (histogram + fit)
        others = []
        if len(methods) > 1:
            for method in methods:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--fit-only",
                        "--source",
                        src_path,
                        "--k",
                        str(args.k),
                        "--methods",
                        method,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                fig = json.loads(out.strip().splitlines()[-1])
                same = (
                    fig["palette"] == result.palette.tolist()
                    and fig["counts"] == result.counts.tolist()
                )
                others.append((method, fig, same))
                log(
                    f"method {method} (fresh process): histogram "
                    f"{fig['times']['histogram']:.1f} s (peak RSS "
                    f"{gib(fig['peaks']['histogram'])}), fit {fig['times']['fit']:.1f}"
                    f" s (peak RSS {gib(fig['peaks']['fit'])}), ru_maxrss "
                    f"{gib(fig['maxrss'])}, same palette and counts {same}"
                )

        if args.md:
            write_md(
                Path(args.md),
                args=args,
                shape=zsrc.shape,
                chunks=zsrc.chunks,
                mp=mp,
                result=result,
                times=times,
                total=total,
                floor=floor,
                cluster_rows=cluster_rows,
                ratios=", ".join(f"{r[0]:.2f}" for r in runs),
                cpu_ratios=", ".join(f"{r:.2f}" for r in cpu_ratios),
                baseline=baseline,
                peaks=peaks,
                peak_total=peak_total,
                load=(load_before, load_after),
                crop=(r0, c0, c, labels_ok, image_ok),
                full_ok=full_ok,
                others=others,
                versions={
                    "napari-kmeans-quantize": napari_kmeans_quantize.__version__,
                    "numpy": np.__version__,
                    "dask": dask.__version__,
                    "zarr": zarr.__version__,
                    "python": platform.python_version(),
                },
                gen_seconds=gen_seconds,
            )
            log(f"figures written to {args.md}")
        ok = crop_ok and full_ok is not False and all(o[-1] for o in others)
        log(f"all checks passed: {ok}")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _load(load: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.1f}" for x in load)


def write_md(path: Path, **f: object) -> None:
    args = f["args"]
    result = f["result"]
    mp = f["mp"]
    total = f["total"]
    peaks = f["peaks"]
    peak_total = f["peak_total"]
    r0, c0, c, labels_ok, image_ok = f["crop"]
    rows = "\n".join(
        f"| {name} | {sec:.1f} | {mp / sec:.1f} | {gib(peaks[name])} |"
        for name, sec in f["times"].items()
    )
    others = "\n".join(
        f"| {m} | {g['times']['histogram']:.1f} | {gib(g['peaks']['histogram'])} | "
        f"{g['times']['fit']:.1f} | {gib(g['peaks']['fit'])} | {gib(g['maxrss'])} | "
        f"{same} |"
        for m, g, same in f["others"]
    )
    versions = ", ".join(f"{k} {v}" for k, v in f["versions"].items())
    cluster = ""
    if f["cluster_rows"]:
        cluster = (
            "\nThe same call (labels to zarr) and the same floor on a "
            "`dask.distributed.LocalCluster` of single-threaded worker processes "
            "(times include shipping the lookup table to the workers):\n\n"
            "| Workers | Ours (s) | Megapixels / s | Floor (s) | Ours / floor |\n"
            "|---:|---:|---:|---:|---:|\n"
            + "\n".join(
                f"| {n} | {t:.1f} | {mp / t:.1f} | {fl:.1f} | {t / fl:.2f} |"
                for n, t, fl in f["cluster_rows"]
            )
            + "\n"
        )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    text = f"""# Gigapixel benchmark

Produced by `python benchmarks/bench_gigapixel.py {" ".join(sys.argv[1:])}`
on {os.cpu_count()} cores, {gib(mem)} RAM ({platform.platform()}; {versions}).

## Input

A {f["shape"][0]} x {f["shape"][1]} x 3 uint8 zarr array ({mp:.0f} megapixels,
chunks {f["chunks"]}, zarr default compression), generated chunk by chunk in a
child process from scikit-image's astronaut tiled {TILES} x {TILES} and upscaled
bilinearly, plus Gaussian noise of sigma {args.noise}
(generation took {f["gen_seconds"]:.0f} s and is not counted below).
It has **{result.n_distinct:,} distinct colours**.

## Quantisation at k = {args.k}

`quantize_iter` on `dask.array.from_zarr(...)` (threaded scheduler, default
settings), then `dask.array.store(labels, zarr)`: the labels written to a new
uint8 zarr array (the quantised image is `palette[labels]`, lazy; it is
computed only for the checks below). After one untimed call on a 512 x 512
corner (the kernels' compile or cache load, once per process), ours and the floor
ran alternately {args.repeat} time(s); the figures are those of the run with the
median ratio (ratios of all runs: {f["ratios"]}; in CPU seconds of every
thread, which a loaded machine disturbs less: {f["cpu_ratios"]}).

| Phase | Seconds | Megapixels / s | Peak RSS (sampled every 10 ms) |
|---|---:|---:|---:|
{rows}
| **Total** | **{total:.1f}** | **{mp / total:.1f}** | **{gib(peak_total)}** |

**The floor**, timed in the same run: the I/O that a histogram-then-map method
cannot avoid, with no quantisation. A dask pass that reads every chunk
(`src.max()`): {f["floor"][0]:.1f} s, and one that reads every chunk again and
writes a uint8 zarr of the labels' shape (the first channel):
{f["floor"][1]:.1f} s; together **{sum(f["floor"]):.1f} s**. Ours / floor:
**{total / sum(f["floor"]):.2f}** (target: at most 1.5).
{cluster}
Fit: {result.n_colors} colours, {result.n_iter} Lloyd iterations on all
{result.n_distinct:,} distinct colours, converged: {result.converged}.

**Peak memory (RSS of the process): {gib(peak_total)}** (`ru_maxrss` over the
whole run, imports included: {gib(f["baseline"])} before any work). The machine is shared: load average (1, 5, 15 min) was {_load(f["load"][0])}
before and {_load(f["load"][1])} after the run, on {os.cpu_count()} cores, so times are upper
bounds. Target: under 1.5 GB.

## Bit-for-bit check

A full in-memory fit of a gigapixel is not feasible, so the crop
[{r0}:{r0 + c}, {c0}:{c0 + c}] (it straddles chunk borders) was read into memory
and mapped with the in-memory `apply_palette` onto the palette of the run:
labels equal: **{labels_ok}**, image equal: **{image_ok}**.
"""
    if f["full_ok"] is not None:
        text += (
            "\nThe whole array was also quantised in memory with `quantize`: "
            f"palette, counts, labels and image identical: **{f['full_ok']}**.\n"
        )
    text += """
## What runs

1. Histogram: on the threaded scheduler every running task adds the pixels of
   its chunk straight into a uint32 count array over the 2**24 keys of 8-bit RGB
   (64 MiB, one per task running at a time), each pixel's key made as it is
   counted: one increment per pixel, no array of keys, nothing sent back; the
   arrays are added up once at the end. Batches of chunks are computed with
   `dask.compute` (one progress step each; `histogram_method="auto"`, i.e.
   "dense" for 8-bit RGB). On a distributed cluster each chunk is counted
   through a bitmap over the key space and its distinct colours are added into
   one int64 count array on the caller's side. The histogram is exact.
2. Fit: the in-memory weighted k-means on the distinct colours, in the in-memory
   histogram's order, hence the identical palette.
3. Map: a 2**24-entry uint8 lookup table (16 MiB, one node of the dask graph)
   gives each chunk's labels, indexed by each pixel's key made on the fly; the
   image is `palette[labels]`.

Memory is bounded by the chunk size (a few chunks in flight), the count arrays
(64 MiB per task counting at once, at most 8) and, in the fit, about 250 bytes
per distinct colour: a noisier image with
more distinct colours needs more memory in the fit (8-bit RGB has at most 16.8
million).
"""
    if others:
        text += f"""
## Histogram methods

The run above used `histogram_method="{args.methods.split(",")[0]}"`. Each method
again on the same array, each in a fresh process (histogram pass and fit only, no
writing; peak RSS sampled per phase, and `ru_maxrss` of the process):

| Method | Histogram s | Peak RSS | Fit s | Peak RSS | ru_maxrss | Same palette and counts |
|---|---:|---:|---:|---:|---:|---|
{others}

"dense" (what "auto" picks for 8-bit RGB) adds the chunk counts into the fixed
2**24 count array; "sparse" merges sorted lists of distinct colours (a dask task
per batch, then a running merge on the caller's side), which is what other dtypes
(uint16, RGBA, floats) use. Both give the same exact histogram. The dense
accumulator's memory does not grow with the number of distinct colours; the
sparse lists and their merges do (about 12 bytes per distinct colour held, more
while merging).
"""
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
