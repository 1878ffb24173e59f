"""The dock widget: pick an image layer and k, run in a thread, read the palette.

The widget only gathers inputs, runs :func:`~._layers.quantize_source_iter` in a
napari thread worker (progress and cancel come from the engine's generator), and
shows the result; it holds no clustering code.
"""

from __future__ import annotations

import html
import math
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
    QuantizeOutcome,
    SourceInfo,
    add_or_update_layers,
    layer_data_tuples,
    quantize_source_iter,
    source_info,
    sweep_source_iter,
)
from .metrics import _has_ciede

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

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
# short headers: the dock is narrow (the title above the table spells them out)
SWEEP_COLUMNS = ("k", "PSNR dB", "ΔE00", "PNG bytes", "ratio")
DEFAULT_SWEEP_KS = "2, 4, 8, 16, 32, 64, 128, 256"
#: auto k: the largest palette size tried, and the one used when none reaches the target
AUTO_K_MAX = 256
TARGETS = [
    ("mean CIEDE2000 at most", "ciede2000"),
    ("PSNR at least (dB)", "psnr"),
]
TARGET_DEFAULTS = {"ciede2000": 2.3, "psnr": 30.0}
BUTTON_TEXT = {"quantize": "Run", "sweep": "Compare k", "auto": "Auto k"}
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
        self._state: dict[str, Any] = {"worker": None, "closed": False}
        self._run_source: SourceInfo | None = None

        self._hint = Label(value=EMPTY_HINT)
        self._image = ComboBox(
            label="image layer",
            choices=self._image_choices,
            tooltip="The Image layer to quantise (follows the selected layer).",
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
        self._locked = LineEdit(
            label="locked colours",
            value="",
            tooltip=(
                "Colours the palette must hold exactly, as hex values separated by "
                "commas (e.g. #ffffff, #000000); click a palette swatch below to add "
                "its colour. k-means moves only the other entries."
            ),
        )
        self._importance = ComboBox(
            label="importance",
            choices=self._importance_choices,
            value=None,
            tooltip=(
                "A Labels or Image layer of the image's shape whose values weigh "
                "each pixel in the fit (label value = weight; 0 = ignored in the "
                "fit, still mapped). Paint a Labels layer and press Run again."
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
        self._psnr_peak = LineEdit(
            label="PSNR peak",
            value="",
            tooltip=PSNR_PEAK_TOOLTIP,
        )
        self._run_button = PushButton(text="Run")
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
        self._sweep_title = Label(value="")
        self._sweep_table = Table(value={"data": [], "columns": list(SWEEP_COLUMNS)})
        self._figure = None  # matplotlib Figure of the sweep plot, made on demand
        self._canvas = None
        self._table: SweepTable | None = None
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
                self._locked,
                self._importance,
                self._show_advanced,
                self._fit_pixels,
                self._seed,
                self._dither,
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
        self._sweep_box = Container(
            widgets=[self._sweep_title], labels=False, visible=False
        )
        for box in (
            self._inputs,
            self._readout,
            self._sweep_inputs,
            self._sweep_buttons,
            self._sweep_box,
        ):
            box.margins = (0, 0, 0, 0)
        self._fit_pixels.visible = False
        self._seed.visible = False
        self._dither.visible = False
        self._psnr_peak.visible = False
        self.extend(
            [
                self._hint,
                self._inputs,
                self._run_button,
                self._sweep_inputs,
                self._sweep_buttons,
                self._progress,
                self._status,
            ]
        )
        # The results (sweep plot and table, palette, figures) scroll on their own:
        # they can be taller than the screen, and a dock widget taller than the
        # window would stretch the window. The inputs stay in view above them.
        self._results = Container(
            widgets=[self._sweep_box, self._readout], labels=False
        )
        self._results.margins = (0, 0, 0, 0)
        self._setup_native()

        self._run_button.changed.connect(self._on_button)
        self._compare_button.changed.connect(self._on_compare_button)
        self._auto_button.changed.connect(self._on_auto_button)
        self._target.changed.connect(self._on_target_changed)
        self._sweep_table.native.cellClicked.connect(self._on_sweep_row_clicked)
        self._swatches.native.cellClicked.connect(self._on_swatch_clicked)
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
        return self._table

    def run(self):
        """Start quantising the selected layer in a thread; return the worker.

        Refused (with a notification, returning None) while a run is in progress
        or when no image layer is selected.
        """
        source = self._prepare()
        if source is None:
            return None
        control = self._palette_control(source)
        if control is None:
            return None
        kwargs = {
            **self._run_kwargs(source),
            "max_pixels": self._fit_pixels.value,
            **control,
        }
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
        size for every k; clicking a row of the table runs that k.
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
        table = self._table
        if (
            table is not None
            and self._table_key == self._sweep_key(source)
            and set(ks) <= set(table.ks)
        ):
            return self._pick_auto_k(table, ks)
        return self._start_sweep(source, ks, "auto", ks)

    def cancel(self) -> None:
        """Ask the running worker to stop; no layers are added."""
        worker = self._state["worker"]
        if worker is not None:
            worker.quit()
            self._then = None
            self._status.value = "Cancelling..."
            for button in self._buttons():
                button.enabled = False

    # --- starting workers ---------------------------------------------------------

    def _prepare(self) -> SourceInfo | None:
        """The selected layer's snapshot, or None (with a notification)."""
        from napari.utils.notifications import show_error, show_warning

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

    def _palette_control(self, source: SourceInfo) -> dict[str, Any] | None:
        """The locked colours and importance map of a run (a snapshot of the
        layer's data as it is now), or None with a notification if bad."""
        from napari.utils.notifications import show_error

        from ._layers import weight_array
        from ._palette_control import colors_for_image, parse_hex_colors

        control: dict[str, Any] = {"fixed_colors": None, "weights": None}
        text = self._locked.value.strip()
        try:
            if text:
                data = source.levels[0]
                axis = source.channel_axis
                n_channels = 1 if axis is None else data.shape[axis]
                dtype = data.dtype
                control["fixed_colors"] = colors_for_image(
                    parse_hex_colors(text), dtype, n_channels
                )
            layer = self._importance.value
            if layer is not None and layer in self._viewer.layers:
                control["weights"] = weight_array(layer).copy()
        except ValueError as exc:
            show_error(f"'locked colours': {exc}")
            return None
        return control

    def _importance_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image, Labels

        return [("none", None)] + [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels) or (isinstance(layer, Image) and not layer.rgb)
        ]

    def _on_swatch_clicked(self, row: int, _column: int = 0) -> None:
        """Add the clicked palette colour to the locked colours."""
        item = self._swatches.native.item(row, 1)
        if item is None:
            return
        hex_color = item.text()[:7]
        current = [c.strip() for c in self._locked.value.split(",") if c.strip()]
        if hex_color.lower() not in (c.lower() for c in current):
            self._locked.value = ", ".join([*current, hex_color])

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
        return self._start(job, sweep_source_iter, (source, ks), kwargs, message)

    def _start(self, job: str, func, args: tuple, kwargs: dict, message: str):
        """Run ``func(*args, **kwargs)`` (a progress generator) in a thread worker."""
        from napari.qt.threading import create_worker
        from superqt.utils import GeneratorWorker

        self._run_source = args[0]
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
        tuples = layer_data_tuples(outcome, source)
        existing = {lay.name for lay in self._viewer.layers}
        layers = add_or_update_layers(self._viewer, tuples)
        if layers[2].name not in existing:
            # a new palette strip sits beside the image: bring it into view
            self._viewer.reset_view()
        # the Labels layer shows the palette colour under the cursor
        self._viewer.layers.selection.active = layers[1]
        if self._image.value is not layer and layer in self._image.choices:
            self._image.value = layer
        for note in outcome.notes:
            show_info(f"{source.name}: {note}")
        self._show_readout(outcome, layers[0].name, list(layers[1].features["hex"]))
        result = outcome.result
        self._status.value = (
            f"Done in {result.seconds:.2f} s: {result.n_colors} colours "
            f"({result.n_distinct:,} distinct in the source)."
        )

    def _on_swept(self, table: SweepTable) -> None:
        source = self._run_source
        if self._state["closed"] or source is None:
            return
        self._table = table
        self._table_key = self._pending_key
        k = int(self._n_colors.value)
        self._show_sweep(
            table,
            source.name,
            k if k in table.ks else None,
            _peak_note(source.dtype, table.psnr_peak, self._pending_peak is not None),
        )
        self._status.value = (
            f"Compared {len(table)} values of k in {table.seconds:.1f} s; click a "
            "row of the table to run that k."
        )
        if self._job == "auto":
            ks = self._auto_ks
            self._then = lambda: self._pick_auto_k(table, ks)

    def _on_errored(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        name = self._run_source.name if self._run_source is not None else "the layer"
        what = "K-means quantisation" if self._job == "quantize" else "Comparing k"
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
            else:
                self._status.value = "Cancelled: the comparison of k was discarded."

    def _on_finished(self) -> None:
        self._state["worker"] = None
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

    def _pick_auto_k(self, table: SweepTable, ks: tuple[int, ...]):
        """Set k to the smallest of `ks` in `table` reaching the target; run it."""
        from napari.utils.notifications import show_info, show_warning

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
        self._choose_k(k)
        return self.run()

    def _choose_k(self, k: int) -> None:
        """Set k, mark it on the plot and select its table row."""
        self._n_colors.value = int(k)
        table = self._table
        if table is None:
            return
        self._draw_plot(table, k if k in table.ks else None)
        if k in table.ks:
            self._sweep_table.native.selectRow(table.ks.index(k))

    def _on_sweep_row_clicked(self, row: int, _column: int = 0) -> None:
        from napari.utils.notifications import show_warning

        table = self._table
        if table is None or not 0 <= row < len(table):
            return
        if self.is_running:
            show_warning("Wait for the running job to finish (or cancel it) first.")
            return
        self._choose_k(table.rows[row].k)
        self.run()

    def _show_sweep(
        self, table: SweepTable, name: str, mark_k: int | None, peak_note: str = ""
    ) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import (
            QAbstractItemView,
            QHeaderView,
            QStyledItemDelegate,
        )

        align = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        rows = [
            [
                str(r.k),
                "inf" if r.psnr == float("inf") else f"{r.psnr:.2f}",
                "n/a" if r.ciede2000 is None else f"{r.ciede2000:.2f}",
                "n/a" if r.png_bytes is None else f"{r.png_bytes:,}",
                "n/a" if r.ratio is None else f"{r.ratio:.2f} : 1",
            ]
            for r in table
        ]
        self._sweep_title.value = (
            f"<b>Compare k on {html.escape(repr(name))}</b>: quality (PSNR, mean "
            "CIEDE2000 ΔE00) against the real indexed-PNG size; ratio = raw "
            f"{table.bits_per_pixel}-bit size / PNG bytes. Click a row to run that k."
        )
        if peak_note:
            self._sweep_title.value += (
                f"<br><small>PSNR: {html.escape(peak_note, quote=False)}.</small>"
            )
        self._sweep_table.value = {
            "data": rows,
            "index": [""] * len(rows),
            "columns": list(SWEEP_COLUMNS),
        }
        qtable = self._sweep_table.native
        # the plain delegate shows our text (magicgui's re-formats numbers)
        qtable.setItemDelegate(QStyledItemDelegate(qtable))
        for i, cells in enumerate(rows):
            for j, text in enumerate(cells):
                item = qtable.item(i, j)
                if item is not None:  # exactly our text, not a re-formatted number
                    item.setText(text)
                    item.setTextAlignment(int(align))
        qtable.verticalHeader().setVisible(False)
        qtable.verticalHeader().setDefaultSectionSize(22)
        header = qtable.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        qtable.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        qtable.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        qtable.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        height = qtable.horizontalHeader().sizeHint().height() + 2 * qtable.frameWidth()
        height += min(len(rows), 9) * qtable.verticalHeader().defaultSectionSize()
        qtable.setFixedHeight(height + 4)
        self._draw_plot(table, mark_k)
        if mark_k is not None:
            qtable.selectRow(table.ks.index(mark_k))
        self._sweep_box.visible = True

    def _draw_plot(self, table: SweepTable, mark_k: int | None) -> None:
        import matplotlib as mpl

        from .sweep import plot_sweep

        self._ensure_canvas()
        fig = self._figure
        fig.clear()
        with mpl.rc_context({"font.size": 8, "axes.titlesize": 8}):
            ax = fig.add_subplot()
            plot_sweep(table, ax, mark_k=mark_k)
            _fit_to_dock(ax)
        self._canvas.draw_idle()

    def _ensure_canvas(self) -> None:
        if self._canvas is not None:
            return
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self._figure = Figure(figsize=(4.4, 3.7), dpi=100, layout="constrained")
        self._canvas = FigureCanvasQTAgg(self._figure)
        self._canvas.setMinimumHeight(370)
        layout = self._sweep_box.native.layout()
        layout.addWidget(self._canvas)
        layout.addWidget(self._sweep_table.native)

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

    def _buttons(self) -> list[PushButton]:
        return [self._run_button, self._compare_button, self._auto_button]

    # --- UI state -----------------------------------------------------------------

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Image]]:
        from napari.layers import Image

        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image)
        ]

    def _on_layers_changed(self, _event: Any = None) -> None:
        if not self._state["closed"]:
            self.reset_choices()

    def _on_active(self, event: Any) -> None:
        from napari.layers import Image

        layer = getattr(event, "value", None)
        if self._state["closed"] or not isinstance(layer, Image):
            return
        if layer in self._image.choices:
            self._image.value = layer

    def _on_image_changed(self, _value: Any = None) -> None:
        self._update_enabled()

    def _on_show_advanced(self, value: bool) -> None:
        self._fit_pixels.visible = bool(value)
        self._seed.visible = bool(value)
        self._dither.visible = bool(value)
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
            self._sweep_ks,
            self._target,
            self._target_value,
        ):
            widget.enabled = not running
        self._color_space.enabled = not running
        self._sweep_table.native.setEnabled(not running)
        active = {"quantize": self._run_button, "sweep": self._compare_button}.get(
            self._job, self._auto_button
        )
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
            self._sweep_title,
        ):
            label.native.setWordWrap(True)
            label.native.setSizePolicy(
                QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum
            )
        for label in (self._palette_title, self._figures, self._sweep_title):
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
    if report.png_bytes is None and lazy:
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
        ("indexed PNG", png),
        ("PSNR", psnr_text),
        ("mean CIEDE2000", ciede_text),
    ]
    if report.psnr_weighted is not None:
        rows.insert(
            4,
            (
                "PSNR where weighted",
                f"{report.psnr_weighted:.2f} dB &nbsp;<small>(inside the importance "
                "layer's weights)</small>",
            ),
        )
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


def _fit_to_dock(ax) -> None:
    """Make :func:`~.sweep.plot_sweep`'s figure fit a narrow dock widget.

    The title breaks before its parenthesis (on one line it ran past the dock's
    right edge), and the legend moves below the axes, in two columns, where it
    hides no point or k label.
    """
    title = ax.title
    title.set_text(title.get_text().replace(" (", "\n(", 1))
    legend = ax.get_legend()
    if legend is not None:
        handles = legend.legend_handles
        labels = [text.get_text() for text in legend.get_texts()]
        legend.remove()
        ax.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncol=2,
            fontsize=7,
            frameon=False,
            handlelength=1.5,
            columnspacing=1.0,
        )


def _on_destroyed(state: dict, *_: Any) -> None:
    """The widget's Qt object is gone: stop the worker, ignore its signals."""
    state["closed"] = True
    worker = state.get("worker")
    if worker is not None:
        worker.quit()
