"""The k browser's model and preview: every k a Compare k computed, and the layer
that shows one of them.

A :class:`Comparison` keeps, for each k, the labels (one byte per pixel for k <= 256)
and the palette, without the quantised image, so the memory it holds is
``len(ks) * pixels`` bytes plus one shown image. :class:`KPreview` swaps the shown
image (``palette[labels]``) and its palette strip in place, without recomputing.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._layers import (
    ORDER_NOTE,
    PLUGIN,
    QuantizeOutcome,
    SourceInfo,
    computed_in_worker,
    display_levels,
    image_layer_meta,
    palette_strip,
    result_tags,
    sweep_source_iter,
)
from .save import result_file

if TYPE_CHECKING:
    import napari

    from ..quantize import QuantizeResult
    from ..sweep import SweepTable

#: ``metadata["role"]`` of the k browser's preview layer
PREVIEW_ROLE = "k browser"


@dataclass(frozen=True, eq=False)
class Comparison:
    """What Compare k computed on one source: the table and every k's result.

    Attributes
    ----------
    table : SweepTable
        The figures per k (its ``results`` dropped: see `kept`).
    source : SourceInfo
        The snapshot the sweep ran on.
    params : dict
        The run options (color_space, random_state, dither, data_range).
    kept : dict of int to QuantizeResult
        Each k's result with its image dropped (``image`` is None): labels,
        palette and counts are kept. Lazy (dask) results are kept whole: they
        hold no pixels.
    level : int
        The pyramid level the sweep ran on (0 for single-scale data).
    """

    table: SweepTable
    source: SourceInfo
    params: dict
    kept: dict[int, QuantizeResult] = field(repr=False)
    level: int = 0
    coarse: dict[int, list[np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def kept_bytes(self) -> int:
        """Memory the kept labels and palettes hold (lazy labels hold none)."""
        return sum(
            r.palette.nbytes + (r.labels.nbytes if _in_memory(r.labels) else 0)
            for r in self.kept.values()
        ) + sum(lab.nbytes for levels in self.coarse.values() for lab in levels)

    def display(self, k: int) -> Any:
        """What the k browser shows for `k`: its image or, for a big lazy source,
        the same display pyramid as a Run's (see ``_layers.display_levels``)."""
        image = self.image(k)
        coarse = self.coarse.get(k)
        if not coarse:
            return image
        n_lazy = len(display_levels(self.source)) - len(coarse)
        palette = self.kept[k].palette
        palette = palette if self.source.rgb else palette[:, 0]
        lazy = [image[:: 2**i, :: 2**i] for i in range(n_lazy)]
        return lazy + [palette[labels] for labels in coarse]

    def image(self, k: int) -> np.ndarray:
        """The quantised image of `k`, rebuilt from its labels and palette (a
        lazy one as kept)."""
        kept = self.kept[k]
        if kept.image is not None:
            return kept.image
        palette = kept.palette if self.source.rgb else kept.palette[:, 0]
        return palette[kept.labels]

    def outcome(self, k: int) -> QuantizeOutcome:
        """The outcome of `k`, as a Run at that k would return it."""
        result = replace(self.kept[k], image=self.image(k))
        report = self.table.row(k).report
        png = report.png_bytes
        file = result_file(result.labels, result.palette, png, self.source.is_lazy)
        params = {"n_colors": int(k), "max_pixels": None, **self.params}
        return QuantizeOutcome(result, params, None, report, [], file)


def compare_iter(
    source: SourceInfo, ks: Sequence[int], **params: Any
) -> Generator[float, None, Comparison]:
    """Sweep `ks` on `source` keeping every k's labels and palette (for a worker)."""
    from .._layers import fit_level

    table = yield from sweep_source_iter(source, ks, keep_results=True, **params)
    # An image in memory is dropped (rebuilt from labels and palette when shown);
    # a lazy one costs nothing to keep.
    kept = {
        k: replace(result, image=None) if _in_memory(result.image) else result
        for k, result in zip(table.ks, table.results, strict=True)
    }
    level = fit_level(source) if source.multiscale else 0
    coarse = yield from _coarse_labels(source, kept, params)
    table = replace(table, results=None)
    return Comparison(table, source, params, kept, level, coarse)


