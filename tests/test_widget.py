"""The dock widget in a real napari viewer (Xvfb): run, cancel, inputs, readout."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize._widget import QuantizeWidget
from napari_kmeans_quantize.metrics import size_report
from napari_kmeans_quantize.sweep import sweep

RESULT_SUFFIXES = ("k={k}", "k={k} labels", "k={k} palette")


def _result_names(source: str, k: int) -> list[str]:
    return [f"{source} {s.format(k=k)}" for s in RESULT_SUFFIXES]


def _run(widget, qtbot, wait_idle, *, click: bool = True):
    if click:
        widget._run_button.native.click()
    else:
        widget.run()
    assert widget.is_running
    wait_idle(widget)


def _strip_corners(strip) -> np.ndarray:
    """World coordinates of a palette strip's top-left and bottom-right edges."""
    k = strip.data.shape[0]
    return np.array([strip.data_to_world(p) for p in ((-0.5, -0.5), (k - 0.5, 0.5))])


def _only_visible(viewer, layer) -> None:
    for other in viewer.layers:
        other.visible = other is layer


# --- the main end-to-end check ----------------------------------------------------


def test_astronaut_k8_end_to_end(make_widget, qtbot, wait_idle, astronaut, data_hash):
    viewer, widget = make_widget(show=True)
    source = viewer.add_image(
        astronaut, name="astronaut", rgb=True, scale=(2.0, 2.0), translate=(10, -30)
    )
    before = data_hash(source.data)
    assert widget._image.value is source
    widget._n_colors.value = 8

    _run(widget, qtbot, wait_idle)

    names = [layer.name for layer in viewer.layers]
    assert names == ["astronaut", *_result_names("astronaut", 8)]
    image, labels, strip = viewer.layers[1:]
    assert isinstance(image, Image) and isinstance(labels, Labels)
    assert isinstance(strip, Image)
    palette = labels.metadata["palette"]
    assert palette.shape == (8, 3)
    # the quantised image is palette[labels], same shape/dtype/rgb as the source
    np.testing.assert_array_equal(image.data, palette[labels.data])
    assert image.data.shape == astronaut.shape and image.dtype == np.uint8
    assert image.rgb
    # the Labels colours read back through its colormap reproduce the image
    rgba = np.asarray(labels.colormap.map(labels.data.ravel()))
    rendered = np.rint(rgba[:, :3] * 255).reshape(astronaut.shape)
    np.testing.assert_array_equal(rendered, image.data)
    assert labels.opacity == 1.0
    # the source is bit-identical, and every new layer overlays it
    assert data_hash(source.data) == before
    for layer in (image, labels):
        np.testing.assert_array_equal(layer.scale, source.scale)
        np.testing.assert_array_equal(layer.translate, source.translate)
    # and on screen: the labels layer alone looks like the image layer alone
    viewer.reset_view()
    _only_visible(viewer, labels)
    qtbot.wait(50)
    shot_labels = viewer.screenshot(canvas_only=True, flash=False)
    _only_visible(viewer, image)
    qtbot.wait(50)
    shot_image = viewer.screenshot(canvas_only=True, flash=False)
    diff = np.abs(shot_labels[..., :3].astype(int) - shot_image[..., :3].astype(int))
    assert diff.reshape(-1, 3).mean(axis=0).max() < 2
    # the screenshot is of the picture, not of an empty canvas
    assert shot_image[..., :3].std() > 20
    # the readout
    assert widget._readout.visible
    assert widget._swatches.shape == (8, 4)
    assert widget._swatches.data[0][1] == labels.features["hex"][0]
    assert "6,291,456" in widget._figures.value  # 512 * 512 * 24
    assert f"{512 * 512 * 3 + 8 * 24:,}" in widget._figures.value
    assert "PSNR" in widget._figures.value and "CIEDE2000" in widget._figures.value
    # the readout is metrics.size_report of the run (the same as the engine's)
    result = quantize(astronaut, 8)
    np.testing.assert_array_equal(result.labels, labels.data)
    report = size_report(result, astronaut)
    assert f"{report.png_bytes:,} bytes" in widget._figures.value
    assert f"{report.ratio:.2f} : 1" in widget._figures.value
    assert f"{report.formula_ratio:.2f} : 1" in widget._figures.value
    assert f"{report.psnr:.2f} dB" in widget._figures.value
    assert f"{report.ciede2000:.2f}" in widget._figures.value
    assert labels.metadata["size_report"]["png_bytes"] == report.png_bytes
    assert widget._run_button.text == "Run"


# --- cancel, removal, re-runs, errors ---------------------------------------------


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
def test_cancel_mid_run_leaves_no_partial_layers(
    lazy, make_widget, qtbot, wait_idle, small_rgb, slow_engine
):
    viewer, widget = make_widget()
    # dask: many small chunks, so progress moves chunk batch by chunk batch
    data = da.from_array(small_rgb, chunks=(8, 8, 3)) if lazy else small_rgb
    viewer.add_image(data, name="img", rgb=True)
    widget._run_button.native.click()
    assert widget._run_button.text == "Cancel"
    qtbot.waitUntil(lambda: slow_engine["yields"] >= 2, timeout=10_000)
    qtbot.waitUntil(lambda: widget._progress.value > 0, timeout=10_000)
    widget._run_button.native.click()  # Cancel
    wait_idle(widget)
    assert [layer.name for layer in viewer.layers] == ["img"]
    assert "Cancelled" in widget._status.value
    assert widget._run_button.text == "Run"
    steps = slow_engine["yields"]
    qtbot.wait(500)
    assert slow_engine["yields"] == steps  # the computation really stopped
    assert steps < 10
    # and the widget still works afterwards
    slow_engine["delay"] = 0
    _run(widget, qtbot, wait_idle)
    assert [layer.name for layer in viewer.layers][1:] == _result_names("img", 16)


def test_right_after_cancel_the_message_says_stopping_not_already_running(
    make_widget, qtbot, wait_idle, small_rgb, slow_engine, notifications
):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    slow_engine["delay"] = 0.5
    widget.run()
    qtbot.waitUntil(lambda: slow_engine["yields"] >= 1, timeout=10_000)
    widget.cancel()
    assert widget.is_running  # still stopping, at its next step
    assert widget.run() is None
    warnings = [m for m, sev in notifications if sev == "warning"]
    assert any("still stopping" in m for m in warnings)
    assert not any("already running" in m for m in warnings)
    assert "already running" not in widget._status.value
    wait_idle(widget)
    assert "Cancelled" in widget._status.value


def test_removing_the_source_mid_run_does_not_crash(
    make_widget, qtbot, wait_idle, small_rgb, slow_engine, notifications
):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    other = viewer.add_image(small_rgb[::-1], name="other", rgb=True)
    widget._image.value = viewer.layers["img"]
    widget.run()
    qtbot.waitUntil(lambda: slow_engine["yields"] >= 1, timeout=10_000)
    viewer.layers.remove("img")
    slow_engine["delay"] = 0
    wait_idle(widget)
    assert list(viewer.layers) == [other]
    assert any("was removed" in message for message, _ in notifications)
    assert widget._image.value is other


def test_second_run_while_running_is_refused(
    make_widget, qtbot, wait_idle, small_rgb, slow_engine, notifications
):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    first = widget.run()
    assert first is not None
    assert widget.run() is None
    assert any("already running" in message for message, _ in notifications)
    slow_engine["delay"] = 0
    wait_idle(widget)
    assert [layer.name for layer in viewer.layers][1:] == _result_names("img", 16)


