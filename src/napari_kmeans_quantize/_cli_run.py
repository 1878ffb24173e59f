"""How a command runs: an error as one line, warnings as notes, signals as a
clean exit (also for the worker processes of a folder of photos)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ._atomic import remove_partial_files

PROG = "napari-kmeans-quantize"

# Called by the signal handler before it exits: e.g. stopping worker processes,
# which remove their own temporary files.
_on_signal: list[Callable[[], None]] = []


def describe(err: BaseException) -> str:
    """One line for an error: the file it concerns first, then what went wrong."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, MemoryError):
        return f"not enough memory for this image ({text})."
    if isinstance(err, OSError) and err.filename is not None:
        reason = err.strerror or text
        return f"{err.filename}: {reason}"
    return text


@contextlib.contextmanager
def on_signal(stop: Callable[[], None]) -> Iterator[None]:
    """Within this block, a signal that ends the run calls `stop` first."""
    _on_signal.append(stop)
    try:
        yield
    finally:
        _on_signal.remove(stop)


@contextlib.contextmanager
def clean_exit_on_signals(command: str) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM end the run at once and cleanly.

    Raising KeyboardInterrupt into compiled code and worker threads (numba
    kernels, cKDTree queries) crashed runs (SIGSEGV, SystemError); instead the
    handler stops the worker processes (see :func:`on_signal`), removes the
    temporary files of writes in progress, says so in one line and exits with
    128 + the signal number (130 for Ctrl-C). Files already renamed into place
    are whole; no other file was touched.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        for stop in list(_on_signal):
            with contextlib.suppress(Exception):
                stop()
        remove_partial_files()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        what = "interrupted" if signum == signal.SIGINT else "terminated"
        line = f"{PROG} {command}: {what}; no partial file was left.\n"
        with contextlib.suppress(OSError):
            os.write(sys.stderr.fileno(), line.encode())
        os._exit(128 + signum)

    # A signal ignored from the start stays ignored: shells start background
    # jobs with SIGINT ignored so that Ctrl-C reaches only the foreground.
    saved = {
        sig: signal.signal(sig, handler)
        for sig in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def exit_cleanly_on_sigterm() -> None:
    """For a worker process: SIGTERM removes its temporary files and exits;
    SIGINT is left to the parent, which stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def handler(signum: int, frame: Any) -> None:
        remove_partial_files()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


class Notes:
    """Warnings as one-line notes, each said once (the k values of a sweep
    write their files in threads and would repeat the same note)."""

    def __init__(self) -> None:
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        text = f"note: {message}"
        with self._lock:
            if text in self._said:
                return
            self._said.add(text)
        print(text, file=sys.stderr)
