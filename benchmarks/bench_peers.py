"""Peer benchmark: ``napari_kmeans_quantize.quantize`` against other colour quantisers.

Times and scores our ``quantize(image, k)`` (defaults: RGB fit space, no dither)
against, all with dithering off:

* ``sklearn-full``: the seed's method, ``KMeans(n_clusters=k, n_init=1,
  random_state=0)`` fit on every pixel (float64 RGB 0..255), then ``predict`` on
  every pixel; palette = rounded cluster centres.
* ``sklearn-1000``: scikit-learn's gallery recipe (plot_color_quantization):
  ``KMeans(n_clusters=k, random_state=0)`` fit on 1,000 random pixels
  (``sklearn.utils.shuffle(..., random_state=0, n_samples=1000)``), predict all.
* ``pil-mediancut`` and ``pil-fastoctree``: Pillow ``Image.quantize(colors=k,
  method=..., dither=Image.Dither.NONE)``.
* ``imagequant``: libimagequant through the ``imagequant`` PyPI package
  (``quantize_raw_rgba_bytes(..., dithering_level=0.0, max_colors=k)``, fed with
  ``ndarray.tobytes()``; its ``quantize_pil_image`` builds the byte string with a
  per-pixel Python loop, which would time the wrapper rather than the library).

Every timed call starts from a uint8 (H, W, 3) array and ends with the quantised
uint8 (H, W, 3) array (fit + map + conversions). Each (method, image, k) runs in a
fresh process (multiprocessing, "spawn"): one untimed warm-up call on a 64 x 64
crop, then ``--repeat`` timed calls (``--repeat-slow`` for sklearn-full); the time
is the median. Peak memory is the kernel's resident-set high-water mark (VmHWM,
reset through ``/proc/self/clear_refs`` just before each call; where that is not
available a 5 ms psutil RSS sampler) minus the RSS just before the call ("extra"),
and the absolute high-water mark of the process during the call ("RSS").

Quality, for every method alike: MSE = mean over pixels of the squared error summed
over the 3 channels on 0..255 (Celebi's convention, ``napari_kmeans_quantize.mse``)
and mean CIEDE2000 (``napari_kmeans_quantize.mean_ciede2000``).

Images: the PNGs of a folder (default ``../shared/data/cq100/`` beside the repo
root) and a "12-MP photo": scikit-image's astronaut upscaled to 4000 x 3000 with
``skimage.transform.resize(order=3, anti_aliasing=False)`` (bicubic), plus Gaussian
noise of sigma 2 (``np.random.default_rng(0)``), rounded and clipped to uint8.

Usage::

    python benchmarks/bench_peers.py                              # full run
    python benchmarks/bench_peers.py --limit 2 --ks 16 --no-large  # smoke test
    python benchmarks/bench_peers.py --skip sklearn-full --md ''   # no Markdown

The tables are printed and written as Markdown to ``benchmarks/RESULTS.md``, with a
"Targets" section of PASS/FAIL checks at the top.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OURS = "ours"
LARGE_SHAPE = (3000, 4000)  # height, width: 12 megapixels
LARGE_NOISE = 2.0
SKLEARN_MAX_ITER = 300  # scikit-learn's default, the cap of every uncapped fit
GB = 1e9
MB = 1e6


# --- the methods (each maps a uint8 (H, W, 3) array to its quantised copy) -------


def _palette_image(centres: np.ndarray, labels: np.ndarray, shape: tuple) -> np.ndarray:
    """Rounded uint8 cluster centres gathered by label, in the image's shape."""
    palette = np.clip(np.rint(centres), 0, 255).astype(np.uint8)
    return palette[labels].reshape(shape)


def run_ours(image: np.ndarray, k: int, max_iter: int) -> tuple[np.ndarray, dict]:
    """Our ``quantize`` with its defaults (rgb, no dither)."""
    from napari_kmeans_quantize import quantize

    result = quantize(image, k, max_iter=max_iter)
    return result.image, {"n_iter": result.n_iter, "converged": result.converged}


def run_sklearn_full(
    image: np.ndarray, k: int, max_iter: int
) -> tuple[np.ndarray, dict]:
    """The seed's method: KMeans fit on all pixels, then predict all pixels."""
    from sklearn.cluster import KMeans

    pixels = image.reshape(-1, 3).astype(np.float64)
    km = KMeans(n_clusters=k, n_init=1, random_state=0, max_iter=max_iter)
    km.fit(pixels)
    out = _palette_image(km.cluster_centers_, km.predict(pixels), image.shape)
    return out, {"n_iter": int(km.n_iter_), "converged": km.n_iter_ < max_iter}


