"""``quantize`` over many photos: files, folders and glob patterns, one output per
input in ``--out-dir``, on every core (a process each), with a progress line.

Every target is checked before any work; a photo that cannot be read, quantised
or written is reported at the end with its reason and the others go on (exit
status 1 if any failed). Ctrl-C stops the workers, which remove their
temporary files, so no partial file is left.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from . import _targets
from ._atomic import remove_stale_temps, replacing_read_only
from ._cli_run import describe, exit_cleanly_on_sigterm, on_signal
from ._input import FROM_FILE, read_source

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Settings:
    """What every photo of a run shares (sent to the workers)."""

    k: int
    suffix: str
    pixel_limit: int
    #: The channel axis given on the command line; None with `axis_from_file`.
    channel_axis: int | None
    axis_from_file: bool
    plain_channels: bool
    fixed_colors: str | None
    data_range: float | None
    options: dict[str, Any]
    effort: str = "default"
    one_core: bool = False


@dataclass(frozen=True)
class Outcome:
    """One photo done: the file written, or the reason it was not."""

    source: Path
    written: str | None = None
    palette_csv: str | None = None
    n_bytes: int = 0
    psnr: float | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None


def is_batch(args: argparse.Namespace) -> bool:
    """Whether a ``quantize`` run is over many photos (a folder, a pattern,
    several files without --shared, or --out-dir)."""
    if args.shared:
        return False
    if args.out_dir is not None or len(args.images) > 1:
        return True
    item = args.images[0]
    return item.is_dir() or (not item.exists() and _is_pattern(str(item)))


def output_name(source: Path, k: int, suffix: str) -> str:
    """The output file name for `source`: ``STEM-kK`` plus the format's suffix."""
    return f"{source.stem}-k{k}{suffix}"


def expand_inputs(items: Iterable[Path]) -> tuple[list[Path], list[Outcome]]:
    """The photos named by files, folders (their image files, by extension) and
    glob patterns, in order and each once; and a failure for each item that
    names none."""
    paths: list[Path] = []
    failures: list[Outcome] = []
    for item in items:
        text = str(item)
        if item.is_dir():
            found = sorted(
                p
                for p in item.iterdir()
                if p.is_file()
                and not p.name.startswith(".")
                and p.suffix.lower() in _image_suffixes()
            )
            if not found:
                failures.append(Outcome(item, error=f"{item}: no image files in it."))
            paths += found
        elif not item.exists() and _is_pattern(text):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True))
            found = [p for p in found if p.is_file()]
            if not found:
                failures.append(Outcome(item, error=f"{text}: no file matches."))
            paths += found
        else:
            paths.append(item)
    seen: set[str] = set()
    unique = []
    for p in paths:
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, failures


def run(args: argparse.Namespace) -> int:
    """Quantise every photo the arguments name; 0 if all were written, else 1."""
    for flag, value in (
        ("--out", args.out),
        ("--rgb-out", args.rgb_out),
        ("--weights", args.weights),
    ):
        if value is not None:
            raise ValueError(
                f"{flag} is for one image; with several inputs, a folder or "
                "--out-dir every output is named IMAGE-kK plus the --format "
                "extension (--weights: run each image on its own)."
            )
    suffix = "." + args.format
    fmt = _targets.indexed_format(Path(f"out{suffix}"), args.k)
    if args.fixed_colors is not None:
        from ._palette_control import parse_hex_colors

        parse_hex_colors(args.fixed_colors)  # refused before any work
    paths, failures = expand_inputs(args.images)
    if args.out_dir is not None:
        make_folder(args.out_dir)
    jobs, refused = _targets_of(paths, args, suffix)
    failures += refused
    from_file = args.channel_axis is FROM_FILE
    n_jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(jobs)))
    settings = Settings(
        k=args.k,
        suffix=suffix,
        pixel_limit=args.pixel_limit,
        channel_axis=None if from_file else args.channel_axis,
        axis_from_file=from_file,
        plain_channels=args.plain_channels,
        fixed_colors=args.fixed_colors,
        data_range=args.data_range,
        options=quantize_options(args),
        effort=args.effort,
        one_core=n_jobs > 1,
    )
    total = len(jobs) + len(failures)
    progress = Progress(total, sys.stderr)
    for failure in failures:
        progress.done(failure, timed=False)
    t0 = time.perf_counter()
    outcomes = _run_all(jobs, settings, n_jobs, args.force, progress)
    seconds = time.perf_counter() - t0
    progress.close()
    written = [o for o in outcomes if o.error is None]
    failed = failures + [o for o in outcomes if o.error is not None]
    rate = len(written) / seconds if seconds > 0 else float("inf")
    print(
        f"{len(written)} of {total} photos written as {fmt.name} in {seconds:.1f} s "
        f"({rate:.1f} photos/s, {n_jobs} process{'es' if n_jobs > 1 else ''})."
    )
    if failed:
        print(f"{len(failed)} not written:", file=sys.stderr)
        for failure in failed:
            print(f"  {failure.error}", file=sys.stderr)
        return 1
    return 0


