"""The widget's other sources: a layer's channels, one layer per channel, and
several layers sharing one palette; their jobs (run in the worker) and readouts."""

from __future__ import annotations

import html
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Select, SpinBox

from .._channel_layers import channel_colors, channel_layer_data, cluster_rows
from .._channels import (
    ChannelOutcome,
    ChannelSource,
    channel_source,
    guess_channel_axis,
    quantize_channels_iter,
)
from .._layers import (
    LABELS_ROLE,
    QuantizeOutcome,
    SourceInfo,
    layer_data_tuples,
    source_info,
)
from ..metrics import check_data_range, size_report
from ..shared import quantize_shared_iter
from .jobs import JobState

if TYPE_CHECKING:
    from .readout import Readout

#: What Run can quantise, by mode: the text the source box shows.
SOURCE_MODES = {
    "image": "the image layer",
    "axis": "channels inside the image layer",
    "layers": "channel layers (one per channel)",
    "shared": "layers sharing one palette",
}
#: The modes whose source is a multichannel one (quantised as C-vectors).
CHANNEL_MODES = ("axis", "layers")


class SourceChooser:
    """What Run quantises: the image layer alone (the default), the channels
    inside it, several single-channel layers as the channels of one source, or
    several layers with one palette shared between them.

    Parameters
    ----------
    layer_choices : callable
        magicgui's choices callback of the layer list (the viewer's Image layers
        that can be sources).
    """

    def __init__(self, layer_choices: Callable[[Any], list]) -> None:
        self.mode = ComboBox(
            label="source",
            choices=[(text, mode) for mode, text in SOURCE_MODES.items()],
            value="image",
            tooltip=(
                "The image layer alone; or its channels (a (z, c, y, x) or (c, y, "
                "x) layer: one palette of C-channel colours); or the layers chosen "
                "below as the channels of one image (what napari makes of a "
                "multichannel file); or the layers below quantised with one "
                "shared palette (frames, a series of photos)."
            ),
        )
        self.layers = Select(
            label="layers",
            choices=layer_choices,
            tooltip=(
                "The layers of the source (Ctrl-click to choose several), in the "
                "order of the layer list."
            ),
        )
        self.channel_axis = SpinBox(
            label="channel axis",
            min=0,
            max=31,
            value=0,
            tooltip=(
                "The axis of the image layer's data that holds the channels (1 "
                "for a (z, c, y, x) stack). It follows the chosen layer: an axis "
                "labelled 'c' or the shortest axis before the last two."
            ),
        )
        self.standardize = CheckBox(
            text="standardize channels",
            value=True,
            label="",
            tooltip=(
                "Fit on every channel divided by its standard deviation, so a "
                "16-bit channel does not outweigh a 12-bit one and every channel "
                "counts. Turn it off when the channels share one scale and their "
                "absolute differences matter. The palette stays in the data's "
                "units either way."
            ),
        )
        # room for about four layer names (it scrolls), not the dock's height;
        # fixed, or it takes the room of the rows a channel source hides
        from qtpy.QtWidgets import QSizePolicy

        self.layers.native.setFixedHeight(88)
        self.layers.native.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.widgets = [self.mode, self.layers, self.channel_axis, self.standardize]
        self.mode.changed.connect(self.update_visible)
        self.update_visible()

    @property
    def kind(self) -> str:
        """'image', 'axis', 'layers' or 'shared' (see ``SOURCE_MODES``)."""
        return str(self.mode.value)

    def update_visible(self, _value: Any = None) -> None:
        kind = self.kind
        self.layers.visible = kind in ("layers", "shared")
        self.channel_axis.visible = kind == "axis"
        self.standardize.visible = kind in CHANNEL_MODES

    def follow_layer(self, layer: Any) -> None:
        """Set the channel axis to the image layer's likely one."""
        axis = None if layer is None else guess_channel_axis(layer)
        if axis is not None:
            self.channel_axis.value = axis

    def chosen_layers(self) -> list:
        """The layers ticked in the list, in the order of the list."""
        chosen = list(self.layers.value or ())
        order = list(self.layers.choices)
        return sorted(chosen, key=lambda lay: order.index(lay))

    def channel_source(self, image_layer: Any) -> ChannelSource:
        """The multichannel source of the 'axis' or 'layers' mode (ValueError or
        TypeError, naming what is wrong, for a source that cannot be one)."""
        if self.kind == "axis":
            if image_layer is None:
                raise ValueError("Choose the image layer whose channels to quantise.")
            return channel_source(image_layer, int(self.channel_axis.value))
        chosen = self.chosen_layers()
        if len(chosen) < 2:
            raise ValueError(
                "Choose two or more channel layers in 'layers' (Ctrl-click), or "
                "set 'source' to the image layer."
            )
        return channel_source(chosen)

    def shared_sources(self) -> list[SourceInfo]:
        """Snapshots of the layers that share one palette (ValueError if fewer
        than two, or rgb mixed with single-channel layers)."""
        chosen = self.chosen_layers()
        if len(chosen) < 2:
            raise ValueError(
                "Choose two or more layers in 'layers' (Ctrl-click) to share one "
                "palette between them."
            )
        sources = [source_info(layer) for layer in chosen]
        if len({s.rgb for s in sources}) > 1:
            names = ", ".join(
                f"{s.name!r} ({'rgb' if s.rgb else 'grey'})" for s in sources
            )
            raise ValueError(
                f"One palette needs images of one kind; got {names}. Choose only "
                "RGB(A) layers or only single-channel layers."
            )
        multiscale = [s.name for s in sources if s.multiscale]
        if multiscale:
            raise ValueError(
                f"{', '.join(map(repr, multiscale))} is multiscale; a shared palette "
                "takes single-scale layers."
            )
        return sources


