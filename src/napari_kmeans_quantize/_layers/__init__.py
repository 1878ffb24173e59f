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
these layers in place; another k or any other option gets its own layers. The
parameters (k, seed, colour space, ...) and the palette are recorded in each layer's ``metadata``.

The work is split by concern: :mod:`.sources` (the source layer's snapshot and the
runs on it, in the widget's worker), :mod:`.outputs` (the layer data tuples: names,
colours, features, the strip) and :mod:`.viewer` (adding them to a viewer, and
:func:`quantize_layer`).
"""

from __future__ import annotations

from .outputs import (
    IMAGE_ROLE,
    LABELS_ROLE,
    ORDER_NOTE,
    OUTPUTS,
    PLUGIN,
    STRIP_ASPECT,
    STRIP_ROLE,
    image_layer_meta,
    layer_data_tuples,
    layer_names,
    palette_hexes,
    palette_strip,
    result_tags,
    select_outputs,
    with_layer_data,
)
from .sources import (
    DISPLAY_EAGER_PIXELS,
    MAX_CHANNELS,
    MAX_PIXELS_IN_MEMORY,
    MULTISCALE_FIT_PIXELS,
    QuantizeOutcome,
    RunOptions,
    SourceInfo,
    channel_note,
    computed_in_worker,
    display_levels,
    fit_level,
    likely_channel_axis,
    quantize_source_iter,
    source_info,
    sweep_source_iter,
    weight_array,
)
from .viewer import (
    add_layers_iter,
    add_or_update_layers,
    add_result_iter,
    drain,
    is_output,
    quantize_layer,
    remove_outputs,
)

__all__ = [
    "DISPLAY_EAGER_PIXELS",
    "IMAGE_ROLE",
    "LABELS_ROLE",
    "MAX_CHANNELS",
    "MAX_PIXELS_IN_MEMORY",
    "MULTISCALE_FIT_PIXELS",
    "ORDER_NOTE",
    "OUTPUTS",
    "PLUGIN",
    "STRIP_ASPECT",
    "STRIP_ROLE",
    "QuantizeOutcome",
    "RunOptions",
    "SourceInfo",
    "add_layers_iter",
    "add_or_update_layers",
    "add_result_iter",
    "channel_note",
    "computed_in_worker",
    "display_levels",
    "drain",
    "fit_level",
    "image_layer_meta",
    "is_output",
    "layer_data_tuples",
    "layer_names",
    "likely_channel_axis",
    "palette_hexes",
    "palette_strip",
    "quantize_layer",
    "quantize_source_iter",
    "remove_outputs",
    "result_tags",
    "select_outputs",
    "source_info",
    "sweep_source_iter",
    "weight_array",
    "with_layer_data",
]
