"""The dock widget: pick an image layer and k, run in a thread, read the palette.

The widget only gathers inputs, runs :func:`~._layers.quantize_source_iter` in a
napari thread worker (progress and cancel come from the engine's generator), and
shows the result; it holds no clustering code.
"""

from __future__ import annotations

import html
import math
import os
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    Table,
)

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
from ._qt.sweep_panel import Comparison, SweepPanel, compare_iter, keep_iter
from .metrics import _has_ciede

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from ._qt.save import ResultFile
    from .metrics import SizeReport
    from .sweep import SweepTable

__all__ = ["QuantizeWidget"]

COLOR_SPACES = [
    ("RGB (best PSNR)", "rgb"),
    ("CIELAB (perceptual)", "lab"),
    ("Oklab (perceptual)", "oklab"),
]
FIT_PIXELS = [
    ("all pixels (exact)", None),
    ("1,000,000 sampled pixels", 1_000_000),
    ("250,000 sampled pixels", 250_000),
    ("100,000 sampled pixels", 100_000),
    ("20,000 sampled pixels", 20_000),
]
SWATCH_COLUMNS = ("colour", "hex", "pixels", "share")
DEFAULT_SWEEP_KS = "2, 4, 8, 16, 32, 64, 128, 256"
#: auto k: the largest palette size tried, and the one used when none reaches the target
AUTO_K_MAX = 256
TARGETS = [
    ("mean CIEDE2000 at most", "ciede2000"),
    ("PSNR at least (dB)", "psnr"),
]
TARGET_DEFAULTS = {"ciede2000": 2.3, "psnr": 30.0}
OUTPUT_CHOICES = [
    ("image + palette strip (labels hidden)", "image+strip"),
    ("image only (labels hidden)", "image"),
    ("labels + palette strip", "labels+strip"),
    ("image, labels and strip, all shown", "all"),
]
BUTTON_TEXT = {
    "quantize": "Run",
    "sweep": "Compare k",
    "auto": "Auto k",
    "save": "Save...",
}
# The first run after installing (or upgrading) compiles the engine's kernels,
# which took about 16 s (13 s for quantize, 3 s for the size report's figures) on
# our 2-core machine; later sessions load them from numba's on-disk cache (a first
# run then takes well under a second). The hint is added to the status of the
# first job of a session only if that job is still running after
# FIRST_RUN_HINT_DELAY_MS and numba's cache does not hold the engine's kernels.
FIRST_RUN_HINT = " The first run after installing compiles the engine once (10-20 s)."
FIRST_RUN_HINT_DELAY_MS = 2000
_engine_warm = False
PSNR_PEAK_TOOLTIP = (
    "The peak value of the PSNR (scikit-image's data_range), for Run's readout, "
    "Compare k and Auto k; for integer RGB(A) images also the value read as full "
    "intensity for mean CIEDE2000. Empty or 0 = automatic: the dtype's range for "
    "8- and 16-bit integers (255 for uint8, 65535 for uint16), 1 for floats in "
    "[0, 1], the data's own max - min for other floats and for 32- and 64-bit "
    "integers. 12-bit camera data stored as uint16 needs 4095: with 65535 every "
    "PSNR reads about 24 dB too high, and Auto k with a PSNR target picks too "
    "small a k. Only the figures change, never the palette."
)
EMPTY_HINT = (
    "No image layer to quantise yet.\n"
    "Open an image (File > Open Files...) or a sample\n"
    "(File > Open Sample > K-means Colour Quantiser)."
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
    progress step and adds no layers. The three result layers are added only when
    the worker returns, and only if the source layer still exists.
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = napari_viewer
        # shared with the destroyed-callback, which must not hold a reference to self
        self._state: dict[str, Any] = {
            "worker": None,
            "closed": False,
            "cancelling": False,
        }
        self._run_source: SourceInfo | None = None
        # the result in the readout: what Save writes
        self._current: tuple[QuantizeOutcome, SourceInfo, str] | None = None

        self._hint = Label(value=EMPTY_HINT)
        self._image = ComboBox(
            label="image layer",
            choices=self._image_choices,
            tooltip=(
                "The Image layer to quantise (follows the selected layer). The "
                "plugin's own results are not offered: they are not sources."
            ),
        )
        self._n_colors = SpinBox(
            label="colours (k)",
            min=2,
            max=256,
            value=16,
            tooltip="Number of palette colours k (2 to 256).",
        )
        self._color_space = ComboBox(
            label="colour space",
            choices=COLOR_SPACES,
            value="rgb",
            tooltip=(
                "Space in which k-means clusters the colours. RGB minimises the "
                "squared RGB error (highest PSNR); CIELAB and Oklab minimise a "
                "perceptual error (lower mean CIEDE2000). RGB(A) images only."
            ),
        )
        self._seed = SpinBox(
            label="random seed",
            min=0,
            max=2**31 - 1,
            value=0,
            tooltip=(
                "Seed of the random pixel sample when 'fit palette on' samples "
                "pixels: the same seed then gives the same palette. Not used when "
                "the palette is fitted on all pixels (the result does not depend "
                "on it then)."
            ),
        )
        self._show_advanced = CheckBox(text="advanced options", value=False, label="")
        self._fit_pixels = ComboBox(
            label="fit palette on",
            choices=FIT_PIXELS,
            value=None,
            tooltip=(
                "Fit the palette on every pixel (exact, the default) or on a random "
                "sample (faster on very large images). Every pixel is mapped "
                "either way."
            ),
        )
        self._dither = CheckBox(
            text="dither (Floyd-Steinberg)",
            value=False,
            label="",
            tooltip="Spread the colour error to neighbouring pixels; same palette.",
        )
        self._outputs = ComboBox(
            label="add layers",
            choices=OUTPUT_CHOICES,
            value="image+strip",
            tooltip=(
                "Which result layers go on the canvas. The labels layer is always "
                "added (it looks exactly like the quantised image; selected, it "
                "shows each pixel's palette colour on hover, and it is what saves "
                "as an indexed PNG), hidden unless chosen here."
            ),
        )
        self._remove_button = PushButton(
            text="Remove results",
            tooltip="Remove every result layer made from the layer in 'image layer'.",
        )
        self._psnr_peak = LineEdit(
            label="PSNR peak",
            value="",
            tooltip=PSNR_PEAK_TOOLTIP,
        )
        self._run_button = PushButton(text="Run")
        self._save_button = PushButton(
            text=BUTTON_TEXT["save"],
            enabled=False,
            tooltip=(
                "Save the shown result as an indexed PNG (the default), a palette "
                "GIF or a palette TIFF (multi-page for a stack)."
            ),
        )
        self._progress = ProgressBar(min=0, max=100, value=0, visible=False)
        self._status = Label(value="")
        self._palette_title = Label(value="")
        self._swatches = Table(
            value={"data": [], "columns": list(SWATCH_COLUMNS)},
        )
        self._figures = Label(value="")

        # compare k (a sweep) and auto k
        self._sweep_ks = LineEdit(
            label="compare k",
            value=DEFAULT_SWEEP_KS,
            tooltip=(
                "Palette sizes that Compare k quantises (2 to 256, separated by "
                "commas or spaces)."
            ),
        )
        self._target = ComboBox(
            label="auto k target",
            choices=TARGETS,
            value="ciede2000",
            tooltip=(
                "Auto k picks the smallest k whose quantisation reaches this "
                "target. Mean CIEDE2000 2.3 is about one just-noticeable difference."
            ),
        )
        self._target_value = FloatSpinBox(
            label="target value",
            min=0.0,
            max=100.0,
            step=0.1,
            value=TARGET_DEFAULTS["ciede2000"],
            tooltip="Mean CIEDE2000 at most this, or PSNR (dB) at least this.",
        )
        self._compare_button = PushButton(
            text=BUTTON_TEXT["sweep"],
            tooltip=(
                "Quantise at every k listed and plot quality against indexed-PNG "
                "size; click a table row to run that k."
            ),
        )
        self._auto_button = PushButton(
            text=BUTTON_TEXT["auto"],
            tooltip=(
                "Pick the smallest k (of the listed ones and 256) that reaches the "
                "target, and run it."
            ),
        )
        self._panel = SweepPanel(self._viewer, self._keep)
        self._started = time.perf_counter()  # when the running job was started
        self._target_chosen = False  # set once the user picks an auto-k target
        self._setting_target = False
        self._table_key: tuple | None = None
        self._job = "quantize"
        self._then: Any = None  # what to do once the running worker has finished
        self._pending_key: tuple | None = None  # _sweep_key of the running sweep
        self._pending_peak: float | None = None  # 'PSNR peak' of the running sweep
        self._auto_ks: tuple[int, ...] | None = None  # candidates of a running auto k

        self._inputs = Container(
            widgets=[
                self._image,
                self._n_colors,
                self._color_space,
                self._show_advanced,
                self._fit_pixels,
                self._seed,
                self._dither,
                self._outputs,
                self._psnr_peak,
            ],
            labels=True,
        )
        self._readout = Container(
            widgets=[self._palette_title, self._swatches, self._figures],
            labels=False,
            visible=False,
        )
        self._sweep_inputs = Container(
            widgets=[self._sweep_ks, self._target, self._target_value],
            labels=True,
        )
        self._sweep_buttons = Container(
            widgets=[self._compare_button, self._auto_button],
            layout="horizontal",
            labels=False,
        )
        for box in (
            self._inputs,
            self._readout,
            self._sweep_inputs,
            self._sweep_buttons,
        ):
            box.margins = (0, 0, 0, 0)
        self._fit_pixels.visible = False
        self._seed.visible = False
        self._dither.visible = False
        self._outputs.visible = False
        self._psnr_peak.visible = False
        self.extend(
            [
                self._hint,
                self._inputs,
                Container(
                    widgets=[self._run_button, self._save_button, self._remove_button],
                    layout="horizontal",
                    labels=False,
                ),
                self._sweep_inputs,
                self._sweep_buttons,
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

        self._run_button.changed.connect(self._on_button)
        self._save_button.changed.connect(self._on_save_button)
        self._remove_button.changed.connect(lambda _=None: self.remove_results())
        self._compare_button.changed.connect(self._on_compare_button)
        self._auto_button.changed.connect(self._on_auto_button)
        self._target.changed.connect(self._on_target_changed)
        self._show_advanced.changed.connect(self._on_show_advanced)
        # (the native signal: magicgui emits no `changed` for the None choice)
        self._fit_pixels.native.currentIndexChanged.connect(self._update_enabled)
        self._image.changed.connect(self._on_image_changed)
        events = self._viewer.layers.events
        for name in ("inserted", "removed", "moved", "reordered", "renamed"):
            emitter = getattr(events, name, None)
            if emitter is not None:
                emitter.connect(self._on_layers_changed)
        self._viewer.layers.selection.events.active.connect(self._on_active)
        self.native.destroyed.connect(partial(_on_destroyed, self._state))

        self.reset_choices()
        active = self._viewer.layers.selection.active
        if active is not None and active in self._image.choices:
            self._image.value = active
        self._follow_target(self._image.value)
        self._update_enabled()

    # --- public API ---------------------------------------------------------------

    @property
    def worker(self):
        """The running worker, or None when idle."""
        return self._state["worker"]

    @property
    def is_running(self) -> bool:
        return self._state["worker"] is not None

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
        source = self._prepare()
        if source is None:
            return None
        kwargs = {**self._run_kwargs(source), "max_pixels": self._fit_pixels.value}
        k = int(self._n_colors.value)
        return self._start(
            "quantize",
            quantize_source_iter,
            (source, k),
            kwargs,
            f"Quantising {source.name!r} into {k} colours...",
        )

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
        ks = self._parse_ks() if ks is None else tuple(sorted({int(k) for k in ks}))
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

        ks = self._parse_ks()
        if ks is None:
            return None
        ks = tuple(sorted({*ks, AUTO_K_MAX}))
        source = self._prepare()
        if source is None:
            return None
        if self._target.value == "ciede2000" and not source.rgb:
            show_error(
                "Mean CIEDE2000 needs an RGB(A) image; choose a PSNR target for "
                f"the single-channel layer {source.name!r}."
            )
            return None
        ok, peak = self._parse_peak()
        if (
            self._target.value == "ciede2000"
            and ok
            and not _has_ciede(np.dtype(source.dtype), 0, 0, peak)
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
            source=source,
        )

    def cancel(self) -> None:
        """Ask the running worker to stop; no layers are added."""
        worker = self._state["worker"]
        if worker is not None:
            worker.quit()
            self._then = None
            self._state["cancelling"] = True
            self._status.value = "Cancelling..."
            for button in self._buttons():
                button.enabled = False

    # --- starting workers ---------------------------------------------------------

    def _prepare(self) -> SourceInfo | None:
        """The selected layer's snapshot, or None (with a notification)."""
        from napari.utils.notifications import show_error, show_warning

        if self._state["cancelling"]:
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
        layer = self._image.value
        if layer is None or layer not in self._viewer.layers:
            show_error("Choose an image layer to quantise first.")
            return None
        ok, _ = self._parse_peak()
        if not ok:
            show_error(
                "'PSNR peak' (advanced options) must be a number above 0, e.g. "
                "4095 for 12-bit data, or empty (or 0) for automatic; got "
                f"{self._psnr_peak.value!r}."
            )
            return None
        try:
            return source_info(layer)
        except (TypeError, ValueError) as exc:
            show_error(str(exc))
            return None

    def _run_kwargs(self, source: SourceInfo) -> dict[str, Any]:
        return {
            "color_space": self._color_space.value if source.rgb else "rgb",
            "random_state": int(self._seed.value),
            "dither": bool(self._dither.value),
            "data_range": self._parse_peak()[1],
        }

    def _parse_peak(self) -> tuple[bool, float | None]:
        """Whether 'PSNR peak' is valid, and its value (None: automatic)."""
        text = str(self._psnr_peak.value).strip()
        if not text:
            return True, None
        try:
            value = float(text)
        except ValueError:
            return False, None
        if not math.isfinite(value) or value < 0:
            return False, None
        return True, (value if value > 0 else None)

    def _sweep_key(self, source: SourceInfo) -> tuple:
        """What a sweep depends on: the layer, its data and the run settings."""
        levels = tuple(id(level) for level in source.levels)
        settings = tuple(sorted(self._run_kwargs(source).items()))
        return (id(source.layer), levels, settings)

    def _parse_ks(self) -> tuple[int, ...] | None:
        from napari.utils.notifications import show_error

        text = str(self._sweep_ks.value).replace(",", " ").split()
        try:
            ks = sorted({int(word) for word in text})
        except ValueError:
            ks = []
        if not ks or not all(2 <= k <= 256 for k in ks):
            show_error(
                f"'compare k' must list palette sizes from 2 to 256, e.g. "
                f"{DEFAULT_SWEEP_KS!r}; got {self._sweep_ks.value!r}."
            )
            return None
        return tuple(ks)

    def _start_sweep(self, source: SourceInfo, ks: tuple, job: str, auto_ks):
        kwargs = self._run_kwargs(source)
        message = f"Comparing k = {', '.join(map(str, ks))} on {source.name!r}..."
        if job == "auto":
            message = (
                f"Auto k: trying k = {', '.join(map(str, ks))} on {source.name!r}..."
            )
        self._pending_key = self._sweep_key(source)
        self._pending_peak = kwargs["data_range"]
        self._auto_ks = auto_ks
        return self._start(job, compare_iter, (source, ks), kwargs, message)

    def _start(
        self,
        job: str,
        func,
        args: tuple,
        kwargs: dict,
        message: str,
        source: SourceInfo | None = None,
    ):
        """Run ``func(*args, **kwargs)`` (a progress generator) in a thread worker."""
        from napari.qt.threading import create_worker
        from superqt.utils import GeneratorWorker

        self._run_source = args[0] if source is None else source
        self._job = job
        self._then = None
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
        self._started = time.perf_counter()
        self._set_running(True, message)
        if not _engine_warm:
            self._start_hint_timer(worker, message)
        worker.start()
        return worker

    def _start_hint_timer(self, worker, message: str) -> None:
        """Add FIRST_RUN_HINT to the status if `worker` seems to be compiling."""
        from qtpy.QtCore import QTimer

        # Asked now, before the worker starts: by the time the timer fires it
        # may have cached these kernels while others are still compiling.
        cached = _engine_cached()

        def check() -> None:
            if (
                self._state["closed"]
                or self._state["worker"] is not worker
                or _engine_warm
                or self._status.value != message
                or cached
            ):
                return
            self._status.value = message + FIRST_RUN_HINT

        timer = QTimer(self.native)  # dies with the widget
        timer.setSingleShot(True)
        timer.timeout.connect(check)
        timer.timeout.connect(timer.deleteLater)
        timer.start(FIRST_RUN_HINT_DELAY_MS)

    # --- worker callbacks (main thread) -------------------------------------------

    def _on_yielded(self, fraction: float) -> None:
        if self._state["closed"] or self._state["worker"] is None:
            return
        percent = round(100 * float(fraction))
        self._progress.value = percent

    def _on_returned(self, value: Any) -> None:
        global _engine_warm
        _engine_warm = True
        if self._job == "quantize":
            self._on_quantized(value)
        elif self._job == "save":
            self._on_saved(value)
        else:
            self._on_swept(value)

    def _on_quantized(self, outcome: QuantizeOutcome) -> None:
        from napari.utils.notifications import show_info, show_warning

        source = self._run_source
        if self._state["closed"] or source is None:
            return
        layer = source.layer
        if layer is None or layer not in self._viewer.layers:
            show_warning(
                f"The layer {source.name!r} was removed while it was being "
                "quantised; no result layers were added."
            )
            self._status.value = f"{source.name!r} was removed: result discarded."
            return
        tuples = select_outputs(layer_data_tuples(outcome, source), self._outputs.value)
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
        if self._image.value is not layer and layer in self._image.choices:
            self._image.value = layer
        for note in outcome.notes:
            show_info(f"{source.name}: {note}")
        name = labels.name.removesuffix(" labels")
        self._current = (outcome, source, name)
        self._show_readout(outcome, name, list(labels.features["hex"]))
        result = outcome.result
        distinct = (
            f" ({result.n_distinct:,} distinct in the source)"
            if result.n_distinct > 0
            else ""
        )
        self._status.value = (
            f"Done in {self._waited():.2f} s: {result.n_colors} colours{distinct}."
        )
        if labels.name in existing:
            self._status.value += (
                f" Updated {name!r} in place: same settings as before."
            )
        self._scroll_to(self._readout)

    def _waited(self) -> float:
        """Seconds since the running job was started: what the user waited."""
        return time.perf_counter() - self._started

    def _scroll_to(self, box: Container) -> None:
        """Bring the top of `box` (the newest readout) into view."""
        from qtpy.QtCore import QTimer

        # after the layout has placed the new content
        QTimer.singleShot(0, lambda: self._ensure_visible(box))

    def _ensure_visible(self, box: Container) -> None:
        if not self._state["closed"]:
            bar = self._scroll.verticalScrollBar()
            bar.setValue(min(box.native.y(), bar.maximum()))

    def remove_results(self, source_name: str | None = None) -> int:
        """Remove every layer the plugin made from one source; return how many.

        `source_name` defaults to the layer in the image-layer box. The source
        itself is never touched.
        """
        if source_name is None:
            layer = self._image.value
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
        if not self._state["closed"]:
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
        source = self._run_source
        if self._state["closed"] or source is None:
            return
        if source.layer is None or source.layer not in self._viewer.layers:
            self._status.value = f"{source.name!r} was removed: comparison discarded."
            return
        table = comparison.table
        self._table_key = self._pending_key
        k = int(self._n_colors.value)
        self._panel.show(
            comparison,
            k if k in table.ks else None,
            _peak_note(source.dtype, table.psnr_peak, self._pending_peak is not None),
            preview=self._job == "sweep",
        )
        self._status.value = (
            f"Compared {len(table)} values of k in {self._waited():.1f} s; slide the "
            "k control or click a row to look at that k."
        )
        self._scroll_to(self._panel)
        if self._job == "auto":
            ks = self._auto_ks
            self._then = lambda: self._pick_auto_k(comparison, ks)

    def _on_errored(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        name = self._run_source.name if self._run_source is not None else "the layer"
        what = {"quantize": "K-means quantisation", "save": "Saving"}.get(
            self._job, "Comparing k"
        )
        show_error(f"{what} of {name!r} failed: {exc}")
        if not self._state["closed"]:
            self._status.value = f"Failed: {exc}"

    def _on_warned(self, args: tuple) -> None:
        from napari.utils.notifications import show_warning

        message = args[0]
        show_warning(str(message))

    def _on_aborted(self) -> None:
        self._then = None
        if not self._state["closed"]:
            if self._job == "quantize":
                self._status.value = "Cancelled: no layers were added."
            elif self._job == "save":
                self._status.value = "Cancelled: nothing was saved."
            else:
                self._status.value = "Cancelled: the comparison of k was discarded."

    def _on_finished(self) -> None:
        self._state["worker"] = None
        self._state["cancelling"] = False
        if self._state["closed"]:
            return
        self._set_running(False)
        then, self._then = self._then, None
        if then is not None:
            then()

    # --- compare k / auto k -------------------------------------------------------

    def _target_kwargs(self) -> dict[str, float]:
        value = float(self._target_value.value)
        if self._target.value == "psnr":
            return {"min_psnr": value}
        return {"max_ciede2000": value}

    def _target_text(self) -> str:
        value = float(self._target_value.value)
        if self._target.value == "psnr":
            return f"PSNR >= {value:g} dB"
        return f"mean CIEDE2000 <= {value:g}"

    def _pick_auto_k(self, comparison: Comparison, ks: tuple[int, ...]):
        """Set k to the smallest of `ks` reaching the target; keep its result."""
        from napari.utils.notifications import show_info, show_warning

        table = comparison.table
        target = self._target_kwargs()
        row = next(
            (r for r in table if r.k in ks and r.meets(**target)),
            None,
        )
        if row is None:
            best = table.row(max(ks)) if max(ks) in table.ks else table.rows[-1]
            ciede = "n/a" if best.ciede2000 is None else f"{best.ciede2000:.2f}"
            show_warning(
                f"Auto k: no k up to {AUTO_K_MAX} reaches {self._target_text()} "
                f"(k={best.k} gives PSNR {best.psnr:.2f} dB, mean CIEDE2000 "
                f"{ciede}); using k = {AUTO_K_MAX}."
            )
            k = AUTO_K_MAX
        else:
            k = row.k
            show_info(
                f"Auto k: k = {k} is the smallest of {', '.join(map(str, ks))} "
                f"reaching {self._target_text()}."
            )
        self._n_colors.value = int(k)
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
            return self._start("quantize", quantize_source_iter, args, kwargs, message)
        return self._start(
            "quantize", keep_iter, (comparison, int(k)), {}, message, source=source
        )

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

    def _on_target_changed(self, value: str) -> None:
        self._target_value.value = TARGET_DEFAULTS[value]
        if not self._setting_target:
            self._target_chosen = True  # the user's choice: no longer follows data

    def _follow_target(self, layer: Any) -> None:
        """Auto k's default target follows the data: PSNR for one channel.

        Mean CIEDE2000 needs colours; once the user picks a target it stays.
        """
        if layer is None or self._target_chosen:
            return
        target = "ciede2000" if bool(getattr(layer, "rgb", True)) else "psnr"
        if self._target.value != target:
            self._setting_target = True
            try:
                self._target.value = target
            finally:
                self._setting_target = False

    def _buttons(self) -> list[PushButton]:
        """The job buttons, in the order of BUTTON_TEXT."""
        return [
            self._run_button,
            self._compare_button,
            self._auto_button,
            self._save_button,
        ]

    # --- UI state -----------------------------------------------------------------

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Image]]:
        from napari.layers import Image

        # the plugin's own outputs are results, never sources
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image) and not is_output(layer)
        ]

    def _on_layers_changed(self, _event: Any = None) -> None:
        if not self._state["closed"]:
            self.reset_choices()

    def _on_active(self, event: Any) -> None:
        from napari.layers import Image

        layer = getattr(event, "value", None)
        if self._state["closed"] or not isinstance(layer, Image) or is_output(layer):
            return
        if layer in self._image.choices:
            self._image.value = layer

    def _on_image_changed(self, _value: Any = None) -> None:
        self._follow_target(self._image.value)
        self._update_enabled()

    def _on_show_advanced(self, value: bool) -> None:
        self._fit_pixels.visible = bool(value)
        self._seed.visible = bool(value)
        self._dither.visible = bool(value)
        self._outputs.visible = bool(value)
        self._psnr_peak.visible = bool(value)

    def _on_button(self, _value: Any = None) -> None:
        if self.is_running:
            self.cancel()
        else:
            self.run()

    def _update_enabled(self, _value: Any = None) -> None:
        if self._state["closed"]:
            return
        has_images = bool(self._image.choices)
        self._hint.visible = not has_images
        layer = self._image.value
        rgb = bool(getattr(layer, "rgb", True))
        if not self.is_running:
            for button in self._buttons():
                button.enabled = has_images and layer is not None
            self._save_button.enabled = self._current is not None
            self._run_button.tooltip = (
                "Quantise the selected image layer."
                if has_images
                else "Open an image layer first."
            )
            self._color_space.enabled = rgb
            # the seed only drives the pixel sample of 'fit palette on'
            self._seed.enabled = self._fit_pixels.value is not None
        if not rgb:
            self._color_space.value = "rgb"
            self._color_space.tooltip = (
                "Single-channel images are quantised by intensity; the perceptual "
                "colour spaces need an RGB(A) layer."
            )

    def _set_running(self, running: bool, message: str = "") -> None:
        for widget in (
            self._image,
            self._n_colors,
            self._seed,
            self._fit_pixels,
            self._dither,
            self._psnr_peak,
            self._outputs,
            self._remove_button,
            self._sweep_ks,
            self._target,
            self._target_value,
        ):
            widget.enabled = not running
        self._color_space.enabled = not running
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

    def _show_readout(
        self, outcome: QuantizeOutcome, layer_name: str, hexes: list[str]
    ) -> None:
        from qtpy.QtGui import QColor

        result = outcome.result
        total = max(int(result.counts.sum()), 1)
        rows = [
            ["", hexes[i], f"{int(c):,}", f"{100 * int(c) / total:.1f} %"]
            for i, c in enumerate(result.counts)
        ]
        self._palette_title.value = (
            f"<b>Palette of {html.escape(repr(layer_name))}</b>: "
            f"{result.n_colors} colours, most frequent first (top to bottom, as "
            "in the palette strip drawn right of the image). The row number is "
            "the pixel value in the labels layer."
        )
        self._swatches.value = {
            "data": rows,
            "index": [str(i) for i in range(len(rows))],
            "columns": list(SWATCH_COLUMNS),
        }
        table = self._swatches.native
        for i, hex_color in enumerate(hexes):
            item = table.item(i, 0)
            if item is not None:
                item.setBackground(QColor(hex_color))
        table.resizeColumnsToContents()
        shown = min(len(rows), 10)
        height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
        height += shown * table.verticalHeader().defaultSectionSize()
        table.setFixedHeight(height + 2)
        self._figures.value = _figures_html(
            outcome.report,
            self._run_source,
            peak_given=outcome.params.get("data_range") is not None,
            file=outcome.file,
        )
        self._readout.visible = True

    def _setup_native(self) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QAbstractItemView, QFrame, QScrollArea, QSizePolicy

        for label in (
            self._hint,
            self._status,
            self._palette_title,
            self._figures,
        ):
            label.native.setWordWrap(True)
            label.native.setSizePolicy(
                QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum
            )
        for label in (self._palette_title, self._figures):
            label.native.setTextFormat(Qt.TextFormat.RichText)
        self._hint.native.setStyleSheet("color: #e0a030;")
        table = self._swatches.native
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.verticalHeader().setDefaultSectionSize(22)
        self._progress.native.setFormat("%p %")
        # 'PSNR peak': only non-negative numbers can be typed (C locale, as Python
        # parses them); what is left (e.g. "1e") is refused with a message on Run.
        from qtpy.QtCore import QLocale
        from qtpy.QtGui import QDoubleValidator

        peak = self._psnr_peak.native
        peak.setPlaceholderText("auto")
        validator = QDoubleValidator(0.0, 1e300, 6, peak)
        validator.setLocale(QLocale.c())
        peak.setValidator(validator)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self._results.native)
        self._scroll = scroll
        scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.native.layout().addWidget(scroll)
        # room for the swatch table and the figures without cramped wrapping
        self.native.setMinimumWidth(380)


