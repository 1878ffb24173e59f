"""From a quantisation outcome to napari layer data tuples (pure: no viewer).

Names, display colours, the labels' colormap and features, the palette strip and
the placement that overlays the source; see :mod:`napari_kmeans_quantize._layers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..quantize import QuantizeResult
from .sources import QuantizeOutcome, SourceInfo, source_info

if TYPE_CHECKING:
    from napari.layers import Image

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
    strip, strip_meta = palette_strip(result, source)
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


def palette_strip(
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


def palette_hexes(palette: np.ndarray, source: SourceInfo) -> list[str]:
    """The hex colour napari draws for each palette entry of `source`'s result."""
    return [_hex(c) for c in _display_colors(palette, source)]


def _hex(rgba: np.ndarray) -> str:
    r, g, b = (round(float(v) * 255) for v in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def with_layer_data(source: SourceInfo, func, *args: Any, **kwargs: Any):
    """Run the progress generator `func`, then build its layer data tuples.

    The widget runs this in its worker, so that the colormaps, features and palette
    strip are built there and the main thread only adds the layers. Returns
    ``(outcome, tuples)``.
    """
    outcome = yield from func(*args, **kwargs)
    return outcome, layer_data_tuples(outcome, source)
