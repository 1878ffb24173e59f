"""The dock widget: pick an image layer and k, run in a thread, read the palette.

The widget only gathers inputs, runs :func:`~._layers.quantize_source_iter` in a
napari thread worker (progress and cancel come from the engine's generator), and
shows the result; it holds no clustering code.
"""

from __future__ import annotations

import html
from functools import partial
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
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
)

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from .metrics import SizeReport

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
                "Seed for the pixel sample used by the fit; the same seed gives "
                "the same palette."
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
        self._run_button = PushButton(text="Run")
        self._progress = ProgressBar(min=0, max=100, value=0, visible=False)
        self._status = Label(value="")
        self._palette_title = Label(value="")
        self._swatches = Table(
            value={"data": [], "columns": list(SWATCH_COLUMNS)},
        )
        self._figures = Label(value="")

        self._inputs = Container(
            widgets=[
                self._image,
                self._n_colors,
                self._color_space,
                self._seed,
                self._show_advanced,
                self._fit_pixels,
                self._dither,
            ],
            labels=True,
        )
        self._readout = Container(
            widgets=[self._palette_title, self._swatches, self._figures],
            labels=False,
            visible=False,
        )
        for box in (self._inputs, self._readout):
            box.margins = (0, 0, 0, 0)
        self._fit_pixels.visible = False
        self._dither.visible = False
        self.extend(
            [
                self._hint,
                self._inputs,
                self._run_button,
                self._progress,
                self._status,
                self._readout,
            ]
        )
        self._setup_native()

        self._run_button.changed.connect(self._on_button)
        self._show_advanced.changed.connect(self._on_show_advanced)
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

    def run(self):
        """Start quantising the selected layer in a thread; return the worker.

        Refused (with a notification, returning None) while a run is in progress
        or when no image layer is selected.
        """
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error, show_warning
        from superqt.utils import GeneratorWorker

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
        try:
            source = source_info(layer)
        except (TypeError, ValueError) as exc:
            show_error(str(exc))
            return None
        self._run_source = source
        kwargs = {
            "color_space": self._color_space.value if source.rgb else "rgb",
            "random_state": int(self._seed.value),
            "dither": bool(self._dither.value),
            "max_pixels": self._fit_pixels.value,
        }
        k = int(self._n_colors.value)
        # superqt's GeneratorWorker (not napari's subclass) so that errors and
        # warnings reach the user once, through our handlers, as plain messages.
        worker = create_worker(
            quantize_source_iter,
            source,
            k,
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
        self._set_running(True, f"Quantising {source.name!r} into {k} colours...")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running worker to stop; no layers are added."""
        worker = self._state["worker"]
        if worker is not None:
            worker.quit()
            self._status.value = "Cancelling..."
            self._run_button.enabled = False

    # --- worker callbacks (main thread) -------------------------------------------

    def _on_yielded(self, fraction: float) -> None:
        if self._state["closed"] or self._state["worker"] is None:
            return
        percent = round(100 * float(fraction))
        self._progress.value = percent

    def _on_returned(self, outcome: QuantizeOutcome) -> None:
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

    def _on_errored(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        name = self._run_source.name if self._run_source is not None else "the layer"
        show_error(f"K-means quantisation of {name!r} failed: {exc}")
        if not self._state["closed"]:
            self._status.value = f"Failed: {exc}"

    def _on_warned(self, args: tuple) -> None:
        from napari.utils.notifications import show_warning

        message = args[0]
        show_warning(str(message))

    def _on_aborted(self) -> None:
        if not self._state["closed"]:
            self._status.value = "Cancelled: no layers were added."

    def _on_finished(self) -> None:
        self._state["worker"] = None
        if self._state["closed"]:
            return
        self._set_running(False)

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
        self._dither.visible = bool(value)

    def _on_button(self, _value: Any = None) -> None:
        if self.is_running:
            self.cancel()
        else:
            self.run()

    def _update_enabled(self) -> None:
        if self._state["closed"]:
            return
        has_images = bool(self._image.choices)
        self._hint.visible = not has_images
        layer = self._image.value
        rgb = bool(getattr(layer, "rgb", True))
        if not self.is_running:
            self._run_button.enabled = has_images and layer is not None
            self._run_button.tooltip = (
                "Quantise the selected image layer."
                if has_images
                else "Open an image layer first."
            )
            self._color_space.enabled = rgb
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
        ):
            widget.enabled = not running
        self._color_space.enabled = not running
        self._run_button.text = "Cancel" if running else "Run"
        self._run_button.enabled = True
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
        self._figures.value = _figures_html(outcome.report)
        self._readout.visible = True

    def _setup_native(self) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QAbstractItemView, QSizePolicy

        for label in (self._hint, self._status, self._palette_title, self._figures):
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
        # room for the swatch table and the figures without cramped wrapping
        self.native.setMinimumWidth(380)


def _figures_html(report: SizeReport | None) -> str:
    """The size report (:func:`~.metrics.size_report`) as a small HTML table."""
    if report is None:
        return ""
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
    if report.png_bytes is None:
        png = "n/a <small>(more than 256 colours or not 8-bit)</small>"
    else:
        png = f"{report.png_bytes:,} bytes, <b>{report.ratio:.2f} : 1</b>"
        png += "<br><small>real file size, against the raw original</small>"
        if report.source_ratio is not None:
            png += f"<br><small>{report.source_ratio:.2f} : 1 against the source file</small>"
    if report.psnr is None:
        psnr_text = "n/a"
    elif report.psnr == float("inf"):
        psnr_text = "identical"
    else:
        psnr_text = f"{report.psnr:.2f} dB &nbsp;<small>(higher = closer)</small>"
    if report.ciede2000 is None:
        ciede_text = "n/a (needs RGB data)"
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
    body = "".join(
        f"<tr><td valign='top'><b>{html.escape(name)}</b>&nbsp;&nbsp;</td>"
        f"<td>{value}</td></tr>"
        for name, value in rows
    )
    return f"<b>Compression</b><table cellspacing='3'>{body}</table>"


def _on_destroyed(state: dict, *_: Any) -> None:
    """The widget's Qt object is gone: stop the worker, ignore its signals."""
    state["closed"] = True
    worker = state.get("worker")
    if worker is not None:
        worker.quit()
