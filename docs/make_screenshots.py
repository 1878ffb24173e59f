"""Make the README screenshots: napari with the widget docked, after real runs.

Run from the repository root on a machine with a display (or under Xvfb)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py

It writes ``docs/widget.png`` (a run on the astronaut sample at k = 8: the three new
layers and the palette readout) and ``docs/sweep.png`` (Compare k over k = 2..256:
the quality-against-size plot and the table) and ``docs/palette-control.png`` (the
paint-and-rerun loop: the face painted into a Labels layer chosen as importance, white
locked, and the run again). Nothing is mocked: the widget is docked through the
plugin's manifest and its buttons do the work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication
from skimage import data

DOCS = Path(__file__).resolve().parent
SIZE = (1500, 900)


def _wait(widget, timeout: float = 300.0) -> None:
    """Let the Qt event loop run until the widget's worker has finished."""
    app = QApplication.instance()
    start = time.monotonic()
    while widget.is_running:
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            sys.exit(f"the widget's run did not finish within {timeout} s")
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)


def _save(viewer: napari.Viewer, name: str) -> None:
    from skimage.io import imsave

    shot = viewer.screenshot(canvas_only=False, flash=False)
    imsave(DOCS / name, shot, check_contrast=False)
    print(f"wrote {DOCS / name} ({shot.shape[1]} x {shot.shape[0]})")


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    viewer.add_image(data.astronaut(), name="astronaut")
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-kmeans-quantize", "K-means Quantise"
    )

    widget._n_colors.value = 8
    widget.run()
    _wait(widget)
    viewer.layers.selection.active = viewer.layers["astronaut (k=8) labels"]
    viewer.reset_view()
    _save(viewer, "widget.png")

    widget.compare()
    _wait(widget)
    _save(viewer, "sweep.png")

    # Paint the face into a Labels layer (as a brush would), make it the
    # importance map, lock white, and run again.
    import numpy as np

    shape = viewer.layers["astronaut"].data.shape[:2]
    y, x = np.ogrid[: shape[0], : shape[1]]
    face = ((y - 122) / 56) ** 2 + ((x - 222) / 44) ** 2 <= 1
    paint = viewer.add_labels(np.zeros(shape, dtype=np.uint8), name="importance")
    paint.data[face] = 1
    paint.refresh()
    paint.opacity = 0.9
    paint.contour = 3  # the painted region outlined over the result
    paint.mode = "paint"
    widget._image.value = viewer.layers["astronaut"]
    widget._importance.value = paint
    widget._locked.value = "#ffffff"
    widget.run()
    _wait(widget)
    viewer.layers.move(viewer.layers.index(paint), len(viewer.layers))
    viewer.layers.selection.active = paint
    _save(viewer, "palette-control.png")
    viewer.close()


if __name__ == "__main__":
    main()