def test_rerun_updates_in_place_other_k_side_by_side(
    make_widget, qtbot, wait_idle, small_rgb
):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    widget._n_colors.value = 5
    _run(widget, qtbot, wait_idle)
    first = list(viewer.layers)
    widget._seed.value = 7
    _run(widget, qtbot, wait_idle)
    assert list(viewer.layers) == first  # same objects, no duplicates
    assert viewer.layers["img k=5 labels"].metadata["random_state"] == 7
    widget._n_colors.value = 3
    _run(widget, qtbot, wait_idle)
    assert len(viewer.layers) == 7
    assert len(viewer.layers["img k=3 labels"].features) == 3


def test_variants_at_one_k_coexist_and_identical_settings_say_updated(
    make_widget, qtbot, wait_idle, small_rgb
):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    widget._n_colors.value = 6
    _run(widget, qtbot, wait_idle)
    widget._color_space.value = "lab"
    _run(widget, qtbot, wait_idle)
    widget._dither.value = True
    _run(widget, qtbot, wait_idle)
    labels = {lay.name: lay for lay in viewer.layers if isinstance(lay, Labels)}
    assert set(labels) == {
        "img k=6 labels",
        "img k=6 lab labels",
        "img k=6 lab dither labels",
    }
    assert labels["img k=6 labels"].metadata["color_space"] == "rgb"
    assert labels["img k=6 lab dither labels"].metadata["dither"] is True
    assert "Updated" not in widget._status.value
    before = list(viewer.layers)
    _run(widget, qtbot, wait_idle)
    assert set(viewer.layers) == set(before)
    assert "Updated 'img k=6 lab dither' in place" in widget._status.value


def test_palette_strips_of_earlier_runs_do_not_show(
    make_widget, qtbot, wait_idle, small_rgb
):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True, scale=(2, 2))
    widget._n_colors.value = 8
    _run(widget, qtbot, wait_idle)
    widget._n_colors.value = 64
    _run(widget, qtbot, wait_idle)
    k8, k64 = viewer.layers["img k=8 palette"], viewer.layers["img k=64 palette"]
    # one strip in view, the newest; the older one is hidden, and would be
    # covered exactly anyway (same place and size whatever k)
    assert k64.visible and not k8.visible
    np.testing.assert_allclose(_strip_corners(k8), _strip_corners(k64))
    for name in ("img k=8", "img k=64"):
        assert viewer.layers[name].visible


def test_errors_become_notifications(make_widget, qtbot, wait_idle, notifications):
    viewer, widget = make_widget()
    bright = np.linspace(0, 4, 40 * 40 * 3).reshape(40, 40, 3)  # floats beyond [0, 1]
    viewer.add_image(bright, name="bright", rgb=True)
    widget._color_space.value = "lab"
    _run(widget, qtbot, wait_idle)
    assert [layer.name for layer in viewer.layers] == ["bright"]
    errors = [m for m, severity in notifications if severity == "error"]
    assert len(errors) == 1
    assert "failed" in errors[0] and "[0, 1]" in errors[0]
    assert "Traceback" not in errors[0]
    assert widget._status.value.startswith("Failed")


def test_engine_warnings_become_notifications(
    make_widget, qtbot, wait_idle, notifications
):
    viewer, widget = make_widget()
    flat = np.zeros((40, 40, 3), np.uint8)
    flat[:20] = 200
    viewer.add_image(flat, name="two", rgb=True)
    _run(widget, qtbot, wait_idle)
    assert len(viewer.layers["two k=16 labels"].features) == 2
    assert any("distinct colours" in m for m, severity in notifications)


# --- the inputs -------------------------------------------------------------------


def test_empty_viewer_shows_a_hint_and_disables_run(make_widget, small_rgb):
    viewer, widget = make_widget()
    assert not widget._hint.native.isHidden()
    assert "Open Sample" in widget._hint.value
    assert not widget._run_button.enabled
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="not an image")
    viewer.add_points([[1, 1]], name="points")
    assert widget._image.choices == ()
    assert not widget._run_button.enabled
    layer = viewer.add_image(small_rgb, name="img", rgb=True)
    assert widget._image.choices == (layer,)
    assert widget._run_button.enabled
    assert widget._hint.native.isHidden()


def test_layer_choice_follows_the_active_image_layer(make_widget, small_rgb):
    viewer, widget = make_widget()
    a = viewer.add_image(small_rgb, name="a", rgb=True)
    b = viewer.add_image(small_rgb[::-1], name="b", rgb=True)
    assert widget._image.value is b
    viewer.layers.selection.active = a
    assert widget._image.value is a
    labels = viewer.add_labels(np.zeros((8, 8), np.uint8))
    viewer.layers.selection.active = labels  # not an image: the choice stays
    assert widget._image.value is a


def test_source_box_never_offers_or_follows_onto_outputs(
    make_widget, qtbot, wait_idle, small_rgb
):
    viewer, widget = make_widget()
    source = viewer.add_image(small_rgb, name="img", rgb=True)
    widget._n_colors.value = 8
    _run(widget, qtbot, wait_idle)
    outputs = [lay for lay in viewer.layers if lay is not source]
    assert len(outputs) == 3
    assert all(lay.metadata["plugin"] == "napari-kmeans-quantize" for lay in outputs)
    assert list(widget._image.choices) == [source]
    for output in outputs:
        viewer.layers.selection.active = output
        assert widget._image.value is source
    # a second run goes on the source, not on the first run's output
    widget._n_colors.value = 4
    _run(widget, qtbot, wait_idle)
    names = sorted(lay.name for lay in viewer.layers)
    assert names == sorted(["img", *_result_names("img", 8), *_result_names("img", 4)])


def test_widget_defaults(make_widget):
    _, widget = make_widget()
    assert widget._n_colors.value == 16
    assert (widget._n_colors.min, widget._n_colors.max) == (2, 256)
    assert widget._color_space.value == "rgb"
    assert set(widget._color_space.choices) == {"rgb", "lab", "oklab"}
    assert widget._fit_pixels.value is None
    assert widget._dither.value is False
    assert widget._fit_pixels.native.isHidden()
    # the seed only drives the sample of "fit palette on": it sits beside it
    assert widget._seed.native.isHidden()
    inputs = list(widget._in.run_box)
    assert inputs.index(widget._seed) == inputs.index(widget._fit_pixels) + 1
    assert "fit palette on" in widget._seed.tooltip
    widget._show_advanced.value = True
    assert not widget._fit_pixels.native.isHidden()
    assert not widget._seed.native.isHidden()
    assert not widget._seed.enabled  # all pixels: no sample, no seed
    combo = widget._fit_pixels.native
    combo.setCurrentIndex(combo.findText("100,000 sampled pixels"))
    assert widget._fit_pixels.value == 100_000
    assert widget._seed.enabled
    combo.setCurrentIndex(combo.findText("all pixels (exact)"))
    assert widget._fit_pixels.value is None
    assert not widget._seed.enabled


def test_grey_layer_disables_perceptual_colour_spaces(make_widget, small_rgb):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="rgb", rgb=True)
    widget._color_space.value = "oklab"
    viewer.add_image(small_rgb[..., 0], name="grey")
    assert widget._color_space.value == "rgb"
    assert not widget._color_space.enabled


