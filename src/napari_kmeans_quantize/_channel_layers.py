"""The napari layers of a channel quantisation (:mod:`._channels`).

``"<channel> k=8"`` (one per channel)
    Image: that channel of the quantised stack, with the source channel's
    colormap, blending, contrast limits, gamma, opacity and 3D rendering,
    placed over the source.
``"<source> k=8 labels"``
    Labels: the class (palette index) of every pixel, drawn in the colour the
    quantised channels add up to; its ``features`` table has a row per class
    (``index, hex``, one column of channel values per channel named after the
    channel, ``count, share %``), so hovering shows a pixel's class.
``"<source> k=8 channel means"``
    Image: a heat strip right of the image, one row per class (most frequent on
    top), a first column in the class colour and then one column per channel in
    that channel's colormap; crisp cells (nearest interpolation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._channels import ChannelOutcome, channel_source, quantize_channels_iter
from ._layers import IMAGE_ROLE, LABELS_ROLE, PLUGIN, result_tags

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

__all__ = [
    "MEANS_ROLE",
    "channel_colors",
    "channel_layer_data",
    "channel_limits",
    "class_colors",
    "cluster_rows",
    "quantize_channels",
]

#: ``metadata["role"]`` of the heat strip of channel means.
MEANS_ROLE = "channel means"
#: The heat strip is as tall as the image; its columns are 1 / MEANS_ASPECT of that
#: wide (narrower when there are many channels).
MEANS_ASPECT = 12


def channel_limits(outcome: ChannelOutcome) -> list[tuple[float, float]]:
    """The contrast limits of each quantised channel.

    Separate channel layers keep theirs; the channels of one layer (which share
    one range in the source) get the span of their palette values, so a 12-bit
    channel beside a 16-bit one is not drawn dark.
    """
    source, palette = outcome.source, outcome.result.palette
    if source.channel_axis is None:
        return [c.contrast_limits for c in source.channels]
    limits = []
    for j in range(palette.shape[1]):
        lo, hi = float(palette[:, j].min()), float(palette[:, j].max())
        limits.append((lo, hi if hi > lo else lo + 1.0))
    return limits


def channel_colors(outcome: ChannelOutcome) -> np.ndarray:
    """(k, C, 4) RGBA floats: each class's value in each channel's colormap."""
    palette = outcome.result.palette.astype(np.float64)
    cells = np.empty((len(palette), palette.shape[1], 4))
    limits = channel_limits(outcome)
    for j, (channel, (lo, hi)) in enumerate(
        zip(outcome.source.channels, limits, strict=True)
    ):
        values = np.clip((palette[:, j] - lo) / (hi - lo or 1.0), 0.0, 1.0)
        mapped = channel.colormap.map(values**channel.gamma)
        cells[:, j] = np.asarray(mapped, dtype=np.float64).reshape(-1, 4)
    return cells


def class_colors(outcome: ChannelOutcome) -> np.ndarray:
    """(k, 4) RGBA: the colour the quantised channels add up to for each class
    (additive blending, as napari draws the channel layers)."""
    cells = channel_colors(outcome)
    rgb = np.clip((cells[..., :3] * cells[..., 3:]).sum(axis=1), 0.0, 1.0)
    return np.column_stack([rgb, np.ones(len(rgb))])


def _hex(rgba: np.ndarray) -> str:
    return "#" + "".join(f"{round(float(v) * 255):02x}" for v in rgba[:3])


def cluster_rows(outcome: ChannelOutcome) -> tuple[list[str], list[list[Any]]]:
    """The per-class table: column names and one row per class.

    Columns: ``hex`` (the class colour), one per channel (its palette value),
    ``pixels``, ``share %``; rows most frequent first (row i is label i).
    """
    result = outcome.result
    total = max(int(result.counts.sum()), 1)
    hexes = [_hex(c) for c in class_colors(outcome)]
    columns = ["hex", *(c.name for c in outcome.source.channels), "pixels", "share %"]
    rows = [
        [
            hexes[i],
            *(_number(v) for v in result.palette[i]),
            int(result.counts[i]),
            round(100.0 * int(result.counts[i]) / total, 2),
        ]
        for i in range(result.n_colors)
    ]
    return columns, rows


def _number(value: Any) -> int | float:
    return int(value) if np.issubdtype(type(value), np.integer) else float(value)


def channel_layer_data(outcome: ChannelOutcome) -> list[tuple[Any, dict, str]]:
    """The layer data tuples of a channel quantisation.

    In this order: one Image per channel, the Labels of classes (with its
    ``features`` table), the heat strip of channel means. Pure (builds no
    layer), so it can run in the widget's worker.
    """
    import pandas as pd
    from napari.utils.colormaps import DirectLabelColormap

    result, source = outcome.result, outcome.source
    params = outcome.params
    tags = result_tags(
        params["n_colors"],
        dither=params["dither"],
        max_pixels=params["max_pixels"],
        random_state=params["random_state"],
    )
    if not params["standardize"]:
        tags = (*tags, "unscaled")
    base = " ".join((source.name, *tags))
    metadata = {
        "plugin": PLUGIN,
        "source": source.name,
        "channel_names": [c.name for c in source.channels],
        "n_colors": result.n_colors,
        "n_colors_requested": params["n_colors"],
        "standardize": params["standardize"],
        "channel_scale": None
        if result.channel_scale is None
        else result.channel_scale.copy(),
        "palette": result.palette.copy(),
        "counts": result.counts.copy(),
        "size_report": None if outcome.report is None else outcome.report.as_dict(),
        "notes": list(outcome.notes),
    }
    placement = {
        k: np.copy(v) if k in ("scale", "translate") else v
        for k, v in source.placement.items()
    }
    channels_last = np.moveaxis(result.image, result.channel_axis, -1)
    tuples = []
    for j, (channel, limits) in enumerate(
        zip(source.channels, channel_limits(outcome), strict=True)
    ):
        meta = {
            "name": " ".join((channel.name, *tags)),
            "colormap": channel.colormap,
            "contrast_limits": list(limits),
            "gamma": channel.gamma,
            "blending": channel.blending,
            "opacity": channel.opacity,
            "rendering": channel.rendering,
            "metadata": {**metadata, "role": IMAGE_ROLE, "channel": j},
            **placement,
        }
        tuples.append((channels_last[..., j], meta, "image"))

    colors = class_colors(outcome)
    hexes = [_hex(c) for c in colors]
    features: dict[str, Any] = {"index": np.arange(result.n_colors), "hex": hexes}
    columns, _ = cluster_rows(outcome)
    for j, name in enumerate(columns[1:-2]):
        features[_unique(name, features)] = result.palette[:, j]
    features["count"] = result.counts
    total = max(int(result.counts.sum()), 1)
    features["share %"] = np.round(100.0 * result.counts / total, 2)
    color_dict: dict[int | None, Any] = {
        i: tuple(float(v) for v in c) for i, c in enumerate(colors)
    }
    color_dict[None] = "transparent"
    labels_colormap = DirectLabelColormap(color_dict=color_dict)
    labels_colormap.map(np.zeros(1, dtype=np.asarray(result.labels[:0]).dtype))
    tuples.append(
        (
            result.labels,
            {
                "name": f"{base} labels",
                "colormap": labels_colormap,
                "features": pd.DataFrame(features),
                "metadata": {**metadata, "role": LABELS_ROLE},
                **placement,
            },
            "labels",
        )
    )
    strip, strip_meta = _means_strip(outcome, colors)
    strip_meta.update(
        {
            "name": f"{base} channel means",
            "metadata": {
                **metadata,
                "role": MEANS_ROLE,
                "description": "rows: classes, most frequent on top; columns: the "
                "class colour, then each channel in its colormap",
            },
        }
    )
    tuples.append((strip, strip_meta, "image"))
    return tuples


def _unique(name: str, taken: dict) -> str:
    while name in taken:
        name += " "
    return name


def _means_strip(
    outcome: ChannelOutcome, colors: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """A (k, 1 + C, 3) RGB heat strip and the placement right of the image."""
    cells = channel_colors(outcome)
    rgb = np.concatenate([colors[:, None, :3], cells[..., :3] * cells[..., 3:]], 1)
    k, n_cols = rgb.shape[:2]
    height, width = (float(n) for n in outcome.source.spatial_shape[-2:])
    row_h = height / k
    col_w = height / max(MEANS_ASPECT, 3 * n_cols)
    gap = height / 32
    scale = outcome.source.placement["scale"][-2:]
    translate = outcome.source.placement["translate"][-2:]
    # strip cell (r, c) centre -> image data coordinate; edges meet at -0.5
    offset = np.array([-0.5 + row_h / 2, width - 0.5 + gap + col_w / 2])
    meta = {
        "rgb": True,
        "contrast_limits": [0.0, 1.0],
        "scale": scale * np.array([row_h, col_w]),
        "translate": translate + scale * offset,
        "units": outcome.source.placement["units"][-2:],
        "axis_labels": outcome.source.placement["axis_labels"][-2:],
        "interpolation2d": "nearest",
        "interpolation3d": "nearest",
    }
    return rgb.astype(np.float32), meta


# --- the console entry point ------------------------------------------------------


def quantize_channels(
    layers: Any | Sequence[Any],
    n_colors: int = 8,
    *,
    viewer: napari.Viewer | None = None,
    channel_axis: int | None = None,
    standardize: bool = True,
    **options: Any,
) -> list[Layer]:
    """Quantise a multichannel source and add its channel, class and means layers.

    Runs synchronously. `layers` and `channel_axis` are those of
    :func:`channel_source`; `standardize` and `options` (``dither``,
    ``random_state``, ``max_pixels``, ``data_range``, ``weights``) those of
    :func:`quantize_channels_iter`. Layers of an earlier run with the same
    settings are updated in place. The source layers are never modified.

    Returns
    -------
    list of napari.layers.Layer
        The quantised channels, the Labels of classes and the heat strip.

    Raises
    ------
    TypeError, ValueError
        For a bad source (see :func:`channel_source`) or options ``quantize``
        refuses.

    Examples
    --------
    In napari's console, with two channel layers::

        quantize_channels([viewer.layers["nuclei"], viewer.layers["membranes"]], 8)
    """
    from ._layers import add_or_update_layers

    source = channel_source(layers, channel_axis)
    run = quantize_channels_iter(source, n_colors, standardize=standardize, **options)
    try:
        while True:
            next(run)
    except StopIteration as done:
        outcome: ChannelOutcome = done.value
    if viewer is None:
        import napari

        viewer = napari.current_viewer()
    return add_or_update_layers(viewer, channel_layer_data(outcome))
