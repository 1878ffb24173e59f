"""Compare k's panel: copying and saving the table, the level note, the memory bound."""

from __future__ import annotations

import numpy as np
from napari.layers import Image

from conftest import drain
from napari_kmeans_quantize._layers import source_info
from napari_kmeans_quantize._qt.k_browser import compare_iter
from napari_kmeans_quantize._qt.sweep_panel import table_tsv


def _compare(widget, wait_idle, ks):
    widget.compare(ks)
    wait_idle(widget)
    return widget._panel


def test_copy_puts_every_row_with_headers_on_the_clipboard(
    make_widget, wait_idle, small_rgb, tmp_path
):
    from qtpy.QtWidgets import QApplication

    viewer, widget = make_widget()
    viewer.add_image(small_rgb, name="img", rgb=True)
    panel = _compare(widget, wait_idle, (2, 4, 8))
    panel.copy_button.native.click()
    lines = QApplication.clipboard().text().splitlines()
    assert len(lines) == 4
    header = lines[0].split("\t")
    assert header[:2] == ["k", "n_colors"] and "psnr_db" in header
    assert [line.split("\t")[0] for line in lines[1:]] == ["2", "4", "8"]
    psnr = [float(line.split("\t")[header.index("psnr_db")]) for line in lines[1:]]
    assert psnr == [row.psnr for row in widget.sweep_table]
    path = panel.save_csv(tmp_path / "t.csv")
    with open(path) as f:
        assert f.read() == widget.sweep_table.to_csv()


def test_comparison_keeps_labels_not_images_and_rebuilds_them(small_rgb):
    from napari_kmeans_quantize import quantize

    comparison = drain(compare_iter(source_info(Image(small_rgb, rgb=True)), (2, 8)))
    assert all(r.image is None for r in comparison.kept.values())
    n_pixels = small_rgb.shape[0] * small_rgb.shape[1]
    assert comparison.kept_bytes <= 2 * n_pixels + 2 * 8 * 3
    np.testing.assert_array_equal(comparison.image(8), quantize(small_rgb, 8).image)
    outcome = comparison.outcome(8)
    assert outcome.report.png_bytes == comparison.table.row(8).png_bytes
    assert outcome.file.format == "indexed PNG"
    assert table_tsv(comparison.table).splitlines()[1].split("\t")[0] == "2"


def test_multiscale_comparison_says_which_level_its_figures_are_from(
    make_widget, wait_idle, astronaut, monkeypatch
):
    from napari_kmeans_quantize import _layers

    viewer, widget = make_widget()
    pyramid = [astronaut, astronaut[::2, ::2], astronaut[::4, ::4]]
    viewer.add_image(pyramid, name="pyr", rgb=True, multiscale=True)
    monkeypatch.setattr(_layers.sources, "MULTISCALE_FIT_PIXELS", 128 * 128)
    panel = _compare(widget, wait_idle, (2, 4))
    assert panel.comparison.level == 2
    assert "pyramid level 2 (128 × 128 pixels), not the full 512 × 512" in (
        panel.title.value
    )
    preview = viewer.layers["pyr compare k=2"]
    # the level-2 preview is stretched over the full-resolution image
    np.testing.assert_allclose(preview.scale, [4, 4])
    corners = [preview.data_to_world(p) for p in ((-0.5, -0.5), (127.5, 127.5))]
    np.testing.assert_allclose(corners, [(-0.5, -0.5), (511.5, 511.5)])


def test_big_lazy_source_is_previewed_as_a_pyramid_of_its_own_pixels(
    make_widget, wait_idle, astronaut, monkeypatch
):
    import dask.array as da

    from napari_kmeans_quantize import _layers, quantize

    monkeypatch.setattr(_layers.sources, "DISPLAY_PYRAMID_PIXELS", 64 * 64)
    monkeypatch.setattr(_layers.sources, "DISPLAY_MIN_SIDE", 32)
    monkeypatch.setattr(_layers.sources, "DISPLAY_EAGER_PIXELS", 64 * 64)
    small = astronaut[::2, ::2]  # 256 x 256: levels 256, 128 lazy; 64, 32 made
    viewer, widget = make_widget()
    lazy = da.from_array(small, chunks=(64, 64, 3))
    viewer.add_image(lazy, name="big", rgb=True)
    panel = _compare(widget, wait_idle, (4, 8))
    preview = viewer.layers["big compare k=4"]
    assert preview.multiscale
    eager = quantize(small, 4)
    levels = list(preview.data)
    assert [np.shape(level)[:2] for level in levels] == [
        (256, 256),
        (128, 128),
        (64, 64),
        (32, 32),
    ]
    assert isinstance(levels[0], da.Array) and isinstance(levels[1], da.Array)
    for i, level in enumerate(levels):
        np.testing.assert_array_equal(level, eager.image[:: 2**i, :: 2**i])
    # the kept coarse labels are counted in the memory the panel states
    coarse = sum(lab.nbytes for lab in panel.comparison.coarse[4])
    assert coarse == 64 * 64 + 32 * 32
    assert panel.comparison.kept_bytes >= 2 * coarse
    # browsing swaps the whole pyramid
    panel.browse(8)
    eight = quantize(small, 8)
    np.testing.assert_array_equal(list(preview.data)[-1], eight.image[::8, ::8])
