"""The longest event-loop gap (the viewer's worst freeze) during widget jobs.

A 10 ms QTimer ticks on the main thread while the widget works in a real, shown
napari viewer; the longest time between two ticks is how long the viewer could
not repaint or take a click. Three jobs, each from the start of the job until
its layers are drawn (1 s after the job ended):

* ``run 12 MP k=256``: Run on a 3072 x 4096 RGB photo (astronaut tiled);
* ``run lazy 8192^2 k=64``: Run on an 8192 x 8192 RGB dask array (1024^2 chunks);
* ``save 12 MP``: saving the 12-MP result as an indexed PNG, with
  ``QuantizeWidget.save`` (in a worker) when the widget has it, else napari's
  ``viewer.layers.save`` with the plugin's writer (what *File > Save Selected
  Layers* does, on the main thread).

The target is 0.25 s; each line prints our gap beside it as a ratio, and
whether the gap ended during the job or once its result arrived. The floor is
napari drawing the source layer itself (measured before each run, not counted in
the run): a result layer of the same size cannot draw faster. The same
script runs against any checkout (``PYTHONPATH=<checkout>/src``), so a before /
after comparison is two runs of it. Needs a display (``xvfb-run -a`` without
one)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_widget.py
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

TARGET_S = 0.25


class GapMeter:
    """Record the longest gap between ticks of a 10 ms main-thread timer."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.longest = 0.0
        self.longest_end = self.last

    def _tick(self) -> None:
        now = time.perf_counter()
        if now - self.last > self.longest:
            self.longest = now - self.last
            self.longest_end = now
        self.last = now

    def start(self) -> None:
        self.last = time.perf_counter()
        self.longest = 0.0
        self.longest_end = self.last
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        self._tick()
        return self.longest


def photo_12mp() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(np.tile(data.astronaut(), (6, 8, 1)))  # 3072 x 4096


def lazy_8192():
    import dask.array as da
    from skimage import data

    tile = np.tile(data.astronaut(), (16, 16, 1))  # 8192 x 8192 x 3, 201 MB
    return da.from_array(tile, chunks=(1024, 1024, 3))


def run_job(app, meter: GapMeter, widget, start) -> tuple[float, float]:
    """Start a job with ``start()``; return (longest gap, wall seconds)."""
    meter.start()
    meter.job_end = None
    t0 = time.perf_counter()
    start()
    while widget.is_running:
        app.processEvents()
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    meter.job_end = time.perf_counter()
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)
    return meter.stop(), wall


class _Rows(list):
    """The table's rows, each printed as it comes (a later job may crash)."""

    def __init__(self, meter: GapMeter) -> None:
        super().__init__()
        self.meter = meter

    def append(self, row: tuple[str, float, float]) -> None:
        super().append(row)
        name, gap, wall = row
        m = self.meter
        # where the longest gap ended: during the job, or once its result arrived
        when = "during" if m.job_end and m.longest_end <= m.job_end else "after"
        print(
            f"| {name} | {gap:.3f} | {TARGET_S} | {gap / TARGET_S:.2f} | {wall:.2f} "
            f"| {when} |",
            flush=True,
        )


def settle(app, meter: GapMeter, seconds: float = 3.0) -> float:
    """Let the viewer draw what was just added; return the longest gap (the floor)."""
    meter.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)
    return meter.stop()


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    import napari_kmeans_quantize
    from napari_kmeans_quantize._widget import QuantizeWidget

    print(f"package: {os.path.dirname(napari_kmeans_quantize.__file__)}")
    viewer = napari.Viewer(show=True)
    widget = QuantizeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="K-means Quantise")
    app = QApplication.instance()
    meter = GapMeter()

    viewer.window._qt_window.resize(1400, 900)
    # load the compiled kernels, so that loading them is not measured
    from napari_kmeans_quantize import quantize

    quantize(photo_12mp()[:64, :64], 256)

    print(
        "| job | longest gap (s) | target (s) | gap / target | job wall (s) "
        "| gap ended |"
    )
    print("|---|---:|---:|---:|---:|---|", flush=True)
    rows = _Rows(meter)
    source = viewer.add_image(photo_12mp(), name="photo", rgb=True)
    print(f"floor: drawing the 12-MP source itself: {settle(app, meter):.3f} s")
    widget._image.value = source
    widget._n_colors.value = 256
    rows.append(("run 12 MP k=256", *run_job(app, meter, widget, widget.run)))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "photo.png")
        if hasattr(widget, "save"):

            def save() -> None:
                widget.save(path)

        else:
            labels = next(lay for lay in viewer.layers if lay.name.endswith("labels"))

            def save() -> None:
                viewer.layers.selection = {labels}
                viewer.layers.save(path, selected=True, plugin="napari-kmeans-quantize")

        rows.append(("save 12 MP", *run_job(app, meter, widget, save)))
        assert os.path.getsize(path) > 0

    for layer in viewer.layers:
        layer.visible = False
    source = viewer.add_image(lazy_8192(), name="lazy", rgb=True)
    print(f"floor: drawing the lazy 8192^2 source itself: {settle(app, meter):.3f} s")
    widget._image.value = source
    widget._n_colors.value = 64
    rows.append(("run lazy 8192^2 k=64", *run_job(app, meter, widget, widget.run)))

    viewer.close()


if __name__ == "__main__":
    main()