def run_sklearn_1000(
    image: np.ndarray, k: int, max_iter: int
) -> tuple[np.ndarray, dict]:
    """scikit-learn's gallery recipe: fit on 1,000 random pixels, predict all."""
    from sklearn.cluster import KMeans
    from sklearn.utils import shuffle

    pixels = image.reshape(-1, 3).astype(np.float64)
    sample = shuffle(pixels, random_state=0, n_samples=1000)
    km = KMeans(n_clusters=k, random_state=0, max_iter=max_iter).fit(sample)
    out = _palette_image(km.cluster_centers_, km.predict(pixels), image.shape)
    return out, {"n_iter": int(km.n_iter_)}


def _run_pillow(image: np.ndarray, k: int, method_name: str) -> np.ndarray:
    """Pillow's ``Image.quantize`` without dithering, back to an RGB array."""
    from PIL import Image

    method = getattr(Image.Quantize, method_name)
    quantized = Image.fromarray(image).quantize(
        colors=k, method=method, dither=Image.Dither.NONE
    )
    return np.asarray(quantized.convert("RGB"))


def run_pil_mediancut(
    image: np.ndarray, k: int, max_iter: int
) -> tuple[np.ndarray, dict]:
    """Pillow median cut."""
    return _run_pillow(image, k, "MEDIANCUT"), {}


def run_pil_fastoctree(
    image: np.ndarray, k: int, max_iter: int
) -> tuple[np.ndarray, dict]:
    """Pillow fast octree."""
    return _run_pillow(image, k, "FASTOCTREE"), {}


def run_imagequant(image: np.ndarray, k: int, max_iter: int) -> tuple[np.ndarray, dict]:
    """libimagequant (``imagequant`` package) with dithering off."""
    import imagequant

    height, width = image.shape[:2]
    rgba = np.empty((height, width, 4), dtype=np.uint8)
    rgba[..., :3] = image
    rgba[..., 3] = 255
    indices, palette = imagequant.quantize_raw_rgba_bytes(
        rgba.tobytes(), width, height, dithering_level=0.0, max_colors=k
    )
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 4)[:, :3]
    labels = np.frombuffer(indices, dtype=np.uint8)
    return palette[labels].reshape(image.shape), {}


@dataclass(frozen=True)
class Method:
    """A quantiser under test: its name, a one-line description and its runner."""

    name: str
    description: str
    run: Callable[[np.ndarray, int, int], tuple[np.ndarray, dict]]
    slow: bool = False


METHODS = {
    m.name: m
    for m in (
        Method(OURS, "napari_kmeans_quantize.quantize(image, k)", run_ours),
        Method(
            "sklearn-full",
            "KMeans(n_clusters=k, n_init=1, random_state=0) on all pixels, predict",
            run_sklearn_full,
            slow=True,
        ),
        Method(
            "sklearn-1000",
            "KMeans(n_clusters=k, random_state=0) on 1,000 random pixels, predict",
            run_sklearn_1000,
        ),
        Method(
            "pil-mediancut",
            "Pillow Image.quantize(method=MEDIANCUT, dither=NONE)",
            run_pil_mediancut,
        ),
        Method(
            "pil-fastoctree",
            "Pillow Image.quantize(method=FASTOCTREE, dither=NONE)",
            run_pil_fastoctree,
        ),
        Method(
            "imagequant",
            "libimagequant via imagequant.quantize_raw_rgba_bytes(dithering_level=0)",
            run_imagequant,
        ),
    )
}


# --- measuring one (method, image, k) in a fresh process ---------------------------


@dataclass(frozen=True)
class Job:
    """One measurement: a method on one image file at one k."""

    method: str
    path: str
    k: int
    repeat: int
    max_iter: int = SKLEARN_MAX_ITER


@dataclass
class Measurement:
    """What a child process sends back."""

    times: list[float]
    cpu_times: list[float]  # process CPU seconds (all threads) of each call
    peak_extra: int  # bytes above the RSS just before the call
    peak_rss: int  # bytes, high-water mark of the process during the call
    memory_method: str
    info: dict
    image: np.ndarray