@pytest.mark.parametrize(
    "kind",
    [
        "rgba",
        "grayscale",
        "uint16",
        "float",
        "rgb_stack",
        "dask",
        "multiscale",
        "dask_multiscale",
    ],
)
def test_input_kinds_pass_through_the_widget(
    kind, make_widget, qtbot, wait_idle, small_rgb, data_hash, notifications
):
    viewer, widget = make_widget()
    rgb = True
    if kind == "rgba":
        alpha = np.full((*small_rgb.shape[:2], 1), 255, np.uint8)
        alpha[:5] = 0
        data = np.concatenate([small_rgb, alpha], axis=-1)
    elif kind == "grayscale":
        data, rgb = small_rgb[..., 0], False
    elif kind == "uint16":
        data = small_rgb.astype(np.uint16) * 257
    elif kind == "float":
        data = small_rgb.astype(np.float32) / 255
    elif kind == "rgb_stack":
        data = np.stack([small_rgb, small_rgb[::-1], small_rgb[:, ::-1]])
    elif kind == "dask":
        data = da.from_array(small_rgb, chunks=(16, 32, 3))
    elif kind == "multiscale":
        data = [small_rgb, small_rgb[::2, ::2]]
    else:  # dask_multiscale
        data = [da.from_array(small_rgb, chunks=16), small_rgb[::2, ::2]]
    multiscale = kind.endswith("multiscale")
    source = viewer.add_image(data, name=kind, rgb=rgb, multiscale=multiscale or None)
    before = data_hash(source.data[0] if multiscale else source.data)
    widget._n_colors.value = 6
    _run(widget, qtbot, wait_idle)

    assert [layer.name for layer in viewer.layers] == [kind, *_result_names(kind, 6)]
    image, labels, strip = viewer.layers[1:]
    palette = labels.metadata["palette"]
    levels = (
        list(zip(image.data, labels.data, strict=True))
        if multiscale
        else [(image.data, labels.data)]
    )
    for img, lab in levels:
        expected = palette[np.asarray(lab)]
        if not rgb:
            expected = expected[..., 0]
        np.testing.assert_array_equal(np.asarray(img), expected)
    src0 = np.asarray(source.data[0] if multiscale else source.data)
    assert np.asarray(levels[0][0]).shape == src0.shape
    assert np.asarray(levels[0][0]).dtype == src0.dtype
    assert image.rgb == source.rgb
    assert tuple(image.contrast_limits) == tuple(source.contrast_limits)
    assert len(labels.features) == len(palette) <= 6
    assert strip.ndim == 2
    assert data_hash(source.data[0] if multiscale else source.data) == before
    if kind == "rgba":
        assert list(labels.features.columns)[2:6] == ["R", "G", "B", "A"]
        assert (np.asarray(image.data)[:5, :, 3] == 0).all()
    if kind == "rgb_stack":
        assert labels.data.shape == data.shape[:3]
    # the readout says why a figure is missing
    figures = widget._figures.value
    if kind.startswith("dask"):
        assert "needs RGB" not in figures
        assert figures.count("not computed for lazy data") == 3  # PNG, PSNR, ΔE
    elif kind == "grayscale":
        assert "needs RGB(A) data" in figures and "lazy" not in figures
    else:
        assert "n/a" not in figures
    if kind.startswith("dask"):
        assert any("dask" in m for m, _ in notifications)
        # lazy in, lazy out: napari computes the blocks it draws
        for img, lab in levels:
            assert isinstance(img, da.Array) and isinstance(lab, da.Array)
    if multiscale:
        assert image.multiscale and labels.multiscale
        assert any("Multiscale" in m for m, _ in notifications)


# --- console and plugin entry points ----------------------------------------------


def test_console_snippet_verbatim(make_napari_viewer, astronaut):
    viewer = make_napari_viewer()
    viewer.add_image(astronaut, name="astronaut", rgb=True)
    snippet = (
        "from napari_kmeans_quantize import quantize_layer\n"
        'quantize_layer(viewer.layers["astronaut"], n_colors=8, viewer=viewer)\n'
    )
    namespace = {"viewer": viewer}
    exec(snippet, namespace)
    assert [layer.name for layer in viewer.layers] == [
        "astronaut",
        *_result_names("astronaut", 8),
    ]
    from napari_kmeans_quantize import quantize_layer

    layers = quantize_layer(viewer.layers["astronaut"], n_colors=8, viewer=viewer)
    assert [layer.name for layer in layers] == _result_names("astronaut", 8)
    assert len(viewer.layers) == 4


def test_add_plugin_dock_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget(
        "napari-kmeans-quantize", "K-means Quantise"
    )
    assert isinstance(widget, QuantizeWidget)
    assert dock is not None


# --- Compare k and auto k ---------------------------------------------------------

SWEEP_KS = (2, 4, 8, 16)


@pytest.fixture
def small_astronaut(astronaut):
    return np.ascontiguousarray(astronaut[::4, ::4])


@pytest.fixture
def slow_sweep(monkeypatch):
    """Slow the widget's sweep down; ``calls["yields"]`` counts computed steps."""
    from conftest import slow_down
    from napari_kmeans_quantize._qt import k_browser

    return slow_down(monkeypatch, "sweep_source_iter", 0.2, k_browser)


def _compare(widget, wait_idle, ks=SWEEP_KS):
    widget._sweep_ks.value = ", ".join(map(str, ks))
    widget._compare_button.native.click()
    assert widget.is_running
    assert widget._compare_button.text == "Cancel"
    assert not widget._run_button.enabled
    wait_idle(widget)


