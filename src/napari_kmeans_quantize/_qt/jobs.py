"""The job runner: one thread worker at a time, with an explicit state.

A job is a progress generator (it yields fractions 0..1 and returns its result)
run by superqt's ``GeneratorWorker``. Cancelling asks the worker to stop at the
generator's next yield; the state is CANCELLING until the thread has ended, so a
new job is refused with "still stopping", not "already running". Closing the
widget (its Qt object destroyed, e.g. with the viewer) quits the worker too.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from functools import partial
from typing import Any

# The first run after installing (or upgrading) compiles the engine's kernels,
# which took about 16 s (13 s for quantize, 3 s for the size report's figures) on
# our 2-core machine; later sessions load them from numba's on-disk cache (a first
# run then takes well under a second). The hint is added to the status of the
# first job of a session only if that job is still running after
# FIRST_RUN_HINT_DELAY_MS and numba's cache does not hold the engine's kernels.
FIRST_RUN_HINT = " The first run after installing compiles the engine once (10-20 s)."
FIRST_RUN_HINT_DELAY_MS = 2000
#: Between two steps of showing a result: long enough for the viewer to repaint.
STEP_DELAY_MS = 1
_engine_warm = False


class JobState(enum.Enum):
    """What the runner is doing."""

    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    #: the worker has returned; its result is being shown, step by step
    FINISHING = "finishing"


class JobRunner:
    """Runs one job at a time and hands its signals to the widget (main thread).

    Parameters
    ----------
    owner : QWidget
        The widget's Qt object: its destruction quits the worker.
    handlers : dict
        Callbacks by signal: ``yielded(fraction)``, ``returned(job, value)``,
        ``errored(job, exc)``, ``warned(message)``, ``aborted(job)`` and
        ``finished(job)``; none is called once the owner is gone. ``returned``
        may return a generator: its steps then run one per event-loop turn
        after the worker has ended (state FINISHING, still running, not
        cancellable), and ``finished`` follows the last.
    status : callable
        Reads and sets the status line (``status()`` / ``status(text)``).
    """

    def __init__(self, owner: Any, handlers: dict[str, Callable], status) -> None:
        # shared with the destroyed-callback, which must not hold a reference to self
        self._state: dict[str, Any] = {"worker": None, "closed": False}
        self.state = JobState.IDLE
        self.job = "quantize"
        self.source: Any = None  # the source snapshot of the running job
        # what the returned handler left to do on the main thread (a generator)
        self._steps: Any = None
        self.started = time.perf_counter()
        self._handlers = handlers
        self._status = status
        self._owner = owner
        owner.destroyed.connect(partial(_on_destroyed, self._state))

    @property
    def worker(self):
        return self._state["worker"]

    @property
    def closed(self) -> bool:
        return self._state["closed"]

    @property
    def is_running(self) -> bool:
        return self._state["worker"] is not None

    def waited(self) -> float:
        """Seconds since the job was started: what the user waited."""
        return time.perf_counter() - self.started

    def start(self, job: str, func, args: tuple, kwargs: dict, message: str, source):
        """Run ``func(*args, **kwargs)`` (a progress generator); return the worker."""
        from napari.qt.threading import create_worker
        from superqt.utils import GeneratorWorker

        self.source = source
        self.job = job
        self._steps = None
        # superqt's GeneratorWorker (not napari's subclass) so that errors and
        # warnings reach the user once, through our handlers, as plain messages.
        worker = create_worker(
            func,
            *args,
            **kwargs,
            _worker_class=GeneratorWorker,
            _start_thread=False,
            _connect={
                "yielded": self._on_yielded,
                "returned": self._on_returned,
                "errored": self._on_errored,
                "warned": self._on_warned,
                "aborted": self._on_aborted,
                "finished": self._on_finished,
            },
        )
        self._state["worker"] = worker
        self.state = JobState.RUNNING
        self.started = time.perf_counter()
        self._status(message)
        if not _engine_warm:
            self._start_hint_timer(worker, message)
        worker.start()
        return worker

    def busy(self) -> str:
        """Why a new job cannot start now ("" when it can)."""
        if self.state is JobState.CANCELLING:
            return (
                "The cancelled job is still stopping (at its next step); start "
                "again in a moment."
            )
        if self.is_running:
            return (
                "K-means quantisation is already running; wait for it or press "
                "Cancel before starting another run."
            )
        return ""

    def cancel(self) -> bool:
        """Ask the worker to stop at its next step; whether one was running."""
        worker = self._state["worker"]
        if worker is None or self.state is JobState.FINISHING:
            # the result has arrived: it is shown whole, never half
            return False
        worker.quit()
        self.state = JobState.CANCELLING
        return True

    # --- worker signals (main thread) ---------------------------------------------

    def _on_yielded(self, fraction: float) -> None:
        if not self.closed and self._state["worker"] is not None:
            self._handlers["yielded"](fraction)

    def _on_returned(self, value: Any) -> None:
        global _engine_warm
        _engine_warm = True
        if not self.closed:
            self._steps = self._handlers["returned"](self.job, value)

    def _on_errored(self, exc: Exception) -> None:
        self._handlers["errored"](self.job, exc)

    def _on_warned(self, args: tuple) -> None:
        self._handlers["warned"](args[0])

    def _on_aborted(self) -> None:
        if not self.closed:
            self._handlers["aborted"](self.job)

    def _on_finished(self) -> None:
        if self._steps is not None and not self.closed:
            self.state = JobState.FINISHING
            self._next_step()
            return
        self._end()

    def _next_step(self) -> None:
        """Run one step of the result's arrival, the next one on a later turn of
        the event loop (the viewer repaints and takes clicks in between)."""
        from qtpy.QtCore import QTimer

        try:
            if self.closed:
                raise StopIteration
            next(self._steps)
        except StopIteration:
            self._end()
        except Exception as exc:
            self._end(exc)
        else:
            QTimer.singleShot(STEP_DELAY_MS, self._next_step)

    def _end(self, exc: Exception | None = None) -> None:
        self._steps = None
        self._state["worker"] = None
        self.state = JobState.IDLE
        if not self.closed:
            if exc is not None:
                self._handlers["errored"](self.job, exc)
            self._handlers["finished"](self.job)

    def _start_hint_timer(self, worker, message: str) -> None:
        """Add FIRST_RUN_HINT to the status if `worker` seems to be compiling."""
        from qtpy.QtCore import QTimer

        # Asked now, before the worker starts: by the time the timer fires it
        # may have cached these kernels while others are still compiling.
        cached = _engine_cached()

        def check() -> None:
            if (
                self.closed
                or self._state["worker"] is not worker
                or _engine_warm
                or self._status() != message
                or cached
            ):
                return
            self._status(message + FIRST_RUN_HINT)

        timer = QTimer(self._owner)  # dies with the widget
        timer.setSingleShot(True)
        timer.timeout.connect(check)
        timer.timeout.connect(timer.deleteLater)
        timer.start(FIRST_RUN_HINT_DELAY_MS)


def _engine_cached() -> bool:
    """Whether the engine's compiled kernels are cached (the next run does not
    compile them)."""
    from ..kmeans import kernels_compiled

    return kernels_compiled()


def _on_destroyed(state: dict, *_: Any) -> None:
    """The widget's Qt object is gone: stop the worker, ignore its signals."""
    state["closed"] = True
    worker = state.get("worker")
    if worker is not None:
        worker.quit()


#: What failed, and what a cancel left, by job.
FAILED = {"quantize": "K-means quantisation", "save": "Saving", "sweep": "Comparing k"}
CANCELLED = {
    "quantize": "Cancelled: no layers were added.",
    "save": "Cancelled: nothing was saved.",
    "sweep": "Cancelled: the comparison of k was discarded.",
}