def load_image(path: str) -> np.ndarray:
    """Read an image file (.npy or anything Pillow opens) as uint8 RGB."""
    if path.endswith(".npy"):
        return np.load(path)
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _proc_status_kb(field_name: str) -> int:
    """A ``kB`` field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        match = re.search(rf"^{field_name}:\s+(\d+) kB", f.read(), re.MULTILINE)
    return int(match.group(1)) * 1024


def _current_rss() -> int:
    """Resident set size of this process in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def _reset_high_water_mark() -> bool:
    """Reset the kernel's VmHWM of this process; False where that is unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _proc_status_kb("VmHWM")
    except (OSError, AttributeError):
        return False
    return True


class _RssSampler(threading.Thread):
    """Fallback peak-RSS meter: samples psutil's RSS every `interval` seconds."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = _current_rss()
        self._stop_event = threading.Event()
        self.start()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, _current_rss())

    def stop(self) -> int:
        """Stop sampling and return the peak RSS in bytes."""
        self._stop_event.set()
        self.join()
        return max(self.peak, _current_rss())


def measure(job: Job) -> Measurement:
    """Warm up, then time `job.repeat` calls and measure their peak memory."""
    method = METHODS[job.method]
    image = load_image(job.path)
    warnings.simplefilter("ignore")  # e.g. "fewer distinct colours" in the warm-up
    method.run(np.ascontiguousarray(image[:64, :64]), 4, job.max_iter)
    times, cpu_times, extra, peak_rss, memory_method = [], [], 0, 0, ""
    for _ in range(job.repeat):
        out = info = None  # free the previous output before measuring the baseline
        before = _current_rss()
        sampler = None
        if _reset_high_water_mark():
            memory_method = "VmHWM"
        else:
            memory_method = "psutil RSS sampled every 5 ms"
            sampler = _RssSampler()
        start, cpu_start = time.perf_counter(), time.process_time()
        out, info = method.run(image, job.k, job.max_iter)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        peak = sampler.stop() if sampler else _proc_status_kb("VmHWM")
        extra = max(extra, peak - before)
        peak_rss = max(peak_rss, peak)
    return Measurement(times, cpu_times, extra, peak_rss, memory_method, info, out)


def _child(conn, job: Job) -> None:
    """Child-process entry point: send ("ok", Measurement) or ("error", text)."""
    try:
        conn.send(("ok", measure(job)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def run_job(job: Job, timeout: float | None) -> Measurement | str:
    """Run `job` in a fresh spawned process; an error text on failure or timeout."""
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, job))
    proc.start()
    send.close()
    try:
        if not receive.poll(timeout):
            proc.kill()
            return f"timeout after {timeout:g} s"
        status, payload = receive.recv()
    except EOFError:
        status, payload = "error", f"child died (exit code {proc.exitcode})"
    finally:
        proc.join()
    return payload if status == "ok" else f"error: {payload.strip()[-300:]}"


# --- results ---------------------------------------------------------------------


@dataclass
class Record:
    """One scored measurement (or a failure, when `error` is set)."""

    method: str
    image: str
    k: int
    time: float = math.nan
    cpu: float = math.nan
    mse: float = math.nan
    de2000: float = math.nan
    peak_extra: int = 0
    peak_rss: int = 0
    n_colors: int = 0
    info: dict = field(default_factory=dict)
    error: str = ""


def count_colors(image: np.ndarray) -> int:
    """Number of distinct RGB colours of a uint8 (..., 3) array."""
    flat = image.reshape(-1, 3).astype(np.uint32)
    return len(np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]))


def score(
    job: Job, name: str, original: np.ndarray, result: Measurement | str
) -> Record:
    """Turn a child's measurement into a Record with MSE and CIEDE2000."""
    from napari_kmeans_quantize import mean_ciede2000, mse

    if isinstance(result, str):
        return Record(job.method, name, job.k, error=result)
    return Record(
        job.method,
        name,
        job.k,
        time=statistics.median(result.times),
        cpu=statistics.median(result.cpu_times),
        mse=mse(original, result.image),
        de2000=mean_ciede2000(original, result.image),
        peak_extra=result.peak_extra,
        peak_rss=result.peak_rss,
        n_colors=count_colors(result.image),
        info={**result.info, "memory": result.memory_method},
    )