def quantize_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``quantize`` that the command line's options set
    the same way for every image."""
    return dict(
        color_space=args.color_space,
        dither=args.dither,
        random_state=args.seed,
        max_pixels=args.max_pixels,
        alpha=not args.plain_channels,
        standardize=args.standardize,
    )


def _is_pattern(text: str) -> bool:
    return any(c in _GLOB_CHARS for c in text)


def _image_suffixes() -> frozenset[str]:
    from PIL import Image

    # Pillow also registers formats it only writes (.pdf): only those it reads.
    Image.init()
    extensions = Image.registered_extensions().items()
    readable = {ext for ext, fmt in extensions if fmt in Image.OPEN}
    return frozenset(readable | {".tif", ".tiff"})


def make_folder(folder: Path) -> None:
    """Create --out-dir (and its parents) before any work; refuse a file."""
    if folder.exists() and not folder.is_dir():
        import errno

        raise NotADirectoryError(
            errno.ENOTDIR, "exists and is not a folder; give a folder", str(folder)
        )
    folder.mkdir(parents=True, exist_ok=True)


def _targets_of(
    paths: list[Path], args: argparse.Namespace, suffix: str
) -> tuple[list[tuple[Path, Path]], list[Outcome]]:
    """(input, output) for each photo whose target may be written, and a failure
    for each that may not: the input itself, an existing file without --force,
    a name another input takes, what the folder refuses."""
    jobs: list[tuple[Path, Path]] = []
    failures: list[Outcome] = []
    taken: dict[str, Path] = {}
    inputs = tuple(paths)
    input_keys = {os.path.normcase(os.path.abspath(p)): p for p in paths}
    for source in paths:
        folder = args.out_dir if args.out_dir is not None else source.parent
        target = folder / output_name(source, args.k, suffix)
        key = os.path.normcase(os.path.abspath(target))
        try:
            if key in input_keys or any(
                _targets.same_file(target, p) for p in input_keys.values()
            ):
                raise ValueError(
                    f"{source}: its output {target} is one of the inputs of this "
                    "run, read by it; rename that input or choose another "
                    "--out-dir."
                )
            if key in taken:
                raise ValueError(
                    f"{source}: its output {target} is also that of {taken[key]}; "
                    "rename one of them or quantise them into different folders."
                )
            _targets.check_output(target, inputs=inputs, force=args.force)
            if target.exists() and not args.force:
                raise FileExistsError(
                    f"{target} exists; add --force to replace it (or choose "
                    "another --out-dir)."
                )
        except (OSError, ValueError) as err:
            failures.append(Outcome(source, error=describe(err)))
            continue
        taken[key] = source
        jobs.append((source, target))
    return jobs, failures


def _run_all(
    jobs: list[tuple[Path, Path]],
    settings: Settings,
    n_jobs: int,
    force: bool,
    progress: Progress,
) -> list[Outcome]:
    if n_jobs == 1:
        outcomes = []
        for source, target in jobs:
            outcome = quantize_file(source, target, settings)
            progress.done(outcome)
            outcomes.append(outcome)
        return outcomes
    # Forked workers start with the engine imported by this process (about a
    # second and a half per process otherwise).
    from .quantize import quantize  # noqa: F401

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    folders = {target.parent for _, target in jobs}
    pool = ProcessPoolExecutor(
        n_jobs, mp_context=context, initializer=_start_worker, initargs=(force,)
    )
    with on_signal(_stopper(pool, folders)):
        try:
            pending: dict[Future, Path] = {
                pool.submit(quantize_file, source, target, settings): source
                for source, target in jobs
            }
            outcomes = []
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    source = pending.pop(future)
                    outcome = _outcome_of(future, source)
                    progress.done(outcome)
                    outcomes.append(outcome)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def _outcome_of(future: Future, source: Path) -> Outcome:
    try:
        return future.result()
    except BrokenProcessPool:
        return Outcome(
            source,
            error=f"{source}: its worker process died (out of memory?); the "
            "photos still queued were not done.",
        )


def _stopper(pool: ProcessPoolExecutor, folders: set[Path]) -> Callable[[], None]:
    def stop() -> None:
        # SIGTERM: each worker removes its temporary files and exits; one that
        # does not within seconds is killed, and its files removed here.
        processes = list(getattr(pool, "_processes", {}).values())
        for proc in processes:
            with contextlib.suppress(Exception):
                proc.terminate()
        for proc in processes:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(1)
        for folder in folders:
            remove_stale_temps(folder)

    return stop


_WORKER_STATE = contextlib.ExitStack()


def _start_worker(force: bool) -> None:
    exit_cleanly_on_sigterm()
    _WORKER_STATE.enter_context(replacing_read_only(force))


def quantize_file(source: Path, target: Path, settings: Settings) -> Outcome:
    """Read, quantise and write one photo; a failure is an Outcome, not an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = _quantize_file(source, target, settings)
        except Exception as err:  # every failure is reported, the run goes on
            outcome = Outcome(source, error=_with_name(source, describe(err)))
    notes = tuple(dict.fromkeys(str(w.message) for w in caught))
    return replace(outcome, notes=notes)


