"""The job buttons, the progress bar and the status line, and their enabled state."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton

from .save import save_tooltip

#: The job buttons' texts, by job (a running job's button reads "Cancel").
BUTTON_TEXT = {
    "quantize": "Run",
    "sweep": "Compare k",
    "auto": "Auto k",
    "save": "Save...",
}
EMPTY_HINT = (
    "No image layer to quantise yet.\n"
    "Open an image (File > Open Files...) or a sample\n"
    "(File > Open Sample > K-means Colour Quantiser)."
)


class Controls:
    """The widget's job buttons and what they say while a job runs.

    ``run_row`` (Run, Save, Remove results) and ``compare_row`` (Compare k, Auto
    k) go under the run and sweep inputs; ``hint``, ``progress`` and ``status``
    wherever the widget lays them out.
    """

    def __init__(self) -> None:
        self.hint = Label(value=EMPTY_HINT)
        self.run_button = PushButton(text=BUTTON_TEXT["quantize"])
        self.save_button = PushButton(
            text=BUTTON_TEXT["save"],
            enabled=False,
            tooltip=save_tooltip(None),
        )
        self.remove_button = PushButton(
            text="Remove results",
            tooltip="Remove every result layer made from the layer in 'image layer'.",
        )
        self.compare_button = PushButton(
            text=BUTTON_TEXT["sweep"],
            tooltip=(
                "Quantise at every k listed and plot quality against indexed-PNG "
                "size; every k is kept, to look at without recomputing."
            ),
        )
        self.auto_button = PushButton(
            text=BUTTON_TEXT["auto"],
            tooltip=(
                "Pick the smallest k (of the listed ones and 256) that reaches the "
                "target, and add it."
            ),
        )
        self.progress = ProgressBar(min=0, max=100, value=0, visible=False)
        self.status = Label(value="")
        self.run_row = row(self.run_button, self.save_button, self.remove_button)
        self.compare_row = row(self.compare_button, self.auto_button)
        self._setup_native()

    def buttons(self) -> list[PushButton]:
        """The job buttons, in the order of BUTTON_TEXT."""
        return [
            self.run_button,
            self.compare_button,
            self.auto_button,
            self.save_button,
        ]

    def update_enabled(self, has_images: bool, can_run: bool, current: Any) -> None:
        """Enable the job buttons for an idle widget; Save's tooltip names the
        files the shown result `current` (outcome, source, name, or None) saves
        to."""
        self.hint.visible = not has_images
        for button in self.buttons():
            button.enabled = can_run
        self.save_button.enabled = current is not None
        self.save_button.tooltip = save_tooltip(current)
        self.run_button.tooltip = (
            "Quantise the selected image layer."
            if has_images
            else "Open an image layer first."
        )

    def set_running(self, job: str, running: bool, message: str = "") -> None:
        """While `job` runs its button reads Cancel and the others are disabled.

        Back to idle the caller enables them again (:meth:`update_enabled`).
        """
        self.remove_button.enabled = not running
        active = dict(zip(BUTTON_TEXT, self.buttons(), strict=True))[job]
        for name, button in zip(BUTTON_TEXT, self.buttons(), strict=True):
            button.text = (
                "Cancel" if running and button is active else BUTTON_TEXT[name]
            )
            button.enabled = button is active or not running
        self.progress.visible = running
        if running:
            self.progress.value = 0
            self.status.value = message

    def disable_all(self) -> None:
        for button in self.buttons():
            button.enabled = False

    def _setup_native(self) -> None:
        wrap_labels(self.hint, self.status)
        self.hint.native.setStyleSheet("color: #e0a030;")
        self.progress.native.setFormat("%p %")


def wrap_labels(*labels: Label, rich: bool = False) -> None:
    """Let the labels wrap their text and take the width they are given."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QSizePolicy

    for label in labels:
        label.native.setWordWrap(True)
        label.native.setSizePolicy(
            QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum
        )
        if rich:
            label.native.setTextFormat(Qt.TextFormat.RichText)


def row(*widgets) -> Container:
    """The widgets side by side, without margins."""
    box = Container(widgets=list(widgets), layout="horizontal", labels=False)
    box.margins = (0, 0, 0, 0)
    return box