def run_set(
    paths: list[tuple[str, str]],
    ks: list[int],
    methods: list[str],
    args: argparse.Namespace,
    max_iter: dict[str, int],
    timeout: dict[str, float | None],
) -> list[Record]:
    """Measure every method on every (name, path) at every k; methods interleaved."""
    records = []
    for name, path in paths:
        original = load_image(path)
        for k in ks:
            for method in methods:
                repeat = args.repeat_slow if METHODS[method].slow else args.repeat
                job = Job(
                    method, path, k, repeat, max_iter.get(method, SKLEARN_MAX_ITER)
                )
                record = score(job, name, original, run_job(job, timeout.get(method)))
                records.append(record)
                status = record.error or (
                    f"{record.time:8.3f} s  MSE {record.mse:8.2f}  "
                    f"dE00 {record.de2000:5.2f}  +{record.peak_extra / MB:6.0f} MB"
                )
                print(f"  {name:22s} k={k:<4d} {method:15s} {status}", flush=True)
    return records


@dataclass
class Summary:
    """One table row: a method on an image set at one k."""

    method: str
    n_images: int
    time: float  # median over images of the per-image median time
    cpu: float  # the same for process CPU time
    speedup: float  # median over images of (peer time / our time)
    mse: float  # mean over images
    mse_ratio: float  # ours / peer
    de2000: float
    peak_extra: int  # max over images
    peak_rss: int
    n_colors: int  # max over images
    note: str = ""


def summarise(records: list[Record], k: int, methods: list[str]) -> list[Summary]:
    """Aggregate the records of one k over the images, one Summary per method."""
    ours = {r.image: r for r in records if r.method == OURS and r.k == k}
    our_mse = _mean([r.mse for r in ours.values()])
    rows = []
    for method in methods:
        recs = [r for r in records if r.method == method and r.k == k]
        done = [r for r in recs if not r.error]
        ratios = [
            r.time / ours[r.image].time
            for r in done
            if r.image in ours and not ours[r.image].error
        ]
        notes = [r.error for r in recs if r.error]
        iters = [r.info["n_iter"] for r in done if "n_iter" in r.info]
        if iters:
            notes.insert(0, f"iterations {min(iters)}-{max(iters)}")
        capped = sum(1 for r in done if r.info.get("converged") is False)
        if capped:
            notes.append(f"hit max_iter on {capped} image(s)")
        mse = _mean([r.mse for r in done])
        rows.append(
            Summary(
                method,
                len(done),
                _median([r.time for r in done]),
                _median([r.cpu for r in done]),
                _median(ratios),
                mse,
                our_mse / mse if mse else math.nan,
                _mean([r.de2000 for r in done]),
                max((r.peak_extra for r in done), default=0),
                max((r.peak_rss for r in done), default=0),
                max((r.n_colors for r in done), default=0),
                "; ".join(notes),
            )
        )
    return rows


def _mean(values: list[float]) -> float:
    """Mean, NaN for an empty list."""
    return statistics.fmean(values) if values else math.nan


def _median(values: list[float]) -> float:
    """Median, NaN for an empty list."""
    return statistics.median(values) if values else math.nan