def _click_row(qtbot, widget, row: int) -> None:
    from qtpy.QtCore import Qt

    qtable = widget._panel.table_widget.native
    rect = qtable.visualItemRect(qtable.item(row, 0))
    qtbot.mouseClick(qtable.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_compare_k_fills_table_and_plot(make_widget, qtbot, wait_idle, small_astronaut):
    viewer, widget = make_widget()
    viewer.add_image(small_astronaut, name="astro", rgb=True)
    widget._n_colors.value = 8
    _compare(widget, wait_idle)

    # no result added: only the k browser's preview, at the chosen k
    assert [layer.name for layer in viewer.layers] == [
        "astro",
        "astro compare k=8",
        "astro compare k=8 palette",
    ]
    assert widget._compare_button.text == "Compare k"
    assert widget._run_button.enabled
    expected = sweep(small_astronaut, SWEEP_KS)
    table = widget.sweep_table
    assert table.ks == SWEEP_KS
    # one row per k: k, PSNR, CIEDE2000, PNG bytes, ratio, as in the engine's sweep
    assert widget._panel.table_widget.shape == (len(SWEEP_KS), 5)
    assert widget._panel.table_widget.column_headers == (
        "k",
        "PSNR dB",
        "ΔE00",
        "PNG bytes",
        "ratio",
    )
    qtable = widget._panel.table_widget.native
    for i, row in enumerate(expected):
        cells = [qtable.item(i, j).text() for j in range(5)]
        assert cells == [
            str(row.k),
            f"{row.psnr:.2f}",
            f"{row.ciede2000:.2f}",
            f"{row.png_bytes:,}",
            f"{row.ratio:.2f} : 1",
        ]
    assert not widget._panel.native.isHidden()
    # the plot: quality against PNG size, labelled axes with units, k marked
    axes = widget._panel._figure.axes
    assert len(axes) == 2
    psnr_ax, ciede_ax = axes
    assert "KiB" in psnr_ax.get_xlabel()
    assert "PSNR (dB)" in psnr_ax.get_ylabel()
    assert "CIEDE2000" in ciede_ax.get_ylabel()
    k_labels = [t for ax in axes for t in ax.texts if t.get_text().startswith("k=")]
    assert sorted(t.get_text() for t in k_labels) == sorted(f"k={k}" for k in SWEEP_KS)
    legend = [t.get_text() for t in psnr_ax.get_legend().get_texts()]
    assert "chosen k = 8" in legend
    # every k label is readable: inside the axes (not across an axis line), clear
    # of the chosen-k circle, and drawn over the lines on a background box
    widget._panel._canvas.draw()
    renderer = widget._panel._figure.canvas.get_renderer()
    frame = psnr_ax.get_window_extent(renderer)
    circle = psnr_ax.get_lines()[-1]
    assert circle.get_label() == "chosen k = 8"
    ring = circle.get_window_extent(renderer)
    for text in k_labels:
        box = text.get_bbox_patch().get_window_extent(renderer)
        assert frame.x0 < box.x0 and box.x1 < frame.x1, text.get_text()
        assert frame.y0 < box.y0 and box.y1 < frame.y1, text.get_text()
        # the box's nearest point to the circle's centre lies outside the circle
        cx, cy = ring.x0 + ring.width / 2, ring.y0 + ring.height / 2
        nearest = np.clip([cx, cy], [box.x0, box.y0], [box.x1, box.y1])
        assert np.hypot(*(nearest - [cx, cy])) > ring.width / 2 + 2, text.get_text()
        assert text.axes is ciede_ax  # the twin is drawn last, over both series
    # the title is on two lines in the dock (on one it ran past the right edge of
    # a 12-bit layer's plot, seen in a screenshot) and stays within the figure
    assert psnr_ax.get_title().count("\n") == 1
    title = psnr_ax.title.get_window_extent(renderer)
    assert title.x0 >= 0 and title.x1 <= widget._panel._figure.bbox.width
    # the selected row is the chosen k
    assert [i.row() for i in qtable.selectionModel().selectedRows()] == [2]


def _forbid_recomputing(monkeypatch):
    """Make every quantisation entry point of the widget fail."""
    from napari_kmeans_quantize._qt import k_browser

    def fail(*_args, **_kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(_widget_module(), "quantize_source_iter", fail)
    monkeypatch.setattr(k_browser, "sweep_source_iter", fail)


def _widget_module():
    from napari_kmeans_quantize import _widget

    return _widget


def test_k_browser_swaps_without_recomputing_and_keep_adds_layers(
    make_widget, qtbot, wait_idle, small_astronaut, monkeypatch
):
    viewer, widget = make_widget(show=True)
    viewer.add_image(small_astronaut, name="astro", rgb=True)
    widget._n_colors.value = 8
    _compare(widget, wait_idle)
    preview = viewer.layers["astro compare k=8"]
    assert preview.metadata["role"] == "k browser"
    _forbid_recomputing(monkeypatch)
    _click_row(qtbot, widget, 1)  # k = 4: shown at once, no worker
    assert not widget.is_running
    assert preview.name == "astro compare k=4"
    np.testing.assert_array_equal(preview.data, quantize(small_astronaut, 4).image)
    widget._panel.k_slider.value = 3  # k = 16
    assert preview.name == "astro compare k=16"
    np.testing.assert_array_equal(preview.data, quantize(small_astronaut, 16).image)
    legend = [
        t.get_text() for t in widget._panel._figure.axes[0].get_legend().get_texts()
    ]
    assert "chosen k = 16" in legend
    # keep this k: its layers, from the kept labels and palette
    widget._panel.keep_button.native.click()
    wait_idle(widget)
    labels = viewer.layers["astro k=16 labels"]
    np.testing.assert_array_equal(labels.data, quantize(small_astronaut, 16).labels)
    row = widget.sweep_table.row(16)
    assert labels.metadata["size_report"]["psnr"] == pytest.approx(row.psnr)
    assert labels.metadata["size_report"]["png_bytes"] == row.png_bytes
    assert "astro k=16 palette" in viewer.layers and "astro k=16" in viewer.layers


def test_the_panel_belongs_to_its_source(
    make_widget, qtbot, wait_idle, small_astronaut, small_rgb
):
    viewer, widget = make_widget(show=True)
    astro = viewer.add_image(small_astronaut, name="astro", rgb=True)
    _compare(widget, wait_idle, ks=(2, 4))
    other = viewer.add_image(small_rgb, name="other", rgb=True)
    viewer.layers.selection.active = other
    assert widget._image.value is other
    assert "Compare k on 'astro'" in widget._panel.title.value
    _click_row(qtbot, widget, 1)
    widget._panel.keep_button.native.click()
    wait_idle(widget)
    # the row ran on the panel's source, not the selected layer
    assert "astro k=4 labels" in viewer.layers
    assert not any(lay.name.startswith("other k=") for lay in viewer.layers)
    # the source's data changes: stale, nothing acts on it any more
    astro.data = small_astronaut[::-1].copy()
    assert "Stale" in widget._panel.title.value
    assert not widget._panel.keep_button.enabled
    assert not any("compare" in lay.name for lay in viewer.layers)
    # the source goes: the panel is cleared
    widget._image.value = other
    _compare(widget, wait_idle, ks=(2, 4))
    assert widget._panel.comparison.source.layer is other
    viewer.layers.remove(other)
    assert widget.sweep_table is None and widget._panel.native.isHidden()
    assert not any("compare" in lay.name for lay in viewer.layers)


@pytest.mark.parametrize(
    ("target", "value", "kwargs"),
    [
        ("ciede2000", 5.0, {"max_ciede2000": 5.0}),
        ("psnr", 22.0, {"min_psnr": 22.0}),
    ],
)
def test_auto_k_picks_the_smallest_k_meeting_the_target(
    make_widget, qtbot, wait_idle, small_astronaut, notifications, target, value, kwargs
):
    viewer, widget = make_widget()
    viewer.add_image(small_astronaut, name="astro", rgb=True)
    widget._sweep_ks.value = ", ".join(map(str, SWEEP_KS))
    widget._target.value = target
    widget._target_value.value = value
    # independently: the engine's sweep over the same candidates (and 256)
    expected = sweep(small_astronaut, (*SWEEP_KS, 256)).smallest_k(**kwargs).k
    assert expected < 256
    widget._auto_button.native.click()
    assert widget._auto_button.text == "Cancel"
    qtbot.waitUntil(
        lambda: f"astro k={expected} labels" in viewer.layers, timeout=60_000
    )
    wait_idle(widget)
    assert widget._n_colors.value == expected
    assert widget.sweep_table.ks == (*SWEEP_KS, 256)
    assert any(f"k = {expected} is the smallest" in m for m, _ in notifications)
    assert [layer.name for layer in viewer.layers][1:] == _result_names(
        "astro", expected
    )  # the chosen k's layers, and no preview
    assert widget._auto_button.text == "Auto k"
    # a second auto k with the same inputs reuses the sweep: it runs k at once
    worker = widget.auto()
    assert worker is not None and widget._job == "quantize"
    wait_idle(widget)


def test_auto_k_unreachable_target_uses_256(
    make_widget, qtbot, wait_idle, small_astronaut, notifications
):
    viewer, widget = make_widget()
    viewer.add_image(small_astronaut, name="astro", rgb=True)
    widget._sweep_ks.value = "2 4"
    widget._target.value = "psnr"
    widget._target_value.value = 99.0
    widget.auto()
    qtbot.waitUntil(lambda: "astro k=256 labels" in viewer.layers, timeout=60_000)
    wait_idle(widget)
    assert widget._n_colors.value == 256
    warnings = [m for m, severity in notifications if severity == "warning"]
    assert any("no k up to 256 reaches PSNR >= 99 dB" in m for m in warnings)


def test_auto_k_target_defaults(make_widget):
    _, widget = make_widget()
    assert widget._target.value == "ciede2000"
    assert widget._target_value.value == pytest.approx(2.3)
    widget._target.value = "psnr"
    assert widget._target_value.value == pytest.approx(30.0)


def test_compare_k_rejects_bad_ks(make_widget, small_rgb, notifications):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    widget._sweep_ks.value = "2, 300"
    assert widget.compare() is None
    assert not widget.is_running
    assert any("from 2 to 256" in m for m, _ in notifications)


def test_cancel_compare_k_leaves_the_widget_usable(
    make_widget, qtbot, wait_idle, small_astronaut, slow_sweep
):
    viewer, widget = make_widget()
    viewer.add_image(small_astronaut, name="astro", rgb=True)
    widget._sweep_ks.value = "2, 4, 8, 16, 32, 64"
    widget._compare_button.native.click()
    qtbot.waitUntil(lambda: slow_sweep["yields"] >= 2, timeout=10_000)
    widget._compare_button.native.click()  # Cancel
    wait_idle(widget)
    assert "Cancelled" in widget._status.value
    assert widget.sweep_table is None
    assert widget._panel.native.isHidden()
    assert [layer.name for layer in viewer.layers] == ["astro"]
    steps = slow_sweep["yields"]
    qtbot.wait(500)
    assert slow_sweep["yields"] == steps  # the sweep really stopped
    assert widget._compare_button.text == "Compare k"
    assert widget._run_button.text == "Run"
    assert all(b.enabled for b in (widget._run_button, widget._compare_button))
    assert widget._sweep_ks.enabled and widget._n_colors.enabled
    # it still compares and runs afterwards
    slow_sweep["delay"] = 0
    _compare(widget, wait_idle, ks=(2, 4))
    assert widget.sweep_table.ks == (2, 4)
    widget._n_colors.value = 4
    _run(widget, qtbot, wait_idle)
    assert [layer.name for layer in viewer.layers][1:] == [
        "astro compare k=2",
        "astro compare k=2 palette",
        *_result_names("astro", 4),
    ]


def test_quick_first_run_of_a_session_does_not_say_it_compiles(
    make_widget, qtbot, wait_idle, small_rgb, monkeypatch
):
    from napari_kmeans_quantize._qt import jobs as _widget

    monkeypatch.setattr(_widget, "_engine_warm", False)
    monkeypatch.setattr(_widget, "FIRST_RUN_HINT_DELAY_MS", 300)
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    widget._run_button.native.click()
    assert widget._status.value.startswith("Quantising")
    assert "compiles" not in widget._status.value
    wait_idle(widget)
    qtbot.wait(500)  # past the hint's delay
    assert "Done in" in widget._status.value
    assert "compiles" not in widget._status.value


@pytest.mark.parametrize("cached", [False, True], ids=["not-cached", "cached"])
def test_slow_first_run_says_it_compiles_only_without_a_cache(
    cached, make_widget, qtbot, wait_idle, small_rgb, slow_engine, monkeypatch
):
    from napari_kmeans_quantize._qt import jobs as _widget

    monkeypatch.setattr(_widget, "_engine_warm", False)
    monkeypatch.setattr(_widget, "FIRST_RUN_HINT_DELAY_MS", 300)
    monkeypatch.setattr(_widget, "_engine_cached", lambda: cached)
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    widget._run_button.native.click()
    assert "compiles" not in widget._status.value  # not at the start
    qtbot.wait(600)
    assert widget.is_running
    assert widget._status.value.endswith(_widget.FIRST_RUN_HINT) is not cached
    slow_engine["delay"] = 0
    wait_idle(widget)
    assert "Done in" in widget._status.value
    # later runs of the session never say it
    slow_engine["delay"] = 0.15
    widget._n_colors.value = 4
    widget._run_button.native.click()
    qtbot.wait(600)
    assert "compiles" not in widget._status.value
    slow_engine["delay"] = 0
    wait_idle(widget)


def test_engine_cache_check_runs():
    from napari_kmeans_quantize import quantize
    from napari_kmeans_quantize._qt import jobs as _widget

    # Enough colours that the k-means kernels run (one colour returns early).
    colours = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    quantize(colours, 4)  # compiles or loads the kernels
    assert _widget._engine_cached() is True


# --- 'PSNR peak' (data_range) -------------------------------------------------------


@pytest.fixture(scope="module")
def coins12() -> np.ndarray:
    """12-bit grey camera-like data stored as uint16 (values 0..4080)."""
    from skimage import data

    return data.coins().astype(np.uint16) * 16


def _psnr_row(widget) -> str:
    """The readout's PSNR row as plain text."""
    import re

    figures = widget._figures.value
    row = figures[figures.index("<b>PSNR</b>") :]
    row = row[: row.index("</tr>")]
    return re.sub(r"<[^>]+>|&nbsp;", " ", row)


def test_psnr_peak_option_defaults(make_widget):
    _, widget = make_widget()
    peak = widget._psnr_peak
    assert peak.value == ""
    assert peak.native.isHidden()
    inputs = list(widget._in.run_box)
    assert inputs.index(peak) > inputs.index(widget._seed)
    for words in ("65535", "4095", "12-bit", "automatic", "CIEDE2000"):
        assert words in peak.tooltip
    widget._show_advanced.value = True
    assert not peak.native.isHidden()
    assert peak.native.placeholderText() == "auto"
    widget._show_advanced.value = False
    assert peak.native.isHidden()


def test_psnr_peak_12bit_run(make_widget, qtbot, wait_idle, coins12):
    viewer, widget = make_widget()
    viewer.add_image(coins12, name="coins12")
    widget._n_colors.value = 8
    widget._show_advanced.value = True
    widget._psnr_peak.value = "4095"
    _run(widget, qtbot, wait_idle)

    result = quantize(coins12, 8, channel_axis=None)
    want = size_report(result, coins12, data_range=4095).psnr
    labels = viewer.layers["coins12 k=8 labels"]
    assert labels.metadata["size_report"]["psnr"] == pytest.approx(want)
    assert labels.metadata["data_range"] == 4095.0
    row = _psnr_row(widget)
    assert f"{want:.2f} dB" in row
    assert "peak 4095, set in 'PSNR peak'" in row

    # automatic (empty, or 0): the uint16 range, and the readout says so
    for auto in ("", "0"):
        widget._psnr_peak.value = auto
        _run(widget, qtbot, wait_idle)
        default = size_report(result, coins12).psnr
        assert default == pytest.approx(want + 20 * np.log10(65535 / 4095))
        assert labels.metadata["size_report"]["psnr"] == pytest.approx(default)
        row = _psnr_row(widget)
        assert f"{default:.2f} dB" in row
        assert "peak 65535, the uint16 range; set 'PSNR peak' for 12-bit data" in row


@pytest.mark.parametrize("dtype", ["uint8", "float"])
def test_psnr_readout_of_8bit_and_float_data_names_no_peak(
    make_widget, qtbot, wait_idle, small_rgb, dtype
):
    viewer, widget = make_widget()
    image = small_rgb if dtype == "uint8" else small_rgb / 255.0
    viewer.add_image(image, name="small", rgb=True)
    _run(widget, qtbot, wait_idle)
    assert "peak" not in _psnr_row(widget)
    assert "dB" in _psnr_row(widget)


@pytest.mark.parametrize("text", ["abc", "-5", "inf", "nan", "1e999", "1e", "4,095"])
def test_bad_psnr_peak_is_refused_with_a_message(
    make_widget, small_rgb, notifications, text
):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="small", rgb=True)
    widget._psnr_peak.value = text  # setText: typing could not even enter most
    assert widget.run() is None
    assert widget.compare() is None
    assert widget.auto() is None
    assert not widget.is_running
    errors = [m for m, severity in notifications if severity == "error"]
    assert len(errors) == 3
    assert all("'PSNR peak' (advanced options) must be a number" in m for m in errors)
    assert [layer.name for layer in viewer.layers] == ["small"]


def test_psnr_peak_field_only_takes_numbers(make_widget, qtbot):
    _, widget = make_widget(show=True)
    widget._show_advanced.value = True
    line = widget._psnr_peak.native
    line.setFocus()
    qtbot.keyClicks(line, "-4x095")
    assert widget._psnr_peak.value == "4095"


def test_psnr_peak_compare_k(make_widget, wait_idle, coins12):
    viewer, widget = make_widget()
    small = coins12[::2, ::2]
    viewer.add_image(small, name="coins12")
    widget._psnr_peak.value = "4095"
    _compare(widget, wait_idle, ks=(2, 8))
    expected = sweep(small, (2, 8), channel_axis=None, data_range=4095)
    assert [r.psnr for r in widget.sweep_table] == pytest.approx(
        [r.psnr for r in expected]
    )
    assert "peak 4095, set in 'PSNR peak'" in widget._panel.title.value
    assert "ratio = raw 16-bit size" in widget._panel.title.value  # grey uint16
    widget._psnr_peak.value = ""
    _compare(widget, wait_idle, ks=(2, 8))
    assert "peak 65535, the uint16 range" in widget._panel.title.value


def test_auto_k_psnr_target_uses_the_psnr_peak(
    make_widget, qtbot, wait_idle, coins12, notifications
):
    from napari_kmeans_quantize.sweep import auto_k

    viewer, widget = make_widget()
    viewer.add_image(coins12, name="coins12")
    widget._target.value = "psnr"
    widget._target_value.value = 30.0
    widget._psnr_peak.value = "4095"
    expected = auto_k(coins12, min_psnr=30.0, channel_axis=None, data_range=4095)
    naive = auto_k(coins12, min_psnr=30.0, channel_axis=None)
    assert expected > naive  # 65535 makes every k look 24 dB better

    widget._auto_button.native.click()
    qtbot.waitUntil(
        lambda: f"coins12 k={expected} labels" in viewer.layers, timeout=60_000
    )
    wait_idle(widget)
    assert widget._n_colors.value == expected
    # the reused sweep is keyed on the peak: automatic again sweeps anew
    widget._psnr_peak.value = ""
    worker = widget.auto()
    assert worker is not None and widget._job == "auto"
    qtbot.waitUntil(
        lambda: f"coins12 k={naive} labels" in viewer.layers, timeout=60_000
    )
    wait_idle(widget)
    assert widget._n_colors.value == naive
    # and the same peak as the last sweep reuses it: k is run at once
    worker = widget.auto()
    assert worker is not None and widget._job == "quantize"
    wait_idle(widget)


def test_int32_rgb_ciede_needs_a_peak(
    make_widget, qtbot, wait_idle, small_astronaut, notifications
):
    # 32-bit colours have no known full intensity: the readout says what to set,
    # and Auto k with a CIEDE2000 target refuses at once instead of sweeping k in
    # vain.
    viewer, widget = make_widget()
    viewer.add_image(small_astronaut.astype(np.int32), name="astro32", rgb=True)
    widget._n_colors.value = 4
    _run(widget, qtbot, wait_idle)
    assert "set 'PSNR peak' to the value of full intensity for int32" in (
        widget._figures.value
    )
    assert widget.auto() is None
    errors = [m for m, severity in notifications if severity == "error"]
    assert any(
        "CIEDE2000 of int32 colours needs their full intensity" in m for m in errors
    )
    widget._psnr_peak.value = "255"
    _run(widget, qtbot, wait_idle)
    assert "CIEDE2000" in widget._figures.value and "n/a" not in widget._figures.value


# --- palette control: locked colours, importance painted in a Labels layer ---------


def test_locked_colours_and_painted_importance_rerun(
    make_widget, qtbot, wait_idle, astronaut
):
    viewer, widget = make_widget()
    photo = astronaut[::2, ::2]
    viewer.add_image(photo, name="astro", rgb=True)
    widget._n_colors.value = 8
    _run(widget, qtbot, wait_idle)
    plain = viewer.layers["astro k=8 labels"].metadata["palette"].copy()

    # Paint the face into a Labels layer, choose it as importance, lock white.
    mask = viewer.add_labels(np.zeros(photo.shape[:2], dtype=np.uint8), name="face")
    mask.selected_label = 1
    mask.data[33:89, 89:133] = 1
    mask.refresh()
    assert mask in widget._importance.choices
    widget._importance.value = mask
    widget._locked.value = "#ffffff"
    widget._image.value = viewer.layers["astro"]
    _run(widget, qtbot, wait_idle)
    labels = viewer.layers["astro k=8 labels"]
    palette = labels.metadata["palette"]
    want = quantize(
        photo,
        8,
        weights=mask.data.astype(float),
        fixed_colors=np.array([[255, 255, 255]], np.uint8),
    )
    np.testing.assert_array_equal(palette, want.palette)
    np.testing.assert_array_equal(labels.data, want.labels)
    assert (palette == 255).all(axis=1).any()
    assert not np.array_equal(palette, plain)
    assert "PSNR where weighted" in widget._figures.value

    # A click on a swatch locks its colour too.
    widget._swatches.native.cellClicked.emit(1, 0)
    assert widget._locked.value == f"#ffffff, {widget._swatches.data[1][1][:7]}"


def test_bad_locked_colours_are_refused_before_the_run(make_widget, astronaut):
    viewer, widget = make_widget()
    viewer.add_image(astronaut[::4, ::4], name="astro", rgb=True)
    widget._locked.value = "white"
    assert widget.run() is None
    assert not widget.is_running


# --- save ---------------------------------------------------------------------------


def test_save_writes_an_indexed_png_equal_to_the_quantised_image(
    make_widget, qtbot, wait_idle, small_rgb, tmp_path
):
    from PIL import Image as PILImage

    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    assert not widget._save_button.enabled  # nothing to save yet
    with pytest.raises(ValueError, match="Nothing to save"):
        widget.save(tmp_path / "x.png")
    widget._n_colors.value = 6
    _run(widget, qtbot, wait_idle)
    assert widget._save_button.enabled
    assert "indexed PNG" in widget._figures.value
    with pytest.raises(ValueError, match=r"\.png, \.gif, \.tif"):
        widget.save(tmp_path / "x.jpg")
    widget.save(tmp_path / "x.png")
    wait_idle(widget)
    with PILImage.open(tmp_path / "x.png") as im:
        assert im.mode == "P"
        back = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(back, viewer.layers["img k=6"].data)
    assert "Saved" in widget._status.value and "indexed PNG" in widget._status.value


def test_save_button_asks_for_a_file_and_writes_in_a_worker(
    make_widget, qtbot, wait_idle, small_rgb, tmp_path, monkeypatch
):
    from PIL import Image as PILImage

    from napari_kmeans_quantize._qt import save as save_module

    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    widget._n_colors.value = 4
    _run(widget, qtbot, wait_idle)
    asked = []

    def ask(parent, suggested, default_format, formats):
        asked.append((suggested, default_format))
        return str(tmp_path / "chosen.gif")

    # the tooltip offers what the dialog offers
    tooltip = widget._save_button.native.toolTip()
    assert tooltip.startswith("Save 'img k=4'") and "starts on indexed PNG" in tooltip
    for entry in save_module.file_filter("indexed PNG")[0].split(";;"):
        assert entry in tooltip
    monkeypatch.setattr(save_module, "ask_save_path", ask)
    widget._save_button.native.click()
    assert widget.is_running  # the write runs in a worker
    wait_idle(widget)
    assert asked == [("img k=4.png", "indexed PNG")]
    assert "palette GIF" in widget._status.value
    with PILImage.open(tmp_path / "chosen.gif") as im:
        np.testing.assert_array_equal(
            np.asarray(im.convert("RGB")), viewer.layers["img k=4"].data
        )


def test_stack_readout_names_the_multipage_tiff_and_its_real_size(
    make_widget, qtbot, wait_idle, small_rgb, tmp_path, notifications
):
    import tifffile

    viewer, widget = make_widget()
    stack = np.stack([small_rgb, small_rgb[::-1], small_rgb[:, ::-1]])
    viewer.add_image(stack, name="zstack", rgb=True)
    widget._n_colors.value = 8
    _run(widget, qtbot, wait_idle)
    file = widget._current[0].file
    assert file.format == "palette TIFF" and file.extension == ".tif"
    assert "palette TIFF" in widget._figures.value
    assert f"{file.n_bytes:,} bytes" in widget._figures.value
    widget.save(tmp_path / "z.tif")
    wait_idle(widget)
    assert (tmp_path / "z.tif").stat().st_size == file.n_bytes
    labels = viewer.layers["zstack k=8 labels"].data
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "z.tif"), labels)
    # a .png of a stack is an animated PNG, one frame per plane
    widget.save(tmp_path / "z.png")
    wait_idle(widget)
    from PIL import Image as PILImage

    with PILImage.open(tmp_path / "z.png") as im:
        assert im.n_frames == len(labels)
        for i in range(len(labels)):
            im.seek(i)
            np.testing.assert_array_equal(np.asarray(im), labels[i])