def _peak_note(dtype: np.dtype, peak: float | None, given: bool) -> str:
    """Which PSNR peak was used, when that is worth saying (else "").

    Said when the peak was set in 'PSNR peak', and when it is automatic for
    integers wider than 8 bits, whose automatic peak (the dtype's range, or the
    data's own range) is easily not the camera's; uint8 and floats say nothing.
    """
    if peak is None:
        return ""
    number = f"{peak:.0f}" if float(peak).is_integer() else f"{peak:g}"
    if given:
        return f"peak {number}, set in 'PSNR peak'"
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui" or dtype.itemsize == 1:
        return ""
    if dtype.itemsize == 2:
        info = np.iinfo(dtype)
        what = "maximum" if dtype.kind == "i" and peak == info.max else "range"
        return f"peak {number}, the {dtype} {what}; set 'PSNR peak' for 12-bit data"
    return (
        f"peak {number}, this image's max - min; set 'PSNR peak' to the camera's range"
    )


def _figures_html(
    report: SizeReport | None,
    source: SourceInfo | None = None,
    *,
    peak_given: bool = False,
    file: ResultFile | None = None,
) -> str:
    """The size report (:func:`~.metrics.size_report`) as a small HTML table.

    `source` (the run's source snapshot) says why a figure is missing: lazy data
    (never read whole) or single-channel data (no CIEDE2000). `peak_given` says
    whether the peak the PSNR used (``report.psnr_peak``) was set in 'PSNR peak'
    (see :func:`_peak_note`).
    """
    if report is None:
        return ""
    lazy = source is not None and source.is_lazy
    rgb = source is None or source.rgb
    not_lazy = (
        "n/a <small>(not computed for lazy data: it would read every pixel)</small>"
    )
    n = report.n_pixels
    k = report.n_colors
    bpp = report.bits_per_pixel
    original = (
        f"{report.original_bits:,} bits ({report.original_bytes:,.0f} bytes)<br>"
        f"<small>{n:,} px &times; {bpp} bit</small>"
    )
    if report.source_bytes is not None:
        original += f"<br><small>source file: {report.source_bytes:,} bytes</small>"
    formula = (
        f"{report.formula_bits:,} bits ({report.formula_bytes:,.0f} bytes), "
        f"<b>{report.formula_ratio:.2f} : 1</b><br>"
        f"<small>{n:,} px &times; {report.index_bits} bit (ceil log<sub>2</sub> "
        f"{k}) + {k} &times; {report.bits_per_color} bit palette</small>"
    )
    png_row = "indexed PNG"
    if file is not None and file.format != "indexed PNG":
        png_row = file.format
        if file.n_bytes is None:
            png = f"n/a <small>({html.escape(file.why)})</small>"
        else:
            ratio = report.original_bytes / max(file.n_bytes, 1)
            png = f"{file.n_bytes:,} bytes, <b>{ratio:.2f} : 1</b>"
            png += (
                f"<br><small>real file size ({html.escape(file.why)}), against "
                "the raw original</small>"
            )
    elif report.png_bytes is None and lazy:
        png = not_lazy
    elif report.png_bytes is None:
        png = (
            "n/a <small>(an indexed PNG holds at most 256 colours of 8-bit "
            "data)</small>"
        )
    else:
        png = f"{report.png_bytes:,} bytes, <b>{report.ratio:.2f} : 1</b>"
        png += "<br><small>real file size, against the raw original</small>"
        if report.source_ratio is not None:
            png += f"<br><small>{report.source_ratio:.2f} : 1 against the source file</small>"
    if report.psnr is None:
        psnr_text = not_lazy if lazy else "n/a"
    elif report.psnr == float("inf"):
        psnr_text = "identical"
    else:
        psnr_text = f"{report.psnr:.2f} dB &nbsp;<small>(higher = closer)</small>"
    note = (
        "" if source is None else _peak_note(source.dtype, report.psnr_peak, peak_given)
    )
    if report.psnr is not None and note:
        psnr_text += f"<br><small>{html.escape(note, quote=False)}</small>"
    if report.ciede2000 is None:
        if not rgb:
            ciede_text = "n/a <small>(needs RGB(A) data)</small>"
        elif lazy:
            ciede_text = not_lazy
        elif source is not None and np.dtype(source.dtype).kind in "ui":
            # 32- and 64-bit integers: no known full intensity.
            ciede_text = (
                "n/a <small>(set 'PSNR peak' to the value of full intensity for "
                f"{np.dtype(source.dtype)} colours)</small>"
            )
        else:
            ciede_text = "n/a <small>(needs colours in the 0-1 range)</small>"
    else:
        ciede_text = (
            f"{report.ciede2000:.2f} &nbsp;<small>(under ~2.3 is hard to see)</small>"
        )
    rows = [
        ("original", original),
        ("formula", formula),
        (png_row, png),
        ("PSNR", psnr_text),
        ("mean CIEDE2000", ciede_text),
    ]
    body = "".join(
        f"<tr><td valign='top'><b>{html.escape(name)}</b>&nbsp;&nbsp;</td>"
        f"<td>{value}</td></tr>"
        for name, value in rows
    )
    return f"<b>Compression</b><table cellspacing='3'>{body}</table>"


def _engine_cached() -> bool:
    """Whether numba's on-disk cache holds the engine's main kernels.

    An empty or obsolete cache (never run, or the code changed since) means the
    next run compiles them. Reads numba's cache index (a private API): if that
    fails, the answer is False (the first-run hint may then be shown needlessly).
    """
    try:
        from . import kmeans

        kernels = (kmeans._lloyd_run, kmeans._assign_kernel)
        return all(bool(k._cache._cache_file._load_index()) for k in kernels)
    except Exception:  # a hint only: never break a run over it
        return False


def _is_strip_meta(meta: dict) -> bool:
    return meta.get("metadata", {}).get("role") == STRIP_ROLE


def _on_destroyed(state: dict, *_: Any) -> None:
    """The widget's Qt object is gone: stop the worker, ignore its signals."""
    state["closed"] = True
    worker = state.get("worker")
    if worker is not None:
        worker.quit()