def markdown_table(rows: list[Summary], sklearn_cap: int | None = None) -> str:
    """The Markdown table of one image set at one k (with sklearn-full's cap)."""
    lines = [
        "| Method | Images | Median time (s) | CPU (s) | x faster (peer / ours) "
        "| Mean MSE "
        "| MSE ratio (ours / peer) | Mean CIEDE2000 | Peak extra (MB) "
        "| Peak RSS (MB) | Colours | Notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in rows:
        label = s.method
        if s.method == "sklearn-full" and sklearn_cap is not None:
            label += f" (max_iter={sklearn_cap})"
        lines.append(
            f"| {label} | {s.n_images} | {s.time:.3f} | {s.cpu:.3f} "
            f"| {s.speedup:.2f} "
            f"| {s.mse:.2f} | {s.mse_ratio:.4f} | {s.de2000:.3f} "
            f"| {s.peak_extra / MB:.0f} | {s.peak_rss / MB:.0f} | {s.n_colors} "
            f"| {s.note} |"
        )
    return "\n".join(lines)


# --- targets ---------------------------------------------------------------------


def _check(ok: bool | None, text: str) -> str:
    """One target line: PASS, FAIL or SKIP (a peer was not measured)."""
    verdict = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
    return f"- **{verdict}** {text}"


def _row(rows: list[Summary], method: str) -> Summary | None:
    """The row of `method`, None when it was skipped or never finished."""
    for s in rows:
        if s.method == method and s.n_images:
            return s
    return None


def check_targets(
    small: dict[int, list[Summary]], large: dict[int, list[Summary]]
) -> list[str]:
    """PASS/FAIL lines for the targets, with the numbers behind them."""
    lines = []
    for k, rows in small.items():
        ours, full, liq = (_row(rows, m) for m in (OURS, "sklearn-full", "imagequant"))
        if ours and full:
            ratio = ours.mse / full.mse
            lines.append(
                _check(
                    ratio <= 1.01,
                    f"CQ100 k={k}: our mean MSE {ours.mse:.2f} is at most 1 % above "
                    f"sklearn-full's {full.mse:.2f} (ours / sklearn-full = "
                    f"{ratio:.4f}, {100 * (ratio - 1):+.2f} %)",
                )
            )
            lines.append(
                _check(
                    full.speedup >= 20,
                    f"CQ100 k={k}: at least 20x faster than sklearn-full: "
                    f"{full.speedup:.1f}x (median of per-image time ratios; "
                    f"median times {full.time:.3f} s vs {ours.time:.3f} s)",
                )
            )
        else:
            lines.append(_check(None, f"CQ100 k={k}: sklearn-full not measured"))
        if ours and liq:
            ratio = ours.mse / liq.mse
            lines.append(
                _check(
                    ratio <= 0.95,
                    f"CQ100 k={k}: our mean MSE {ours.mse:.2f} is at least 5 % below "
                    f"libimagequant's {liq.mse:.2f} ({100 * (ratio - 1):+.2f} %)",
                )
            )
            if k == 256:
                lines.append(
                    _check(
                        liq.speedup >= 1,
                        f"CQ100 k=256: no slower than libimagequant: "
                        f"{liq.speedup:.2f}x (median of per-image time ratios; "
                        f"median times {liq.time:.3f} s vs ours {ours.time:.3f} s)",
                    )
                )
        else:
            lines.append(_check(None, f"CQ100 k={k}: libimagequant not measured"))
    for k, rows in large.items():
        ours, full, liq = (_row(rows, m) for m in (OURS, "sklearn-full", "imagequant"))
        if not ours:
            lines.append(_check(None, f"12-MP k={k}: ours not measured"))
            continue
        if liq:
            lines.append(
                _check(
                    liq.speedup >= 3,
                    f"12-MP k={k}: at least 3x faster than libimagequant: "
                    f"{liq.speedup:.2f}x ({liq.time:.2f} s vs ours {ours.time:.2f} s)",
                )
            )
            lines.append(
                _check(
                    ours.mse < liq.mse,
                    f"12-MP k={k}: MSE lower than libimagequant's: {ours.mse:.2f} "
                    f"vs {liq.mse:.2f} ({100 * (ours.mse / liq.mse - 1):+.2f} %)",
                )
            )
        else:
            lines.append(_check(None, f"12-MP k={k}: libimagequant not measured"))
        if full:
            lines.append(
                _check(
                    full.speedup >= 30,
                    f"12-MP k={k}: at least 30x faster than sklearn-full: "
                    f"{full.speedup:.1f}x ({full.time:.1f} s vs ours {ours.time:.2f} s"
                    f"{'; ' + full.note if full.note else ''})",
                )
            )
        else:
            lines.append(_check(None, f"12-MP k={k}: sklearn-full not measured"))
        lines.append(
            _check(
                ours.peak_rss < GB,
                f"12-MP k={k}: our peak memory below 1 GB: peak RSS of the process "
                f"{ours.peak_rss / MB:.0f} MB ({ours.peak_extra / MB:.0f} MB above "
                "the RSS before the call)",
            )
        )
    return lines


# --- the 12-MP photo, environment, main -----------------------------------------


def make_large_photo(path: str) -> int:
    """Write the 4000 x 3000 noisy astronaut to `path` (.npy); its colour count."""
    from skimage import data
    from skimage.transform import resize

    up = resize(
        data.astronaut(),
        LARGE_SHAPE,
        order=3,
        anti_aliasing=False,
        preserve_range=True,
    )
    up += np.random.default_rng(0).normal(0.0, LARGE_NOISE, up.shape)
    photo = np.clip(np.rint(up), 0, 255).astype(np.uint8)
    np.save(path, photo)
    return count_colors(photo)


def environment() -> str:
    """Cores, RAM, Python and library versions, one line each."""
    import psutil

    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in (
            "napari-kmeans-quantize",
            "numpy",
            "scipy",
            "scikit-learn",
            "scikit-image",
            "pillow",
            "imagequant",
        )
    )
    import imagequant

    liq = imagequant.lib.liq_version()
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
        f"{platform.platform()}, Python {platform.python_version()}\n\n"
        f"Versions: {versions} (libimagequant {liq // 10000}.{liq // 100 % 100}."
        f"{liq % 100})"
    )


