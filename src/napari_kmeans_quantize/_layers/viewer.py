"""Adding result layers to a viewer, and the console entry point quantize_layer."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .outputs import (
    LABELS_ROLE,
    PLUGIN,
    STRIP_ROLE,
    layer_data_tuples,
    select_outputs,
)
from .sources import QuantizeOutcome, RunOptions, quantize_source_iter, source_info

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Layer


def add_or_update_layers(
    viewer: napari.Viewer | None, tuples: Sequence[tuple[Any, dict, str]]
) -> list[Layer]:
    """Add layer data tuples to `viewer`, updating same-named layers in place.

    A layer whose name, type, rgb flag, dimensionality and multiscale-ness match is
    updated (data, colormap, features, placement, ...); a same-named layer that
    does not match is replaced at the same position. A palette strip added or
    updated is made visible, and the other palette strips of the same source are
    hidden (they would sit under it). Updated layers move to the top of the list,
    in the order given, as new ones are appended. Without a viewer the layers are
    created and returned but not added anywhere.
    """
    return drain(add_layers_iter(viewer, tuples))


def add_layers_iter(
    viewer: napari.Viewer | None, tuples: Sequence[tuple[Any, dict, str]]
) -> Generator[Layer, None, list[Layer]]:
    """:func:`add_or_update_layers`, yielding each layer once it is in the viewer.

    napari takes about 0.1 s to add each layer (its visual, overlays and
    controls); the widget adds them one per event-loop turn, so that the viewer
    repaints in between.
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
            layer = existing
            # To the top, as a new layer would go: re-running k = 8 after k = 64
            # (a click in the Compare k table, say) must show k = 8, not leave it
            # under the k = 64 image.
            viewer.layers.move(viewer.layers.index(existing), len(viewer.layers))
        else:
            layer = Layer.create(data, dict(meta), layer_type)
            if viewer is not None:
                if existing is not None:
                    index = viewer.layers.index(existing)
                    viewer.layers.remove(existing)
                    viewer.layers.insert(index, layer)
                else:
                    viewer.layers.append(layer)
        if viewer is not None:
            if _is_strip(layer):
                _show_only_strip(viewer, layer)
            follow_ndisplay(viewer)
            _fit_to_view(layer, viewer.dims.ndisplay)
        layers.append(layer)
        yield layer
    return layers


def add_result_iter(
    viewer: napari.Viewer, tuples: Sequence[tuple[Any, dict, str]], outputs: str
) -> Generator[Layer, None, tuple[Layer, bool]]:
    """Add a run's layer data tuples for an `outputs` choice; select its labels.

    Yields each layer as it is added (see :func:`add_layers_iter`). A new palette
    strip sits beside the image, so the view is reset to bring it in. Returns the
    labels layer (it shows the palette colour under the cursor, even hidden) and
    whether it was updated in place (same settings as before).
    """
    chosen = select_outputs(tuples, outputs)
    existing = {lay.name for lay in viewer.layers}
    layers = yield from add_layers_iter(viewer, chosen)
    labels = next(lay for lay in layers if lay.metadata["role"] == LABELS_ROLE)
    if any(
        meta.get("metadata", {}).get("role") == STRIP_ROLE
        and meta["name"] not in existing
        for _, meta, _ in chosen
    ):
        viewer.reset_view()
    viewer.layers.selection.active = labels
    return labels, labels.name in existing


def drain(gen: Generator) -> Any:
    """Run a generator to its end; its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


#: ``metadata`` flag of a labels layer this plugin hid on the way into 3D
HIDDEN_IN_3D = "hidden in 3D"


class _NdisplayWatcher:
    """Refits the plugin's labels layers to the view when it goes 2D / 3D."""

    def __init__(self, viewer: napari.Viewer) -> None:
        import weakref

        self._layers = weakref.ref(viewer.layers)

    def __call__(self, event: Any) -> None:
        layers = self._layers()
        for layer in layers if layers is not None else ():
            _fit_to_view(layer, event.value)


def follow_ndisplay(viewer: napari.Viewer) -> None:
    """Hide the plugin's labels volumes in 3D; show them again back in 2D.

    Drawn in 3D, a volume of palette indices is an opaque block: label 0 (the
    most frequent colour, in a fluorescence volume its dark background) would
    wall off everything behind it. The quantised image, drawn like its source
    (``mip``, ...), shows the volume; the labels come back when the view returns
    to 2D (hover and saving work on them in either view). Labels of a 2-D
    image, a plane in a 3D view, stay as they are. Connects once per viewer.
    """
    emitter = viewer.dims.events.ndisplay
    if not any(isinstance(cb, _NdisplayWatcher) for cb in emitter.callbacks):
        emitter.connect(_NdisplayWatcher(viewer))


def _fit_to_view(layer: Layer, ndisplay: int) -> None:
    from napari.layers import Labels

    if not (is_output(layer) and isinstance(layer, Labels) and layer.ndim >= 3):
        return
    if ndisplay == 3 and layer.visible:
        layer.metadata[HIDDEN_IN_3D] = True
        layer.visible = False
    elif ndisplay == 2 and layer.metadata.pop(HIDDEN_IN_3D, False):
        layer.visible = True


def is_output(layer: Any) -> bool:
    """Whether `layer` is one of this plugin's outputs (never a source to quantise).

    Outputs carry ``metadata["plugin"] == PLUGIN``; a copy of one made by napari
    (Duplicate Layer) keeps its metadata and so stays an output too.
    """
    metadata = getattr(layer, "metadata", None) or {}
    return metadata.get("plugin") == PLUGIN


def remove_outputs(viewer: napari.Viewer, source_name: str) -> int:
    """Remove every output layer made from the source `source_name`; how many.

    The source itself is never touched.
    """
    doomed = [
        lay
        for lay in viewer.layers
        if is_output(lay) and lay.metadata.get("source") == source_name
    ]
    for lay in doomed:
        viewer.layers.remove(lay)
    return len(doomed)


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
    options = RunOptions(
        color_space=color_space,
        random_state=random_state,
        dither=dither,
        max_pixels=max_pixels,
        data_range=data_range,
        fixed_colors=fixed_colors,
        weights=weights,
    )
    gen = quantize_source_iter(source, n_colors, options)
    outcome: QuantizeOutcome = drain(gen)
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
