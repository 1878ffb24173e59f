"""The readout of the shown result: its palette table and compression figures."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import Container, Label, Table

from .._layers import palette_hexes
from .controls import wrap_labels

if TYPE_CHECKING:
    from .._layers import QuantizeOutcome, SourceInfo
    from ..metrics import SizeReport
    from .save import ResultFile

SWATCH_COLUMNS = ("colour", "hex", "pixels", "share")


class Readout(Container):
    """The palette (colour, hex, pixels, share) and the figures of one result."""

    def __init__(self) -> None:
        super().__init__(labels=False, visible=False)
        self.margins = (0, 0, 0, 0)
        self.palette_title = Label(value="")
        self.swatches = Table(value={"data": [], "columns": list(SWATCH_COLUMNS)})
        self.figures = Label(value="")
        self.extend([self.palette_title, self.swatches, self.figures])
        self._setup_native()

    def show(
        self, outcome: QuantizeOutcome, source: SourceInfo, layer_name: str
    ) -> None:
        """Fill the readout with `outcome` (named `layer_name`) and show it."""
        from qtpy.QtGui import QColor

        result = outcome.result
        hexes = palette_hexes(result.palette, source)
        total = max(int(result.counts.sum()), 1)
        rows = [
            ["", hexes[i], f"{int(c):,}", f"{100 * int(c) / total:.1f} %"]
            for i, c in enumerate(result.counts)
        ]
        self.palette_title.value = (
            f"<b>Palette of {html.escape(repr(layer_name))}</b>: "
            f"{result.n_colors} colours, most frequent first (top to bottom, as "
            "in the palette strip drawn right of the image). The row number is "
            "the pixel value in the labels layer."
        )
        self.swatches.value = {
            "data": rows,
            "index": [str(i) for i in range(len(rows))],
            "columns": list(SWATCH_COLUMNS),
        }
        table = self.swatches.native
        for i, hex_color in enumerate(hexes):
            item = table.item(i, 0)
            if item is not None:
                item.setBackground(QColor(hex_color))
        self.fit_table()
        self.figures.value = figures_html(
            outcome.report,
            source,
            peak_given=outcome.params.get("data_range") is not None,
            file=outcome.file,
        )
        self.visible = True

    def fit_table(self) -> None:
        """Size the swatch table's columns to their contents, and its height to
        at most 10 rows."""
        table = self.swatches.native
        table.resizeColumnsToContents()
        shown = min(table.rowCount(), 10)
        height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
        height += shown * table.verticalHeader().defaultSectionSize()
        table.setFixedHeight(height + 2)

    def _setup_native(self) -> None:
        from qtpy.QtWidgets import QAbstractItemView

        wrap_labels(self.palette_title, self.figures, rich=True)
        table = self.swatches.native
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.verticalHeader().setDefaultSectionSize(22)


class ResultsArea:
    """The results (sweep panel, readout) in a scroll area of their own.

    They can be taller than the screen, and a dock widget taller than the window
    would stretch the window; the inputs stay in view above them.
    """

    def __init__(self, *boxes: Container) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy

        self.box = Container(widgets=list(boxes), labels=False)
        self.box.margins = (0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.box.native)
        scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.scroll = scroll

    def scroll_to(self, box: Container, alive) -> None:
        """Bring the top of `box` (the newest readout) into view, while `alive()`."""
        from qtpy.QtCore import QTimer

        def show() -> None:
            if alive():
                bar = self.scroll.verticalScrollBar()
                bar.setValue(min(box.native.y(), bar.maximum()))

        # after the layout has placed the new content
        QTimer.singleShot(0, show)


def done_text(result: Any, waited: float, updated: bool, name: str) -> str:
    """The status line once a run's result is shown."""
    distinct = (
        f" ({result.n_distinct:,} distinct in the source)"
        if result.n_distinct > 0
        else ""
    )
    text = f"Done in {waited:.2f} s: {result.n_colors} colours{distinct}."
    if updated:
        text += f" Updated {name!r} in place: same settings as before."
    return text


def peak_note(dtype: np.dtype, peak: float | None, given: bool) -> str:
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


def figures_html(
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
    (see :func:`peak_note`).
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
        "" if source is None else peak_note(source.dtype, report.psnr_peak, peak_given)
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
