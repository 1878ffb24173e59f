"""The widget's other sources in a real viewer: a layer's channels, one layer per
channel, layers sharing one palette; and the colour picker of locked colours."""

from __future__ import annotations

import numpy as np
import pytest


def _add_channels(viewer, stack):
    return viewer.add_image(
        stack,
        channel_axis=1,
        name=["nuclei", "membranes"],
        contrast_limits=[(0, 4095), (0, 65535)],
    )


def _run(widget, wait_idle, timeout=60_000):
    worker = widget.run()
    assert worker is not None
    wait_idle(widget, timeout=timeout)


def test_channel_layers_quantise_as_two_channels(make_widget, wait_idle, cells):
    viewer, widget = make_widget()
    nuclei, membranes = _add_channels(viewer, cells)
    chooser = widget._in.sources
    chooser.mode.value = "layers"
    assert not chooser.layers.native.isHidden()
    assert not chooser.standardize.native.isHidden()
    assert not widget._in.locked.enabled  # hex colours are not channel values
    assert not widget._compare_button.enabled and not widget._auto_button.enabled
    chooser.layers.value = [membranes, nuclei]  # taken in the layer list's order
    widget._n_colors.value = 6
    _run(widget, wait_idle)

    names = [lay.name for lay in viewer.layers]
    assert names == [
        "nuclei",
        "membranes",
        "nuclei k=6",
        "membranes k=6",
        "nuclei + membranes k=6 labels",
        "nuclei + membranes k=6 channel means",
    ]
    labels = viewer.layers["nuclei + membranes k=6 labels"]
    assert labels.data.shape == (60, 256, 256) and not labels.visible
    assert viewer.layers.selection.active is labels
    columns = list(labels.features.columns)
    assert columns[2:4] == ["nuclei", "membranes"]  # named by the layers
    assert {"index", "hex", "count", "share %"} <= set(columns)
    assert labels.features["count"].sum() == 60 * 256 * 256
    out = viewer.layers["membranes k=6"]
    assert out.colormap.name == membranes.colormap.name
    assert out.blending == membranes.blending
    assert tuple(out.contrast_limits) == (0, 65535)
    palette = labels.metadata["palette"]
    np.testing.assert_array_equal(out.data, palette[labels.data, 1])
    # the readout: a row per class, channel values named by the layers
    table = widget._swatches.native
    header = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    assert header == ["colour", "nuclei", "membranes", "pixels", "share"]
    assert table.rowCount() == 6
    assert table.item(0, 1).text() == str(palette[0, 0])
    assert "Classes of" in widget._palette_title.value
    assert "standardised" in widget._palette_title.value
    assert "6 classes of 2 channels" in widget._status.value
    # a click on a class does not lock it as a colour
    widget._on_swatch_clicked(0)
    assert widget._locked.value == ""
    # Remove results removes the results of the chosen channel layers
    assert widget.remove_results() == 4
    assert [lay.name for lay in viewer.layers] == ["nuclei", "membranes"]


def test_a_channel_result_saves_as_a_labels_tiff_and_its_palette_csv(
    make_widget, wait_idle, cells, tmp_path, monkeypatch
):
    import tifffile

    from napari_kmeans_quantize._qt import save as save_module
    from napari_kmeans_quantize.palette_io import read_palette_csv

    viewer, widget = make_widget()
    nuclei, membranes = _add_channels(viewer, cells[:6])
    chooser = widget._in.sources
    chooser.mode.value = "layers"
    chooser.layers.value = [nuclei, membranes]
    widget._n_colors.value = 5
    _run(widget, wait_idle)
    assert widget._save_button.enabled
    # The tooltip says what Save writes for this result: both files, no PNG.
    tooltip = widget._save_button.native.toolTip()
    assert tooltip.startswith("Save 'nuclei + membranes k=5' as labels TIFF + CSV")
    assert "writes 'nuclei + membranes k=5_palette.csv'" in tooltip
    assert "PNG" not in tooltip
    labels = viewer.layers["nuclei + membranes k=5 labels"]
    # Channel values are no palette colours: only the labels TIFF + CSV.
    with pytest.raises(ValueError, match=r"\.tif, \.tiff \(labels TIFF \+ CSV\)"):
        widget.save(tmp_path / "c.png")
    target = tmp_path / "c.tif"
    target.write_bytes(b"an older file, replaced whole")
    asked = []

    def ask(parent, suggested, default_format, formats):
        asked.append((suggested, default_format))
        return str(target)

    monkeypatch.setattr(save_module, "ask_save_path", ask)
    widget._save_button.native.click()
    assert widget.is_running  # the write runs in a worker
    wait_idle(widget)
    assert asked == [("nuclei + membranes k=5.tif", "labels TIFF + CSV")]
    np.testing.assert_array_equal(tifffile.imread(target), labels.data)
    palette, names = read_palette_csv(tmp_path / "c_palette.csv")
    np.testing.assert_array_equal(palette, labels.metadata["palette"])
    assert names == ["nuclei", "membranes"]
    status = widget._status.value
    assert "Saved" in status and "labels TIFF + CSV" in status
    assert "c_palette.csv" in status
    # Atomic writes: no temporary file is left beside them.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "c_palette.csv"]
    # Removing the result leaves nothing to save.
    widget.remove_results()
    assert not widget._save_button.enabled
    assert "run a quantisation first" in widget._save_button.native.toolTip()