def _with_name(source: Path, reason: str) -> str:
    return reason if str(source) in reason else f"{source}: {reason}"


def _quantize_file(source: Path, target: Path, settings: Settings) -> Outcome:
    from . import gather
    from .metrics import psnr
    from .quantize import quantize

    fmt = _targets.INDEXED_FORMATS[settings.suffix]
    read = read_source(
        source,
        pixel_limit=settings.pixel_limit,
        # The sentinel is no value a spawned worker would receive as it is.
        channel_axis=FROM_FILE if settings.axis_from_file else settings.channel_axis,
        plain_channels=settings.plain_channels,
    )
    image, channel_axis = read.image, read.channel_axis
    plain = not read.colors
    colors = _targets.check_channels_fit(target, fmt, image, channel_axis, plain=plain)
    _targets.check_indexed_fits(target, fmt, image, channel_axis)
    fixed = None
    if settings.fixed_colors is not None:
        from ._palette_control import colors_for_image, parse_hex_colors

        n_channels = 1 if channel_axis is None else image.shape[channel_axis]
        fixed = colors_for_image(
            parse_hex_colors(settings.fixed_colors), image.dtype, n_channels
        )
    cores = gather.one_core() if settings.one_core else contextlib.nullcontext()
    with cores:
        options = dict(settings.options, alpha=not plain)
        result = quantize(
            image, settings.k, channel_axis=channel_axis, fixed_colors=fixed, **options
        )
    written, csv = _targets.write_result(
        target, fmt, result, image, colors=colors, effort=settings.effort
    )
    quality = None
    with contextlib.suppress(ValueError, TypeError):
        quality = psnr(
            image,
            result.image,
            channel_axis=channel_axis,
            data_range=settings.data_range,
        )
    return Outcome(
        source,
        written=written,
        palette_csv=csv,
        n_bytes=os.path.getsize(written),
        psnr=quality,
    )


class Progress:
    """One line on `stream` updated in place on a terminal, else a plain line
    per photo; each photo's result goes to stdout above it."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = _isatty(stream)
        self.n_done = 0
        self.n_failed = 0
        # Refused before any work: not counted in the rate.
        self.n_untimed = 0
        self.t0 = time.perf_counter()

    def done(self, outcome: Outcome, *, timed: bool = True) -> None:
        self.n_done += 1
        self.n_untimed += not timed
        self.n_failed += outcome.error is not None
        self._clear()
        if outcome.error is None:
            size = f"{outcome.n_bytes:,} bytes"
            quality = "" if outcome.psnr is None else f", PSNR {outcome.psnr:.2f} dB"
            print(f"{outcome.source} -> {outcome.written} ({size}{quality})")
            if outcome.palette_csv is not None:
                print(f"palette -> {outcome.palette_csv}")
        else:
            print(f"failed: {outcome.error}", file=self.stream)
        for note in outcome.notes:
            print(f"note: {note}", file=self.stream)
        sys.stdout.flush()
        self._draw()

    def close(self) -> None:
        self._clear()

    def _text(self) -> str:
        seconds = time.perf_counter() - self.t0
        timed = self.n_done - self.n_untimed
        rate = timed / seconds if seconds > 0 and timed else 0.0
        left = self.total - self.n_done
        eta = f", {left / rate:.0f} s left" if rate > 0 and left else ""
        failed = f", {self.n_failed} failed" if self.n_failed else ""
        return f"{self.n_done}/{self.total} photos{failed}, {rate:.1f}/s{eta}"

    def _draw(self) -> None:
        text = self._text()
        if self.tty:
            width = 24
            filled = round(width * self.n_done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
