"""The widget's inputs: the controls, their rules, and what a job is asked to do."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)

from .._layers import is_output
from .source_chooser import CHANNEL_MODES, SourceChooser

if TYPE_CHECKING:
    from napari.layers import Image

    from .._layers import SourceInfo

COLOR_SPACES = [
    ("RGB (best PSNR)", "rgb"),
    ("CIELAB (perceptual)", "lab"),
    ("Oklab (perceptual)", "oklab"),
]
COLOR_SPACE_TOOLTIP = (
    "Space in which k-means clusters the colours. RGB minimises the "
    "squared RGB error (highest PSNR); CIELAB and Oklab minimise a "
    "perceptual error (lower mean CIEDE2000). RGB(A) images only."
)
FIT_PIXELS = [
    ("all pixels (exact)", None),
    ("1,000,000 sampled pixels", 1_000_000),
    ("250,000 sampled pixels", 250_000),
    ("100,000 sampled pixels", 100_000),
    ("20,000 sampled pixels", 20_000),
]
FIT_PIXELS_TOOLTIP = (
    "Fit the palette on every pixel (exact, the default) or on a random "
    "sample (faster on very large images). Every pixel is mapped "
    "either way."
)
DEFAULT_SWEEP_KS = "2, 4, 8, 16, 32, 64, 128, 256"
TARGETS = [
    ("mean CIEDE2000 at most", "ciede2000"),
    ("PSNR at least (dB)", "psnr"),
]
TARGET_TOOLTIP = (
    "Auto k picks the smallest k whose quantisation reaches this "
    "target. Mean CIEDE2000 2.3 is about one just-noticeable difference. "
    "It follows the data (PSNR for single-channel layers) until you "
    "choose one."
)
TARGET_DEFAULTS = {"ciede2000": 2.3, "psnr": 30.0}
OUTPUT_CHOICES = [
    ("image + palette strip (labels hidden)", "image+strip"),
    ("image only (labels hidden)", "image"),
    ("labels + palette strip", "labels+strip"),
    ("image, labels and strip, all shown", "all"),
]
OUTPUTS_TOOLTIP = (
    "Which result layers go on the canvas. The labels layer is always "
    "added (it looks exactly like the quantised image; selected, it "
    "shows each pixel's palette colour on hover, and it is what saves "
    "as an indexed PNG), hidden unless chosen here."
)
PSNR_PEAK_TOOLTIP = (
    "The peak value of the PSNR (scikit-image's data_range), for Run's readout, "
    "Compare k and Auto k; for integer RGB(A) images also the value read as full "
    "intensity for mean CIEDE2000. Empty or 0 = automatic: the dtype's range for "
    "8- and 16-bit integers (255 for uint8, 65535 for uint16), 1 for floats in "
    "[0, 1], the data's own max - min for other floats and for 32- and 64-bit "
    "integers. 12-bit camera data stored as uint16 needs 4095: with 65535 every "
    "PSNR reads about 24 dB too high, and Auto k with a PSNR target picks too "
    "small a k. Only the figures change, never the palette."
)
#: the advanced options, shown by the "advanced options" box
ADVANCED = ("fit_pixels", "seed", "dither", "outputs", "psnr_peak")


def _drop_down(label: str, choices: list, value: Any, tooltip: str) -> ComboBox:
    """A drop-down of fixed (text, value) choices."""
    return ComboBox(label=label, choices=choices, value=value, tooltip=tooltip)


class Inputs:
    """The input controls of the widget, in two boxes (`run_box`, `sweep_box`).

    Parameters
    ----------
    image_choices : callable
        magicgui's choices callback of the image-layer box.
    """

    def __init__(
        self,
        image_choices: Callable[[Any], list],
        importance_choices: Callable[[Any], list] | None = None,
    ) -> None:
        self.image = ComboBox(
            label="image layer",
            choices=image_choices,
            tooltip=(
                "The Image layer to quantise (follows the selected layer). The "
                "plugin's own results are not offered: they are not sources."
            ),
        )
        self.n_colors = SpinBox(
            label="colours (k)",
            min=2,
            max=256,
            value=16,
            tooltip="Number of palette colours k (2 to 256).",
        )
        self.color_space = _drop_down(
            "colour space", COLOR_SPACES, "rgb", COLOR_SPACE_TOOLTIP
        )
        self.locked = LineEdit(
            label="locked colours",
            value="",
            tooltip=(
                "Colours the palette must hold exactly, as hex values separated by "
                "commas (e.g. #ffffff, #000000); click a palette swatch below to add "
                "its colour. k-means moves only the other entries."
            ),
        )
        self.pick_color = PushButton(
            text="pick a colour to lock...",
            label="",
            tooltip="Choose a colour in a colour dialog and add it to 'locked colours'.",
        )
        self.pick_color.changed.connect(lambda _=None: self.pick_locked_color())
        self.importance = ComboBox(
            label="importance",
            choices=importance_choices or (lambda _w=None: [("none", None)]),
            value=None,
            tooltip=(
                "A Labels or Image layer of the image's shape whose values weigh "
                "each pixel in the fit (label value = weight; 0 = ignored in the "
                "fit, still mapped). Paint a Labels layer and press Run again."
            ),
        )
        self.show_advanced = CheckBox(text="advanced options", value=False, label="")
        self.fit_pixels = _drop_down(
            "fit palette on", FIT_PIXELS, None, FIT_PIXELS_TOOLTIP
        )
        self.seed = SpinBox(
            label="random seed",
            min=0,
            max=2**31 - 1,
            value=0,
            tooltip=(
                "Seed of the random pixel sample when 'fit palette on' samples "
                "pixels: the same seed then gives the same palette. Not used when "
                "the palette is fitted on all pixels (the result does not depend "
                "on it then)."
            ),
        )
        self.dither = CheckBox(
            text="dither (Floyd-Steinberg)",
            value=False,
            label="",
            tooltip="Spread the colour error to neighbouring pixels; same palette.",
        )
        self.outputs = _drop_down(
            "add layers", OUTPUT_CHOICES, "image+strip", OUTPUTS_TOOLTIP
        )
        self.psnr_peak = LineEdit(
            label="PSNR peak", value="", tooltip=PSNR_PEAK_TOOLTIP
        )
        self.sweep_ks = LineEdit(
            label="compare k",
            value=DEFAULT_SWEEP_KS,
            tooltip=(
                "Palette sizes that Compare k quantises (2 to 256, separated by "
                "commas or spaces)."
            ),
        )
        self.target = _drop_down("auto k target", TARGETS, "ciede2000", TARGET_TOOLTIP)
        self.target_value = FloatSpinBox(
            label="target value",
            min=0.0,
            max=100.0,
            step=0.1,
            value=TARGET_DEFAULTS["ciede2000"],
            tooltip="Mean CIEDE2000 at most this, or PSNR (dB) at least this.",
        )
        self.sources = SourceChooser(image_choices)
        self.target_chosen = False  # set once the user picks an auto-k target
        self._setting_target = False
        self.run_box = Container(
            widgets=[
                self.image,
                *self.sources.widgets,
                self.n_colors,
                self.color_space,
                self.locked,
                self.pick_color,
                self.importance,
                self.show_advanced,
                *(getattr(self, name) for name in ADVANCED),
            ],
            labels=True,
        )
        self.sweep_box = Container(
            widgets=[self.sweep_ks, self.target, self.target_value], labels=True
        )
        for box in (self.run_box, self.sweep_box):
            box.margins = (0, 0, 0, 0)
        self.on_show_advanced(False)
        self.sources.mode.changed.connect(self.follow_source)
        self.sources.mode.changed.connect(lambda _=None: self.update_enabled())
        self.follow_source()
        self.target.changed.connect(self._on_target_changed)
        self.show_advanced.changed.connect(self.on_show_advanced)
        self._setup_peak_field()

    # --- what a job is asked to do --------------------------------------------------

    def run_kwargs(self, source: SourceInfo) -> dict[str, Any]:
        """The options of Run, Compare k and Auto k for `source`."""
        return {
            "color_space": self.color_space.value if source.rgb else "rgb",
            "random_state": int(self.seed.value),
            "dither": bool(self.dither.value),
            "data_range": self.parse_peak()[1],
        }

    def palette_control(self, source: SourceInfo, layers: Any) -> dict[str, Any]:
        """The locked colours and importance map of a run (a snapshot of the
        importance layer's data as it is now); ValueError for bad hex values."""
        from .._layers import weight_array
        from .._palette_control import colors_for_image, parse_hex_colors

        control: dict[str, Any] = {"fixed_colors": None, "weights": None}
        text = self.locked.value.strip()
        if text:
            data = source.levels[0]
            axis = source.channel_axis
            n_channels = 1 if axis is None else data.shape[axis]
            control["fixed_colors"] = colors_for_image(
                parse_hex_colors(text), data.dtype, n_channels
            )
        layer = self.importance.value
        if layer is not None and layer in layers:
            control["weights"] = weight_array(layer).copy()
        return control

    def pick_locked_color(self) -> str | None:
        """Ask for a colour (a colour dialog) and lock it; the hex value, or None
        if the dialog was cancelled."""
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QColorDialog

        current = [c.strip() for c in self.locked.value.split(",") if c.strip()]
        start = QColor(current[-1]) if current else QColor("#ffffff")
        color = QColorDialog.getColor(
            start, self.locked.native, "Lock a colour of the palette"
        )
        if not color.isValid():
            return None
        self.lock_color(color.name())
        return color.name()

    def lock_color(self, hex_color: str) -> None:
        """Add a colour to the locked colours (once)."""
        current = [c.strip() for c in self.locked.value.split(",") if c.strip()]
        if hex_color.lower() not in (c.lower() for c in current):
            self.locked.value = ", ".join([*current, hex_color])

    def parse_peak(self) -> tuple[bool, float | None]:
        """Whether 'PSNR peak' is valid, and its value (None: automatic)."""
        text = str(self.psnr_peak.value).strip()
        if not text:
            return True, None
        try:
            value = float(text)
        except ValueError:
            return False, None
        if not math.isfinite(value) or value < 0:
            return False, None
        return True, (value if value > 0 else None)

    def parse_ks(self) -> tuple[int, ...] | None:
        """The 'compare k' values, or None (with a notification) if invalid."""
        from napari.utils.notifications import show_error

        text = str(self.sweep_ks.value).replace(",", " ").split()
        try:
            ks = sorted({int(word) for word in text})
        except ValueError:
            ks = []
        if not ks or not all(2 <= k <= 256 for k in ks):
            show_error(
                f"'compare k' must list palette sizes from 2 to 256, e.g. "
                f"{DEFAULT_SWEEP_KS!r}; got {self.sweep_ks.value!r}."
            )
            return None
        return tuple(ks)

    def target_kwargs(self) -> dict[str, float]:
        value = float(self.target_value.value)
        if self.target.value == "psnr":
            return {"min_psnr": value}
        return {"max_ciede2000": value}

    def target_text(self) -> str:
        value = float(self.target_value.value)
        if self.target.value == "psnr":
            return f"PSNR >= {value:g} dB"
        return f"mean CIEDE2000 <= {value:g}"

    # --- rules between the controls --------------------------------------------------

    def follow_target(self, layer: Any) -> None:
        """Auto k's default target follows the data: PSNR for one channel.

        Mean CIEDE2000 needs colours; once the user picks a target it stays.
        The channel axis follows the layer too.
        """
        self.sources.follow_layer(layer)
        if layer is None or self.target_chosen:
            return
        target = "ciede2000" if bool(getattr(layer, "rgb", True)) else "psnr"
        if self.target.value != target:
            self._setting_target = True
            try:
                self.target.value = target
            finally:
                self._setting_target = False

    def on_show_advanced(self, value: bool) -> None:
        for name in ADVANCED:
            getattr(self, name).visible = bool(value)

    def follow_source(self, _value: Any = None) -> None:
        """Show only the controls that apply to the chosen source.

        Hidden, not greyed, as the source box hides its own rows: a channel
        source has no colour space and no hex colours, the chosen channel layers
        replace the image layer, and a shared palette takes no importance map.
        What the chosen layer does not allow is greyed (:meth:`update_enabled`).
        """
        kind = self.sources.kind
        channels = kind in CHANNEL_MODES
        self.image.visible = kind != "layers"
        self.color_space.visible = not channels
        self.locked.visible = self.pick_color.visible = not channels
        self.importance.visible = kind != "shared"

    def set_running(self, running: bool) -> None:
        """Lock every input while a job runs."""
        for box in (self.run_box, self.sweep_box):
            for widget in box:
                if widget is not self.show_advanced:
                    widget.enabled = not running

    def update_enabled(self) -> None:
        """Enable what the chosen layer allows (when no job runs)."""
        layer = self.image.value
        kind = self.sources.kind
        rgb = bool(getattr(layer, "rgb", True)) and kind not in CHANNEL_MODES
        self.locked.enabled = self.pick_color.enabled = kind not in CHANNEL_MODES
        self.importance.enabled = kind != "shared"
        self.color_space.enabled = rgb
        # the seed only drives the pixel sample of 'fit palette on'
        self.seed.enabled = self.fit_pixels.value is not None
        if not rgb:
            self.color_space.value = "rgb"
            self.color_space.tooltip = (
                "Single-channel images are quantised by intensity; the perceptual "
                "colour spaces need an RGB(A) layer."
            )

    def follow_active(self, layer: Any) -> None:
        """The image box follows the selected layer, never onto an output."""
        from napari.layers import Image

        if (
            isinstance(layer, Image)
            and not is_output(layer)
            and layer in self.image.choices
        ):
            self.image.value = layer

    def _on_target_changed(self, value: str) -> None:
        self.target_value.value = TARGET_DEFAULTS[value]
        if not self._setting_target:
            self.target_chosen = True  # the user's choice: no longer follows data

    def _setup_peak_field(self) -> None:
        # 'PSNR peak': only non-negative numbers can be typed (C locale, as Python
        # parses them); what is left (e.g. "1e") is refused with a message on Run.
        from qtpy.QtCore import QLocale
        from qtpy.QtGui import QDoubleValidator

        peak = self.psnr_peak.native
        peak.setPlaceholderText("auto")
        validator = QDoubleValidator(0.0, 1e300, 6, peak)
        validator.setLocale(QLocale.c())
        peak.setValidator(validator)


def image_layers(viewer: Any) -> list[tuple[str, Image]]:
    """The viewer's Image layers that can be sources (the plugin's outputs cannot)."""
    from napari.layers import Image

    return [
        (layer.name, layer)
        for layer in viewer.layers
        if isinstance(layer, Image) and not is_output(layer)
    ]


def importance_layers(viewer: Any) -> list[tuple[str, Any]]:
    """The layers that can weigh a run's pixels: Labels layers (label value =
    weight) and single-channel Image layers that are not the plugin's outputs."""
    from napari.layers import Image, Labels

    return [("none", None)] + [
        (layer.name, layer)
        for layer in viewer.layers
        if not is_output(layer)
        and (isinstance(layer, Labels) or (isinstance(layer, Image) and not layer.rgb))
    ]
