"""Make the README screenshots: napari with the widget docked, after real runs.

Run from the repository root on a machine with a display (or under Xvfb)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py [photo volume ...]

It writes ``docs/widget.png`` (a run on the astronaut sample at k = 8: the new
layers and the palette readout), ``docs/sweep.png`` (Compare k over k = 2..256,
browsed to k = 16: the preview layer, the plot and the table),
``docs/microscopy.png`` (two additive channels unmixed from scikit-image's
immunohistochemistry sample, one quantised at k = 6: the result keeps its
channel's colormap and blending) and ``docs/volume.png`` (a generated volume
quantised at k = 8, in 3D) and ``docs/palette-control.png`` (the paint-and-rerun
loop: the face painted into a Labels layer chosen as importance, white locked, and
the run again), and ``docs/channels-2d.png`` / ``docs/channels-3d.png`` (a generated
two-channel stand-in for scikit-image's cells3d, 12-bit nuclei and 16-bit
membranes, quantised as two channels at k = 8 from its two channel layers, in 2D
and in 3D). Nothing is mocked: the widget is docked through the
plugin's manifest and its buttons do the work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
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


def _save_3d(
    viewer: napari.Viewer, widget, name: str, angles: tuple, zoom: float = 1.0
) -> None:
    """Turn to 3D at camera `angles` (and `zoom` times the fitted zoom), save the
    screenshot `name`, close the viewer."""
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.camera.angles = angles
    viewer.camera.zoom *= zoom
    _wait(widget)
    _save(viewer, name)
    viewer.close()


def _viewer_with_widget():
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-kmeans-quantize", "K-means Quantise"
    )
    return viewer, widget


def photo() -> None:
    viewer, widget = _viewer_with_widget()
    viewer.add_image(data.astronaut(), name="astronaut")
    widget._n_colors.value = 8
    widget.run()
    _wait(widget)
    viewer.layers.selection.active = viewer.layers["astronaut k=8 labels"]
    viewer.reset_view()
    _save(viewer, "widget.png")

    widget.compare()
    _wait(widget)
    widget._panel.browse(16)
    _wait(widget)
    _save(viewer, "sweep.png")
    viewer.close()


def microscopy() -> None:
    import numpy as np
    from skimage.color import rgb2hed
    from skimage.exposure import rescale_intensity

    hed = rgb2hed(data.immunohistochemistry())
    channels = [
        rescale_intensity(hed[..., i], out_range=(0, 255)).astype(np.uint8)
        for i in (0, 2)
    ]
    viewer, widget = _viewer_with_widget()
    viewer.add_image(channels[1], name="DAB", colormap="magenta", blending="additive")
    nuclei = viewer.add_image(
        channels[0], name="nuclei", colormap="green", blending="additive"
    )
    widget._image.value = nuclei
    widget._n_colors.value = 6
    widget.run()
    _wait(widget)
    nuclei.visible = False
    viewer.reset_view()
    _save(viewer, "microscopy.png")
    viewer.close()


def volume() -> None:
    import numpy as np
    from scipy import ndimage

    blobs = data.binary_blobs(
        64, blob_size_fraction=0.15, n_dim=3, volume_fraction=0.04, rng=1
    )
    vol = ndimage.gaussian_filter(blobs.astype(float), 2)
    vol = (255 * vol / vol.max()).astype(np.uint8)
    viewer, widget = _viewer_with_widget()
    source = viewer.add_image(vol, name="volume", colormap="inferno", rendering="mip")
    widget._n_colors.value = 8
    widget.run()
    _wait(widget)
    source.visible = False
    # zoomed out: room for the palette strip beside the volume
    _save_3d(viewer, widget, "volume.png", (15, 35, 140), zoom=0.6)


def palette_control() -> None:
    import numpy as np

    viewer, widget = _viewer_with_widget()
    viewer.add_image(data.astronaut(), name="astronaut")
    widget._n_colors.value = 8
    widget.run()
    _wait(widget)
    # Paint the face into a Labels layer (as a brush would), make it the
    # importance map, lock white, and run again.
    y, x = np.ogrid[:512, :512]
    face = ((y - 122) / 56) ** 2 + ((x - 222) / 44) ** 2 <= 1
    paint = viewer.add_labels(np.zeros((512, 512), dtype=np.uint8), name="importance")
    paint.data[face] = 1
    paint.refresh()
    paint.opacity = 0.9
    paint.contour = 3  # the painted region outlined over the result
    widget._image.value = viewer.layers["astronaut"]
    widget._importance.value = paint
    widget._locked.value = "#ffffff"
    widget.run()
    _wait(widget)
    viewer.layers.move(viewer.layers.index(paint), len(viewer.layers))
    viewer.layers.selection.active = paint
    paint.mode = "paint"
    viewer.reset_view()
    _save(viewer, "palette-control.png")
    viewer.close()


def _cells() -> np.ndarray:
    """A (60, 2, 256, 256) uint16 stand-in for cells3d: cells packed in a volume,
    a 12-bit nucleus in each and 16-bit membranes where two cells meet."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(3)
    centres = rng.uniform((0, 0, 0), (60, 256, 256), (40, 3))
    grid = np.stack(np.meshgrid(*map(np.arange, (60, 256, 256)), indexing="ij"), -1)
    # z planes are further apart than pixels (anisotropic, as in a confocal stack)
    dist, _ = cKDTree(centres * (3, 1, 1)).query(grid.reshape(-1, 3) * (3, 1, 1), k=2)
    near, second = (d.reshape(60, 256, 256) for d in dist.T)
    nuclei = 3600 * np.exp(-((near / 13) ** 4)) + rng.normal(300, 60, near.shape)
    membranes = 52000 * np.exp(-(((second - near) / 3) ** 2))
    membranes += rng.normal(4000, 1500, near.shape)
    stack = np.stack([nuclei.clip(0, 4095), membranes.clip(0, 65535)], axis=1)
    return stack.astype(np.uint16)


def channels() -> None:
    viewer, widget = _viewer_with_widget()
    nuclei, membranes = viewer.add_image(
        _cells(),
        channel_axis=1,
        name=["nuclei", "membranes"],
        contrast_limits=[(0, 4095), (0, 65535)],
        scale=(0.29, 0.26, 0.26),
    )
    # in 3D the mesh of membranes would hide the nuclei under its projection
    membranes.rendering = "attenuated_mip"
    widget._in.sources.mode.value = "layers"
    widget._in.sources.layers.value = [nuclei, membranes]
    widget._n_colors.value = 8
    widget.run()
    _wait(widget)
    nuclei.visible = membranes.visible = False
    viewer.dims.set_point(0, 30 * 0.29)
    viewer.reset_view()
    _save(viewer, "channels-2d.png")
    means = viewer.layers["nuclei + membranes k=8 channel means"]
    means.visible = False
    viewer.layers["membranes k=8"].attenuation = 0.15
    _save_3d(viewer, widget, "channels-3d.png", (10, 30, 130))


def main(names: list[str]) -> None:
    """Make the screenshots named (photo, microscopy, volume, palette_control,
    channels), or all of them."""
    makers = {
        f.__name__: f for f in (photo, microscopy, volume, palette_control, channels)
    }
    for name in names or makers:
        makers[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