# --- the jobs (in the worker thread) -----------------------------------------------


def channel_job(
    source: ChannelSource, n_colors: int, **kwargs: Any
) -> Generator[float, None, tuple[ChannelOutcome, list]]:
    """Quantise a channel source and build its layer data (in the worker)."""
    outcome = yield from quantize_channels_iter(source, n_colors, **kwargs)
    return outcome, channel_layer_data(outcome)


def shared_job(
    sources: list[SourceInfo],
    n_colors: int,
    *,
    data_range: float | None = None,
    weights: Any = None,
    **options: Any,
) -> Generator[float, None, list[tuple[QuantizeOutcome, list]]]:
    """One palette for several layers (``quantize_shared``), with the layer data
    of each; their names carry "shared". `options` are Run's (colour space,
    seed, dither, sample size, locked colours), passed on to the engine."""
    if weights is not None:
        raise ValueError(
            "An importance layer weighs the pixels of one image; with a shared "
            "palette choose 'none' as importance."
        )
    data_range = check_data_range(data_range)
    images = [s.data if s.is_lazy else np.asarray(s.data) for s in sources]
    yield 0.0
    results = yield from quantize_shared_iter(
        images, n_colors, channel_axis=sources[0].channel_axis, **options
    )
    params = {
        **options,
        "n_colors": int(n_colors),
        "data_range": data_range,
        "shared_with": [s.name for s in sources],
    }
    names = ", ".join(repr(s.name) for s in sources)
    note = f"One palette of {results[0].n_colors} colours shared by {names}."
    done = []
    for source, image, result in zip(sources, images, results, strict=True):
        report = (
            size_report(result)
            if source.is_lazy
            else size_report(result, image, data_range=data_range)
        )
        outcome = QuantizeOutcome(result, params, None, report, [note])
        tuples = layer_data_tuples(outcome, source)
        image_name = tuples[0][1]["name"]
        renamed = [
            (
                data,
                {
                    **meta,
                    "name": meta["name"].replace(image_name, f"{image_name} shared", 1),
                },
                kind,
            )
            for data, meta, kind in tuples
        ]
        done.append((outcome, renamed))
    yield 1.0
    return done


# --- the readout of a channel result ---------------------------------------------


def show_channels(readout: Readout, outcome: ChannelOutcome, name: str) -> None:
    """Fill the readout with a channel result: one row per class, each channel
    value on its channel's colour (a heat strip of the channel means), then the
    pixels and share, and the figures."""
    from qtpy.QtGui import QColor

    from .readout import figures_html

    columns, rows = cluster_rows(outcome)
    result = outcome.result
    scaled = (
        "fitted on standardised channels"
        if outcome.params.get("standardize")
        else "fitted on the channels as they are"
    )
    readout.palette_title.value = (
        f"<b>Classes of {html.escape(repr(name))}</b>: {result.n_colors} classes of "
        f"{outcome.source.n_channels} channels ({scaled}), most frequent first; "
        "the row number is the label, the values are in the data's units."
    )
    header = ["colour", *columns[1:-2], "pixels", "share"]
    readout.swatches.value = {
        "data": [["", *row[1:-2], f"{row[-2]:,}", f"{row[-1]:.1f} %"] for row in rows],
        "index": [str(i) for i in range(len(rows))],
        "columns": header,
    }
    table = readout.swatches.native
    cells = channel_colors(outcome)
    for i, row in enumerate(rows):
        table.item(i, 0).setBackground(QColor(row[0]))
        for j in range(outcome.source.n_channels):
            r, g, b, a = cells[i, j]
            item = table.item(i, 1 + j)
            item.setBackground(QColor.fromRgbF(r * a, g * a, b * a))
            light = 0.3 * r + 0.59 * g + 0.11 * b > 0.5
            item.setForeground(QColor("black" if light else "white"))
    readout.fit_table()
    readout.figures.value = figures_html(
        outcome.report,
        outcome.source,
        peak_given=outcome.params.get("data_range") is not None,
    )
    readout.visible = True


