"""The source layer's snapshot and the runs on it (in a worker thread in the widget).

:func:`source_info` takes what a run needs from an Image layer on the main thread;
:func:`quantize_source_iter` and :func:`sweep_source_iter` compute on that snapshot
only, through the engine's public API, and touch no layer.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._qt.save import ResultFile, result_file
from ..metrics import SizeReport, check_data_range, size_report
from ..quantize import QuantizeResult, quantize_iter

if TYPE_CHECKING:
    from napari.layers import Image, Layer

    from ..sweep import SweepTable

#: Multiscale sources: the palette is fitted on the finest pyramid level with at most
#: this many pixels (then every level is mapped onto that palette).
MULTISCALE_FIT_PIXELS = 4_000_000
#: Largest array (in pixels, channels not counted) loaded into memory for one run.
MAX_PIXELS_IN_MEMORY = 2**27
#: A lazy single-scale 2-D result above this many pixels is shown as a pyramid
#: (see :func:`display_levels`), its coarsest level at least DISPLAY_MIN_SIDE wide.
DISPLAY_PYRAMID_PIXELS = 4096 * 4096
DISPLAY_MIN_SIDE = 1024
#: Levels of a display pyramid up to this many pixels are computed in the worker.
DISPLAY_EAGER_PIXELS = 2048 * 2048


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


@dataclass(frozen=True, eq=False)
class RunOptions:
    """The options of one quantisation of a source, each as
    :func:`~napari_kmeans_quantize.quantize_layer` describes it (which takes
    them one by one and passes them on as one of these)."""

    color_space: str = "rgb"
    random_state: int | None = 0
    dither: bool = False
    max_pixels: int | None = None
    data_range: float | None = None
    fixed_colors: Any = None
    weights: Any = None

    def recorded(self, n_colors: int) -> dict[str, Any]:
        """The parameters a run records in its outcome (and layers' metadata)."""
        return {
            "n_colors": int(n_colors),
            "color_space": self.color_space,
            "random_state": self.random_state,
            "dither": bool(self.dither),
            "max_pixels": self.max_pixels,
            "data_range": check_data_range(self.data_range),
            "fixed_colors": None
            if self.fixed_colors is None
            else np.asarray(self.fixed_colors).tolist(),
        }


def quantize_source_iter(
    source: SourceInfo,
    n_colors: int,
    options: RunOptions | None = None,
    **changes: Any,
) -> Generator[float, None, QuantizeOutcome]:
    """Quantise a source snapshot, yielding progress fractions from 0 to 1.

    `options` are the run's options (the defaults if None); keywords named as
    the fields of :class:`RunOptions` (``color_space=``, ``weights=``, ...)
    replace them, as the widget passes them.

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
    * A lazy single-scale 2-D source above ``DISPLAY_PYRAMID_PIXELS`` pixels
      (without weights) gets a display pyramid: its result's every 2nd, 4th, ...
      pixel as coarser levels (:func:`display_levels`), so that napari computes
      only what the screen shows. ``result`` is the full-resolution one.
    * `fixed_colors` and `weights` (a layer, e.g. a painted Labels layer, or an
      array of the source's spatial shape) are those of ``quantize``, for data in
      memory and lazy data; weights need single-scale data.
    """
    run = replace(options or RunOptions(), **changes)
    weights = weight_array(run.weights)
    if weights is not None and source.multiscale:
        # the engine's multiscale path fits one level and takes no weights
        raise ValueError(
            f"an importance layer needs single-scale image data; {source.name!r} "
            "is multiscale. Quantise it without, or quantise one of its levels "
            "(napari_kmeans_quantize.quantize takes weights for numpy and dask "
            "arrays)."
        )
    params = run.recorded(n_colors)
    fixed_colors = run.fixed_colors
    outcome = yield from _quantize_source(source, params, fixed_colors, weights)
    result = outcome.result
    png_bytes = None if outcome.report is None else outcome.report.png_bytes
    file = result_file(result.labels, result.palette, png_bytes, source.is_lazy)
    note = channel_note(source)
    notes = [*outcome.notes, note] if note else outcome.notes
    return replace(outcome, file=file, notes=notes)


#: Axes from 2 to this long (not the last two) may well be channels (the engine
#: fits up to 16).
MAX_CHANNELS = 16
_CHANNEL_LABELS = {"c", "ch", "channel", "channels"}


def likely_channel_axis(shape: Sequence[int], axis_labels: Sequence) -> int | None:
    """The axis of a single-channel layer's data that most likely holds channels.

    One labelled ``c``/``ch``/``channel``, else the shortest axis before the last
    two with 2 to ``MAX_CHANNELS`` entries; None if there is none.

    Examples
    --------
    >>> likely_channel_axis((60, 2, 256, 256), ("0", "1", "2", "3"))
    1
    >>> likely_channel_axis((40, 256, 256), ("z", "y", "x")) is None
    True
    """
    leading = range(len(shape) - 2)
    labels = [str(label).lower() for label in tuple(axis_labels)[: len(leading)]]
    named = [
        a for a, label in zip(leading, labels, strict=True) if label in _CHANNEL_LABELS
    ]
    if named:
        return named[0]
    short = sorted((shape[a], a) for a in leading if 2 <= shape[a] <= MAX_CHANNELS)
    return short[0][1] if short else None


def channel_note(source: SourceInfo) -> str:
    """How a single-channel layer with a likely channel axis inside it is treated.

    A (z, c, y, x) layer that napari shows as one layer is quantised as intensity,
    one palette over every axis; say so when an axis looks like channels
    (:func:`likely_channel_axis`), and how to quantise the channels instead.
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
    axis = likely_channel_axis(shape, source.axis_labels)
    if axis is None:
        return ""
    return (
        f"Axis {axis} (length {shape[axis]}) may be channels: the layer is "
        "quantised as intensity, with one palette over all its axes. If they are "
        "channels, set 'source' to 'channels inside the image layer' (channel "
        f"axis {axis}) to quantise them together as {shape[axis]}-channel "
        "colours, or split the layer (right-click > Split Stack) for one palette "
        "per channel."
    )


def _quantize_source(
    source: SourceInfo,
    params: dict,
    fixed_colors: np.ndarray | None,
    weights: np.ndarray | None,
) -> Generator[float, None, QuantizeOutcome]:
    n_colors, color_space = params["n_colors"], params["color_space"]
    dither, random_state = params["dither"], params["random_state"]
    max_pixels = params["max_pixels"]
    data_range = params["data_range"]
    notes: list[str] = []
    channel_axis = source.channel_axis
    levels = source.levels
    if source.is_lazy and not dither:
        return (yield from _quantize_lazy(source, params, fixed_colors, weights))
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
    from ..chunked import quantize_multiscale_iter

    sizes = [_spatial_pixels(level.shape, source.rgb) for level in levels]
    fitted = fit_level(source)
    yield 0.05
    results = yield from _scaled(
        quantize_multiscale_iter(
            levels,
            n_colors,
            fit_level=fitted,
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
        f"Multiscale image: the palette was fitted on level {fitted} "
        f"({sizes[fitted]:,} pixels) and all {len(levels)} levels were mapped "
        "onto it; counts and figures are for level 0 (the finest)."
    )
    result = results[0]
    pyramid = [(r.image, r.labels) for r in results]
    params["fit_level"] = fitted
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


def fit_level(source: SourceInfo) -> int:
    """The finest level with at most ``MULTISCALE_FIT_PIXELS`` pixels (or the last)."""
    sizes = [_spatial_pixels(level.shape, source.rgb) for level in source.levels]
    return next(
        (i for i, n in enumerate(sizes) if n <= MULTISCALE_FIT_PIXELS),
        len(sizes) - 1,
    )


def _quantize_lazy(
    source: SourceInfo,
    params: dict,
    fixed_colors: np.ndarray | None,
    weights: np.ndarray | None,
) -> Generator[float, None, QuantizeOutcome]:
    """Chunk-by-chunk quantisation of dask/zarr data; lazy image and labels."""
    from ..chunked import quantize_multiscale_iter

    kwargs = {
        "channel_axis": source.channel_axis,
        "color_space": params["color_space"],
        "random_state": params["random_state"],
        "max_pixels": params["max_pixels"],
        "fixed_colors": fixed_colors,
    }
    notes = [
        "The layer's data is lazy (dask or zarr): its colours were counted chunk by "
        "chunk, and the quantised image and labels are lazy too (computed as they "
        "are drawn). The real PNG size, PSNR and CIEDE2000 are not computed, since "
        "they would read every pixel."
    ]
    yield 0.0
    n_colors = params["n_colors"]
    if not source.multiscale:
        levels = display_levels(source) if weights is None else [source.data]
        if len(levels) == 1:
            result = yield from quantize_iter(
                source.data, n_colors, weights=weights, **kwargs
            )
            return QuantizeOutcome(result, params, None, size_report(result), notes)
        # Fitted on level 0, so level 0 is the plain dask run bit for bit; the
        # coarser levels are its every 2nd, 4th, ... pixel, mapped onto the same
        # palette, for napari to draw only what the screen shows.
        results = yield from quantize_multiscale_iter(
            levels, n_colors, fit_level=0, **kwargs
        )
        notes.append(
            f"The result is shown as a pyramid of {len(levels)} levels (every "
            "2nd, 4th, ... pixel of it), so napari computes only what the screen "
            "shows; level 0 is the full result."
        )
        yield 0.95
        pyramid = _computed_coarse_levels([(r.image, r.labels) for r in results])
        return QuantizeOutcome(
            results[0], params, pyramid, size_report(results[0]), notes
        )
    fitted = fit_level(source)
    results = yield from quantize_multiscale_iter(
        source.levels, n_colors, fit_level=fitted, **kwargs
    )
    notes.append(
        f"Multiscale image: the palette was fitted on level {fitted} and all "
        f"{len(results)} levels are mapped onto it lazily; counts and shares are "
        f"those of level {fitted}."
    )
    # Level 0 with the fitted level's counts (the others' would read the level).
    result = replace(results[0], counts=results[fitted].counts)
    params = {**params, "fit_level": fitted}
    pyramid = [(r.image, r.labels) for r in results]
    report = size_report(result)
    return QuantizeOutcome(result, params, pyramid, report, notes)


def _computed_coarse_levels(pyramid: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The levels of at most ``DISPLAY_EAGER_PIXELS`` pixels computed (here, in
    the worker), the finer ones left lazy.

    napari draws a coarse level first (and makes the thumbnail from the
    coarsest) on the main thread; computed, they cost it nothing. Together they
    hold at most a third more than the largest of them.
    """
    import dask

    small = [
        i
        for i, (_, labels) in enumerate(pyramid)
        if computed_in_worker(labels.shape, rgb=False)
    ]
    arrays = [array for i in small for array in pyramid[i]]
    computed = iter(dask.compute(*arrays))
    out = list(pyramid)
    for i in small:
        out[i] = (next(computed), next(computed))
    return out


def computed_in_worker(shape: Sequence[int], *, rgb: bool) -> bool:
    """Whether a display-pyramid level of this shape is computed in the worker
    (at most ``DISPLAY_EAGER_PIXELS`` pixels)."""
    return _spatial_pixels(shape, rgb) <= DISPLAY_EAGER_PIXELS


def display_levels(source: SourceInfo) -> list:
    """The levels a lazy single-scale 2-D source's result is shown at.

    Above ``DISPLAY_PYRAMID_PIXELS`` pixels, napari would compute the whole result
    on the main thread to draw it once; as a pyramid of every 2nd, 4th, ...
    pixel (down to ``DISPLAY_MIN_SIDE``) it computes the level and region that
    the screen shows. Otherwise just the data.
    """
    data = source.data
    if (
        source.multiscale
        or source.ndim != 2
        or _spatial_pixels(data.shape, source.rgb) <= DISPLAY_PYRAMID_PIXELS
    ):
        return [data]
    levels = [data]
    step = 2
    while max(data.shape[:2]) // step >= DISPLAY_MIN_SIDE:
        levels.append(data[::step, ::step])
        step *= 2
    return levels


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
    is the return value. A single-scale dask array is swept chunk by chunk
    (never loaded whole; without dithering): its rows have no PNG size (it would
    read every pixel) and its results are lazy. Other lazy data is computed into
    memory first; for a multiscale source the sweep runs on the level a
    quantisation fits its palette on (the finest with at most
    ``MULTISCALE_FIT_PIXELS`` pixels). `data_range` is the PSNR peak (None:
    automatic), as in :func:`~napari_kmeans_quantize.sweep.sweep`; `keep_results`
    keeps every k's result in the table (``table.results``).
    """
    from ..sweep import sweep_iter

    data_range = check_data_range(data_range)
    levels = source.levels
    index = fit_level(source)
    data = levels[index]
    if source.multiscale or dither or not _is_dask(data):
        n_px = _spatial_pixels(data.shape, source.rgb)
        if n_px > MAX_PIXELS_IN_MEMORY:
            raise ValueError(
                f"{source.name!r} has {n_px:,} pixels, more than the "
                f"{MAX_PIXELS_IN_MEMORY:,} this plugin loads into memory at once; "
                "crop it or sweep a downsampled copy."
            )
        data = np.asarray(data)
    yield 0.0
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


def _is_dask(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "dask"


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
