"""What a full sweep over k costs, as a multiple of one k = 256 run.

The sweep issue's target: a sweep over k = 2, 4, ..., 256 of a 768 x 512 photo
costs less than twice a single k = 256 run. Both sides are timed in the same run
on the same images (the machine is shared, so the ratio is what counts):

* ``quantize``: ``quantize(image, 256)`` alone;
* ``quantize + report``: the same plus ``size_report`` (PSNR, mean CIEDE2000, real
  indexed-PNG bytes), i.e. the figures one row of the sweep holds;
* ``sweep``: ``sweep(image)`` over the eight default k, every row with its figures.

Wall and CPU time (``time.process_time``: every thread of the process, which a
loaded machine inflates less than the wall time) are both printed, best of R, the three
called in turn in every repeat.
``sweep / (quantize + report)`` compares like with like: each row of the sweep
holds the figures that ``size_report`` computes for one run (and the widget's Run
shows the same report). ``sweep / quantize`` counts the eight rows' reports on one
side only; it is printed too.

Usage::

    python benchmarks/bench_sweep.py [FOLDER] [--limit N] [--repeat R] [--large]
        [--only-large] [--memory] [--stages]

FOLDER defaults to ``../shared/data/cq100`` beside the repository. ``--large``
adds bench_peers.py's 12-megapixel photo (the astronaut upscaled to 4000 x 3000
with noise) as the last row. ``--memory`` also prints each side's peak resident
memory above its input (one fresh process per side and image). ``--stages``
prints, instead of the timings, where one sweep of each image spends its CPU:
the thread CPU time (``time.thread_time``, in whichever thread runs the stage)
of each stage summed over the k, best of R.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _photos import add_folder_argument
from PIL import Image

from napari_kmeans_quantize import quantize, sweep
from napari_kmeans_quantize.metrics import size_report


def _best_of(funcs, repeat: int) -> list[tuple[float, float]]:
    """Shortest wall time and shortest CPU time (of this process, every thread)
    of `repeat` calls of each of `funcs`, called in turn (a, b, c, a, b, c, ...)
    so that a change in the machine's load falls on every side alike."""
    times: list[list[float]] = [[] for _ in funcs]
    cpu: list[list[float]] = [[] for _ in funcs]
    for _ in range(repeat):
        for i, func in enumerate(funcs):
            start, start_cpu = time.perf_counter(), time.process_time()
            func()
            times[i].append(time.perf_counter() - start)
            cpu[i].append(time.process_time() - start_cpu)
    return [(min(t), min(c)) for t, c in zip(times, cpu, strict=True)]


