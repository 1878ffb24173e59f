"""Quality and size over k: the k-means compression experiment as one call.

:func:`sweep` quantises an image at several palette sizes (k = 2, 4, ..., 256 by
default) and returns a :class:`SweepTable`: for every k the PSNR, the mean
CIEDE2000, the formula bits (indices plus palette), the real indexed-PNG bytes, the
compression ratio and the time (and, when asked, the weighted PSNR and the bytes of
every file format). :func:`auto_k` picks the smallest k that reaches a quality
target, and :func:`plot_sweep` draws quality against size with matplotlib.

Every row is exactly what ``quantize(image, k, ...)`` gives for that k (same palette,
same labels), so a k picked from the table reproduces its row. What is shared across
k: the input is validated once, one histogram, one set of fit-space colours and one
pyramid serve every fit, the original's distinct colours and their CIELAB values are
computed once and reused for every row's PSNR and CIEDE2000, and the k values run in
parallel threads (the k-means and the PNG encoder release the GIL for most of their
work). Unless the results are kept (or weights given), no row builds its quantised
image: its figures come from each distinct colour's label and the PNG from the
labels.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

import numpy as np

from . import gather
from ._engine.api import checked_options, plain_form, with_options
from ._engine.dask_backend import dask_quantize_iter
from ._engine.image import check_one_entry, checked_image, is_dask
from ._engine.options import DEFAULT_KS, check_bool, check_ks
from ._engine.pipeline import (
    FitInputs,
    checked_arrays,
    pixel_histogram,
    quantize_histogram_iter,
    sample_weights,
)
from ._engine.quality import (
    Reference,
    SizeReport,
    build_size_report,
    checked_data_range,
    checked_source_bytes,
    has_ciede2000,
    with_weighted_psnr,
)
from ._engine.result import FewColorsWarning, QuantizeResult
from ._engine.table import SweepRow, SweepTable, check_targets, fmt_psnr
from .plot import plot_sweep

__all__ = [
    "DEFAULT_KS",
    "SweepRow",
    "SweepTable",
    "auto_k",
    "plot_sweep",
    "sweep",
    "sweep_iter",
]

# Documented (and pickled) where users import them from.
SweepRow.__module__ = SweepTable.__module__ = __name__


# --- the sweep -----------------------------------------------------------------------


@with_options(
    only=(
        "channel_axis",
        "color_space",
        "random_state",
        "dither",
        "alpha",
        "standardize",
        "weights",
    )
)
def sweep_iter(
    image: np.ndarray,
    ks: Iterable[int] = DEFAULT_KS,
    *,
    source_bytes: int | None = None,
    keep_results: bool = False,
    workers: int | None = None,
    data_range: float | None = None,
    file_formats: bool = False,
    **options: Any,
) -> Generator[float, None, SweepTable]:
    """Generator form of :func:`sweep` for progress bars and cancellation.

    Yields the fraction of the work done (0..1) from time to time; the
    :class:`SweepTable` is the generator's return value. Closing the generator stops
    the running quantisations at their next step and discards the work. The input is
    validated (for every k) before the first value is yielded, except that for a
    dask array ``n_colors=1`` on RGBA with transparent and visible pixels is only
    found once the colours have been counted.
    """
    start = time.perf_counter()
    ks = check_ks(ks)
    data_range = checked_data_range(data_range)
    source_bytes = checked_source_bytes(source_bytes)
    file_formats = check_bool("file_formats", file_formats)
    # One checked set of options; every k differs only in n_colors.
    base, channel_axis = checked_options(ks[0], options)
    color_space, weights = base.color_space, options["weights"]
    options = {k: replace(base, n_colors=k) for k in ks}
    if is_dask(image):
        # Validate up front: a quantize_iter checks everything before its first
        # yield.
        gens = {
            k: _with_no_entries(
                dask_quantize_iter(image, options[k], channel_axis=channel_axis)
            )
            for k in ks
        }
        for gen in gens.values():
            next(gen)
        yield 0.0
        hist = None
        axis = _normalised_axis(image, channel_axis)
        ref = Reference(image, axis, data_range=data_range, alpha=base.alpha)
    else:
        arr, arr_axis = checked_image(image, channel_axis, color_space, base.alpha)
        check_one_entry(arr, ks[0], base.alpha)
        base = checked_arrays(base, arr.dtype, arr.shape)
        yield 0.0
        # One histogram, and one set of fit inputs (points and pyramid), serve
        # every k and the quality figures: the steps after it are quantize's, so
        # every row is still quantize(image, k).
        hist, unmerged = pixel_histogram(arr, base.alpha)
        axis = _normalised_axis(image, channel_axis)
        ref = Reference(
            image,
            axis,
            hist if unmerged else None,
            data_range=data_range,
            alpha=base.alpha,
        )
        inputs = FitInputs(
            hist.colors,
            hist.counts,
            sample_weights(hist, None, None, base.weights),
            arr.dtype,
            color_space,
            alpha=base.alpha,
            standardize=base.standardize,
        )
        # Without kept results the rows need no quantised images (the weighted
        # PSNR reads one), and the quality figures read each colour's label.
        make_image = keep_results or weights is not None
        gens = {
            k: quantize_histogram_iter(
                arr, arr_axis, hist, inputs, options[k], image=make_image
            )
            for k in ks
        }

    n_workers = _n_workers(workers, len(ks))
    done_fraction = dict.fromkeys(ks, 0.0)
    stop = threading.Event()

    def run(k: int) -> tuple[QuantizeResult | None, SizeReport] | None:
        if n_workers > 1:
            # The k run side by side on every core already: each keeps to one.
            with gather.one_core():
                return run_one(k)
        return run_one(k)

    def run_one(k: int) -> tuple[QuantizeResult | None, SizeReport] | None:
        gen = gens[k]
        t0 = time.perf_counter()
        while True:
            if stop.is_set():
                gen.close()
                return None
            try:
                done_fraction[k] = next(gen)
            except StopIteration as finished:
                result, entries = finished.value
                # The time of this k's own work (not of waiting for a thread).
                result = replace(result, seconds=time.perf_counter() - t0)
                # The report (PNG encoding above all) runs here too, in parallel.
                report = build_size_report(
                    result,
                    ref,
                    source_bytes,
                    file_formats=file_formats,
                    # The colours' labels are the reference's where its
                    # histogram is the fit's (no transparent pixels merged).
                    entries=entries if ref.hist is hist else None,
                )
                report = with_weighted_psnr(report, result, image, weights)
                # A finished row's labels (12 MB a k at 12 MP) are dropped here
                # unless kept: at most one k per thread holds its arrays.
                return (result if keep_results else None), report

    results: dict[int, QuantizeResult | None] = {}
    reports: dict[int, SizeReport] = {}
    # Largest k first: they take longest, so the threads finish together.
    order = sorted(ks, reverse=True)
    with warnings.catch_warnings():
        # k above the number of distinct colours: the table's n_colors says so.
        warnings.simplefilter("ignore", FewColorsWarning)
        pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="kq-sweep")
        try:
            if ref.has_ciede and n_workers > 1:
                # The colours' CIELAB, which every report needs, converts on one
                # core while the other starts the largest k.
                pool.submit(ref.lab)
            futures: dict[Future, int] = {pool.submit(run, k): k for k in order}
            pending = set(futures)
            while pending:
                finished, pending = wait(
                    pending, timeout=0.1, return_when=FIRST_COMPLETED
                )
                for future in finished:
                    k = futures[future]
                    results[k], reports[k] = future.result()
                yield _overall(done_fraction, len(reports), len(ks))
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    rows = tuple(SweepRow.from_report(k, reports[k]) for k in ks)
    first = reports[ks[0]]
    table = SweepTable(
        rows=rows,
        shape=first.shape,
        n_distinct=ref.hist.n_colors,
        bits_per_pixel=first.bits_per_pixel,
        original_bits=first.original_bits,
        source_bytes=first.source_bytes,
        color_space=color_space,
        seconds=time.perf_counter() - start,
        psnr_peak=first.psnr_peak,
        results=tuple(results[k] for k in ks) if keep_results else None,
    )
    few = [row.k for row in rows if row.n_colors < row.k]
    if few:
        warnings.warn(
            f"The image has only {max(row.n_colors for row in rows)} distinct "
            f"colours; the rows for k = {', '.join(map(str, few))} hold all of them "
            "exactly.",
            UserWarning,
            stacklevel=3,  # the caller of sweep()
        )
    yield 1.0
    return table


@plain_form(sweep_iter, progress=True)
def sweep() -> SweepTable:
    """Quantise an image at several k and tabulate quality and size.

    Parameters
    ----------
    image : ndarray
        Image as for :func:`~napari_kmeans_quantize.quantize`.
    ks : iterable of int, optional
        Palette sizes (each 1..65536); duplicates are dropped and rows come out in
        ascending k. Default 2, 4, 8, ..., 256.
    channel_axis, color_space, random_state, dither
        Passed to :func:`~napari_kmeans_quantize.quantize` for every k.
    progress : callable, optional
        Called with the fraction of the work done (0..1), from the calling thread.
    source_bytes : int, optional
        Size of the image's file, for the reports' source ratio.
    keep_results : bool, optional
        Keep every :class:`QuantizeResult` in ``table.results`` (memory: one
        quantised image and labels per k).
    workers : int, optional
        Threads running different k at once. Default: the number of CPUs, at most
        4 and at most ``len(ks)``. 1 runs them one after another.
    data_range : float, optional
        The PSNR peak and, for integer RGB(A) images, the value of full intensity
        for CIEDE2000, as for :func:`~napari_kmeans_quantize.size_report` (whose
        docstring gives the default per dtype): e.g. 4095 for 12-bit data stored
        as uint16. Finite and above 0.
    alpha, standardize : bool, optional
        As for :func:`~napari_kmeans_quantize.quantize`: whether 4 channels are
        RGBA, and whether to fit on unit-variance channels.
    weights : ndarray or dask array, optional
        An importance map for every k's fit, as for
        :func:`~napari_kmeans_quantize.quantize`; every row's report then also
        gives ``psnr_weighted``, the PSNR inside the region it marks (a
        column of the table).
    file_formats : bool, optional
        Also encode every row in every file format that holds it exactly (PNG,
        GIF, TIFF, WebP, ... as :func:`~napari_kmeans_quantize.size_report`
        with ``file_formats=True``): the rows then give the real bytes of each
        (``file_bytes``) and name the smallest. Costs one encoding per format
        and k.

    Returns
    -------
    table : SweepTable
        One row per k (PSNR, mean CIEDE2000, formula bits, PNG bytes, ratio,
        seconds; the weighted PSNR with `weights`, the bytes of every format
        with `file_formats`).

    Raises
    ------
    TypeError, ValueError
        For a bad image or options (the errors of ``quantize``), a bad `ks` or
        `data_range`.

    Examples
    --------
    >>> from skimage import data
    >>> table = sweep(data.astronaut()[::4, ::4], ks=(2, 16, 64))
    >>> [row.k for row in table]
    [2, 16, 64]
    >>> psnrs = [row.psnr for row in table]
    >>> psnrs == sorted(psnrs)
    True
    """


@with_options(only=("channel_axis", "color_space", "random_state", "dither", "weights"))
def auto_k(
    image: np.ndarray,
    *,
    max_ciede2000: float | None = None,
    min_psnr: float | None = None,
    ks: Iterable[int] = DEFAULT_KS,
    progress: Callable[[float], Any] | None = None,
    data_range: float | None = None,
    **options: Any,
) -> int:
    """The smallest k that reaches a quality target.

    Tries the `ks` in ascending order and stops at the first that meets every
    target given, so small answers are cheap.

    Parameters
    ----------
    image : ndarray
        Image as for :func:`~napari_kmeans_quantize.quantize`.
    max_ciede2000 : float, optional
        Largest acceptable mean CIEDE2000; 2.3 is about one just-noticeable
        difference. Needs an RGB(A) image.
    min_psnr : float, optional
        Smallest acceptable PSNR in dB.
    ks : iterable of int, optional
        Candidate palette sizes.
    channel_axis, color_space, random_state, dither
        Passed to :func:`~napari_kmeans_quantize.quantize`.
    progress : callable, optional
        Called with the fraction of the candidates tried (0..1).
    data_range : float, optional
        As for :func:`sweep`: the PSNR peak (and full intensity of integer
        colours); give 4095 for 12-bit data stored as uint16, whose default peak
        is 65535 and makes every k look about 24 dB better.
    weights : ndarray or dask array, optional
        An importance map for the fits, as for :func:`sweep`; the targets are
        still checked on the whole image.

    Returns
    -------
    k : int
        The smallest candidate meeting the target(s). If none does, the largest
        candidate, with a warning.

    Raises
    ------
    ValueError
        If no target is given, `max_ciede2000` is asked of a single-channel image,
        or `data_range` is not a finite number above 0.

    Examples
    --------
    >>> from skimage import data
    >>> auto_k(data.astronaut()[::4, ::4], min_psnr=25.0)
    16
    """
    check_targets(max_ciede2000, min_psnr)
    ks = check_ks(ks)
    data_range = checked_data_range(data_range)
    if max_ciede2000 is not None and options["channel_axis"] is None:
        raise ValueError(
            "max_ciede2000 needs an RGB(A) image; use min_psnr for single-channel "
            "images."
        )
    if max_ciede2000 is not None and not is_dask(image):
        # Without a colour scale no row has a CIEDE2000: the target would never
        # be met and every k tried in vain.
        arr = np.asarray(image)
        lo, hi = (arr.min(), arr.max()) if arr.dtype.kind == "f" else (0, 0)
        if not has_ciede2000(arr.dtype, lo, hi, data_range):
            need = (
                f"float colours in [0, 1] (this image spans [{lo}, {hi}])"
                if arr.dtype.kind == "f"
                else f"data_range (the value of full intensity) for {arr.dtype}"
            )
            raise ValueError(f"max_ciede2000 needs {need}; or use min_psnr.")
    row = None
    for i, k in enumerate(ks):
        table = sweep(image, (k,), workers=1, data_range=data_range, **options)
        row = table.rows[0]
        if progress is not None:
            progress((i + 1) / len(ks))
        if row.meets(max_ciede2000=max_ciede2000, min_psnr=min_psnr):
            return k
        if row.n_colors < k:  # every colour is kept: larger k cannot do better
            break
    assert row is not None
    warnings.warn(
        f"No k in {ks} reaches the target (best: k={row.k}, PSNR "
        f"{fmt_psnr(row.psnr)} dB, mean CIEDE2000 "
        f"{'n/a' if row.ciede2000 is None else f'{row.ciede2000:.2f}'}); "
        f"returning k={ks[-1]}.",
        UserWarning,
        stacklevel=2,
    )
    return ks[-1]


# --- helpers -------------------------------------------------------------------------


def _with_no_entries(
    gen: Generator[float, None, QuantizeResult],
) -> Generator[float, None, tuple[QuantizeResult, None]]:
    # A dask result, in the form of an in-memory row: no colour labels.
    return (yield from gen), None


def _n_workers(workers: int | None, n_jobs: int) -> int:
    if workers is None:
        return max(1, min(os.cpu_count() or 1, 4, n_jobs))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"workers must be a positive integer or None, got {workers!r}."
        )
    return min(workers, n_jobs)


def _normalised_axis(image: Any, channel_axis: int | None) -> int | None:
    if channel_axis is None:
        return None
    return int(channel_axis) % np.ndim(image)


def _overall(done: dict[int, float], n_reported: int, n: int) -> float:
    # Bigger k cost more: weight each k's progress by log2(k) + 1.
    weights = {k: math.log2(k) + 1 for k in done}
    fit = sum(weights[k] * f for k, f in done.items()) / sum(weights.values())
    return min(0.99, 0.9 * fit + 0.1 * n_reported / n)