def test_saving_a_channel_result_asks_before_replacing_its_csv(
    make_widget, wait_idle, cells, tmp_path, monkeypatch
):
    from qtpy.QtWidgets import QFileDialog

    from napari_kmeans_quantize._qt import save as save_module
    from napari_kmeans_quantize.palette_io import read_palette_csv

    viewer, widget = make_widget()
    nuclei, membranes = _add_channels(viewer, cells[:4])
    widget._in.sources.mode.value = "layers"
    widget._in.sources.layers.value = [nuclei, membranes]
    widget._n_colors.value = 4
    _run(widget, wait_idle)
    # Only the CSV exists: the dialog's own question (about the TIFF) would
    # not come; this one does, and No writes nothing and goes back to the dialog.
    tif, csv = tmp_path / "c.tif", tmp_path / "c_palette.csv"
    csv.write_bytes(b"an older palette")
    answers = [(str(tif), "labels TIFF + CSV (*.tif *.tiff)"), ("", "")]
    dialogs, questions = [], []

    def dialog(parent, caption, suggested, filters, selected, *options):
        dialogs.append((suggested, options))
        return answers.pop(0)

    def confirm(parent, files, existing):
        questions.append((files, existing))
        return False

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    monkeypatch.setattr(save_module, "confirm_replace", confirm, raising=False)
    widget._save_button.native.click()
    assert not widget.is_running
    assert questions == [((str(tif), str(csv)), [str(csv)])]
    assert [d[0] for d in dialogs] == ["nuclei + membranes k=4.tif", str(tif)]
    assert all(
        d[1] and d[1][0] & QFileDialog.Option.DontConfirmOverwrite for d in dialogs
    )
    assert csv.read_bytes() == b"an older palette" and not tif.exists()
    # A name typed without its extension gets one, and is asked about too.
    answers[:] = [(str(tmp_path / "c"), "labels TIFF + CSV (*.tif *.tiff)")]

    def replace(parent, files, existing):
        questions.append((files, existing))
        return True

    monkeypatch.setattr(save_module, "confirm_replace", replace)
    widget._save_button.native.click()
    wait_idle(widget)
    assert questions[-1] == ((str(tif), str(csv)), [str(csv)])
    labels = viewer.layers["nuclei + membranes k=4 labels"]
    palette, _names = read_palette_csv(csv)
    np.testing.assert_array_equal(palette, labels.metadata["palette"])
    assert tif.exists() and "c_palette.csv" in widget._status.value


def test_channels_inside_one_layer_follow_the_guessed_axis(
    make_widget, wait_idle, cells
):
    viewer, widget = make_widget()
    layer = viewer.add_image(cells[:12], name="cells")
    chooser = widget._in.sources
    chooser.mode.value = "axis"
    assert widget._image.value is layer and chooser.channel_axis.value == 1
    chooser.standardize.value = False
    widget._n_colors.value = 4
    _run(widget, wait_idle)
    assert [lay.name for lay in viewer.layers][1:] == [
        "cells ch0 k=4 unscaled",
        "cells ch1 k=4 unscaled",
        "cells k=4 unscaled labels",
        "cells k=4 unscaled channel means",
    ]
    labels = viewer.layers["cells k=4 unscaled labels"]
    assert labels.data.shape == (12, 256, 256)
    assert labels.metadata["standardize"] is False
    assert "as they are" in widget._palette_title.value


def test_bad_channel_sources_are_refused(make_widget, notifications, cells):
    viewer, widget = make_widget()
    nuclei, _ = _add_channels(viewer, cells[:4])
    viewer.add_image(np.zeros((8, 8, 3), np.uint8), rgb=True, name="photo")
    chooser = widget._in.sources
    chooser.mode.value = "layers"
    chooser.layers.value = [nuclei]
    assert widget.run() is None
    assert any("two or more channel layers" in m for m, _ in notifications)
    chooser.layers.value = [nuclei, viewer.layers["photo"]]
    assert widget.run() is None
    assert any("'photo' is an RGB(A) layer" in m for m, _ in notifications)
    chooser.mode.value = "axis"
    widget._image.value = viewer.add_image(np.zeros((8, 8)), name="flat")
    assert widget.run() is None
    assert any("does not fit 'flat' of shape (8, 8)" in m for m, _ in notifications)
    assert not widget.is_running


