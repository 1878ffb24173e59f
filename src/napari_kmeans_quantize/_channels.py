"""Multichannel sources in napari: fluorescence channels quantised as C-vectors.

napari shows a multichannel image in one of two ways, and both can be one source:

* **one Image layer with a channel axis inside it** (a (z, c, y, x) or (c, y, x)
  array, not rgb): napari has no channel-axis attribute, so the axis is given
  (the widget offers a choice, :func:`guess_channel_axis` a default);
* **several single-channel Image layers of one shape**, what
  ``viewer.add_image(data, channel_axis=1)`` or a multichannel file makes: one
  layer per channel, each with its own colormap, blending and contrast limits.

The whole stack (every z plane and time point) is quantised at once by the
engine's :func:`~napari_kmeans_quantize.quantize_iter` with ``channel_axis``, so
all planes share one palette of k C-vectors; four channels are plain channels
(``alpha=False``), never RGBA. The layers made of the result are described in
:mod:`._channel_layers`.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._layers import MAX_CHANNELS, is_output, likely_channel_axis
from .metrics import SizeReport, check_data_range, size_report
from .quantize import QuantizeResult, quantize_iter

if TYPE_CHECKING:
    from napari.layers import Layer

__all__ = [
    "ChannelOutcome",
    "ChannelSource",
    "channel_source",
    "guess_channel_axis",
    "quantize_channels_iter",
]


@dataclass(frozen=True, eq=False)
class ChannelDisplay:
    """How one channel is drawn: its name and the display settings of its layer."""

    name: str
    colormap: Any  # napari Colormap
    contrast_limits: tuple[float, float]
    gamma: float = 1.0
    blending: str = "additive"
    opacity: float = 1.0
    rendering: str = "mip"  # how it draws in 3D


@dataclass(frozen=True, eq=False)
class ChannelSource:
    """A snapshot of a multichannel source, taken on the main thread.

    `arrays` holds one array with the channels on `channel_axis`, or (when
    `channel_axis` is None) one array per channel; the worker thread reads only
    this snapshot, never the layers.
    """

    name: str
    arrays: tuple
    channel_axis: int | None
    channels: tuple[ChannelDisplay, ...]
    dtype: np.dtype
    spatial_shape: tuple[int, ...]
    placement: dict
    layer_refs: tuple = ()

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def rgb(self) -> bool:
        """Never: channels are not colours (no CIEDE2000, no colour spaces)."""
        return False

    @property
    def layers(self) -> list[Layer]:
        """The source layers that still exist."""
        return [lay for lay in (ref() for ref in self.layer_refs) if lay is not None]

    @property
    def is_lazy(self) -> bool:
        """Whether any array is not a numpy array (dask, zarr, ...)."""
        return any(not isinstance(a, np.ndarray) for a in self.arrays)

    def stacked(self) -> tuple[Any, int]:
        """The channels as one array and its channel axis (what the engine takes).

        Separate layers are stacked on a new last axis: lazily with dask if any
        of them is a dask array, otherwise in memory.
        """
        if self.channel_axis is not None:
            (data,) = self.arrays
            return (data if _is_dask(data) else np.asarray(data)), self.channel_axis
        if any(_is_dask(a) for a in self.arrays):
            import dask.array as da

            return da.stack([da.asarray(a) for a in self.arrays], axis=-1), -1
        return np.stack([np.asarray(a) for a in self.arrays], axis=-1), -1


def _is_dask(array: Any) -> bool:
    return type(array).__module__.split(".")[0] == "dask"


def guess_channel_axis(layer: Any) -> int | None:
    """The axis of a single-channel Image layer that most likely holds channels.

    ``metadata["channel_axis"]`` if a reader set it; else
    :func:`~._layers.likely_channel_axis` (an axis labelled ``c``/``channel``,
    or the shortest axis before the last two with 2 to 16 entries: axis 1 of a
    (60, 2, 256, 256) cells3d stack). None for rgb and multiscale layers and
    when no axis qualifies.

    Examples
    --------
    >>> import numpy as np
    >>> from napari.layers import Image
    >>> guess_channel_axis(Image(np.zeros((60, 2, 32, 32), np.uint16)))
    1
    >>> guess_channel_axis(Image(np.zeros((32, 32)))) is None
    True
    """
    if getattr(layer, "rgb", False) or getattr(layer, "multiscale", False):
        return None
    shape = np.shape(layer.data)
    given = (getattr(layer, "metadata", None) or {}).get("channel_axis")
    if isinstance(given, int | np.integer) and -len(shape) <= given < len(shape):
        return int(given) % len(shape)
    return likely_channel_axis(shape, layer.axis_labels)


def channel_source(
    layers: Any | Sequence[Any], channel_axis: int | None = None
) -> ChannelSource:
    """Snapshot a multichannel source (call on the main thread).

    Parameters
    ----------
    layers : napari.layers.Image or sequence of them
        One single-channel Image layer whose `channel_axis` holds the channels,
        or several single-channel Image layers of one shape and dtype, one per
        channel (in the order given).
    channel_axis : int or None, optional
        The channel axis of a single layer (negative counts from the end);
        None guesses it (:func:`guess_channel_axis`). Not used with several
        layers.

    Returns
    -------
    ChannelSource
        The arrays, channel names and display settings, and the placement
        (scale, translate, units, axis labels) of the spatial axes.

    Raises
    ------
    TypeError
        If a layer is not an Image layer.
    ValueError
        If a layer is rgb, multiscale or one of this plugin's outputs; if the
        layers differ in shape or dtype; if there are no channels or more than
        16; or if a single layer has no (such) channel axis.

    Examples
    --------
    >>> import numpy as np
    >>> from napari.layers import Image
    >>> nuclei = Image(np.zeros((4, 16, 16), np.uint16), name="nuclei")
    >>> membranes = Image(np.ones((4, 16, 16), np.uint16), name="membranes")
    >>> source = channel_source([nuclei, membranes])
    >>> source.n_channels, source.spatial_shape, source.name
    (2, (4, 16, 16), 'nuclei + membranes')
    """
    from napari.layers import Image

    many = isinstance(layers, list | tuple)
    chosen = list(layers) if many else [layers]
    if not chosen:
        raise ValueError("No channel layers given; choose at least one Image layer.")
    for layer in chosen:
        name = getattr(layer, "name", layer)
        if not isinstance(layer, Image):
            raise TypeError(
                f"Channel sources are Image layers; {name!r} is a "
                f"{type(layer).__name__}."
            )
        if layer.rgb:
            raise ValueError(
                f"{name!r} is an RGB(A) layer, not a channel: quantise it on its "
                "own, or choose single-channel layers only."
            )
        if layer.multiscale:
            raise ValueError(
                f"{name!r} is multiscale; channel sources take single-scale layers "
                "(add its finest level as a layer of its own)."
            )
        if is_output(layer):
            raise ValueError(
                f"{name!r} is a result of this plugin, not a source; choose the "
                "original channel layers."
            )
    if len(chosen) == 1:
        return _one_layer_source(chosen[0], channel_axis)
    return _layers_source(chosen)


def _one_layer_source(layer: Any, channel_axis: int | None) -> ChannelSource:
    shape = tuple(np.shape(layer.data))
    if channel_axis is None:
        channel_axis = guess_channel_axis(layer)
        if channel_axis is None:
            raise ValueError(
                f"{layer.name!r} {shape} has no axis that looks like channels (2 "
                f"to {MAX_CHANNELS} long, before the last two); say which axis "
                "holds the channels."
            )
    ndim = len(shape)
    axis = int(channel_axis) % ndim if -ndim <= channel_axis < ndim else ndim
    if axis >= ndim - 2:
        allowed = (
            f"one of 0 to {ndim - 3}" if ndim > 2 else "none: the layer is one plane"
        )
        raise ValueError(
            f"channel axis {channel_axis} does not fit {layer.name!r} of shape "
            f"{shape}: the last two axes are the image's rows and columns, so the "
            f"channel axis is {allowed}."
        )
    n = shape[axis]
    _check_count(n, f"axis {axis} of {layer.name!r}")
    names = tuple(f"{layer.name} ch{i}" for i in range(n))
    displays = tuple(
        ChannelDisplay(
            name=name,
            colormap=_default_colormap(i, n),
            contrast_limits=tuple(float(c) for c in layer.contrast_limits),
            gamma=float(layer.gamma),
            blending="translucent_no_depth" if i == 0 else "additive",
            opacity=float(layer.opacity),
            rendering=str(layer.rendering),
        )
        for i, name in enumerate(names)
    )
    return ChannelSource(
        name=layer.name,
        arrays=(layer.data,),
        channel_axis=axis,
        channels=displays,
        dtype=np.dtype(layer.data.dtype),
        spatial_shape=shape[:axis] + shape[axis + 1 :],
        placement=_placement(layer, drop=axis),
        layer_refs=(weakref.ref(layer),),
    )


def _layers_source(layers: list) -> ChannelSource:
    _check_count(len(layers), "the chosen layers")
    shapes = {tuple(np.shape(lay.data)) for lay in layers}
    if len(shapes) > 1:
        listing = ", ".join(f"{lay.name!r} {np.shape(lay.data)}" for lay in layers)
        raise ValueError(
            f"Channel layers must have one shape; got {listing}. Crop or resample "
            "them to one shape first."
        )
    dtypes = {np.dtype(lay.data.dtype) for lay in layers}
    if len(dtypes) > 1:
        listing = ", ".join(f"{lay.name!r} {lay.data.dtype}" for lay in layers)
        raise ValueError(
            f"Channel layers must have one dtype; got {listing}. Convert them to "
            "one (e.g. all uint16) first."
        )
    names = [lay.name for lay in layers]
    source_name = " + ".join(names)
    if len(names) > 3:
        source_name = f"{names[0]} + {len(names) - 1} more"
    displays = tuple(
        ChannelDisplay(
            name=lay.name,
            colormap=lay.colormap,
            contrast_limits=tuple(float(c) for c in lay.contrast_limits),
            gamma=float(lay.gamma),
            blending=str(lay.blending),
            opacity=float(lay.opacity),
            rendering=str(lay.rendering),
        )
        for lay in layers
    )
    return ChannelSource(
        name=source_name,
        arrays=tuple(lay.data for lay in layers),
        channel_axis=None,
        channels=displays,
        dtype=dtypes.pop(),
        spatial_shape=shapes.pop(),
        placement=_placement(layers[0]),
        layer_refs=tuple(weakref.ref(lay) for lay in layers),
    )


def _check_count(n: int, what: str) -> None:
    if not 1 <= n <= MAX_CHANNELS:
        raise ValueError(
            f"{what} hold {n} channels; a channel source has 1 to {MAX_CHANNELS} "
            "(pick the channels you need)."
        )


def _default_colormap(i: int, n: int) -> Any:
    """The colormap napari gives channel `i` of `n` (as ``add_image(channel_axis=)``)."""
    from napari.utils.colormaps import CYMRGB, MAGENTA_GREEN, ensure_colormap

    if n == 1:
        return ensure_colormap("gray")
    names = MAGENTA_GREEN if n == 2 else CYMRGB
    return ensure_colormap(names[i % len(names)])


def _placement(layer: Any, drop: int | None = None) -> dict[str, Any]:
    """Scale, translate, units and axis labels of the spatial axes of `layer`."""

    def keep(values: Sequence) -> list:
        return [v for a, v in enumerate(values) if a != drop]

    return {
        "scale": np.array(keep(layer.scale), dtype=float),
        "translate": np.array(keep(layer.translate), dtype=float),
        "units": tuple(keep(layer.units)),
        "axis_labels": tuple(keep(layer.axis_labels)),
    }


# --- the computation (a worker thread in the widget) ------------------------------


@dataclass(frozen=True, eq=False)
class ChannelOutcome:
    """A quantisation of a channel source, ready to become layers.

    Attributes
    ----------
    result : QuantizeResult
        The engine's result on the stacked channels (palette (k, C)).
    source : ChannelSource
        What was quantised.
    params : dict
        The run's settings (n_colors, standardize, dither, max_pixels, ...).
    report : SizeReport
        Sizes and PSNR over every channel (sizes only for lazy data).
    notes : list of str
        Plain-language notes on what was done.
    """

    result: QuantizeResult
    source: ChannelSource
    params: dict
    report: SizeReport | None
    notes: list[str]


def quantize_channels_iter(
    source: ChannelSource,
    n_colors: int,
    *,
    standardize: bool = True,
    dither: bool = False,
    random_state: int | None = 0,
    max_pixels: int | None = None,
    data_range: float | None = None,
    weights: Any = None,
) -> Generator[float, None, ChannelOutcome]:
    """Quantise a channel source as C-vectors, yielding progress from 0 to 1.

    Every plane of the stack shares one palette. With `standardize` (the
    default) the fit measures each channel in units of its standard deviation,
    so a 16-bit channel does not outweigh a 12-bit one; the palette stays in
    the data's units. The other options are those of ``quantize``; `data_range`
    is the PSNR peak of the report. Lazy (dask) data stays lazy.

    Examples
    --------
    >>> import numpy as np
    >>> from napari.layers import Image
    >>> rng = np.random.default_rng(0)
    >>> a = Image(rng.integers(0, 4096, (8, 8), np.uint16), name="a")
    >>> b = Image(rng.integers(0, 65536, (8, 8), np.uint16), name="b")
    >>> gen = quantize_channels_iter(channel_source([a, b]), 4)
    >>> fractions = [next(gen) for _ in range(3)]
    >>> fractions[0]
    0.0
    >>> try:
    ...     while True:
    ...         fraction = next(gen)
    ... except StopIteration as done:
    ...     done.value.result.palette.shape
    (4, 2)
    """
    params = {
        "n_colors": int(n_colors),
        "standardize": bool(standardize),
        "dither": bool(dither),
        "random_state": random_state,
        "max_pixels": max_pixels,
        "data_range": check_data_range(data_range),
    }
    yield 0.0
    data, axis = source.stacked()
    if weights is not None and not isinstance(weights, np.ndarray):
        weights = np.asarray(getattr(weights, "data", weights))  # a layer's data
    gen = quantize_iter(
        data,
        n_colors,
        channel_axis=axis,
        alpha=False,
        standardize=standardize,
        dither=dither,
        random_state=random_state,
        max_pixels=max_pixels,
        weights=weights,
    )
    while True:
        try:
            fraction = next(gen)
        except StopIteration as stop:
            result: QuantizeResult = stop.value
            break
        yield 0.05 + 0.85 * float(fraction)
    lazy = _is_dask(data)
    report = (
        size_report(result)
        if lazy
        else size_report(result, data, data_range=params["data_range"], weights=weights)
    )
    what = "image" if len(source.spatial_shape) == 2 else "stack"
    notes = [
        f"{source.n_channels} channels quantised together: one palette of "
        f"{result.n_colors} {source.n_channels}-channel colours over the whole "
        f"{' x '.join(map(str, source.spatial_shape))} {what}."
    ]
    if standardize and result.channel_scale is not None:
        sigmas = ", ".join(f"{s:.4g}" for s in result.channel_scale)
        notes.append(
            f"Channels standardised for the fit (standard deviations {sigmas}); "
            "the palette is in the data's units."
        )
    if lazy:
        notes.append(
            "The channels are lazy (dask): counted chunk by chunk, and the "
            "quantised channels and classes are computed as they are drawn."
        )
    yield 1.0
    return ChannelOutcome(result, source, params, report, notes)