def test_napari_save_path_with_the_plugin_writer(
    make_napari_viewer, small_rgb, tmp_path
):
    import napari
    from PIL import Image as PILImage

    from napari_kmeans_quantize import quantize_layer

    viewer = make_napari_viewer()
    source = viewer.add_image(small_rgb, name="img", rgb=True)
    image, labels, _ = quantize_layer(source, n_colors=8, viewer=viewer)
    # the entry README tells the user to pick in File > Save Selected Layers
    from napari.plugins._npe2 import file_extensions_string_for_layers

    entries = file_extensions_string_for_layers([labels])[0].split(";;")
    assert (
        "K-means Colour Quantiser indexed PNG (palette; APNG for stacks) (*.png)"
        in entries
    )
    assert "K-means Colour Quantiser palette TIFF (*.tif *.tiff)" in entries
    viewer.layers.selection = {labels}
    written = viewer.layers.save(
        str(tmp_path / "a.png"), selected=True, plugin="napari-kmeans-quantize"
    )
    assert written == [str(tmp_path / "a.png")]
    written = napari.save_layers(
        str(tmp_path / "b.png"), [labels], plugin="napari-kmeans-quantize"
    )
    for name in ("a.png", "b.png"):
        with PILImage.open(tmp_path / name) as im:
            assert im.mode == "P"
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), image.data)