def _version(name: str) -> str:
    """Installed version of a distribution, or '?'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "folder",
        nargs="?",
        default=str(REPO.parent / "shared" / "data" / "cq100"),
        help="folder of PNG photos (the CQ100 subset)",
    )
    parser.add_argument(
        "--ks",
        default="16,64,256",
        help="comma-separated palette sizes k",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="METHOD",
        help=f"peer(s) to leave out, comma-separated or repeated; one of "
        f"{', '.join(m for m in METHODS if m != OURS)}",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="use only the first N images"
    )
    parser.add_argument(
        "--no-large", action="store_true", help="skip the 12-megapixel photo"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed calls per (method, image, k) for all but sklearn-full",
    )
    parser.add_argument(
        "--repeat-slow",
        type=int,
        default=1,
        help="timed calls per (image, k) for sklearn-full",
    )
    parser.add_argument(
        "--large-sklearn-max-iter",
        type=int,
        default=SKLEARN_MAX_ITER,
        help="max_iter of sklearn-full on the 12-MP photo; the default is "
        "scikit-learn's, i.e. no cap (a smaller cap is shown in the table). On 2 "
        "cores k=256 took 47 iterations, about 200 s, k-means++ init included",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds after which a sklearn-full job is killed and reported as "
        "unfinished (its targets then read SKIP); None: no limit",
    )
    parser.add_argument(
        "--md",
        default=str(REPO / "benchmarks" / "RESULTS.md"),
        help="Markdown file to write the results to ('' to skip)",
    )
    args = parser.parse_args(argv)
    args.ks = [int(k) for k in args.ks.split(",")]
    if min(args.repeat, args.repeat_slow) < 1:
        parser.error("--repeat and --repeat-slow must be at least 1")
    args.skip = {m for item in args.skip for m in item.split(",") if m}
    unknown = args.skip - set(METHODS) | ({OURS} & args.skip)
    if unknown:
        parser.error(f"cannot skip {', '.join(sorted(unknown))}")
    return args


@dataclass
class Run:
    """Everything the report needs besides the tables."""

    args: argparse.Namespace
    command: str
    methods: list[str]
    n_images: int = 0
    n_large_colors: int = 0
    memory_methods: str = ""
    wall: float = 0.0
    loads: tuple[str, str] = ("", "")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the tables and write the Markdown report."""
    args = parse_args(argv)
    methods = [m for m in METHODS if m not in args.skip]
    run = Run(
        args,
        "python "
        + shlex.join(
            [os.path.relpath(__file__, REPO), *(sys.argv[1:] if argv is None else argv)]
        ),
        methods,
    )
    load_before = _load_average()
    started = time.perf_counter()
    print(run.command)
    print(environment())
    print(f"Load average before: {load_before}")

    folder = Path(args.folder)
    paths = sorted(folder.glob("*.png"))[: args.limit]
    if not paths:
        sys.exit(f"no PNG images in {folder}")
    run.n_images = len(paths)
    print(f"\n== {folder} ({len(paths)} images), k = {args.ks}")
    timeouts = {"sklearn-full": args.timeout}
    records = run_set(
        [(p.stem, str(p)) for p in paths], args.ks, methods, args, {}, timeouts
    )
    small = {k: summarise(records, k, methods) for k in args.ks}

    large = {}
    if not args.no_large:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "large.npy")
            t0 = time.perf_counter()
            run.n_large_colors = make_large_photo(path)
            print(
                f"\n== 12-MP photo {LARGE_SHAPE[1]}x{LARGE_SHAPE[0]}: "
                f"{run.n_large_colors:,} distinct colours "
                f"(made in {time.perf_counter() - t0:.1f} s)"
            )
            cap = args.large_sklearn_max_iter
            large_records = run_set(
                [("astronaut-12MP", path)],
                args.ks,
                methods,
                args,
                {"sklearn-full": cap},
                timeouts,
            )
        large = {k: summarise(large_records, k, methods) for k in args.ks}
        records += large_records

    run.memory_methods = ", ".join(
        sorted({r.info["memory"] for r in records if not r.error})
    )
    run.wall = time.perf_counter() - started
    run.loads = (load_before, _load_average())
    report = render(run, small, large)
    print("\n" + report)
    if args.md:
        Path(args.md).write_text(report)
        print(f"\nwritten to {args.md}")


