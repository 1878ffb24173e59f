"""The dock widget: pick an image layer and k, run in a thread, read the palette.

The widget wires its parts (in :mod:`._qt`) together and holds no clustering
code: :class:`~._qt.inputs.Inputs` (the controls), :class:`~._qt.jobs.JobRunner`
(one thread worker at a time, with an explicit state), :class:`~._qt.readout.Readout`
(palette and figures), :class:`~._qt.sweep_panel.SweepPanel` (Compare k and the k
browser) and :mod:`~._qt.save` (file types, writing in a worker).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import Container, Label, ProgressBar, PushButton

from ._layers import (
    LABELS_ROLE,
    STRIP_ROLE,
    QuantizeOutcome,
    SourceInfo,
    add_or_update_layers,
    is_output,
    layer_data_tuples,
    quantize_source_iter,
    select_outputs,
    source_info,
)
from ._qt.inputs import Inputs, image_layers, importance_layers
from ._qt.jobs import JobRunner, JobState
from ._qt.readout import Readout, peak_note
from ._qt.source_chooser import SourceDone, SourceRuns
from ._qt.sweep_panel import Comparison, SweepPanel, compare_iter, keep_iter
from .metrics import has_ciede2000

if TYPE_CHECKING:
    import napari

    from .sweep import SweepTable

__all__ = ["QuantizeWidget"]

#: auto k: the largest palette size tried, and the one used when none reaches the target
AUTO_K_MAX = 256
BUTTON_TEXT = {
    "quantize": "Run",
    "sweep": "Compare k",
    "auto": "Auto k",
    "save": "Save...",
}
EMPTY_HINT = (
    "No image layer to quantise yet.\n"
    "Open an image (File > Open Files...) or a sample\n"
    "(File > Open Sample > K-means Colour Quantiser)."
)
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
        # the result in the readout: what Save writes
        self._current: tuple[QuantizeOutcome, SourceInfo, str] | None = None
        self._then: Any = None  # what to do once the running worker has finished
        self._table_key: tuple | None = None
        self._pending_key: tuple | None = None  # _sweep_key of the running sweep
        self._pending_peak: float | None = None  # 'PSNR peak' of the running sweep
        self._auto_ks: tuple[int, ...] | None = None  # candidates of a running auto k

        self._in = Inputs(
            lambda _w=None: image_layers(self._viewer),
            lambda _w=None: importance_layers(self._viewer),
        )
        for name in _INPUT_NAMES:
            setattr(self, f"_{name}", getattr(self._in, name))
        self._hint = Label(value=EMPTY_HINT)
        self._run_button = PushButton(text=BUTTON_TEXT["quantize"])
        self._save_button = PushButton(
            text=BUTTON_TEXT["save"],
            enabled=False,
            tooltip=(
                "Save the shown result as an indexed PNG (the default), a palette "
                "GIF or a palette TIFF (multi-page for a stack)."
            ),
        )
        self._remove_button = PushButton(
            text="Remove results",
            tooltip="Remove every result layer made from the layer in 'image layer'.",
        )
        self._compare_button = PushButton(
            text=BUTTON_TEXT["sweep"],
            tooltip=(
                "Quantise at every k listed and plot quality against indexed-PNG "
                "size; every k is kept, to look at without recomputing."
            ),
        )
        self._auto_button = PushButton(
            text=BUTTON_TEXT["auto"],
            tooltip=(
                "Pick the smallest k (of the listed ones and 256) that reaches the "
                "target, and add it."
            ),
        )
        self._progress = ProgressBar(min=0, max=100, value=0, visible=False)
        self._status = Label(value="")
        self._readout = Readout()
        self._figures = self._readout.figures
        self._swatches = self._readout.swatches
        self._swatches.native.cellClicked.connect(self._on_swatch_clicked)
        self._palette_title = self._readout.palette_title
        self._sources = SourceRuns(self)  # Run on channels or a shared palette
        self._panel = SweepPanel(self._viewer, self._keep)
        self.extend(
            [
                self._hint,
                self._in.run_box,
                _row(self._run_button, self._save_button, self._remove_button),
                self._in.sweep_box,
                _row(self._compare_button, self._auto_button),
                self._progress,
                self._status,
            ]
        )
        # The results (sweep plot and table, palette, figures) scroll on their own:
        # they can be taller than the screen, and a dock widget taller than the
        # window would stretch the window. The inputs stay in view above them.
        self._results = Container(widgets=[self._panel, self._readout], labels=False)
        self._results.margins = (0, 0, 0, 0)
        self._setup_native()
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

        self._run_button.changed.connect(self._on_button)
        self._save_button.changed.connect(self._on_save_button)
        self._remove_button.changed.connect(lambda _=None: self.remove_results())
        self._compare_button.changed.connect(self._on_compare_button)
        self._auto_button.changed.connect(self._on_auto_button)
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
            _with_layer_data,
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
        ks = self._in.parse_ks() if ks is None else tuple(sorted({int(k) for k in ks}))
        if ks is None:
            return None
        source = self._prepare()
        if source is None:
            return None
        return self._start_sweep(source, ks, "sweep", None)

    def auto(self):
        """Pick the smallest k reaching the auto-k target, and run it.

        Candidates are the "compare k" values and 256. A sweep is run first (in a
        thread, as Compare k; the worker is returned) unless the last sweep already
        covers them with the same inputs; then the chosen k is run at once (and
        that run's worker is returned). When no candidate reaches the target a
        notification says so and k = 256 is used.
        """
        from napari.utils.notifications import show_error

        ks = self._in.parse_ks()
        if ks is None:
            return None
        ks = tuple(sorted({*ks, AUTO_K_MAX}))
        source = self._prepare()
        if source is None:
            return None
        if self._in.target.value == "ciede2000" and not source.rgb:
            show_error(
                "Mean CIEDE2000 needs an RGB(A) image; choose a PSNR target for "
                f"the single-channel layer {source.name!r}."
            )
            return None
        ok, peak = self._in.parse_peak()
        if (
            self._in.target.value == "ciede2000"
            and ok
            and not has_ciede2000(np.dtype(source.dtype), data_range=peak)
        ):
            # No row would have a CIEDE2000: every k would be tried in vain.
            show_error(
                f"Mean CIEDE2000 of {np.dtype(source.dtype)} colours needs their full "
                "intensity: set 'PSNR peak' under advanced options, or choose a PSNR "
                "target."
            )
            return None
        table = self._panel.table
        if (
            table is not None
            and self._panel.belongs_to(source)
            and self._table_key == self._sweep_key(source)
            and set(ks) <= set(table.ks)
        ):
            return self._pick_auto_k(self._panel.comparison, ks)
        return self._start_sweep(source, ks, "auto", ks)

    def save(self, path: str | os.PathLike):
        """Save the shown result to `path` in a thread; return the worker.

        The file type follows the extension: ``.png`` an indexed PNG (one 2-D
        plane, at most 256 colours), ``.gif`` a palette GIF, ``.tif``/``.tiff`` a
        palette TIFF (multi-page for a stack). The labels and palette are those of
        the readout's result; the file is written atomically, so a failed save
        leaves no half-written file.

        Raises
        ------
        ValueError
            If there is no result yet, the extension is none of these, or a job
            is running.
        """
        from ._qt.save import save_iter, writer_for

        if self._current is None:
            raise ValueError("Nothing to save yet: run a quantisation first.")
        if self.is_running:
            raise ValueError("A job is running; wait for it or cancel it first.")
        writer_for(path)  # a bad extension is refused before any work
        outcome, source, name = self._current
        labels = outcome.result.labels
        return self._start(
            "save",
            save_iter,
            (os.fspath(path), labels, outcome.result.palette),
            {},
            f"Saving {name!r} to {os.fspath(path)!r}...",
            source,
        )

    def cancel(self) -> None:
        """Ask the running worker to stop; no layers are added."""
        if self._jobs.cancel():
            self._then = None
            self._status.value = "Cancelling..."
            for button in self._buttons():
                button.enabled = False

    # --- starting jobs ------------------------------------------------------------

    def _prepare(self) -> SourceInfo | None:
        """The selected layer's snapshot, or None (with a notification)."""
        from napari.utils.notifications import show_error, show_warning

        if self._jobs.state is JobState.CANCELLING:
            show_warning(
                "The cancelled job is still stopping (at its next step); start "
                "again in a moment."
            )
            return None
        if self.is_running:
            show_warning(
                "K-means quantisation is already running; wait for it or press "
                "Cancel before starting another run."
            )
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

    def _sweep_key(self, source: SourceInfo) -> tuple:
        """What a sweep depends on: the layer, its data and the run settings."""
        levels = tuple(id(level) for level in source.levels)
        settings = tuple(sorted(self._in.run_kwargs(source).items()))
        return (id(source.layer), levels, settings)

    def _start_sweep(self, source: SourceInfo, ks: tuple, job: str, auto_ks):
        kwargs = self._in.run_kwargs(source)
        message = f"Comparing k = {', '.join(map(str, ks))} on {source.name!r}..."
        if job == "auto":
            message = (
                f"Auto k: trying k = {', '.join(map(str, ks))} on {source.name!r}..."
            )
        self._pending_key = self._sweep_key(source)
        self._pending_peak = kwargs["data_range"]
        self._auto_ks = auto_ks
        return self._start(job, compare_iter, (source, ks), kwargs, message, source)

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

    def _on_returned(self, job: str, value: Any) -> None:
        if isinstance(value, SourceDone):
            self._sources.on_returned(value)
        elif job == "quantize":
            self._on_quantized(value)
        elif job == "save":
            self._on_saved(value)
        else:
            self._on_swept(value)

    def _on_quantized(self, done: tuple[QuantizeOutcome, list]) -> None:
        outcome, all_tuples = done
        from napari.utils.notifications import show_info, show_warning

        source = self._jobs.source
        if self._jobs.closed or source is None:
            return
        layer = source.layer
        if layer is None or layer not in self._viewer.layers:
            show_warning(
                f"The layer {source.name!r} was removed while it was being "
                "quantised; no result layers were added."
            )
            self._status.value = f"{source.name!r} was removed: result discarded."
            return
        tuples = select_outputs(all_tuples, self._in.outputs.value)
        existing = {lay.name for lay in self._viewer.layers}
        layers = add_or_update_layers(self._viewer, tuples)
        labels = next(lay for lay in layers if lay.metadata["role"] == LABELS_ROLE)
        if any(
            _is_strip_meta(meta) and meta["name"] not in existing
            for _, meta, _ in tuples
        ):
            # a new palette strip sits beside the image: bring it into view
            self._viewer.reset_view()
        # the Labels layer shows the palette colour under the cursor (even hidden)
        self._viewer.layers.selection.active = labels
        if self._in.image.value is not layer and layer in self._in.image.choices:
            self._in.image.value = layer
        for note in outcome.notes:
            show_info(f"{source.name}: {note}")
        name = labels.name.removesuffix(" labels")
        self._current = (outcome, source, name)
        self._readout.show(outcome, name, list(labels.features["hex"]), source)
        result = outcome.result
        distinct = (
            f" ({result.n_distinct:,} distinct in the source)"
            if result.n_distinct > 0
            else ""
        )
        self._status.value = (
            f"Done in {self._jobs.waited():.2f} s: {result.n_colors} colours{distinct}."
        )
        if labels.name in existing:
            self._status.value += (
                f" Updated {name!r} in place: same settings as before."
            )
        self._scroll_to(self._readout)

    def remove_results(self, source_name: str | None = None) -> int:
        """Remove every layer the plugin made from one source; return how many.

        `source_name` defaults to the layer in the image-layer box. The source
        itself is never touched.
        """
        if source_name is None:
            layer = self._in.image.value
            if layer is None:
                return 0
            source_name = layer.name
        doomed = [
            lay
            for lay in self._viewer.layers
            if is_output(lay) and lay.metadata.get("source") == source_name
        ]
        for lay in doomed:
            self._viewer.layers.remove(lay)
        if self._current is not None and self._current[1].name == source_name:
            self._current = None
            self._readout.visible = False
        self._status.value = f"Removed {len(doomed)} result layers of {source_name!r}."
        self._update_enabled()
        return len(doomed)

    def _on_saved(self, saved: tuple[str, str, int]) -> None:
        path, format_name, n_bytes = saved
        self._status.value = f"Saved {path!r}: {format_name}, {n_bytes:,} bytes."

    def _on_save_button(self, _value: Any = None) -> None:
        from napari.utils.notifications import show_error

        from ._qt.save import ask_save_path

        if self.is_running:
            self.cancel()
            return
        if self._current is None:
            return
        outcome, _source, name = self._current
        ext = outcome.file.extension if outcome.file is not None else ".png"
        fmt = outcome.file.format if outcome.file is not None else "indexed PNG"
        path = ask_save_path(self.native, name + ext, fmt)
        if path is None:
            return
        try:
            self.save(path)
        except ValueError as exc:
            show_error(str(exc))

    def _on_swept(self, comparison: Comparison) -> None:
        source = self._jobs.source
        if self._jobs.closed or source is None:
            return
        if source.layer is None or source.layer not in self._viewer.layers:
            self._status.value = f"{source.name!r} was removed: comparison discarded."
            return
        table = comparison.table
        self._table_key = self._pending_key
        k = int(self._in.n_colors.value)
        self._panel.show(
            comparison,
            k if k in table.ks else None,
            peak_note(source.dtype, table.psnr_peak, self._pending_peak is not None),
            preview=self._jobs.job == "sweep",
        )
        self._status.value = (
            f"Compared {len(table)} values of k in {self._jobs.waited():.1f} s; slide the "
            "k control or click a row to look at that k."
        )
        self._scroll_to(self._panel)
        if self._jobs.job == "auto":
            ks = self._auto_ks
            self._then = lambda: self._pick_auto_k(comparison, ks)

    def _on_errored(self, job: str, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        source = self._jobs.source
        name = source.name if source is not None else "the layer"
        what = {"quantize": "K-means quantisation", "save": "Saving"}.get(
            job, "Comparing k"
        )
        show_error(f"{what} of {name!r} failed: {exc}")
        if not self._jobs.closed:
            self._status.value = f"Failed: {exc}"

    def _on_aborted(self, job: str) -> None:
        self._then = None
        self._status.value = {
            "quantize": "Cancelled: no layers were added.",
            "save": "Cancelled: nothing was saved.",
        }.get(job, "Cancelled: the comparison of k was discarded.")

    def _on_finished(self, _job: str) -> None:
        self._set_running(False)
        then, self._then = self._then, None
        if then is not None:
            then()

    def _scroll_to(self, box: Container) -> None:
        """Bring the top of `box` (the newest readout) into view."""
        from qtpy.QtCore import QTimer

        # after the layout has placed the new content
        QTimer.singleShot(0, lambda: self._ensure_visible(box))

    def _ensure_visible(self, box: Container) -> None:
        if not self._jobs.closed:
            bar = self._scroll.verticalScrollBar()
            bar.setValue(min(box.native.y(), bar.maximum()))

    # --- compare k / auto k -------------------------------------------------------

    def _pick_auto_k(self, comparison: Comparison, ks: tuple[int, ...]):
        """Set k to the smallest of `ks` reaching the target; keep its result."""
        from napari.utils.notifications import show_info, show_warning

        table = comparison.table
        target = self._in.target_kwargs()
        row = next(
            (r for r in table if r.k in ks and r.meets(**target)),
            None,
        )
        if row is None:
            best = table.row(max(ks)) if max(ks) in table.ks else table.rows[-1]
            ciede = "n/a" if best.ciede2000 is None else f"{best.ciede2000:.2f}"
            show_warning(
                f"Auto k: no k up to {AUTO_K_MAX} reaches {self._in.target_text()} "
                f"(k={best.k} gives PSNR {best.psnr:.2f} dB, mean CIEDE2000 "
                f"{ciede}); using k = {AUTO_K_MAX}."
            )
            k = AUTO_K_MAX
        else:
            k = row.k
            show_info(
                f"Auto k: k = {k} is the smallest of {', '.join(map(str, ks))} "
                f"reaching {self._in.target_text()}."
            )
        self._in.n_colors.value = int(k)
        self._panel.browse(k, preview=False)
        return self._keep(comparison, k)

    def _keep(self, comparison: Comparison, k: int):
        """Add the layers of `k` from `comparison`, on the source it was run on.

        The kept labels and palette are used (no recomputing), except for
        multiscale or lazy sources, whose sweep ran on one level: those run k on
        the full source. Returns the worker.
        """
        from napari.utils.notifications import show_warning

        source = comparison.source
        if self.is_running:
            show_warning("Wait for the running job to finish (or cancel it) first.")
            return None
        if source.layer is None or source.layer not in self._viewer.layers:
            show_warning(f"{source.name!r} is gone; run Compare k again.")
            return None
        message = f"Adding {source.name!r} at k = {k}..."
        if source.multiscale or source.is_lazy:
            kwargs = {**comparison.params, "max_pixels": None}
            args = (source, int(k))
            args = (source, quantize_source_iter, *args)
            return self._start(
                "quantize", _with_layer_data, args, kwargs, message, source
            )
        args = (source, keep_iter, comparison, int(k))
        return self._start("quantize", _with_layer_data, args, {}, message, source)

    def _on_button(self, _value: Any = None) -> None:
        if self.is_running:
            self.cancel()
        else:
            self.run()

    def _on_compare_button(self, _value: Any = None) -> None:
        if self.is_running:
            self.cancel()
        else:
            self.compare()

    def _on_auto_button(self, _value: Any = None) -> None:
        if self.is_running:
            self.cancel()
        else:
            self.auto()

    # --- UI state -----------------------------------------------------------------

    def _buttons(self) -> list[PushButton]:
        """The job buttons, in the order of BUTTON_TEXT."""
        return [
            self._run_button,
            self._compare_button,
            self._auto_button,
            self._save_button,
        ]

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
        has_images = bool(self._image.choices)
        self._hint.visible = not has_images
        if not self.is_running:
            for button in self._buttons():
                button.enabled = has_images and self._image.value is not None
            self._save_button.enabled = self._current is not None
            self._run_button.tooltip = (
                "Quantise the selected image layer."
                if has_images
                else "Open an image layer first."
            )
            self._in.update_enabled()

    def _set_running(self, running: bool, message: str = "") -> None:
        self._in.set_running(running)
        self._remove_button.enabled = not running
        self._panel.set_running(running)
        active = dict(zip(BUTTON_TEXT, self._buttons(), strict=True))[self._job]
        for job, button in zip(BUTTON_TEXT, self._buttons(), strict=True):
            button.text = "Cancel" if running and button is active else BUTTON_TEXT[job]
            button.enabled = button is active or not running
        self._progress.visible = running
        if running:
            self._progress.value = 0
            self._status.value = message
        else:
            self._update_enabled()

    def _setup_native(self) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy

        for label in (self._hint, self._status):
            label.native.setWordWrap(True)
            label.native.setSizePolicy(
                QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum
            )
        self._hint.native.setStyleSheet("color: #e0a030;")
        self._progress.native.setFormat("%p %")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self._results.native)
        scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._scroll = scroll
        self.native.layout().addWidget(scroll)
        # room for the swatch table and the figures without cramped wrapping
        self.native.setMinimumWidth(380)


def _with_layer_data(source: SourceInfo, func, *args: Any, **kwargs: Any):
    """Run the progress generator `func`, then build its layer data (in the worker).

    Building the colormaps, features and palette strip here keeps them off the
    main thread, which only adds the layers.
    """
    outcome = yield from func(*args, **kwargs)
    return outcome, layer_data_tuples(outcome, source)


def _row(*widgets) -> Container:
    row = Container(widgets=list(widgets), layout="horizontal", labels=False)
    row.margins = (0, 0, 0, 0)
    return row


def _show_warning(message: Any) -> None:
    from napari.utils.notifications import show_warning

    show_warning(str(message))


def _is_strip_meta(meta: dict) -> bool:
    return meta.get("metadata", {}).get("role") == STRIP_ROLE