def shared_title(outcome: QuantizeOutcome) -> str:
    """The line the readout adds under a shared palette's title."""
    names = outcome.params.get("shared_with") or []
    return (
        f"<br>This palette is <b>shared</b> by {len(names)} layers: "
        f"{html.escape(', '.join(names))}."
    )


# --- running them for the widget -----------------------------------------------------


@dataclass(frozen=True, eq=False)
class SourceDone:
    """What a source job returns: its kind ('channels' or 'shared') and payload."""

    kind: str
    payload: Any


def _tagged(kind: str, job: Callable, *args: Any, **kwargs: Any):
    payload = yield from job(*args, **kwargs)
    return SourceDone(kind, payload)


class SourceRuns:
    """Run for the chooser's channel and shared sources, on behalf of the widget.

    Starts the job in the widget's runner (as Run does), and when it returns
    adds the layers and fills the readout.
    """

    def __init__(self, widget: Any) -> None:
        self._w = widget
        self._shared: list[SourceInfo] = []  # the layers of the running shared job
        self._sweeps = (widget._compare_button, widget._auto_button)
        self._tips = [button.tooltip for button in self._sweeps]
        widget._in.sources.mode.changed.connect(lambda _=None: widget._update_enabled())

    def update_enabled(self) -> None:
        """Compare k and Auto k sweep the image layer alone: not offered for the
        other sources."""
        other = self._w._in.sources.kind != "image"
        for button, tip in zip(self._sweeps, self._tips, strict=True):
            if other:
                button.enabled = False
            button.tooltip = (
                "Compare k and Auto k sweep one image layer: set 'source' to the "
                "image layer."
                if other
                else tip
            )

    def source_name(self) -> str | None:
        """The name the results of the chosen channel layers carry (None for the
        other sources, whose results carry their layer's name)."""
        if self._w._in.sources.kind != "layers":
            return None
        try:
            return self._w._in.sources.channel_source(None).name
        except (TypeError, ValueError):
            return None

    def run(self):
        """Start the chosen source's job; the worker, or None (with a notification)."""
        from napari.utils.notifications import show_error, show_warning

        w, inputs = self._w, self._w._in
        if w.is_running or w._jobs.state is not JobState.IDLE:
            show_warning("A job is running or stopping; wait for it, or Cancel it.")
            return None
        ok, peak = inputs.parse_peak()
        k = int(inputs.n_colors.value)
        kind = inputs.sources.kind
        try:
            if not ok:
                raise ValueError(
                    "'PSNR peak' must be a number above 0 (e.g. 4095 for 12-bit "
                    f"data) or empty; got {inputs.psnr_peak.value!r}."
                )
            if kind == "shared":
                sources = inputs.sources.shared_sources()
                kwargs = {
                    **inputs.run_kwargs(sources[0]),
                    "max_pixels": inputs.fit_pixels.value,
                    **inputs.palette_control(sources[0], w._viewer.layers),
                }
                names = ", ".join(repr(s.name) for s in sources)
                message = f"Quantising {names} with one palette of {k} colours..."
                job, snapshot = shared_job, sources
                self._shared = sources
            else:
                snapshot = inputs.sources.channel_source(inputs.image.value)
                if inputs.locked.value.strip():
                    raise ValueError(
                        "'locked colours' are hex colours of RGB or grey images; "
                        "empty it for channels (in Python, quantize's "
                        "fixed_colors takes channel values)."
                    )
                importance = inputs.importance.value
                kwargs = {
                    "standardize": bool(inputs.sources.standardize.value),
                    "dither": bool(inputs.dither.value),
                    "random_state": int(inputs.seed.value),
                    "max_pixels": inputs.fit_pixels.value,
                    "data_range": peak,
                    "weights": None
                    if importance is None
                    else np.asarray(importance.data).copy(),
                }
                message = (
                    f"Quantising the {snapshot.n_channels} channels of "
                    f"{snapshot.name!r} into {k} classes..."
                )
                job = channel_job
        except (TypeError, ValueError) as exc:
            show_error(str(exc))
            return None
        first = snapshot[0] if kind == "shared" else snapshot
        args = ("shared" if kind == "shared" else "channels", job, snapshot, k)
        return w._start("quantize", _tagged, args, kwargs, message, first)

    def on_returned(self, done: SourceDone) -> Generator[None, None, None] | None:
        """The steps that add the returned layers (one per turn of the event
        loop, as Run's) and fill the readout (main thread)."""
        if self._w._jobs.closed:
            return None
        if done.kind == "channels":
            return self._show_channels(*done.payload)
        return self._show_shared(done.payload)

    def _show_channels(
        self, outcome: ChannelOutcome, tuples: list
    ) -> Generator[None, None, None]:
        from napari.utils.notifications import show_info, show_warning

        from .._channel_layers import MEANS_ROLE
        from .._layers import OUTPUTS, add_layers_iter

        w, source = self._w, outcome.source
        if len(source.layers) < len(source.layer_refs) or any(
            layer not in w._viewer.layers for layer in source.layers
        ):
            show_warning(
                f"A layer of {source.name!r} was removed while it was being "
                "quantised; no result layers were added."
            )
            w._status.value = f"{source.name!r} changed: result discarded."
            return
        image, strip, show_labels = OUTPUTS[w._in.outputs.value]
        chosen = []
        for data, meta, kind in tuples:
            role = meta["metadata"]["role"]
            if kind == "labels":
                chosen.append((data, {**meta, "visible": show_labels}, kind))
            elif (role == MEANS_ROLE and strip) or (role != MEANS_ROLE and image):
                chosen.append((data, meta, kind))
        new = not any(lay.name == chosen[-1][1]["name"] for lay in w._viewer.layers)
        layers = yield from add_layers_iter(w._viewer, chosen)
        labels = next(lay for lay in layers if lay.metadata["role"] == LABELS_ROLE)
        if new:
            w._viewer.reset_view()
        w._viewer.layers.selection.active = labels
        for note in outcome.notes:
            show_info(f"{source.name}: {note}")
        name = labels.name.removesuffix(" labels")
        show_channels(w._readout, outcome, name)
        # Save writes it as a labels TIFF + palette CSV; not the k browser's
        # result to come back to (its readout shows colour results only).
        w._current, w._ran = (outcome, source, name), None
        w._status.value = (
            f"Done in {w._jobs.waited():.2f} s: {outcome.result.n_colors} classes of "
            f"{source.n_channels} channels. Save writes the labels as a TIFF with "
            "the palette as a CSV beside it."
        )
        w._update_enabled()
        w._scroll_to(w._readout)

    def _show_shared(
        self, done: list[tuple[QuantizeOutcome, list]]
    ) -> Generator[None, None, None]:
        from napari.utils.notifications import show_info, show_warning

        from .._layers import add_result_iter

        w = self._w
        gone = [
            s.name
            for s in self._shared
            if s.layer is None or s.layer not in w._viewer.layers
        ]
        if gone:
            show_warning(
                f"{', '.join(map(repr, gone))} was removed while the palette was "
                "being fitted; no result layers were added."
            )
            w._status.value = "A layer was removed: the shared result was discarded."
            return
        outputs = w._in.outputs.value
        firsts = []
        for _, tuples in done:
            labels, _updated = yield from add_result_iter(w._viewer, tuples, outputs)
            firsts.append(labels)
        labels = firsts[0]
        w._viewer.reset_view()
        w._viewer.layers.selection.active = labels
        outcome = done[0][0]
        show_info(outcome.notes[0])
        name = labels.name.removesuffix(" labels")
        w._readout.show(outcome, w._jobs.source, name)
        w._readout.palette_title.value += shared_title(outcome)
        w._current = w._ran = (outcome, w._jobs.source, name)
        w._status.value = (
            f"Done in {w._jobs.waited():.2f} s: one palette of "
            f"{outcome.result.n_colors} colours for {len(done)} layers."
        )
        w._update_enabled()
        w._scroll_to(w._readout)