def render(
    run: Run, small: dict[int, list[Summary]], large: dict[int, list[Summary]]
) -> str:
    """The whole report as Markdown: targets, setup, then one table per set and k."""
    args = run.args
    parts = [
        "# Peer benchmark: napari_kmeans_quantize.quantize vs other quantisers",
        "",
        "## Targets",
        "",
        *check_targets(small, large),
        "",
        "Speed ratios are the median over the images of (peer time / our time) "
        "for the same image and k; each time is the median of the repeats.",
        "",
        "## Setup",
        "",
        f"Command: `{run.command}`",
        "",
        f"Machine: {environment()}",
        "",
        f"Load average (1, 5, 15 min): {run.loads[0]} before, {run.loads[1]} after the run "
        f"(the machine is shared; times are upper bounds). Wall time of the run: "
        f"{run.wall / 60:.1f} min.",
        "",
        "Methods (dithering off for all; every call goes from a uint8 (H, W, 3) "
        "array to the quantised uint8 (H, W, 3) array, conversions included):",
        "",
        *(f"- `{m}`: {METHODS[m].description}" for m in run.methods),
        "",
        f"Each (method, image, k) runs in a fresh spawned process: one untimed "
        f"warm-up call on a 64 x 64 crop, then {args.repeat} timed calls "
        f"({args.repeat_slow} for sklearn-full); the time is their median. Peak "
        "memory: the process's resident-set high-water mark (Linux VmHWM, reset via "
        "/proc/self/clear_refs just before each call; a 5 ms psutil sampler where "
        f"that is unavailable; used in this run: {run.memory_methods}). "
        "'Peak extra' is that peak minus the RSS just before "
        "the call (interpreter, imports and the input image excluded), 'Peak RSS' "
        "the absolute peak of the process; both are the maximum over the images. "
        "MB = 10^6 bytes. 'CPU (s)' is the process CPU time (all threads) of the "
        "call, median of the repeats: above the wall time means more than one "
        "core was busy.",
        "",
        "Quality, the same for every method: MSE = mean over pixels of the squared "
        "error summed over the 3 channels on 0..255 (Celebi's convention, "
        "`napari_kmeans_quantize.mse`); mean CIEDE2000 "
        "(`napari_kmeans_quantize.mean_ciede2000`). Both are averaged over the "
        "images. 'Colours' is the most distinct colours any output had.",
        "",
    ]
    for k, rows in small.items():
        parts += [
            f"## {Path(args.folder).name} ({run.n_images} images), k = {k}",
            "",
            markdown_table(rows),
            "",
        ]
    cap = args.large_sklearn_max_iter
    cap = cap if cap < SKLEARN_MAX_ITER else None
    if large:
        parts += [
            "## 12-MP photo",
            "",
            "scikit-image's `data.astronaut()` upscaled to 4000 x 3000 (width x "
            "height) with `skimage.transform.resize(order=3, anti_aliasing=False, "
            "preserve_range=True)` (bicubic), plus Gaussian noise of sigma 2 from "
            "`np.random.default_rng(0)`, rounded and clipped to uint8: "
            f"**{run.n_large_colors:,} distinct colours**.",
            "",
        ]
        if "sklearn-full" in run.methods and cap:
            parts += [
                f"sklearn-full is capped at max_iter={cap} "
                f"here (scikit-learn's default is {SKLEARN_MAX_ITER}) to keep the "
                "run short; where the notes say it hit max_iter, its time is a lower "
                "bound on the uncapped method's time (so the speed ratio is a lower "
                "bound too) and its MSE may be higher than uncapped.",
                "",
            ]
        for k, rows in large.items():
            parts += [f"### k = {k}", "", markdown_table(rows, cap), ""]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
