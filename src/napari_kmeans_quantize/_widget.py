"""The dock widget: pick an image layer and k, run in a thread, read the palette.

The widget wires its parts (in :mod:`._qt`) together and holds no clustering
code: :class:`~._qt.inputs.Inputs` (the input controls),
:class:`~._qt.controls.Controls` (the job buttons and the status line),
:class:`~._qt.jobs.JobRunner` (one thread worker at a time, with an explicit
state), :class:`~._qt.readout.Readout` (palette and figures),
:class:`~._qt.sweep_panel.SweepPanel` (Compare k and the k browser),
:class:`~._qt.compare.CompareK` (the Compare k and Auto k jobs) and
:mod:`~._qt.save` (file types, writing in a worker). The layers come from
:mod:`._layers`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container

from ._layers import (
    QuantizeOutcome,
    SourceInfo,
    add_result_iter,
    quantize_source_iter,
    remove_outputs,
    source_info,
    with_layer_data,
)
from ._qt.compare import CompareK
from ._qt.controls import Controls
from ._qt.inputs import Inputs, image_layers, importance_layers
from ._qt.jobs import CANCELLED, FAILED, JobRunner
from ._qt.readout import Readout, ResultsArea, done_text
from ._qt.source_chooser import SourceDone, SourceRuns
from ._qt.sweep_panel import SweepPanel

if TYPE_CHECKING:
    import napari

    from .sweep import SweepTable

__all__ = ["QuantizeWidget"]

#: the controls kept as attributes of the widget under these names (``_n_colors``...)
_INPUT_NAMES = (
    "image",
    "n_colors",
    "color_space",
    "locked",
    "importance",
    "show_advanced",
    "fit_pixels",
    "seed",
    "dither",
    "outputs",
    "psnr_peak",
    "sweep_ks",
    "target",
    "target_value",
)


class QuantizeWidget(Container):
    """K-means colour quantisation of an Image layer, as a napari dock widget.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose Image layers are offered (napari passes it in).

    Notes
    -----
    Run starts a thread worker over :func:`~._layers.quantize_source_iter`; while it
    runs the button reads Cancel, and cancelling stops the computation at its next
    progress step and adds no layers. The result layers are added only when the
    worker returns (their data and colormaps built in the worker), and only if
    the source layer still exists.
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = napari_viewer
        # the result in the readout: what Save writes (the k browser's while it
        # previews one, else the last run's, kept in _ran; a channel run's
        # ChannelOutcome and ChannelSource are never kept in _ran, whose readout
        # shows colour results)
        self._current: tuple[Any, Any, str] | None = None
        self._ran: tuple[QuantizeOutcome, SourceInfo, str] | None = None
        self._then: Any = None  # what to do once the running worker has finished

        self._in = Inputs(
            lambda _w=None: image_layers(self._viewer),
            lambda _w=None: importance_layers(self._viewer),
        )
        for name in _INPUT_NAMES:
            setattr(self, f"_{name}", getattr(self._in, name))
        self._controls = c = Controls()
        self._hint, self._progress, self._status = c.hint, c.progress, c.status
        self._run_button, self._save_button = c.run_button, c.save_button
        self._remove_button = c.remove_button
        self._compare_button, self._auto_button = c.compare_button, c.auto_button
        self._readout = Readout()
        self._figures = self._readout.figures
        self._swatches = self._readout.swatches
        self._swatches.native.cellClicked.connect(self._on_swatch_clicked)
        self._palette_title = self._readout.palette_title
        self._sources = SourceRuns(self)  # Run on channels or a shared palette
        self._compare = CompareK(self)
        self._panel = SweepPanel(self._viewer, self._compare.keep, self._on_preview)
        self.extend(
            [
                self._hint,
                self._in.run_box,
                c.run_row,
                self._in.sweep_box,
                c.compare_row,
                self._progress,
                self._status,
            ]
        )
        self._results = ResultsArea(self._panel, self._readout)
        self._scroll = self._results.scroll
        self.native.layout().addWidget(self._scroll)
        # room for the swatch table and the figures without cramped wrapping
        self.native.setMinimumWidth(380)
        self._jobs = JobRunner(
            self.native,
            {
                "yielded": self._on_yielded,
                "returned": self._on_returned,
                "errored": self._on_errored,
                "warned": _show_warning,
                "aborted": self._on_aborted,
                "finished": self._on_finished,
            },
            self._status_text,
        )

        self._run_button.changed.connect(lambda _=None: self._cancel_or(self.run))
        self._save_button.changed.connect(self._on_save_button)
        self._remove_button.changed.connect(lambda _=None: self.remove_results())
        self._compare_button.changed.connect(
            lambda _=None: self._cancel_or(self.compare)
        )
        self._auto_button.changed.connect(lambda _=None: self._cancel_or(self.auto))
        # (the native signal: magicgui emits no `changed` for the None choice)
        self._fit_pixels.native.currentIndexChanged.connect(self._update_enabled)
        self._image.changed.connect(self._on_image_changed)
        events = self._viewer.layers.events
        for name in ("inserted", "removed", "moved", "reordered", "renamed"):
            emitter = getattr(events, name, None)
            if emitter is not None:
                emitter.connect(self._on_layers_changed)
        self._viewer.layers.selection.events.active.connect(self._on_active)

        self.reset_choices()
        self._in.follow_active(self._viewer.layers.selection.active)
        self._in.follow_target(self._image.value)
        self._update_enabled()

    # --- public API ---------------------------------------------------------------

    @property
    def worker(self):
        """The running worker, or None when idle."""
        return self._jobs.worker

    @property
    def is_running(self) -> bool:
        return self._jobs.is_running

    @property
    def _job(self) -> str:
        return self._jobs.job

    @property
    def _state(self) -> dict[str, Any]:
        return self._jobs._state

    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        self._update_enabled()

    @property
    def sweep_table(self) -> SweepTable | None:
        """The table of the last Compare k (or auto k) sweep, or None."""
        return self._panel.table

    def run(self):
        """Start quantising the selected layer in a thread; return the worker.

        Refused (with a notification, returning None) while a run is in progress
        or when no image layer is selected.
        """
        if self._in.sources.kind != "image":
            return self._sources.run()
        source = self._prepare()
        if source is None:
            return None
        try:
            control = self._in.palette_control(source, self._viewer.layers)
        except ValueError as exc:
            from napari.utils.notifications import show_error

            show_error(f"'locked colours': {exc}")
            return None
        kwargs = {
            **self._in.run_kwargs(source),
            "max_pixels": self._in.fit_pixels.value,
            **control,
        }
        k = int(self._in.n_colors.value)
        return self._start(
            "quantize",
            with_layer_data,
            (source, quantize_source_iter, source, k),
            kwargs,
            f"Quantising {source.name!r} into {k} colours...",
            source,
        )

    def _on_swatch_clicked(self, row: int, _column: int = 0) -> None:
        """A click on a palette swatch locks its colour (not a class of channels)."""
        item = self._swatches.native.item(row, 1)
        header = self._swatches.native.horizontalHeaderItem(1)
        if item is not None and header is not None and header.text() == "hex":
            self._in.lock_color(item.text()[:7])

    def compare(self, ks: Any = None):
        """Start a sweep over k (Compare k) in a thread; return the worker.

        Parameters
        ----------
        ks : iterable of int, optional
            Palette sizes; default: the ones typed in the "compare k" field.

        When it finishes the plot and the table show quality against indexed-PNG
        size for every k, and every k's labels and palette are kept: the k control
        (or a click on a row) shows that k without recomputing, and "Keep this k"
        adds its layers.
        """
        return self._compare.compare(ks)

    def auto(self):
        """Pick the smallest k reaching the auto-k target, and run it.

        Candidates are the "compare k" values and 256. A sweep is run first (in a
        thread, as Compare k; the worker is returned) unless the last sweep already
        covers them with the same inputs; then the chosen k is run at once (and
        that run's worker is returned). When no candidate reaches the target a
        notification says so and k = 256 is used.
        """
        return self._compare.auto()

    def save(self, path: str | os.PathLike):
        """Save the shown result to `path` in a thread; return the worker.

        The file type follows the extension: ``.png`` an indexed PNG (one 2-D
        plane, at most 256 colours), ``.gif`` a palette GIF, ``.tif``/``.tiff`` a
        palette TIFF (multi-page for a stack). A channel result (e.g.
        fluorescence) saves to ``.tif``/``.tiff`` only: the labels as a grey TIFF
        and the exact palette as ``<stem>_palette.csv`` beside it, its columns
        named by the channels. The labels and palette are those of the readout's
        result; the files are written atomically, so a failed save leaves no
        half-written file, and all are checked first (a read-only CSV is refused
        before the TIFF is written). Existing files are replaced without asking
        here; the Save button asks first about every file it would replace.

        Raises
        ------
        ValueError
            If there is no result yet, the extension is none of these, or a job
            is running.
        """
        from ._qt.save import save_iter, save_job

        if self.is_running:
            raise ValueError("A job is running; wait for it or cancel it first.")
        args, message = save_job(self._current, path)
        return self._start("save", save_iter, args, {}, message, self._current[1])

    def cancel(self) -> None:
        """Ask the running worker to stop; no layers are added."""
        if self._jobs.cancel():
            self._then = None
            self._status.value = "Cancelling..."
            self._controls.disable_all()

    # --- starting jobs ------------------------------------------------------------

    def _prepare(self) -> SourceInfo | None:
        """The selected layer's snapshot, or None (with a notification)."""
        from napari.utils.notifications import show_error, show_warning

        busy = self._jobs.busy()
        if busy:
            show_warning(busy)
            return None
        layer = self._in.image.value
        if layer is None or layer not in self._viewer.layers:
            show_error("Choose an image layer to quantise first.")
            return None
        ok, _ = self._in.parse_peak()
        if not ok:
            show_error(
                "'PSNR peak' (advanced options) must be a number above 0, e.g. "
                "4095 for 12-bit data, or empty (or 0) for automatic; got "
                f"{self._in.psnr_peak.value!r}."
            )
            return None
        try:
            return source_info(layer)
        except (TypeError, ValueError) as exc:
            show_error(str(exc))
            return None

    def _start(self, job: str, func, args: tuple, kwargs: dict, message: str, source):
        self._then = None
        worker = self._jobs.start(job, func, args, kwargs, message, source)
        self._set_running(True, message)
        return worker

    # --- job signals (main thread) ------------------------------------------------

    def _status_text(self, text: str | None = None) -> str:
        if text is not None:
            self._status.value = text
        return self._status.value

    def _on_yielded(self, fraction: float) -> None:
        self._progress.value = round(100 * float(fraction))

    def _on_returned(self, job: str, value: Any):
        if isinstance(value, SourceDone):
            return self._sources.on_returned(value)
        if job == "quantize":
            return self._on_quantized(value)
        if job == "save":
            self._on_saved(value)
        else:
            self._then = self._compare.on_swept(value)
        return None

    def _on_quantized(self, done: tuple[QuantizeOutcome, list]):
        """Check the source is still there; the steps that show the result."""
        from napari.utils.notifications import show_warning

        source = self._jobs.source
        if self._jobs.closed or source is None:
            return None
        layer = source.layer
        if layer is None or layer not in self._viewer.layers:
            show_warning(
                f"The layer {source.name!r} was removed while it was being "
                "quantised; no result layers were added."
            )
            self._status.value = f"{source.name!r} was removed: result discarded."
            return None
        return self._show_result(*done, source)

    def _show_result(self, outcome: QuantizeOutcome, all_tuples: list, source):
        """Add the layers one per step (the viewer repaints between), then fill
        the readout."""
        from napari.utils.notifications import show_info

        layer = source.layer
        labels, updated = yield from add_result_iter(
            self._viewer, all_tuples, self._in.outputs.value
        )
        yield
        if self._in.image.value is not layer and layer in self._in.image.choices:
            self._in.image.value = layer
        for note in outcome.notes:
            show_info(f"{source.name}: {note}")
        name = labels.name.removesuffix(" labels")
        self._current = self._ran = (outcome, source, name)
        self._readout.show(outcome, source, name)
        self._status.value = done_text(
            outcome.result, self._jobs.waited(), updated, name
        )
        self._scroll_to(self._readout)

    def _on_preview(self, outcome: QuantizeOutcome | None, name: str, source) -> None:
        """The readout follows the k browser; back to the last run's result when
        the preview goes."""
        self._current = (outcome, source, name) if outcome is not None else self._ran
        if self._current is not None:
            self._readout.show(*self._current)
        else:
            self._readout.visible = False
        self._update_enabled()

    def remove_results(self, source_name: str | None = None) -> int:
        """Remove every layer the plugin made from one source; return how many.

        `source_name` defaults to the layer in the image-layer box (the chosen
        channel layers, when they are the source). The source itself is never
        touched.
        """
        source_name = source_name or self._sources.source_name()
        if source_name is None:
            layer = self._in.image.value
            if layer is None:
                return 0
            source_name = layer.name
        removed = remove_outputs(self._viewer, source_name)
        if self._ran is not None and self._ran[1].name == source_name:
            self._ran = None
        if self._current is not None and self._current[1].name == source_name:
            self._current = None
            self._readout.visible = False
        self._status.value = f"Removed {removed} result layers of {source_name!r}."
        self._update_enabled()
        return removed

    def _on_saved(self, saved: tuple[str, str, int]) -> None:
        path, format_name, n_bytes = saved
        self._status.value = f"Saved {path!r}: {format_name}, {n_bytes:,} bytes."

    def _on_save_button(self, _value: Any = None) -> None:
        from napari.utils.notifications import show_error

        from ._qt.save import ask_result_path

        if self.is_running:
            self.cancel()
            return
        path = (
            None
            if self._current is None
            else ask_result_path(self.native, self._current)
        )
        if path is not None:
            try:
                self.save(path)
            except ValueError as exc:
                show_error(str(exc))

    def _on_errored(self, job: str, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        source = self._jobs.source
        name = source.name if source is not None else "the layer"
        show_error(f"{FAILED.get(job, FAILED['sweep'])} of {name!r} failed: {exc}")
        if not self._jobs.closed:
            self._status.value = f"Failed: {exc}"

    def _on_aborted(self, job: str) -> None:
        self._then = None
        self._status.value = CANCELLED.get(job, CANCELLED["sweep"])

    def _on_finished(self, _job: str) -> None:
        self._set_running(False)
        then, self._then = self._then, None
        if then is not None:
            then()

    def _scroll_to(self, box: Container) -> None:
        self._results.scroll_to(box, lambda: not self._jobs.closed)

    def _cancel_or(self, start) -> None:
        """A job button: Cancel while a job runs, else start its job."""
        if self.is_running:
            self.cancel()
        else:
            start()

    # --- UI state -----------------------------------------------------------------

    def _on_layers_changed(self, _event: Any = None) -> None:
        if not self._jobs.closed:
            self.reset_choices()

    def _on_active(self, event: Any) -> None:
        if not self._jobs.closed:
            self._in.follow_active(getattr(event, "value", None))

    def _on_image_changed(self, _value: Any = None) -> None:
        self._in.follow_target(self._image.value)
        self._update_enabled()

    def _update_enabled(self, _value: Any = None) -> None:
        if getattr(self, "_jobs", None) is None or self._jobs.closed:
            return
        if not self.is_running:
            has_images = bool(self._image.choices)
            self._controls.update_enabled(
                has_images,
                has_images and self._image.value is not None,
                self._current,
            )
            self._in.update_enabled()
            self._sources.update_enabled()

    def _set_running(self, running: bool, message: str = "") -> None:
        self._in.set_running(running)
        self._panel.set_running(running)
        self._controls.set_running(self._job, running, message)
        if not running:
            self._update_enabled()


def _show_warning(message: Any) -> None:
    from napari.utils.notifications import show_warning

    show_warning(str(message))
