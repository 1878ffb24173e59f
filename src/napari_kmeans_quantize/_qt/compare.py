"""Compare k and auto k: starting a sweep, showing it, picking and keeping a k."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._layers import SourceInfo, quantize_source_iter, with_layer_data
from ..metrics import has_ciede2000
from .k_browser import Comparison, compare_iter, keep_iter
from .readout import peak_note

if TYPE_CHECKING:
    from .._widget import QuantizeWidget

#: auto k: the largest palette size tried, and the one used when none reaches the target
AUTO_K_MAX = 256


class CompareK:
    """The Compare k and Auto k jobs of a :class:`~.._widget.QuantizeWidget`.

    It starts its jobs through the widget (``_prepare``, ``_start``) and reads its
    inputs (``_in``), sweep panel (``_panel``), viewer and job runner; it keeps
    what tells whether the last sweep still fits the inputs.
    """

    def __init__(self, owner: QuantizeWidget) -> None:
        self._w = owner
        self.table_key: tuple | None = None
        self._pending_key: tuple | None = None  # sweep_key of the running sweep
        self._pending_peak: float | None = None  # 'PSNR peak' of the running sweep
        self._auto_ks: tuple[int, ...] | None = None  # candidates of a running auto k

    def compare(self, ks: Any = None):
        """Start a sweep over `ks` (default: the "compare k" field); the worker."""
        w = self._w
        ks = w._in.parse_ks() if ks is None else tuple(sorted({int(k) for k in ks}))
        if ks is None:
            return None
        source = w._prepare()
        if source is None:
            return None
        return self._start_sweep(source, ks, "sweep", None)

    def auto(self):
        """Sweep the candidates unless the last sweep covers them, then keep a k."""
        w = self._w
        ks = w._in.parse_ks()
        if ks is None:
            return None
        ks = tuple(sorted({*ks, AUTO_K_MAX}))
        source = w._prepare()
        if source is None:
            return None
        refusal = self._refusal(source)
        if refusal:
            from napari.utils.notifications import show_error

            show_error(refusal)
            return None
        table = w._panel.table
        if (
            table is not None
            and w._panel.belongs_to(source)
            and self.table_key == self.sweep_key(source)
            and set(ks) <= set(table.ks)
        ):
            return self.pick_auto_k(w._panel.comparison, ks)
        return self._start_sweep(source, ks, "auto", ks)

    def _refusal(self, source: SourceInfo) -> str:
        """Why the auto-k target cannot be reached on `source` ("" if it can)."""
        w = self._w
        if w._in.target.value != "ciede2000":
            return ""
        if not source.rgb:
            return (
                "Mean CIEDE2000 needs an RGB(A) image; choose a PSNR target for "
                f"the single-channel layer {source.name!r}."
            )
        ok, peak = w._in.parse_peak()
        if ok and not has_ciede2000(np.dtype(source.dtype), data_range=peak):
            # No row would have a CIEDE2000: every k would be tried in vain.
            return (
                f"Mean CIEDE2000 of {np.dtype(source.dtype)} colours needs their full "
                "intensity: set 'PSNR peak' under advanced options, or choose a PSNR "
                "target."
            )
        return ""

    def sweep_key(self, source: SourceInfo) -> tuple:
        """What a sweep depends on: the layer, its data and the run settings."""
        levels = tuple(id(level) for level in source.levels)
        settings = tuple(sorted(self._w._in.run_kwargs(source).items()))
        return (id(source.layer), levels, settings)

    def _start_sweep(self, source: SourceInfo, ks: tuple, job: str, auto_ks):
        kwargs = self._w._in.run_kwargs(source)
        message = f"Comparing k = {', '.join(map(str, ks))} on {source.name!r}..."
        if job == "auto":
            message = (
                f"Auto k: trying k = {', '.join(map(str, ks))} on {source.name!r}..."
            )
        self._pending_key = self.sweep_key(source)
        self._pending_peak = kwargs["data_range"]
        self._auto_ks = auto_ks
        return self._w._start(job, compare_iter, (source, ks), kwargs, message, source)

    def on_swept(self, comparison: Comparison):
        """Show a finished sweep; return what to do once its worker has finished
        (auto k keeps the chosen k), or None."""
        w = self._w
        jobs = w._jobs
        source = jobs.source
        if jobs.closed or source is None:
            return None
        if source.layer is None or source.layer not in w._viewer.layers:
            w._status.value = f"{source.name!r} was removed: comparison discarded."
            return None
        table = comparison.table
        self.table_key = self._pending_key
        k = int(w._in.n_colors.value)
        w._panel.show(
            comparison,
            k if k in table.ks else None,
            peak_note(source.dtype, table.psnr_peak, self._pending_peak is not None),
            preview=jobs.job == "sweep",
        )
        w._status.value = (
            f"Compared {len(table)} values of k in {jobs.waited():.1f} s; slide the "
            "k control or click a row to look at that k."
        )
        w._scroll_to(w._panel)
        if jobs.job != "auto":
            return None
        ks = self._auto_ks
        return lambda: self.pick_auto_k(comparison, ks)

    def pick_auto_k(self, comparison: Comparison, ks: tuple[int, ...]):
        """Set k to the smallest of `ks` reaching the target; keep its result."""
        from napari.utils.notifications import show_info, show_warning

        w = self._w
        table = comparison.table
        target = w._in.target_kwargs()
        row = next((r for r in table if r.k in ks and r.meets(**target)), None)
        if row is None:
            best = table.row(max(ks)) if max(ks) in table.ks else table.rows[-1]
            ciede = "n/a" if best.ciede2000 is None else f"{best.ciede2000:.2f}"
            show_warning(
                f"Auto k: no k up to {AUTO_K_MAX} reaches {w._in.target_text()} "
                f"(k={best.k} gives PSNR {best.psnr:.2f} dB, mean CIEDE2000 "
                f"{ciede}); using k = {AUTO_K_MAX}."
            )
            k = AUTO_K_MAX
        else:
            k = row.k
            show_info(
                f"Auto k: k = {k} is the smallest of {', '.join(map(str, ks))} "
                f"reaching {w._in.target_text()}."
            )
        w._in.n_colors.value = int(k)
        w._panel.browse(k, preview=False)
        return self.keep(comparison, k)

    def keep(self, comparison: Comparison, k: int):
        """Add the layers of `k` from `comparison`, on the source it was run on.

        The kept labels and palette are used (no recomputing), except for
        multiscale or lazy sources, whose sweep ran on one level: those run k on
        the full source. Returns the worker.
        """
        from napari.utils.notifications import show_warning

        w = self._w
        source = comparison.source
        if w.is_running:
            show_warning("Wait for the running job to finish (or cancel it) first.")
            return None
        if source.layer is None or source.layer not in w._viewer.layers:
            show_warning(f"{source.name!r} is gone; run Compare k again.")
            return None
        message = f"Adding {source.name!r} at k = {k}..."
        if source.multiscale or source.is_lazy:
            kwargs = {**comparison.params, "max_pixels": None}
            args = (source, quantize_source_iter, source, int(k))
            return w._start("quantize", with_layer_data, args, kwargs, message, source)
        args = (source, keep_iter, comparison, int(k))
        return w._start("quantize", with_layer_data, args, {}, message, source)
