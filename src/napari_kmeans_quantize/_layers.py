"""From a quantisation result to napari layers: names, colours, features, placement.

Everything here is the napari side of the plugin and holds no clustering code: the
palette comes from the engine (:func:`~napari_kmeans_quantize.quantize_iter` and
:func:`~napari_kmeans_quantize.apply_palette_iter`).

A run on a source layer called ``"astronaut"`` with ``n_colors=8`` makes three
layers, all with the source's scale, translate, rotate, shear, affine, units and
axis labels so that they overlay it exactly:

``"astronaut k=8"``
    Image: the quantised image, same shape, dtype, rgb flag, contrast limits, gamma
    and (for single-channel data) colormap as the source.
``"astronaut k=8 labels"``
    Labels: the palette index of every pixel (uint8 for k <= 256). Its
    ``DirectLabelColormap`` maps each index to the colour napari draws for that
    palette entry, *including label 0* (background_value 0 is listed in the
    colour dict, so it is not made transparent), and opacity is 1.0: shown alone,
    it looks exactly like the quantised image. Its ``features`` table has one row
    per palette colour (``index, hex, R, G, B, [A], count, share %``; a ``value``
    column instead of R, G, B for single-channel data), so hovering a pixel shows
    which palette colour it is.
``"astronaut k=8 palette"``
    Image: the palette as a vertical strip of swatches to the right of the source
    (in its last two spatial axes), **ordered by share: the most frequent colour on
    top**. The strip has the same size whatever k, and adding or updating one hides
    the other palette strips of the same source, so only the newest run's palette
    is shown there.

The names carry k and every option that changes the result (``"astronaut k=16 lab
dither"``, see :func:`layer_names`): re-running with identical settings updates
these layers in place; another k or any other option gets its own layers. The parameters (k, seed, colour space, ...) and the
palette are recorded in each layer's ``metadata``.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._qt.save import ResultFile, result_file
from .metrics import (
    SizeReport,
    check_data_range,
    size_report,
)
from .quantize import QuantizeResult, quantize_iter

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Layer

    from .sweep import SweepTable

__all__ = [
    "QuantizeOutcome",
    "SourceInfo",
    "channel_note",
    "image_layer_meta",
    "is_output",
    "layer_data_tuples",
    "layer_names",
    "quantize_layer",
    "quantize_source_iter",
    "result_tags",
    "select_outputs",
    "source_info",
    "sweep_source_iter",
]

#: Multiscale sources: the palette is fitted on the finest pyramid level with at most
#: this many pixels (then every level is mapped onto that palette).
MULTISCALE_FIT_PIXELS = 4_000_000
#: Largest array (in pixels, channels not counted) loaded into memory for one run.
MAX_PIXELS_IN_MEMORY = 2**27

ORDER_NOTE = "by share: most frequent colour first (top of the strip)"
#: The palette strip is the source's height tall and 1 / STRIP_ASPECT of it wide,
#: whatever k.
STRIP_ASPECT = 8
#: ``metadata["plugin"]`` of every layer this plugin makes (how outputs are told
#: from sources).
PLUGIN = "napari-kmeans-quantize"
#: ``metadata["role"]`` of the output layers.
IMAGE_ROLE = "quantised image"
LABELS_ROLE = "labels"
STRIP_ROLE = "palette strip"


def result_tags(
    n_colors: int,
    *,
    color_space: str = "rgb",
    dither: bool = False,
    max_pixels: int | None = None,
    random_state: int | None = 0,
) -> tuple[str, ...]:
    """The words that tell one result of a source from another.

    k and every option that changes the pixels, defaults left out: the seed only
    changes the result when the palette is fitted on a pixel sample.

    Examples
    --------
    >>> result_tags(16, color_space="lab", dither=True)
    ('k=16', 'lab', 'dither')
    >>> result_tags(8, max_pixels=20_000, random_state=3)
    ('k=8', 'sample 20000', 'seed 3')
    """
    tags = [f"k={int(n_colors)}"]
    if color_space != "rgb":
        tags.append(str(color_space))
    if dither:
        tags.append("dither")
    if max_pixels is not None:
        tags += [f"sample {int(max_pixels)}", f"seed {random_state}"]
    return tuple(tags)


def layer_names(
    source_name: str, n_colors: int, **options: Any
) -> tuple[str, str, str]:
    """Names of the image, labels and palette layers made from `source_name`.

    `options` are the run's ``color_space``, ``dither``, ``max_pixels`` and
    ``random_state`` (see :func:`result_tags`): results that differ in any of
    them get different names, so they sit side by side.

    Examples
    --------
    >>> layer_names("astronaut", 8)
    ('astronaut k=8', 'astronaut k=8 labels', 'astronaut k=8 palette')
    >>> layer_names("astronaut", 16, color_space="lab", dither=True)[0]
    'astronaut k=16 lab dither'
    """
    base = " ".join((source_name, *result_tags(n_colors, **options)))
    return base, f"{base} labels", f"{base} palette"


# --- what we need to know about the source layer ----------------------------------


@dataclass(frozen=True, eq=False)
class SourceInfo:
    """A snapshot of an Image layer, taken on the main thread before a run.

    The worker thread only reads this snapshot (and the array objects it refers
    to); it never touches the layer itself, so the layer may be removed or edited
    while a run is in progress.
    """

    name: str
    data: Any  # an array (numpy, dask, zarr, ...) or a list of them (multiscale)
    multiscale: bool
    rgb: bool
    ndim: int  # spatial (layer) dimensions, channels excluded
    dtype: np.dtype
    scale: np.ndarray
    translate: np.ndarray
    rotate: np.ndarray
    shear: np.ndarray
    affine: np.ndarray
    units: tuple
    axis_labels: tuple
    contrast_limits: tuple[float, float]
    gamma: float
    colormap: Any  # napari Colormap (used for single-channel data)
    blending: str = "translucent"
    opacity: float = 1.0
    rendering: str = "mip"
    layer_ref: Any = field(default=None, repr=False)
    source_bytes: int | None = None  # size of the file the layer was read from

    @property
    def layer(self) -> Layer | None:
        """The source layer, if it still exists (None after it was deleted)."""
        return self.layer_ref() if self.layer_ref is not None else None

    @property
    def levels(self) -> list:
        return list(self.data) if self.multiscale else [self.data]

    @property
    def is_lazy(self) -> bool:
        """Whether the data is not a numpy array (dask, zarr, ...)."""
        return any(not isinstance(level, np.ndarray) for level in self.levels)

    @property
    def channel_axis(self) -> int | None:
        return -1 if self.rgb else None


def source_info(layer: Image) -> SourceInfo:
    """Snapshot what a run needs from an Image layer (call on the main thread)."""
    from napari.layers import Image

    if not isinstance(layer, Image):
        raise TypeError(
            "Only Image layers can be quantised; "
            f"{getattr(layer, 'name', layer)!r} is a {type(layer).__name__}."
        )
    multiscale = bool(layer.multiscale)
    data = list(layer.data) if multiscale else layer.data
    level0 = data[0] if multiscale else data
    return SourceInfo(
        name=layer.name,
        data=data,
        multiscale=multiscale,
        rgb=bool(layer.rgb),
        ndim=int(layer.ndim),
        dtype=np.dtype(level0.dtype),
        scale=np.array(layer.scale, dtype=float),
        translate=np.array(layer.translate, dtype=float),
        rotate=np.array(layer.rotate, dtype=float),
        shear=np.array(layer.shear, dtype=float),
        affine=np.array(layer.affine.affine_matrix, dtype=float),
        units=tuple(layer.units),
        axis_labels=tuple(layer.axis_labels),
        contrast_limits=tuple(float(c) for c in layer.contrast_limits),
        gamma=float(layer.gamma),
        colormap=layer.colormap,
        blending=str(layer.blending),
        opacity=float(layer.opacity),
        rendering=str(layer.rendering),
        layer_ref=weakref.ref(layer),
        source_bytes=_source_file_bytes(layer),
    )


def _source_file_bytes(layer: Layer) -> int | None:
    """Bytes of the single file the layer was read from, when that is known."""
    import os

    path = getattr(getattr(layer, "source", None), "path", None)
    if not path or not isinstance(path, str | os.PathLike):
        return None
    try:
        return os.path.getsize(path) if os.path.isfile(path) else None
    except OSError:
        return None


# --- the computation (runs in a worker thread in the widget) ----------------------


@dataclass(frozen=True, eq=False)
class QuantizeOutcome:
    """A quantisation of a source layer, ready to become layers.

    Attributes
    ----------
    result : QuantizeResult
        The result on the source data (on the finest level for multiscale data).
    params : dict
        The parameters of the run (n_colors, color_space, random_state, dither,
        max_pixels, data_range).
    levels : list of (image, labels) or None
        For a multiscale source, the quantised image and labels of every level
        (finest first); None otherwise.
    report : SizeReport
        Sizes (raw, source file, the formula size, the real indexed PNG), ratios,
        PSNR and mean CIEDE2000, from :func:`~napari_kmeans_quantize.metrics.size_report`.
    notes : list of str
        Plain-language notes on what was done (dask computed, multiscale, ...).
    file : ResultFile or None
        The file type that holds the result (indexed PNG for one plane, the
        multi-page palette TIFF for a stack) and its real size.
    """

    result: QuantizeResult
    params: dict
    levels: list[tuple[np.ndarray, np.ndarray]] | None
    report: SizeReport | None
    notes: list[str]
    file: ResultFile | None = None


def quantize_source_iter(
    source: SourceInfo,
    n_colors: int,
    *,
    color_space: str = "rgb",
    random_state: int | None = 0,
    dither: bool = False,
    max_pixels: int | None = None,
    data_range: float | None = None,
    fixed_colors: np.ndarray | None = None,
    weights: Any = None,
) -> Generator[float, None, QuantizeOutcome]:
    """Quantise a source snapshot, yielding progress fractions from 0 to 1.

    The outcome names the file type that holds the result and its real size
    (:attr:`QuantizeOutcome.file`; a stack's multi-page TIFF is encoded here to be
    measured).

    The result is the generator's return value. Stop iterating to cancel: no layer
    is touched here, so nothing is left half-done. `data_range` is the peak of the
    report's PSNR (and the full intensity of integer colours for its CIEDE2000),
    as in :func:`~napari_kmeans_quantize.metrics.size_report`; None for the
    automatic one.

    * Lazy data (dask, zarr) is never loaded whole: the exact colour histogram is
      gathered chunk by chunk (:mod:`~napari_kmeans_quantize.chunked`) and the
      quantised image and labels are lazy dask arrays, mapped block by block when
      napari draws them. The size report then holds the raw and formula sizes only
      (the real PNG size, PSNR and CIEDE2000 would read every pixel). Dithering
      needs the whole image: lazy data with dithering is computed into memory
      (refused above ``MAX_PIXELS_IN_MEMORY`` pixels).
    * Multiscale data: the palette is fitted on the finest level with at most
      ``MULTISCALE_FIT_PIXELS`` pixels (the coarsest level if none is that small),
      then every level is mapped onto it, so the outputs are multiscale too.
      Counts, shares and figures refer to the finest level (to the fitted level
      for lazy data).
    * `fixed_colors` and `weights` (a layer, e.g. a painted Labels layer, or an
      array of the source's spatial shape) are those of ``quantize``; weights
      need single-scale data in memory, locked colours data in memory.
    """
    weights = weight_array(weights)
    if (weights is not None and (source.multiscale or source.is_lazy)) or (
        fixed_colors is not None and source.is_lazy
    ):
        what = "an importance layer" if weights is not None else "locked colours"
        raise ValueError(
            f"{what} needs {'single-scale ' if weights is not None else ''}image "
            f"data in memory; {source.name!r} is "
            f"{'lazy' if source.is_lazy else 'multiscale'}. Quantise it without, "
            "or with napari_kmeans_quantize.quantize on a numpy array."
        )
    outcome = yield from _quantize_source(
        source,
        n_colors,
        color_space=color_space,
        random_state=random_state,
        dither=dither,
        max_pixels=max_pixels,
        data_range=data_range,
        fixed_colors=fixed_colors,
        weights=weights,
    )
    result = outcome.result
    png_bytes = None if outcome.report is None else outcome.report.png_bytes
    file = result_file(result.labels, result.palette, png_bytes, source.is_lazy)
    note = channel_note(source)
    notes = [*outcome.notes, note] if note else outcome.notes
    return replace(outcome, file=file, notes=notes)


#: Axes this short (not the last two) may well be channels.
MAX_CHANNELS = 4
_CHANNEL_LABELS = {"c", "ch", "channel", "channels"}


def channel_note(source: SourceInfo) -> str:
    """How a single-channel layer with a likely channel axis inside it is treated.

    A (z, c, y, x) layer that napari shows as one layer is quantised as intensity,
    one palette over every axis; say so when an axis is labelled as channels or
    is short (at most ``MAX_CHANNELS``), and how to quantise each channel alone.
    Returns "" when there is nothing to say.

    Examples
    --------
    >>> import numpy as np
    >>> from napari.layers import Image
    >>> note = channel_note(source_info(Image(np.zeros((5, 2, 8, 8)))))
    >>> note.startswith("Axis 1 (length 2) may be channels")
    True
    """
    if source.rgb or source.ndim < 3:
        return ""
    shape = source.levels[0].shape
    leading = range(source.ndim - 2)
    labels = [str(label).lower() for label in source.axis_labels[: len(leading)]]
    named = [
        axis
        for axis, label in zip(leading, labels, strict=True)
        if label in _CHANNEL_LABELS
    ]
    short = sorted((shape[a], a) for a in leading if shape[a] <= MAX_CHANNELS)
    if not named and not short:
        return ""
    # a labelled axis, else the shortest one
    axis = named[0] if named else short[0][1]
    return (
        f"Axis {axis} (length {shape[axis]}) may be channels: the layer is "
        "quantised as intensity, with one palette over all its axes. To give "
        "each channel its own palette, split it first (right-click the "
        "layer > Split Stack) and quantise each channel layer."
    )


def _quantize_source(
    source: SourceInfo,
    n_colors: int,
    *,
    color_space: str,
    random_state: int | None,
    dither: bool,
    max_pixels: int | None,
    data_range: float | None,
    fixed_colors: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> Generator[float, None, QuantizeOutcome]:
    params = {
        "n_colors": int(n_colors),
        "color_space": color_space,
        "random_state": random_state,
        "dither": bool(dither),
        "max_pixels": max_pixels,
        "data_range": check_data_range(data_range),
        "fixed_colors": None
        if fixed_colors is None
        else np.asarray(fixed_colors).tolist(),
    }
    data_range = params["data_range"]
    notes: list[str] = []
    channel_axis = source.channel_axis
    levels = source.levels
    if source.is_lazy and not dither:
        return (yield from _quantize_lazy(source, params))
    # Lazy data only reaches here for dithering, which needs the whole image.
    fix = (
        "turn dithering off (lazy data is then quantised chunk by chunk)"
        if source.is_lazy
        else "open it as a dask array (dask.array.from_array) to quantise it chunk "
        "by chunk"
    )
    for i, level in enumerate(levels):
        n_px = _spatial_pixels(level.shape, source.rgb)
        if n_px > MAX_PIXELS_IN_MEMORY:
            where = f" (level {i} of the multiscale image)" if source.multiscale else ""
            raise ValueError(
                f"{source.name!r}{where} has {n_px:,} pixels, more than the "
                f"{MAX_PIXELS_IN_MEMORY:,} this plugin quantises in memory at once; "
                f"{fix}, or crop the image."
            )
    yield 0.0
    if source.is_lazy:
        notes.append(
            "The layer's data is lazy (dask or zarr); dithering needs the whole "
            "image, so it was computed into memory."
        )

    if not source.multiscale:
        data = np.asarray(source.data)
        yield 0.05
        result = yield from _scaled(
            quantize_iter(
                data,
                n_colors,
                channel_axis=channel_axis,
                color_space=color_space,
                dither=dither,
                random_state=random_state,
                max_pixels=max_pixels,
                fixed_colors=fixed_colors,
                weights=weights,
            ),
            0.05,
            0.9,
        )
        report = size_report(
            result, data, source.source_bytes, data_range=data_range, weights=weights
        )
        yield 1.0
        return QuantizeOutcome(result, params, None, report, notes)

    # Multiscale: the engine fits a small enough level and maps every level onto
    # that palette (the one multiscale implementation, in memory here).
    from .chunked import quantize_multiscale_iter

    sizes = [_spatial_pixels(level.shape, source.rgb) for level in levels]
    fit_level = _fit_level(source)
    yield 0.05
    results = yield from _scaled(
        quantize_multiscale_iter(
            levels,
            n_colors,
            fit_level=fit_level,
            channel_axis=channel_axis,
            color_space=color_space,
            dither=dither,
            random_state=random_state,
            max_pixels=max_pixels,
            lazy=False,
            fixed_colors=fixed_colors,
        ),
        0.05,
        0.9,
    )
    notes.append(
        f"Multiscale image: the palette was fitted on level {fit_level} "
        f"({sizes[fit_level]:,} pixels) and all {len(levels)} levels were mapped "
        "onto it; counts and figures are for level 0 (the finest)."
    )
    result = results[0]
    pyramid = [(r.image, r.labels) for r in results]
    params["fit_level"] = fit_level
    report = size_report(
        result, np.asarray(levels[0]), source.source_bytes, data_range=data_range
    )
    yield 1.0
    return QuantizeOutcome(result, params, pyramid, report, notes)


def weight_array(weights: Any) -> np.ndarray | None:
    """An importance map from a layer (its data: a Labels layer's label values
    or an Image layer's intensities) or an array; None stays None."""
    if weights is None:
        return None
    data = getattr(weights, "data", weights)
    if getattr(weights, "multiscale", False):
        data = data[0]
    return np.asarray(data)


def _fit_level(source: SourceInfo) -> int:
    """The finest level with at most ``MULTISCALE_FIT_PIXELS`` pixels (or the last)."""
    sizes = [_spatial_pixels(level.shape, source.rgb) for level in source.levels]
    return next(
        (i for i, n in enumerate(sizes) if n <= MULTISCALE_FIT_PIXELS),
        len(sizes) - 1,
    )


def _quantize_lazy(
    source: SourceInfo, params: dict
) -> Generator[float, None, QuantizeOutcome]:
    """Chunk-by-chunk quantisation of dask/zarr data; lazy image and labels."""
    from .chunked import quantize_dask_iter, quantize_multiscale_iter

    kwargs = {
        "channel_axis": source.channel_axis,
        "color_space": params["color_space"],
        "random_state": params["random_state"],
        "max_pixels": params["max_pixels"],
    }
    notes = [
        "The layer's data is lazy (dask or zarr): its colours were counted chunk by "
        "chunk, and the quantised image and labels are lazy too (computed as they "
        "are drawn). The real PNG size, PSNR and CIEDE2000 are not computed, since "
        "they would read every pixel."
    ]
    yield 0.0
    if not source.multiscale:
        result = yield from quantize_dask_iter(
            source.data, params["n_colors"], **kwargs
        )
        report = size_report(result)
        return QuantizeOutcome(result, params, None, report, notes)
    fit_level = _fit_level(source)
    results = yield from quantize_multiscale_iter(
        source.levels, params["n_colors"], fit_level=fit_level, **kwargs
    )
    notes.append(
        f"Multiscale image: the palette was fitted on level {fit_level} and all "
        f"{len(results)} levels are mapped onto it lazily; counts and shares are "
        f"those of level {fit_level}."
    )
    # Level 0 with the fitted level's counts (the others' would read the level).
    result = replace(results[0], counts=results[fit_level].counts)
    params = {**params, "fit_level": fit_level}
    pyramid = [(r.image, r.labels) for r in results]
    report = size_report(result)
    return QuantizeOutcome(result, params, pyramid, report, notes)


def sweep_source_iter(
    source: SourceInfo,
    ks: Sequence[int],
    *,
    color_space: str = "rgb",
    random_state: int | None = 0,
    dither: bool = False,
    data_range: float | None = None,
    keep_results: bool = False,
) -> Generator[float, None, SweepTable]:
    """Sweep k on a source snapshot (:func:`~napari_kmeans_quantize.sweep.sweep_iter`).

    Yields progress fractions; the :class:`~napari_kmeans_quantize.sweep.SweepTable`
    is the return value. Lazy data is computed into memory first; for a multiscale
    source the sweep runs on the level a quantisation fits its palette on (the
    finest with at most ``MULTISCALE_FIT_PIXELS`` pixels). `data_range` is the
    PSNR peak (None: automatic), as in :func:`~napari_kmeans_quantize.sweep.sweep`;
    `keep_results` keeps every k's result in the table (``table.results``).
    """
    from .sweep import sweep_iter

    data_range = check_data_range(data_range)
    levels = source.levels
    sizes = [_spatial_pixels(level.shape, source.rgb) for level in levels]
    index = _fit_level(source)
    if sizes[index] > MAX_PIXELS_IN_MEMORY:
        raise ValueError(
            f"{source.name!r} has {sizes[index]:,} pixels, more than the "
            f"{MAX_PIXELS_IN_MEMORY:,} this plugin loads into memory at once; "
            "crop it or sweep a downsampled copy."
        )
    yield 0.0
    data = np.asarray(levels[index])
    table = yield from _scaled(
        sweep_iter(
            data,
            tuple(ks),
            channel_axis=source.channel_axis,
            color_space=color_space if source.rgb else "rgb",
            random_state=random_state,
            dither=dither,
            source_bytes=source.source_bytes if index == 0 else None,
            data_range=data_range,
            keep_results=keep_results,
        ),
        0.02,
        1.0,
    )
    return table


# --- layer data tuples (pure) -----------------------------------------------------


def layer_data_tuples(
    outcome: QuantizeOutcome | QuantizeResult,
    source: SourceInfo | Image,
    *,
    params: dict | None = None,
) -> list[tuple[Any, dict, str]]:
    """The three napari layer data tuples of a quantisation: image, labels, palette.

    Parameters
    ----------
    outcome : QuantizeOutcome or QuantizeResult
        What :func:`quantize_source_iter` returned, or a bare engine result on the
        source's data (then `params` should hold at least ``n_colors``).
    source : SourceInfo or napari.layers.Image
        The source layer (or its snapshot), whose placement and display settings
        the new layers copy.
    params : dict, optional
        Run parameters to record in the metadata when `outcome` is a bare result.

    Returns
    -------
    list of (data, meta, layer_type)
        In this order: the quantised image, the labels, the palette strip.
    """
    if not isinstance(source, SourceInfo):
        source = source_info(source)
    if isinstance(outcome, QuantizeResult):
        run = {"n_colors": outcome.n_colors_requested, **(params or {})}
        outcome = QuantizeOutcome(outcome, run, None, None, [])
    result = outcome.result
    k_req = int(outcome.params.get("n_colors", result.n_colors_requested))
    image_name, labels_name, palette_name = layer_names(
        source.name, k_req, **_name_options(outcome.params, result)
    )

    display = _display_colors(result.palette, source)  # (k, 4) floats in [0, 1]
    hexes = [_hex(c) for c in display]
    metadata = {
        "plugin": PLUGIN,
        "source": source.name,
        "n_colors": result.n_colors,
        "n_colors_requested": k_req,
        "color_space": result.color_space,
        "random_state": outcome.params.get("random_state"),
        "dither": result.dither,
        "max_pixels": outcome.params.get("max_pixels"),
        "data_range": outcome.params.get("data_range"),
        "palette": result.palette.copy(),
        "counts": result.counts.copy(),
        "palette_hex": hexes,
        "palette_order": ORDER_NOTE,
        "n_iter": result.n_iter,
        "converged": result.converged,
        "size_report": (None if outcome.report is None else outcome.report.as_dict()),
        "notes": list(outcome.notes),
    }
    if "fit_level" in outcome.params:
        metadata["fit_level"] = outcome.params["fit_level"]
    placement = _placement(source)

    # 1. the quantised image
    if outcome.levels is not None:
        image_data: Any = [img for img, _ in outcome.levels]
        labels_data: Any = [lab for _, lab in outcome.levels]
    else:
        image_data, labels_data = result.image, result.labels
    image_meta = image_layer_meta(
        source,
        image_name,
        {**metadata, "role": IMAGE_ROLE},
        multiscale=outcome.levels is not None,
    )

    # 2. the labels, drawn in the palette colours (label 0 included)
    from napari.utils.colormaps import DirectLabelColormap

    color_dict: dict[int | None, Any] = {
        i: tuple(float(v) for v in c) for i, c in enumerate(display)
    }
    color_dict[None] = "transparent"
    total = max(int(result.counts.sum()), 1)
    features: dict[str, Any] = {
        "index": np.arange(result.n_colors),
        "hex": hexes,
    }
    if source.rgb:
        for j, channel in enumerate("RGBA"[: result.palette.shape[1]]):
            features[channel] = result.palette[:, j]
    else:
        features["value"] = result.palette[:, 0]
    features["count"] = result.counts
    features["share %"] = np.round(100.0 * result.counts / total, 2)
    # A table already (napari makes one of a dict): built wherever this runs (the
    # widget's worker), not on the main thread when the layer is made.
    import pandas as pd

    features = pd.DataFrame(features)
    labels_colormap = DirectLabelColormap(color_dict=color_dict)
    # napari compiles (numba) and caches its lookup on the first map: done here,
    # in the widget's worker, not on the main thread at the first draw
    labels_colormap.map(np.zeros(1, dtype=result.labels.dtype))
    labels_meta = {
        "name": labels_name,
        "multiscale": outcome.levels is not None,
        "colormap": labels_colormap,
        "opacity": source.opacity,
        "blending": source.blending,
        "features": features,
        "metadata": {**metadata, "role": LABELS_ROLE},
        **placement,
    }

    # 3. the palette strip beside the source, in its last two spatial axes
    strip, strip_meta = _palette_strip(result, source)
    strip_meta.update(
        {
            "name": palette_name,
            "metadata": {
                **metadata,
                "role": STRIP_ROLE,
                "description": f"palette swatches, {ORDER_NOTE}",
            },
        }
    )
    return [
        (image_data, image_meta, "image"),
        (labels_data, labels_meta, "labels"),
        (strip, strip_meta, "image"),
    ]


def image_layer_meta(
    source: SourceInfo, name: str, metadata: dict, *, multiscale: bool = False
) -> dict[str, Any]:
    """Layer metadata of an Image output that overlays `source` and looks like it.

    Placement (scale, translate, ...), the rgb flag, contrast limits, gamma,
    blending, opacity, 3D rendering and, for single-channel data, the colormap
    are the source's: an additive channel's result adds like its source and
    hides no other channel.
    """
    meta = {
        "name": name,
        "rgb": source.rgb,
        "multiscale": multiscale,
        "contrast_limits": list(source.contrast_limits),
        "gamma": source.gamma,
        "blending": source.blending,
        "opacity": source.opacity,
        "rendering": source.rendering,
        "metadata": metadata,
        **_placement(source),
    }
    if not source.rgb:
        meta["colormap"] = source.colormap
    return meta


#: Which outputs go on the canvas: (add the image, add the palette strip, show the
#: labels). The labels layer is always added (hover shows each pixel's palette
#: colour, and it is what saves as an indexed file); shown or not, it looks exactly
#: like the quantised image, so by default it is hidden and each result is seen once.
OUTPUTS = {
    "image+strip": (True, True, False),
    "image": (True, False, False),
    "labels+strip": (False, True, True),
    "all": (True, True, True),
}


def select_outputs(
    tuples: Sequence[tuple[Any, dict, str]], outputs: str = "image+strip"
) -> list[tuple[Any, dict, str]]:
    """The layer data tuples to add for an `outputs` choice (see ``OUTPUTS``).

    Keeps the order image, labels, strip (leaving out what is not added) and sets
    the labels' visibility. The labels tuple is always kept.

    Raises
    ------
    ValueError
        If `outputs` is not a key of ``OUTPUTS``.
    """
    if outputs not in OUTPUTS:
        raise ValueError(
            f"outputs must be one of {', '.join(map(repr, OUTPUTS))}; got {outputs!r}."
        )
    image, strip, show_labels = OUTPUTS[outputs]
    image_t, (labels_data, labels_meta, kind), strip_t = tuples
    labels_t = (labels_data, {**labels_meta, "visible": show_labels}, kind)
    chosen = [image_t] if image else []
    chosen.append(labels_t)
    if strip:
        chosen.append(strip_t)
    return chosen


def _name_options(params: dict, result: QuantizeResult) -> dict[str, Any]:
    """The options of a run that :func:`layer_names` puts into the names."""
    return {
        "color_space": params.get("color_space", result.color_space),
        "dither": bool(params.get("dither", result.dither)),
        "max_pixels": params.get("max_pixels"),
        "random_state": params.get("random_state", 0),
    }


def _placement(source: SourceInfo) -> dict[str, Any]:
    return {
        "scale": source.scale.copy(),
        "translate": source.translate.copy(),
        "rotate": source.rotate.copy(),
        "shear": source.shear.copy(),
        "affine": source.affine.copy(),
        "units": source.units,
        "axis_labels": source.axis_labels,
    }


def _palette_strip(
    result: QuantizeResult, source: SourceInfo
) -> tuple[np.ndarray, dict[str, Any]]:
    """A (k, 1[, C]) swatch strip and the placement that puts it right of the source.

    In the source's data coordinates (last two axes) the strip has the same size
    whatever k: it spans the source's full height ``H`` and is ``H / 8`` wide (each
    swatch ``H / k`` tall), with a gap of ``H / 32`` between the image and the
    strip. So strips of several runs on one source cover exactly the same area, and
    the one drawn on top hides the others completely (no mix of two palettes).
    """
    k = result.n_colors
    level0 = source.levels[0]
    shape = tuple(level0.shape[:-1] if source.rgb else level0.shape)
    height, width = float(shape[-2]), float(shape[-1])
    swatch_h = height / k
    swatch_w = height / STRIP_ASPECT
    gap = swatch_w / 4
    # strip pixel p -> source data coordinate a * p + o (pixel centres at integers,
    # pixel edges at -0.5: the strip's top edge meets the image's top edge)
    a = np.array([swatch_h, swatch_w])
    o = np.array([-0.5 + swatch_h / 2, width - 0.5 + gap + swatch_w / 2])

    from napari.utils.transforms import Affine

    scale2 = source.scale[-2:]
    rotate2 = source.rotate[-2:, -2:]
    shear2 = source.shear[-1:] if len(source.shear) else np.zeros(1)
    linear = Affine(scale=scale2, rotate=rotate2, shear=shear2).linear_matrix
    translate2 = source.translate[-2:] + linear @ o
    affine2 = source.affine[np.ix_([-3, -2, -1], [-3, -2, -1])]

    strip = result.palette[:, np.newaxis, :] if source.rgb else result.palette[:, :1]
    meta = {
        "rgb": source.rgb,
        "contrast_limits": list(source.contrast_limits),
        "gamma": source.gamma,
        "scale": scale2 * a,
        "translate": translate2,
        "rotate": rotate2.copy(),
        "shear": np.array(shear2, dtype=float),
        "affine": affine2,
        "units": source.units[-2:],
        "axis_labels": source.axis_labels[-2:],
        "interpolation2d": "nearest",
        "interpolation3d": "nearest",
        "blending": source.blending,
    }
    if not source.rgb:
        meta["colormap"] = source.colormap
    return strip, meta


def _display_colors(palette: np.ndarray, source: SourceInfo) -> np.ndarray:
    """RGBA floats napari draws for each palette entry of the source layer.

    Applies the layer's contrast limits and gamma (and, for single-channel data, its
    colormap) the way napari's image shader does, so the Labels layer coloured with
    these looks like the quantised image.
    """
    pal = palette.astype(np.float64)
    lo, hi = source.contrast_limits
    span = hi - lo if hi != lo else 1.0
    if source.rgb:
        rgb = np.clip((pal[:, :3] - lo) / span, 0.0, 1.0) ** source.gamma
        if pal.shape[1] == 4:
            alpha = pal[:, 3]
            if palette.dtype.kind in "ui":
                alpha = alpha / np.iinfo(palette.dtype).max
            alpha = np.clip(alpha, 0.0, 1.0)
        else:
            alpha = np.ones(len(pal))
        return np.column_stack([rgb, alpha])
    values = np.clip((pal[:, 0] - lo) / span, 0.0, 1.0) ** source.gamma
    colors = np.asarray(source.colormap.map(values), dtype=np.float64)
    return colors.reshape(len(pal), 4)


def _hex(rgba: np.ndarray) -> str:
    r, g, b = (round(float(v) * 255) for v in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _spatial_pixels(shape: Sequence[int], rgb: bool) -> int:
    return int(np.prod(shape[:-1] if rgb else shape, dtype=np.int64))


def _scaled(gen: Generator, lo: float, hi: float) -> Generator[float, None, Any]:
    """Re-yield a sub-generator's 0..1 fractions inside [lo, hi]."""
    while True:
        try:
            frac = next(gen)
        except StopIteration as stop:
            return stop.value
        yield lo + (hi - lo) * float(frac)


# --- adding to a viewer -----------------------------------------------------------


def add_or_update_layers(
    viewer: napari.Viewer | None, tuples: Sequence[tuple[Any, dict, str]]
) -> list[Layer]:
    """Add layer data tuples to `viewer`, updating same-named layers in place.

    A layer whose name, type, rgb flag, dimensionality and multiscale-ness match is
    updated (data, colormap, features, placement, ...); a same-named layer that
    does not match is replaced at the same position. A palette strip added or
    updated is made visible, and the other palette strips of the same source are
    hidden (they would sit under it). Updated layers move to the top of the list,
    in the order given, as new ones are appended. Without a viewer the layers are created and
    returned but not added anywhere.
    """
    from napari.layers import Layer

    layers: list[Layer] = []
    for data, meta, layer_type in tuples:
        existing = None
        if viewer is not None:
            existing = next(
                (lay for lay in viewer.layers if lay.name == meta["name"]), None
            )
        if existing is not None and _can_update(existing, data, meta, layer_type):
            _update_layer(existing, data, meta)
            layers.append(existing)
            # To the top, as a new layer would go: re-running k = 8 after k = 64
            # (a click in the Compare k table, say) must show k = 8, not leave it
            # under the k = 64 image.
            viewer.layers.move(viewer.layers.index(existing), len(viewer.layers))
            continue
        new = Layer.create(data, dict(meta), layer_type)
        if viewer is not None:
            if existing is not None:
                index = viewer.layers.index(existing)
                viewer.layers.remove(existing)
                viewer.layers.insert(index, new)
            else:
                viewer.layers.append(new)
        layers.append(new)
    if viewer is not None:
        for layer in layers:
            if _is_strip(layer):
                _show_only_strip(viewer, layer)
    return layers


def is_output(layer: Any) -> bool:
    """Whether `layer` is one of this plugin's outputs (never a source to quantise).

    Outputs carry ``metadata["plugin"] == PLUGIN``; a copy of one made by napari
    (Duplicate Layer) keeps its metadata and so stays an output too.
    """
    metadata = getattr(layer, "metadata", None) or {}
    return metadata.get("plugin") == PLUGIN


def _is_strip(layer: Layer) -> bool:
    return is_output(layer) and layer.metadata.get("role") == STRIP_ROLE


def _show_only_strip(viewer: napari.Viewer, strip: Layer) -> None:
    """Show `strip` and hide the other palette strips made from the same source.

    All strips of one source sit in the same place; only the newest run's is shown
    (the older ones stay in the layer list, to be shown again by their eye icon).
    """
    source = strip.metadata.get("source")
    for layer in viewer.layers:
        if (
            layer is not strip
            and _is_strip(layer)
            and layer.metadata.get("source") == source
        ):
            layer.visible = False
    strip.visible = True


def _can_update(layer: Layer, data: Any, meta: dict, layer_type: str) -> bool:
    from napari.layers import Image, Labels

    cls = {"image": Image, "labels": Labels}[layer_type]
    if type(layer) is not cls or layer.multiscale or meta.get("multiscale"):
        return False
    if layer_type == "image" and bool(layer.rgb) != bool(meta.get("rgb")):
        return False
    data_ndim = np.ndim(data) - (1 if meta.get("rgb") else 0)
    return layer.ndim == data_ndim


def _update_layer(layer: Layer, data: Any, meta: dict) -> None:
    layer.data = data
    for key, value in meta.items():
        if key in ("name", "rgb", "multiscale"):
            continue
        setattr(layer, key, value)
    layer.refresh()


# --- the console entry point ------------------------------------------------------


def quantize_layer(
    layer: Image,
    n_colors: int = 16,
    *,
    viewer: napari.Viewer | None = None,
    color_space: str = "rgb",
    random_state: int | None = 0,
    dither: bool = False,
    max_pixels: int | None = None,
    data_range: float | None = None,
    fixed_colors: np.ndarray | None = None,
    weights: Any = None,
    outputs: str = "image+strip",
) -> list[Layer]:
    """Quantise an Image layer and add the image, labels and palette layers.

    Runs synchronously (the widget does the same work in a thread). The source
    layer is never modified. Layers of an earlier run on the same source with the
    same settings (the same names, see :func:`layer_names`) are updated in place
    instead of duplicated; other settings get layers of their own.

    Parameters
    ----------
    layer : napari.layers.Image
        The source: RGB or RGBA (``layer.rgb``), or single-channel data of any
        dimensionality (intensity quantisation); all leading axes (time, z, ...)
        share one palette. uint8, uint16 and float data are supported.

        * Lazy data (a dask or zarr array) is never loaded whole: its colours are
          counted chunk by chunk, and the quantised image and labels layers are
          lazy dask arrays, computed as napari draws them. The size report then
          holds the raw and formula sizes only (the PNG size, PSNR and CIEDE2000
          would read every pixel). Dithering needs the whole image, so with
          `dither` lazy data is computed into memory (refused above
          ``MAX_PIXELS_IN_MEMORY`` pixels).
        * Multiscale data: the palette is fitted on the finest pyramid level with
          at most ``MULTISCALE_FIT_PIXELS`` (4 million) pixels, then every level
          is mapped onto that palette; the image and labels layers are multiscale
          too. Counts and figures refer to level 0, except that for lazy data
          the counts and shares are those of the level the palette was fitted on
          (counting level 0 would read it whole).

        Both cases are also reported in a napari notification.
    n_colors : int, optional
        Number of palette colours k.
    viewer : napari.Viewer, optional
        Where to add the layers; defaults to ``napari.current_viewer()``. If there
        is no viewer the layers are returned without being added.
    color_space : {'rgb', 'lab', 'oklab'}, optional
        Space the palette is fitted in ('lab' and 'oklab' need RGB(A) data).
    random_state : int or None, optional
        Seed (used when `max_pixels` subsamples the pixels for the fit).
    dither : bool, optional
        Assign pixels by Floyd-Steinberg error diffusion.
    max_pixels : int or None, optional
        Fit the palette on at most this many randomly chosen pixels.
    data_range : float or None, optional
        The peak value (finite, > 0) of the PSNR in the size report (recorded in
        the layers' ``metadata["size_report"]``); for integer RGB(A) data also the
        value of full intensity for its mean CIEDE2000. None (the default) is
        automatic: the dtype's range for 8- and 16-bit integers (65535 for
        uint16), 1 for floats in [0, 1], the data's own range otherwise (see
        :func:`~napari_kmeans_quantize.metrics.psnr`). Give 4095 for 12-bit
        camera data stored as uint16. It changes the figures only, never the
        palette.
    fixed_colors : (m, C) array_like, optional
        Locked colours the palette holds exactly (see
        :func:`~napari_kmeans_quantize.quantize`); data in memory only.
    weights : napari layer or array_like, optional
        Importance map: a Labels layer (label value = weight; paint 0/1 masks and
        re-run), an Image layer or an array of the source's spatial shape. The
        size report then also gives the PSNR inside the weighted region.
        Single-scale data in memory only.
    outputs : {'image+strip', 'image', 'labels+strip', 'all'}, optional
        Which layers go on the canvas. The default adds the quantised image, the
        palette strip, and the labels layer hidden (it looks exactly like the
        image; selected, it shows each pixel's palette colour on hover, and it is
        what *File > Save Selected Layers* writes as an indexed PNG). 'image'
        leaves the strip out, 'labels+strip' the image (labels shown), 'all'
        shows all three.

    Returns
    -------
    list of napari.layers.Layer
        The quantised Image, the Labels and the palette-strip Image, in that order
        (those of them that `outputs` adds).

    Raises
    ------
    ValueError
        If `data_range` is not None or a finite number above 0 (checked before
        any work is done), or for bad `fixed_colors` or `weights` (as
        ``quantize``), or those with data they do not support.
        If `data_range` is not None or a finite number above 0, or `outputs` is
        not one of the choices (checked before any work is done).

    Examples
    --------
    In napari's console (Window > Console)::

        from napari_kmeans_quantize import quantize_layer
        quantize_layer(viewer.layers["astronaut"], n_colors=8, viewer=viewer)

    12-bit camera data stored as uint16: PSNR against the 12-bit peak::

        quantize_layer(viewer.layers["cells"], n_colors=8, data_range=4095)
    """
    select_outputs([(None, {}, "")] * 3, outputs)  # checked before any work
    source = source_info(layer)
    gen = quantize_source_iter(
        source,
        n_colors,
        color_space=color_space,
        random_state=random_state,
        dither=dither,
        max_pixels=max_pixels,
        data_range=data_range,
        fixed_colors=fixed_colors,
        weights=weights,
    )
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            outcome: QuantizeOutcome = stop.value
            break
    if viewer is None:
        import napari

        viewer = napari.current_viewer()
    if outcome.notes:
        from napari.utils.notifications import show_info

        for note in outcome.notes:
            show_info(f"{source.name}: {note}")
    tuples = select_outputs(layer_data_tuples(outcome, source), outputs)
    layers = add_or_update_layers(viewer, tuples)
    labels = next(lay for lay in layers if lay.metadata.get("role") == LABELS_ROLE)
    if viewer is not None:
        viewer.layers.selection.active = labels
    return layers
