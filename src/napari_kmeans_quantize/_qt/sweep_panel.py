"""Compare k: the plot and table of a sweep, and the k browser over its results.

A sweep keeps every k it computed, without the quantised images: the labels (one
byte per pixel for k <= 256) and the palette of each k, so the memory it holds is
``len(ks) * pixels`` bytes plus one shown image. The k control swaps the shown
image (``palette[labels]``) in one preview layer, without recomputing; "Keep this
k" adds that k's layers. The panel belongs to the source it was computed on: rows
and "Keep this k" always act on that source, it is marked stale when the source's
data changes, and cleared when the source is removed.
"""

from __future__ import annotations

import csv
import html
import io
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, Label, PushButton, Slider, Table

from .._layers import (
    QuantizeOutcome,
    SourceInfo,
)
from .k_browser import Comparison, KPreview, spatial_shape

if TYPE_CHECKING:
    import napari

    from ..sweep import SweepTable

# short headers: the dock is narrow (the title above the table spells them out)
SWEEP_COLUMNS = ("k", "PSNR dB", "ΔE00", "PNG bytes", "ratio")


class SweepPanel(Container):
    """The plot, the table and the k browser of one :class:`Comparison`.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the preview layer goes.
    on_keep : callable
        Called with (comparison, k) by "Keep this k".
    on_preview : callable, optional
        Called with (outcome, layer name, source) when the browser shows a k, and
        with (None, "", None) when the preview goes.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        on_keep: Callable[[Comparison, int], Any],
        on_preview: Callable[[QuantizeOutcome | None, str, Any], Any] | None = None,
    ) -> None:
        super().__init__(labels=False, visible=False)
        self.margins = (0, 0, 0, 0)
        self._viewer = viewer
        self._on_keep = on_keep
        self.comparison: Comparison | None = None
        self.stale = ""
        self._previews = KPreview(viewer)
        self._on_preview = on_preview
        self._watched: Any = None  # weakref to the source layer we listen to
        self.title = Label(value="")
        self.k_slider = Slider(min=0, max=0, value=0, readout=False, label="")
        self.k_label = Label(value="")
        self.keep_button = PushButton(
            text="Keep this k",
            tooltip="Add the shown k's layers (image, labels, palette); no recomputing.",
        )
        self.copy_button = PushButton(
            text="Copy table", tooltip="Copy every row, with headers (tab-separated)."
        )
        self.csv_button = PushButton(
            text="Save CSV...", tooltip="Save the table as CSV."
        )
        browse = Container(
            widgets=[self.k_label, self.k_slider], layout="horizontal", labels=False
        )
        actions = Container(
            widgets=[self.keep_button, self.copy_button, self.csv_button],
            layout="horizontal",
            labels=False,
        )
        for box in (browse, actions):
            box.margins = (0, 0, 0, 0)
        self.table_widget = Table(value={"data": [], "columns": list(SWEEP_COLUMNS)})
        self.extend([self.title, browse, actions])
        self._figure = None  # matplotlib Figure of the plot, made on demand
        self._canvas = None
        self.k_slider.changed.connect(self._on_slider)
        self.keep_button.changed.connect(self._on_keep_button)
        self.copy_button.changed.connect(self.copy_table)
        self.csv_button.changed.connect(self._on_csv_button)
        self.table_widget.native.cellClicked.connect(self._on_row_clicked)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._setup_native()

    # --- what the widget calls ----------------------------------------------------

    @property
    def table(self) -> SweepTable | None:
        return None if self.comparison is None else self.comparison.table

    @property
    def shown_k(self) -> int | None:
        """The k the browser shows."""
        if self.comparison is None:
            return None
        return self.comparison.table.ks[int(self.k_slider.value)]

    def belongs_to(self, source: SourceInfo) -> bool:
        """Whether the panel is of `source`'s layer and is not stale."""
        c = self.comparison
        return (
            c is not None
            and not self.stale
            and c.source.layer is not None
            and c.source.layer is source.layer
        )

    def show(
        self,
        comparison: Comparison,
        mark_k: int | None,
        peak_note: str = "",
        *,
        preview: bool = True,
    ) -> None:
        """Show a new comparison (table, plot, browser at `mark_k` or the first k).

        With `preview` the k browser's layer shows that k at once; otherwise it
        appears when the k control or a row is used.
        """
        self.comparison = comparison
        self.stale = ""
        self._watch(comparison.source.layer)
        table = comparison.table
        self._fill_table(table)
        self._peak_note = peak_note
        self._set_title()
        with self.k_slider.changed.blocked():
            self.k_slider.max = len(table) - 1
            self.k_slider.value = table.ks.index(mark_k) if mark_k in table.ks else 0
        self._remove_preview()
        self.keep_button.enabled = self.k_slider.enabled = True
        self.visible = True
        self.browse(self.shown_k, preview=preview)

    def browse(self, k: int, *, preview: bool = True) -> None:
        """Show k's result in the preview layer (no recomputing) and mark it."""
        c = self.comparison
        if c is None or k not in c.kept:
            return
        index = c.table.ks.index(k)
        if int(self.k_slider.value) != index:
            with self.k_slider.changed.blocked():
                self.k_slider.value = index
        self.k_label.value = f"shown: <b>k = {k}</b>"
        self.table_widget.native.selectRow(index)
        self._draw_plot(c.table, k)
        if preview and not self.stale:
            self._show_preview(k)

    def clear(self) -> None:
        """Forget the comparison (its source is gone) and remove the preview."""
        self._remove_preview()
        self._watch(None)
        self.comparison = None
        self.stale = ""
        self.visible = False

    def mark_stale(self, reason: str) -> None:
        """Keep the figures on view but refuse to act on them any more."""
        self.stale = reason
        self._remove_preview()
        self._set_title()
        self.keep_button.enabled = False
        self.k_slider.enabled = False
        self.keep_button.tooltip = f"Stale: {reason}. Run Compare k again."

    def set_running(self, running: bool) -> None:
        self.table_widget.native.setEnabled(not running)
        self.keep_button.enabled = not running and not self.stale
        self.k_slider.enabled = not running and not self.stale

    def copy_table(self, _value: Any = None) -> str:
        """Put every row, with headers, on the clipboard (tab-separated); return it."""
        from qtpy.QtWidgets import QApplication

        text = table_tsv(self.table) if self.table is not None else ""
        QApplication.clipboard().setText(text)
        return text

    def save_csv(self, path: str | os.PathLike) -> str:
        """Write the table as CSV (full precision, atomically); return the path."""
        from .._atomic import atomic_write

        data = self.table.to_csv().encode()
        return atomic_write(path, lambda f: f.write(data))

    def _on_csv_button(self, _value: Any = None) -> None:
        from napari.utils.notifications import show_error, show_info
        from qtpy.QtWidgets import QFileDialog

        c = self.comparison
        if c is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.native,
            "Save the table",
            f"{c.source.name} compare k.csv",
            "CSV (*.csv)",
        )
        if not path:
            return
        try:
            show_info(f"Saved {self.save_csv(path)!r}.")
        except OSError as exc:
            show_error(f"Could not save the table: {exc}")

    # --- the preview layer --------------------------------------------------------

    def _show_preview(self, k: int) -> None:
        outcome, name = self._previews.show(self.comparison, k)
        if self._on_preview is not None:
            self._on_preview(outcome, name, self.comparison.source)

    def _remove_preview(self) -> None:
        if self._previews.remove() and self._on_preview is not None:
            self._on_preview(None, "", None)

    # --- the source ---------------------------------------------------------------

    def _watch(self, layer: Any) -> None:
        old = self._watched() if self._watched is not None else None
        if old is not None:
            old.events.data.disconnect(self._on_source_data)
        self._watched = weakref.ref(layer) if layer is not None else None
        if layer is not None:
            layer.events.data.connect(self._on_source_data)

    def _on_source_data(self, _event: Any = None) -> None:
        c = self.comparison
        if c is not None and not self.stale:
            self.mark_stale(f"the data of {c.source.name!r} changed since")

    def _on_layer_removed(self, event: Any) -> None:
        c = self.comparison
        if c is None:
            return
        removed = getattr(event, "value", None)
        if c.source.layer is None or removed is c.source.layer:
            self.clear()
        else:
            self._previews.forget(removed)

    # --- inputs -------------------------------------------------------------------

    def _on_slider(self, index: int) -> None:
        if self.comparison is not None:
            self.browse(self.comparison.table.ks[int(index)])

    def _on_row_clicked(self, row: int, _column: int = 0) -> None:
        if self.comparison is not None and 0 <= row < len(self.comparison.table):
            self.browse(self.comparison.table.ks[row])

    def _on_keep_button(self, _value: Any = None) -> None:
        if self.comparison is not None and not self.stale:
            self._on_keep(self.comparison, self.shown_k)

    # --- drawing ------------------------------------------------------------------

    def _set_title(self) -> None:
        c = self.comparison
        table = c.table
        name = c.source.name
        text = (
            f"<b>Compare k on {html.escape(repr(name), quote=False)}</b>: quality (PSNR, mean "
            "CIEDE2000 ΔE00) against the real indexed-PNG size; ratio = raw "
            f"{table.bits_per_pixel}-bit size / PNG bytes. Slide or click a row to "
            "look at that k; <i>Keep this k</i> adds its layers."
        )
        text += (
            f"<br><small>Every k is kept (labels + palette): "
            f"{_megabytes(c.kept_bytes)} for {len(table)} k.</small>"
        )
        if c.level:
            shape = " × ".join(map(str, spatial_shape(c.source, c.level)))
            full = " × ".join(map(str, spatial_shape(c.source, 0)))
            text += (
                f"<br><small>Figures are from pyramid level {c.level} ({shape} "
                f"pixels), not the full {full}: a full-resolution PNG is much "
                "bigger.</small>"
            )
        if self._peak_note:
            text += (
                f"<br><small>PSNR: {html.escape(self._peak_note, quote=False)}.</small>"
            )
        if self.stale:
            text += (
                f"<br><b style='color:#e0a030'>Stale: {html.escape(self.stale)}.</b> "
                "Run Compare k again."
            )
        self.title.value = text

    def _fill_table(self, table: SweepTable) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QStyledItemDelegate

        align = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        rows = table_rows(table)
        self.table_widget.value = {
            "data": rows,
            "index": [""] * len(rows),
            "columns": list(SWEEP_COLUMNS),
        }
        qtable = self.table_widget.native
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

    def _draw_plot(self, table: SweepTable, mark_k: int | None) -> None:
        import matplotlib as mpl

        from ..sweep import plot_sweep

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
        layout = self.native.layout()
        layout.addWidget(self._canvas)
        layout.addWidget(self.table_widget.native)

    def _setup_native(self) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QSizePolicy

        for label in (self.title, self.k_label):
            label.native.setTextFormat(Qt.TextFormat.RichText)
        self.title.native.setWordWrap(True)
        self.title.native.setSizePolicy(
            QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum
        )
        self._peak_note = ""


def table_tsv(table: SweepTable) -> str:
    """The whole table, headers first, tab-separated (pastes into a spreadsheet)."""
    rows = csv.reader(io.StringIO(table.to_csv()))
    return "".join("\t".join(row) + "\n" for row in rows)


def table_rows(table: SweepTable) -> list[list[str]]:
    """The table's rows as the panel shows them (and copies them)."""
    return [
        [
            str(r.k),
            "inf" if r.psnr == float("inf") else f"{r.psnr:.2f}",
            "n/a" if r.ciede2000 is None else f"{r.ciede2000:.2f}",
            "n/a" if r.png_bytes is None else f"{r.png_bytes:,}",
            "n/a" if r.ratio is None else f"{r.ratio:.2f} : 1",
        ]
        for r in table
    ]


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.1f} MB" if n_bytes >= 100_000 else f"{n_bytes:,} bytes"


def _fit_to_dock(ax) -> None:
    """Make :func:`~napari_kmeans_quantize.sweep.plot_sweep`'s figure fit the dock.

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
