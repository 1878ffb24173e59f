"""Quality against size over k, drawn with matplotlib (no pyplot, no GUI backend).

:func:`plot_sweep` is also importable from :mod:`napari_kmeans_quantize.sweep`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .sweep import SweepTable

__all__ = ["plot_sweep"]


def plot_sweep(
    table: SweepTable, ax: Axes | None = None, *, mark_k: int | None = None
) -> Axes:
    """Draw quality against indexed-PNG size over k.

    PSNR (dB, left axis, circles) and mean CIEDE2000 (right axis, squares; the
    dotted line at 2.3 is about one just-noticeable difference) against the PNG size
    in KiB (log scale), each point labelled with its k.

    Parameters
    ----------
    table : SweepTable
        What :func:`sweep` returned.
    ax : matplotlib Axes, optional
        Where to draw. Default: a new 7 x 4.5 inch Figure (not pyplot, so no GUI
        backend is needed); get it with ``ax.figure``.
    mark_k : int, optional
        Highlight this k (e.g. the chosen or automatic one).

    Returns
    -------
    ax : matplotlib Axes
        The PSNR axes (the CIEDE2000 axes is its twin).
    """
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
        ax = fig.add_subplot()
    rows = [r for r in table.rows if r.png_bytes]
    if not rows:
        ax.text(0.5, 0.5, "no indexed-PNG sizes to plot", ha="center")
        return ax
    kib = np.array([r.png_bytes / 1024 for r in rows])
    psnr = np.array([min(r.psnr, 99.0) for r in rows])
    blue, orange = "#1f77b4", "#d55e00"
    ax.plot(kib, psnr, "o-", color=blue, label="PSNR (dB)")
    ax.set_xscale("log")
    ax.set_xlabel("indexed PNG size (KiB, log scale)")
    ax.set_ylabel("PSNR (dB), higher is better", color=blue)
    ax.tick_params(axis="y", colors=blue)
    ax.grid(True, which="both", alpha=0.3)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.1, y=0.12)
    # room for the k labels (see below) above the highest point and below the
    # lowest one
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom - 0.06 * (top - bottom), top + 0.06 * (top - bottom))
    handles = ax.get_lines()[:1]
    on_top = ax  # the axes drawn last (the CIEDE2000 twin, if any)
    if any(r.ciede2000 is not None for r in rows):
        ax2 = on_top = ax.twinx()
        de_rows = [(x, r.ciede2000) for r, x in zip(rows, kib, strict=True)]
        de_rows = [(x, d) for x, d in de_rows if d is not None]
        ax2.plot(
            *zip(*de_rows, strict=True), "s--", color=orange, label="mean CIEDE2000"
        )
        # In the legend, not written on the plot, where it would cross the points.
        jnd = ax2.axhline(
            2.3, color=orange, linestyle=":", linewidth=1,
            label="ΔE00 = 2.3 (just noticeable)",
        )  # fmt: skip
        ax2.set_ylabel("mean CIEDE2000 (ΔE00), lower is better", color=orange)
        ax2.tick_params(axis="y", colors=orange)
        ax2.set_ylim(bottom=0)
        handles = [*handles, ax2.get_lines()[0], jnd]
    if mark_k is not None:
        for r, x, y in zip(rows, kib, psnr, strict=True):
            if r.k == mark_k:
                ax.plot(
                    [x], [y], "o", markersize=16, markerfacecolor="none",
                    markeredgecolor="black", markeredgewidth=2,
                )  # fmt: skip
                handles = [*handles, ax.get_lines()[-1]]
                handles[-1].set_label(f"chosen k = {mark_k}")
    # The k labels: up and left of each PSNR point, clear of the chosen-k circle
    # (radius 9 pt); the leftmost one down and right, away from the left axis
    # line. Drawn on the topmost axes, on a light box, so that no line or grid of
    # either axes runs through them.
    for i, (r, x, y) in enumerate(zip(rows, kib, psnr, strict=True)):
        first = i == 0 and len(rows) > 1
        on_top.annotate(
            f"k={r.k}", (x, y), xycoords=ax.transData, textcoords="offset points",
            xytext=(10, -10) if first else (-10, 10),
            ha="left" if first else "right", va="top" if first else "bottom",
            fontsize=8, color=blue, zorder=5,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                  "edgecolor": "none", "alpha": 0.8},
        )  # fmt: skip
    shape = " x ".join(str(n) for n in table.shape)
    ax.set_title(
        f"Quality vs size over k ({shape} px image, fit in {table.color_space})"
    )
    ax.legend(handles=handles, loc="upper center", fontsize=8)
    return ax