# --- single-channel and microscopy data ------------------------------------------


def test_auto_k_on_a_grey_layer_works_with_the_defaults(
    make_widget, qtbot, wait_idle, notifications
):
    from skimage import data

    viewer, widget = make_widget()
    viewer.add_image(data.astronaut()[::4, ::4], name="rgb", rgb=True)
    assert widget._target.value == "ciede2000"
    grey = data.camera()[::4, ::4]
    viewer.add_image(grey, name="grey")
    assert widget._target.value == "psnr"  # follows the data
    assert widget._target_value.value == pytest.approx(30.0)
    widget._sweep_ks.value = "2, 4, 8, 16"
    widget.auto()
    qtbot.waitUntil(
        lambda: widget._job == "quantize" and not widget.is_running, timeout=60_000
    )
    wait_idle(widget)
    assert not [m for m, sev in notifications if sev == "error"]
    expected = sweep(grey, (2, 4, 8, 16, 256), channel_axis=None).smallest_k(
        min_psnr=30
    )
    assert f"grey k={expected.k} labels" in viewer.layers
    # a target the user picks stays, whatever the layer
    widget._target.value = "ciede2000"
    viewer.layers.selection.active = viewer.layers["rgb"]
    viewer.layers.selection.active = viewer.layers["grey"]
    assert widget._target.value == "ciede2000"