def _load(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    return np.asarray(Image.open(path).convert("RGB"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss(side: str, path: Path) -> None:
    """Print the peak resident memory of one call above that before it (Linux:
    /proc/self/status's VmHWM, reset after compiling the kernels)."""
    image = _load(path)

    def call(image: np.ndarray) -> None:
        if side == "sweep":
            sweep(image)
        else:
            size_report(quantize(image, 256), image)

    call(image[:64, :64])  # the compiled kernels' memory is not the call's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: the peak resident size restarts from now
    start = _rss_mb()
    call(image)
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    print(peak / 1024 - start)


def _memory(path: Path) -> tuple[float, float]:
    """Peak MB above the input of quantize + report and of the sweep."""
    peaks = []
    for side in ("report", "sweep"):
        out = subprocess.run(
            [sys.executable, __file__, "--peak-rss", side, str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        peaks.append(float(out.stdout.split()[-1]))
    return peaks[0], peaks[1]


# (module, attribute, stage) of the functions timed by --stages; a name that
# is missing (another version of the package) is skipped.
_STAGES = (
    ("napari_kmeans_quantize.sweep", "pixel_histogram", "histogram (once)"),
    ("napari_kmeans_quantize._engine.pipeline", "fit_palette", "fits"),
    ("napari_kmeans_quantize._engine.assignment", "color_labels", "nearest entries"),
    ("napari_kmeans_quantize.histogram", "ColorHistogram.expand", "labels"),
    ("napari_kmeans_quantize._encode", "png_rows", "PNG scanlines"),
    ("napari_kmeans_quantize._encode", "deflate.zlib_compress", "PNG deflate"),
    ("napari_kmeans_quantize._engine.quality", "to_lab", "CIELAB"),
    ("napari_kmeans_quantize._engine.quality", "weighted_inertia", "PSNR error"),
    ("napari_kmeans_quantize._engine.quality", "squared_error", "PSNR error"),
    ("napari_kmeans_quantize._engine.quality", "_ciede2000_sum", "CIEDE2000"),
)


@contextlib.contextmanager
def _timing_stages(totals: dict[str, float]):
    """Inside the block, the _STAGES add their thread CPU time to `totals`."""
    lock = threading.Lock()
    undo = []

    def add(stage: str, seconds: float) -> None:
        with lock:
            totals[stage] = totals.get(stage, 0.0) + seconds

    def timed(func, stage):
        def call(*args, **kwargs):
            start = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                add(stage, time.thread_time() - start)

        return call

    def timed_gen(func, stage):
        def call(*args, **kwargs):
            gen = func(*args, **kwargs)
            seconds = 0.0
            try:
                while True:  # the time of its own steps, not of the caller's
                    start = time.thread_time()
                    try:
                        value = next(gen)
                    except StopIteration as stop:
                        return stop.value
                    finally:
                        seconds += time.thread_time() - start
                    yield value
            finally:
                add(stage, seconds)

        return call

    import importlib
    import inspect

    for module, name, stage in _STAGES:
        owner = importlib.import_module(module)
        *path, attr = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        func = getattr(owner, attr, None)
        if func is None:
            continue
        wrap = timed_gen if inspect.isgeneratorfunction(func) else timed
        # A module's global, a class's method, or the deflate module's function.
        setattr(owner, attr, wrap(func, stage))
        undo.append((owner, attr, func))
    try:
        yield
    finally:
        for owner, attr, func in reversed(undo):
            setattr(owner, attr, func)


def _print_stages(image: np.ndarray, name: str, repeat: int) -> None:
    """The thread CPU time of each stage of one sweep of `image`, best of
    `repeat`, beside the process's CPU and wall time."""
    best: dict[str, float] | None = None
    for _ in range(repeat):
        totals: dict[str, float] = {}
        start, start_cpu = time.perf_counter(), time.process_time()
        with _timing_stages(totals):
            sweep(image)
        totals["= process CPU"] = time.process_time() - start_cpu
        totals["= wall"] = time.perf_counter() - start
        if best is None or totals["= process CPU"] < best["= process CPU"]:
            best = totals
    assert best is not None
    print(f"{name}: CPU s per stage, summed over the k (the sweep with the least")
    print("process CPU time of its repeats)")
    stages = [s for s in dict.fromkeys(stage for _, _, stage in _STAGES) if s in best]
    for stage in stages:
        print(f"  {stage:18s} {best[stage]:6.2f}")
    rest = best["= process CPU"] - sum(best[s] for s in stages)
    print(f"  {'the rest':18s} {rest:6.2f}")
    print(f"  {'process CPU':18s} {best['= process CPU']:6.2f}")
    print(f"  {'wall':18s} {best['= wall']:6.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Time a k = 256 run and a full sweep on every image; print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_folder_argument(parser, "PNG/JPEG")
    parser.add_argument(
        "--limit", type=int, default=None, help="images used (default: all)"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="best of R timings (default 2)"
    )
    parser.add_argument(
        "--large", action="store_true", help="add the 12-megapixel photo"
    )
    parser.add_argument(
        "--only-large", action="store_true", help="the 12-megapixel photo alone"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="also the peak memory (RSS above the input) of each side",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="print the sweep's CPU time per stage instead of the timings",
    )
    parser.add_argument("--peak-rss", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_rss:
        _peak_rss(args.peak_rss[0], Path(args.peak_rss[1]))
        return
    paths = (
        []
        if args.only_large
        else sorted(
            p for p in args.folder.iterdir() if p.suffix.lower() in {".png", ".jpg"}
        )[: args.limit]
    )
    tmp = None
    if args.large or args.only_large:
        from bench_peers import make_large_photo

        tmp = tempfile.TemporaryDirectory()
        large = Path(tmp.name) / "astronaut-12MP.npy"
        make_large_photo(str(large))
        paths.append(large)
    if not paths:
        raise SystemExit(f"no .png or .jpg images in {args.folder}")

    print(f"{len(paths)} images from {args.folder}; {os.cpu_count()} cores; "
          f"load average before: {os.getloadavg()}")  # fmt: skip
    if args.stages:
        for path in paths:
            image = _load(path)
            sweep(image[:64, :64])  # the compiled kernels' loading is not a stage
            _print_stages(image, path.stem, args.repeat)
        print(f"load average after: {os.getloadavg()}")
        if tmp is not None:
            tmp.cleanup()
        return
    print("| image | quantize k=256 s | + report s | sweep s | sweep / quantize "
          "| sweep / (quantize + report) | CPU s: + report | CPU s: sweep "
          "| CPU: sweep / (quantize + report) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios, ratios_report, ratios_cpu = [], [], []
    for path in paths:
        image = _load(path)
        (t_q, _), (t_qr, c_qr), (t_s, c_s) = _best_of(
            (
                lambda image=image: quantize(image, 256),
                lambda image=image: size_report(quantize(image, 256), image),
                lambda image=image: sweep(image),
            ),
            args.repeat,
        )
        ratios.append(t_s / t_q)
        ratios_report.append(t_s / t_qr)
        ratios_cpu.append(c_s / c_qr)
        print(f"| {path.stem} | {t_q:.2f} | {t_qr:.2f} | {t_s:.2f} | "
              f"{t_s / t_q:.2f} | {t_s / t_qr:.2f} | {c_qr:.2f} | {c_s:.2f} | "
              f"{c_s / c_qr:.2f} |", flush=True)  # fmt: skip
        if args.memory:
            m_qr, m_s = _memory(path)
            print(f"  peak memory above the input: quantize + report {m_qr:.0f} "
                  f"MB, sweep {m_s:.0f} MB ({m_s / m_qr:.2f}x)", flush=True)  # fmt: skip
    print(f"median sweep / (quantize + report): "
          f"{statistics.median(ratios_report):.2f} (like for like; target < 2); "
          f"sweep / quantize alone: {statistics.median(ratios):.2f}; "
          f"CPU time, sweep / (quantize + report): "
          f"{statistics.median(ratios_cpu):.2f}")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