def _coarse_labels(
    source: SourceInfo, kept: dict[int, QuantizeResult], params: dict
) -> Generator[float, None, dict[int, list[np.ndarray]]]:
    """Each k's labels at the coarse levels of a big lazy source's display
    pyramid, mapped here (in the worker) onto its palette: previewed as a
    pyramid, napari computes only what the screen shows."""
    from .. import apply_palette

    levels = display_levels(source)
    if len(levels) == 1 or any(_in_memory(r.labels) for r in kept.values()):
        return {}
    small = [
        np.asarray(lv) for lv in levels if computed_in_worker(lv.shape, rgb=source.rgb)
    ]
    space = params.get("color_space", "rgb") if source.rgb else "rgb"
    coarse = {}
    for k, result in kept.items():
        coarse[k] = [
            apply_palette(
                level,
                result.palette,
                channel_axis=source.channel_axis,
                color_space=space,
            ).labels
            for level in small
        ]
        yield 1.0
    return coarse


def _in_memory(array: Any) -> bool:
    return isinstance(array, np.ndarray)


def keep_iter(comparison: Comparison, k: int) -> Generator[float, None, Any]:
    """The outcome of one kept k (a generator, so it runs in the job runner)."""
    yield 0.0
    return comparison.outcome(k)


class KPreview:
    """The k browser's layers: the previewed k's image and its palette strip."""

    def __init__(self, viewer: napari.Viewer) -> None:
        self._viewer = viewer
        self._image: Any = None  # weakref to the preview image layer
        self._strip: Any = None  # weakref to its palette strip

    def show(self, c: Comparison, k: int) -> tuple[QuantizeOutcome, str]:
        """Show `k` of `c` (over the kept run's strip); its outcome and name."""
        outcome = c.outcome(k)
        name = _preview_name(c, k)
        self._show_image(c, c.display(k), name, k)
        self._show_strip(c, outcome, name)
        return outcome, name

    def remove(self) -> bool:
        """Remove the preview layers; whether there was a preview."""
        had = self._image is not None or self._strip is not None
        for ref in (self._image, self._strip):
            layer = ref() if ref is not None else None
            if layer is not None and layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        self._image = self._strip = None
        return had

    def forget(self, layer: Any) -> None:
        """`layer` was removed from the viewer (by the user, say)."""
        if self._image is not None and layer is self._image():
            self._image = None

    def _show_image(self, c: Comparison, image: Any, name: str, k: int) -> None:
        layer = self._image() if self._image is not None else None
        if layer is not None and layer in self._viewer.layers:
            layer.data = image
            layer.name = name
            layer.metadata["n_colors_requested"] = int(k)
            return
        from napari.layers import Image

        meta = image_layer_meta(
            c.source,
            name,
            {"plugin": PLUGIN, "role": PREVIEW_ROLE, "source": c.source.name},
        )
        meta["metadata"]["n_colors_requested"] = int(k)
        del meta["multiscale"]
        if c.level:
            # the sweep ran on a coarser pyramid level: stretch it over level 0
            shape0 = np.array(spatial_shape(c.source, 0), dtype=float)
            shape = np.array(spatial_shape(c.source, c.level), dtype=float)
            factor = shape0 / shape
            meta["translate"] = meta["translate"] + (factor - 1) / 2 * meta["scale"]
            meta["scale"] = meta["scale"] * factor
        layer = Image(image, **meta)
        self._viewer.layers.append(layer)
        self._image = weakref.ref(layer)

    def _show_strip(self, c: Comparison, outcome: QuantizeOutcome, name: str) -> None:
        """The previewed k's swatches, on top of (so hiding) the kept strips: they
        all cover the same place beside the source."""
        from napari.layers import Image

        strip, meta = palette_strip(outcome.result, c.source)
        meta["name"] = f"{name} palette"
        meta["metadata"] = {
            "plugin": PLUGIN,
            "role": PREVIEW_ROLE,
            "source": c.source.name,
            "description": f"palette swatches, {ORDER_NOTE}",
        }
        layer = self._strip() if self._strip is not None else None
        if layer is not None and layer in self._viewer.layers:
            # in place: removing a layer costs napari a garbage collection
            layer.data = strip
            for key in ("scale", "translate", "name", "metadata"):
                setattr(layer, key, meta[key])
            return
        layer = Image(strip, **meta)
        self._viewer.layers.append(layer)
        self._strip = weakref.ref(layer)


def _preview_name(c: Comparison, k: int) -> str:
    tags = result_tags(
        k,
        color_space=c.params.get("color_space", "rgb"),
        dither=bool(c.params.get("dither")),
    )
    return " ".join((c.source.name, "compare", *tags))


def spatial_shape(source: SourceInfo, level: int) -> tuple[int, ...]:
    shape = tuple(int(n) for n in source.levels[level].shape)
    return shape[:-1] if source.rgb else shape