def test_results_take_the_sources_display_settings(
    make_widget, qtbot, wait_idle, small_rgb
):
    viewer, widget = make_widget()
    nuclei = small_rgb[..., 0]
    membrane = small_rgb[..., 1]
    viewer.add_image(membrane, name="membrane", colormap="magenta", blending="additive")
    source = viewer.add_image(
        nuclei,
        name="nuclei",
        colormap="green",
        blending="additive",
        contrast_limits=(10, 200),
        opacity=0.8,
    )
    widget._image.value = source
    widget._n_colors.value = 4
    _run(widget, qtbot, wait_idle)
    image = viewer.layers["nuclei k=4"]
    labels = viewer.layers["nuclei k=4 labels"]
    strip = viewer.layers["nuclei k=4 palette"]
    for layer in (image, labels, strip):
        assert layer.blending == "additive", layer.name
    assert image.colormap.name == "green"
    assert tuple(image.contrast_limits) == (10, 200)
    assert image.opacity == pytest.approx(0.8)
    assert strip.interpolation2d == "nearest" and strip.interpolation3d == "nearest"
    # additive: the membrane channel still shows through the result
    viewer.dims.ndisplay = 2
    assert viewer.layers["membrane"].visible


def test_a_channel_axis_inside_a_layer_is_explained(
    make_widget, qtbot, wait_idle, small_rgb, notifications
):
    viewer, widget = make_widget()
    zcyx = np.stack([small_rgb[..., :2].transpose(2, 0, 1)] * 3)  # (3, 2, 48, 64)
    viewer.add_image(zcyx, name="zcyx")
    widget._n_colors.value = 4
    _run(widget, qtbot, wait_idle)
    infos = [m for m, sev in notifications if sev == "info"]
    assert any("Axis 1 (length 2) may be channels" in m for m in infos)
    assert "zcyx k=4 labels" in viewer.layers


# --- less clutter, better reading -------------------------------------------------


def test_remove_results_clears_one_sources_outputs(
    make_widget, qtbot, wait_idle, small_rgb
):
    viewer, widget = make_widget()
    other = viewer.add_image(small_rgb[::-1], name="other", rgb=True)
    img = viewer.add_image(small_rgb, name="img", rgb=True)
    widget._image.value = other
    widget._n_colors.value = 4
    _run(widget, qtbot, wait_idle)
    widget._image.value = img
    _run(widget, qtbot, wait_idle)
    widget.compare((2, 4))
    wait_idle(widget)
    assert len(viewer.layers) == 2 + 3 + 3 + 2  # + the k browser's image and strip
    widget._image.value = img
    widget._remove_button.native.click()
    assert [lay.name for lay in viewer.layers] == [
        "other",
        "img",
        *_result_names("other", 4),
    ]
    assert "Removed 5 result layers of 'img'" in widget._status.value