def test_layers_sharing_one_palette_say_so(make_widget, wait_idle, photo):
    viewer, widget = make_widget()
    first = viewer.add_image(photo(seed=0), name="frame 1")
    second = viewer.add_image(photo(h=32, w=48, seed=5), name="frame 2")
    chooser = widget._in.sources
    chooser.mode.value = "shared"
    assert not widget._in.importance.enabled and chooser.standardize.native.isHidden()
    chooser.layers.value = [first, second]
    widget._n_colors.value = 8
    _run(widget, wait_idle)
    a = viewer.layers["frame 1 k=8 shared labels"]
    b = viewer.layers["frame 2 k=8 shared labels"]
    np.testing.assert_array_equal(a.metadata["palette"], b.metadata["palette"])
    assert "frame 2 k=8 shared" in [lay.name for lay in viewer.layers]
    from napari_kmeans_quantize import quantize_shared

    expected = quantize_shared([first.data, second.data], 8)
    np.testing.assert_array_equal(a.metadata["palette"], expected[0].palette)
    np.testing.assert_array_equal(b.data, expected[1].labels)
    title = widget._palette_title.value
    assert "<b>shared</b> by 2 layers: frame 1, frame 2" in title
    assert "for 2 layers" in widget._status.value
    assert widget._save_button.enabled  # the readout's (first) result saves
    chooser.mode.value = "image"
    assert widget._compare_button.enabled and widget._in.importance.enabled


def test_a_layer_removed_during_a_shared_run_discards_it(
    make_widget, wait_idle, photo, notifications
):
    viewer, widget = make_widget()
    first = viewer.add_image(photo(seed=0), name="frame 1")
    second = viewer.add_image(photo(seed=1), name="frame 2")
    widget._in.sources.mode.value = "shared"
    widget._in.sources.layers.value = [first, second]
    assert widget.run() is not None
    viewer.layers.remove(second)
    wait_idle(widget)
    assert [lay.name for lay in viewer.layers] == ["frame 1"]
    assert any("'frame 2' was removed" in m for m, _ in notifications)


def test_a_shared_palette_of_one_layer_is_refused(make_widget, notifications, photo):
    viewer, widget = make_widget()
    only = viewer.add_image(photo(), name="only")
    widget._in.sources.mode.value = "shared"
    widget._in.sources.layers.value = [only]
    assert widget.run() is None
    assert any("two or more layers" in m for m, _ in notifications)


def test_the_colour_picker_appends_a_locked_colour(
    make_widget, wait_idle, monkeypatch, small_rgb
):
    from qtpy.QtGui import QColor
    from qtpy.QtWidgets import QColorDialog

    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="ramp")
    answers = iter([QColor("#ff8000"), QColor()])  # the second dialog is cancelled
    monkeypatch.setattr(QColorDialog, "getColor", lambda *a, **k: next(answers))
    widget._locked.value = "#ffffff"
    widget._in.pick_color.native.click()
    assert widget._locked.value == "#ffffff, #ff8000"
    widget._in.pick_color.native.click()
    assert widget._locked.value == "#ffffff, #ff8000"
    widget._n_colors.value = 6
    _run(widget, wait_idle)
    palette = viewer.layers["ramp k=6 labels"].metadata["palette"]
    rows = {tuple(int(v) for v in row) for row in palette}
    assert {(255, 255, 255), (255, 128, 0)} <= rows


@pytest.mark.parametrize("row", [0, 3])
def test_a_click_on_a_swatch_locks_it(make_widget, wait_idle, small_rgb, row):
    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="ramp")
    widget._n_colors.value = 6
    _run(widget, wait_idle)
    hexes = list(viewer.layers["ramp k=6 labels"].features["hex"])
    widget._swatches.native.cellClicked.emit(row, 0)
    assert widget._locked.value == hexes[row]


def test_controls_that_do_not_apply_to_the_source_are_hidden(make_widget, wait_idle):
    viewer, widget = make_widget(show=True)
    viewer.window._qt_window.resize(1280, 1000)
    rng = np.random.default_rng(5)
    nuclei, membranes = _add_channels(viewer, rng.integers(0, 4096, (2, 2, 24, 20)))
    stack = viewer.add_image(rng.integers(0, 4096, (3, 24, 20)), name="stack")
    inputs, chooser = widget._in, widget._in.sources

    def hidden():
        rows = ("image", "color_space", "locked", "pick_color", "importance")
        return {n for n in rows if getattr(inputs, n).native.isHidden()}

    assert hidden() == set()
    chooser.mode.value = "layers"
    chooser.layers.value = [nuclei, membranes]
    _run(widget, wait_idle)
    assert "nuclei + membranes k=16 labels" in viewer.layers
    # After the run too: no colour space, no hex colours, no image-layer box
    # naming one of the channel layers.
    assert hidden() == {"image", "color_space", "locked", "pick_color"}
    assert inputs.importance.enabled
    # The layer list's row keeps its height: the room of the hidden rows does
    # not become a gap around the list (a tall dock).
    row = chooser.layers.native.parentWidget()
    assert row.height() == 88
    chooser.mode.value = "axis"
    widget._image.value = stack
    _run(widget, wait_idle)
    assert "stack k=16 labels" in viewer.layers
    assert hidden() == {"color_space", "locked", "pick_color"}
    assert not inputs.image.native.isHidden() and inputs.image.value is stack
    chooser.mode.value = "shared"
    assert hidden() == {"importance"}
    chooser.mode.value = "image"
    assert hidden() == set()