def test_status_time_is_what_the_user_waited(
    make_widget, qtbot, wait_idle, small_rgb, slow_engine
):
    import re
    import time

    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    slow_engine["delay"] = 0.1
    start = time.perf_counter()
    _run(widget, qtbot, wait_idle)
    waited = time.perf_counter() - start
    seconds = float(re.search(r"Done in ([0-9.]+) s", widget._status.value).group(1))
    engine = viewer.layers["img k=16 labels"].metadata["size_report"]["seconds"]
    assert seconds > engine  # the pauses between steps count: the user waited them
    assert seconds <= waited


def test_newest_readout_is_scrolled_into_view(
    make_widget, qtbot, wait_idle, small_astronaut
):
    viewer, widget = make_widget(show=True)
    viewer.add_image(small_astronaut, name="astro", rgb=True)
    widget.compare((2, 4, 8))
    wait_idle(widget)
    widget._n_colors.value = 4
    _run(widget, qtbot, wait_idle)
    qtbot.wait(50)
    bar = widget._scroll.verticalScrollBar()
    top = widget._readout.native.y()
    assert bar.value() == min(top, bar.maximum()) and bar.value() > 0
    viewport = widget._scroll.viewport().rect()
    assert widget._readout.native.y() - bar.value() < viewport.height()


def test_closing_the_viewer_stops_the_worker_within_a_second(
    make_widget, qtbot, small_rgb, slow_engine
):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    slow_engine["delay"] = 0.2
    worker = widget.run()
    qtbot.waitUntil(lambda: slow_engine["yields"] >= 1, timeout=10_000)
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    viewer.close()
    # the engine stops at its next step (one pause of 0.2 s away)
    qtbot.waitUntil(lambda: bool(finished) or worker.abort_requested, timeout=1_000)
    steps = slow_engine["yields"]
    qtbot.wait(700)
    assert slow_engine["yields"] <= steps + 1


# --- results on the main thread, big and lazy data --------------------------------


def test_result_layers_arrive_one_per_event_loop_turn(
    make_widget, qtbot, wait_idle, small_rgb
):
    from qtpy.QtCore import QTimer

    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    turns = {"n": 0}
    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(lambda: turns.__setitem__("n", turns["n"] + 1))
    timer.start()
    seen = []

    def on_inserted(event):
        seen.append(turns["n"])
        # the result has arrived: Cancel now must not leave it half-added
        widget.cancel()

    viewer.layers.events.inserted.connect(on_inserted)
    widget.run()
    wait_idle(widget)
    timer.stop()
    assert [layer.name for layer in viewer.layers][1:] == _result_names("img", 16)
    assert len(seen) == 3
    # the event loop ran between one layer and the next
    assert seen[0] < seen[1] < seen[2]
    assert widget._status.value.startswith("Done in")


@pytest.mark.slow
def test_dithered_12mp_run_cancels_within_a_second(make_widget, qtbot, astronaut):
    import time

    viewer, widget = make_widget()
    photo = np.ascontiguousarray(np.tile(astronaut, (6, 8, 1)))  # 3072 x 4096
    viewer.add_image(photo, name="photo", rgb=True)
    widget._dither.value = True
    widget._n_colors.value = 64
    worker = widget.run()
    finished = []
    worker.finished.connect(lambda: finished.append(time.perf_counter()))
    # well into the run (the palette fit is done below 50 %: dithering is on)
    qtbot.waitUntil(lambda: widget._progress.value >= 50, timeout=120_000)
    assert widget.is_running
    cancelled = time.perf_counter()
    widget.cancel()
    # not a speed target: the dithering stops at its next progress step
    qtbot.waitUntil(lambda: bool(finished) and not widget.is_running, timeout=1_000)
    assert finished[0] - cancelled < 1.0
    assert worker.abort_requested
    assert [layer.name for layer in viewer.layers] == ["photo"]
    assert "Cancelled" in widget._status.value


def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_compare_k_on_an_8192_dask_layer_stays_under_2_gb(
    make_widget, qtbot, wait_idle, astronaut
):
    import threading

    viewer, widget = make_widget()
    # generated lazily: every block is read from one 512 x 512 tile
    tile = da.from_array(astronaut, chunks=(512, 512, 3))
    lazy = da.tile(tile, (16, 16, 1)).rechunk((1024, 1024, 3))  # 8192^2, 201 MB
    viewer.add_image(lazy, name="lazy", rgb=True)
    before = _rss_bytes()
    peak = {"rss": before}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _rss_bytes())
            stop.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        widget.compare((4, 16, 64))
        wait_idle(widget, timeout=300_000)
    finally:
        stop.set()
        sampler.join()
    table = widget.sweep_table
    assert table is not None and table.shape == (8192, 8192)
    assert [row.k for row in table] == [4, 16, 64]
    assert all(row.png_bytes is None for row in table)  # it would read every pixel
    assert table.rows[0].psnr < table.rows[-1].psnr
    # loaded whole, the sweep took 1.2 -> 8.0 GB
    assert peak["rss"] - before < 2 * 2**30


def test_palette_strip_and_readout_follow_the_k_browser(
    make_widget, qtbot, wait_idle, small_astronaut, tmp_path
):
    from PIL import Image as PILImage

    viewer, widget = make_widget(show=True)
    viewer.add_image(small_astronaut, name="astro", rgb=True)
    widget._n_colors.value = 8
    _run(widget, qtbot, wait_idle)
    kept_strip = viewer.layers["astro k=8 palette"]
    _compare(widget, wait_idle, ks=(2, 4, 8))
    _click_row(qtbot, widget, 1)  # k = 4
    eager = quantize(small_astronaut, 4)
    strip = viewer.layers["astro compare k=4 palette"]
    np.testing.assert_array_equal(strip.data[:, 0], eager.palette)
    # on top of the kept strip, in the same place: that is the one seen
    layers = list(viewer.layers)
    assert layers.index(strip) > layers.index(kept_strip)

    def corners(layer):  # world coordinates of the strip's outer edges
        k = layer.data.shape[0]
        return [layer.data_to_world(p) for p in ((-0.5, -0.5), (k - 0.5, 0.5))]

    np.testing.assert_allclose(corners(strip), corners(kept_strip))
    assert strip.interpolation2d == "nearest"
    assert "astro compare k=4" in widget._palette_title.value
    assert widget._swatches.native.rowCount() == 4
    first = "#{:02x}{:02x}{:02x}".format(*eager.palette[0])
    assert widget._swatches.data[0][1].startswith(first)
    # Save writes the shown k
    widget.save(tmp_path / "k4.png")
    wait_idle(widget)
    with PILImage.open(tmp_path / "k4.png") as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), eager.labels)
    widget._panel.k_slider.value = 0  # k = 2: the strip is swapped, not stacked
    assert "astro compare k=4 palette" not in viewer.layers
    assert viewer.layers["astro compare k=2 palette"].data.shape[0] == 2
    assert widget._swatches.native.rowCount() == 2
    # the preview goes: the readout shows the run's result again
    viewer.layers["astro"].data = small_astronaut[::-1].copy()
    assert not any("compare" in lay.name for lay in viewer.layers)
    assert "astro k=8" in widget._palette_title.value
    assert widget._swatches.native.rowCount() == 8
