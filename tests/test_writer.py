"""The npe2 writers, through a real napari viewer: File > Save Selected Layers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize._writer import write_indexed_png

PLUGIN = "napari-kmeans-quantize"


def _photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


def _quantized(image: np.ndarray, k: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return quantize(image, k)


def _add_like_ours(viewer, result, name="labels"):
    """A Labels layer built as the plugin builds it: palette colours, label 0 drawn."""
    from napari.utils.colormaps import DirectLabelColormap

    pal = result.palette.astype(np.float64) / 255
    if pal.shape[1] == 3:
        pal = np.column_stack([pal, np.ones(len(pal))])
    color_dict = {i: tuple(float(v) for v in c) for i, c in enumerate(pal)}
    color_dict[None] = "transparent"
    return viewer.add_labels(
        result.labels,
        colormap=DirectLabelColormap(color_dict=color_dict),
        opacity=1.0,
        name=name,
    )


@pytest.mark.parametrize("k", [2, 16, 256])
def test_save_selected_labels_as_indexed_png(make_napari_viewer, tmp_path, k):
    viewer = make_napari_viewer()
    image = _photo(64, 80)
    result = _quantized(image, k)
    assert result.n_colors == k
    _add_like_ours(viewer, result)
    path = tmp_path / "quantized.png"
    written = viewer.layers.save(str(path), selected=True, plugin=PLUGIN)
    assert written == [str(path)]
    with Image.open(path) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), result.image)
        np.testing.assert_array_equal(np.asarray(im), result.labels)
    # napari's own reader gives the quantised image back too.
    [layer] = viewer.open(str(path), plugin="napari")
    np.testing.assert_array_equal(np.asarray(layer.data)[..., :3], result.image)


def test_save_rgba_labels_round_trip(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = np.dstack([_photo(), np.full(_photo().shape[:2], 255, np.uint8)])
    image[:8, :12] = 0  # a transparent corner
    image[30:, 40:, 3] = 128  # and a half-transparent one
    result = _quantized(image, 16)
    assert (result.palette[:, 3] < 255).any()
    _add_like_ours(viewer, result)
    path = tmp_path / "rgba.png"
    assert viewer.layers.save(str(path), selected=True, plugin=PLUGIN) == [str(path)]
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), result.image)


def test_save_gif_and_tiff(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    result = _quantized(_photo(), 16)
    _add_like_ours(viewer, result)
    for name in ("q.gif", "q.tif", "q.tiff"):
        path = tmp_path / name
        assert viewer.layers.save(str(path), selected=True, plugin=PLUGIN) == [
            str(path)
        ]
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), result.image)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "q.tif"), result.labels)


def test_writers_are_offered_for_labels_in_the_save_dialog(make_napari_viewer):
    from napari.plugins import _npe2

    viewer = make_napari_viewer()
    layer = _add_like_ours(viewer, _quantized(_photo(), 4))
    ext_str, writers = _npe2.file_extensions_string_for_layers([layer])
    commands = {w.command for w in writers}
    assert {
        f"{PLUGIN}.write_indexed_png",
        f"{PLUGIN}.write_indexed_gif",
        f"{PLUGIN}.write_palette_tiff",
        f"{PLUGIN}.write_apng",
        f"{PLUGIN}.write_webp",
    } <= commands
    assert "animated PNG (one palette)" in ext_str and "lossless WebP" in ext_str
    assert "indexed PNG (palette" in ext_str
    # napari's own labels writer stays the default for .tif.
    from npe2 import PluginManager

    writer, _ = PluginManager.instance().get_writer("x.tif", ["labels"])
    assert writer.command == "napari.write_labels"


def test_any_labels_layer_with_its_own_colours(make_napari_viewer, tmp_path):
    """A segmentation with napari's default (cyclic) colours, background transparent."""
    viewer = make_napari_viewer()
    seg = np.zeros((30, 40), np.int32)
    seg[5:15, 5:15] = 1
    seg[10:25, 20:35] = 7
    layer = viewer.add_labels(seg)
    path = tmp_path / "seg.png"
    assert viewer.layers.save(str(path), selected=True, plugin=PLUGIN) == [str(path)]
    expected = np.rint(np.asarray(layer.colormap.map(seg)) * 255).astype(np.uint8)
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), seg)  # values kept as indices
        np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), expected)


def test_large_label_values_are_renumbered(tmp_path):
    from napari.utils.colormaps import DirectLabelColormap

    seg = np.array([[1000, 70000], [70000, 5]], np.int64)
    colors = {1000: "red", 70000: "blue", 5: "lime", None: "transparent"}
    meta = {"name": "seg", "colormap": DirectLabelColormap(color_dict=colors)}
    path = tmp_path / "seg.png"
    assert write_indexed_png(str(path), seg, meta) == [str(path)]
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), [[1, 2], [2, 0]])
        np.testing.assert_array_equal(
            np.asarray(im.convert("RGB")),
            [[[255, 0, 0], [0, 0, 255]], [[0, 0, 255], [0, 255, 0]]],
        )


def test_too_many_labels_warns_and_writes_nothing(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    seg = np.arange(20 * 20, dtype=np.int32).reshape(20, 20)  # 400 labels
    viewer.add_labels(seg, name="many")
    path = tmp_path / "many.png"
    with pytest.warns(UserWarning, match=r"'many' as indexed PNG.*400 distinct labels"):
        written = viewer.layers.save(str(path), selected=True, plugin=PLUGIN)
    assert written == []
    assert list(tmp_path.iterdir()) == []
    # A palette TIFF holds them.
    path = tmp_path / "many.tif"
    assert viewer.layers.save(str(path), selected=True, plugin=PLUGIN) == [str(path)]
    np.testing.assert_array_equal(tifffile.imread(path), seg)


def test_stacks_go_to_multi_page_tiff(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    result = _quantized(np.stack([_photo(seed=1), _photo(seed=2), _photo(seed=3)]), 8)
    _add_like_ours(viewer, result, name="stack")
    path = tmp_path / "s.tif"
    assert viewer.layers.save(str(path), selected=True, plugin=PLUGIN) == [str(path)]
    np.testing.assert_array_equal(tifffile.imread(path), result.labels)
    with Image.open(path) as im:
        assert im.n_frames == 3
        im.seek(2)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), result.image[2])


@pytest.mark.parametrize("name", ["s.png", "s.apng", "s.gif"])
def test_stacks_become_animations_with_one_palette(make_napari_viewer, tmp_path, name):
    viewer = make_napari_viewer()
    result = _quantized(np.stack([_photo(seed=1), _photo(seed=2), _photo(seed=3)]), 8)
    _add_like_ours(viewer, result, name="stack")
    path = tmp_path / name
    assert viewer.layers.save(str(path), selected=True, plugin=PLUGIN) == [str(path)]
    with Image.open(path) as im:
        assert im.n_frames == 3
        for i in range(3):
            im.seek(i)
            np.testing.assert_array_equal(
                np.asarray(im.convert("RGB")), result.image[i]
            )


def test_more_than_three_axes_point_to_tiff(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    frames = np.stack([_photo(seed=s) for s in range(4)]).reshape(2, 2, 40, 56, 3)
    result = _quantized(frames, 4)
    _add_like_ours(viewer, result, name="4d")
    for name in ("s.png", "s.gif", "s.apng"):
        with pytest.warns(UserWarning, match="frames, height, width.*palette TIFF"):
            assert viewer.layers.save(str(tmp_path / name), plugin=PLUGIN) == []
    with pytest.warns(UserWarning, match="WebP holds one 2-D image.*apng"):
        assert viewer.layers.save(str(tmp_path / "s.webp"), plugin=PLUGIN) == []
    assert list(tmp_path.iterdir()) == []


def test_save_webp(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = np.dstack([_photo(), np.full(_photo().shape[:2], 255, np.uint8)])
    image[:8, :12, 3] = 0
    result = _quantized(image, 16)
    _add_like_ours(viewer, result)
    path = tmp_path / "q.webp"
    assert viewer.layers.save(str(path), selected=True, plugin=PLUGIN) == [str(path)]
    with Image.open(path) as im:
        assert im.format == "WEBP"
        np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), result.image)
    # napari's own reader opens it (WebP holds colours, so not ours).
    [layer] = viewer.open(str(path), plugin="napari")
    np.testing.assert_array_equal(np.asarray(layer.data), result.image)


def test_gif_refuses_partial_transparency(tmp_path):
    from napari.utils.colormaps import DirectLabelColormap

    colors = {0: (1, 0, 0, 0.5), 1: (0, 0, 1, 1), None: "transparent"}
    meta = {"name": "half", "colormap": DirectLabelColormap(color_dict=colors)}
    from napari_kmeans_quantize._writer import write_indexed_gif

    with pytest.warns(UserWarning, match="binary transparency"):
        assert (
            write_indexed_gif(str(tmp_path / "h.gif"), np.eye(3, dtype=int), meta) == []
        )
    assert list(tmp_path.iterdir()) == []


def test_no_colormap_warns(tmp_path):
    with pytest.warns(UserWarning, match="no label colormap"):
        assert (
            write_indexed_png(str(tmp_path / "x.png"), np.eye(3, dtype=int), {}) == []
        )


def test_save_dialog_error_names_the_reason(make_napari_viewer, tmp_path, monkeypatch):
    """File > Save Selected Layers with our filter: napari's error carries our text."""
    from napari._qt import qt_viewer as qt_viewer_module
    from napari.plugins import _npe2

    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.arange(400, dtype=np.int32).reshape(20, 20))
    ext_str, _ = _npe2.file_extensions_string_for_layers([layer])
    png_filter = next(f for f in ext_str.split(";;") if "indexed PNG" in f)
    target = str(tmp_path / "many.png")
    monkeypatch.setattr(
        qt_viewer_module.QFileDialog,
        "getSaveFileName",
        lambda *args, **kwargs: (target, png_filter),
    )
    with pytest.raises(OSError, match=r"(?s)save failed.*400 distinct labels"):
        viewer.window._qt_viewer._save_layers_dialog(selected=True)
    assert list(tmp_path.iterdir()) == []


def test_multiscale_layer_saves_full_resolution(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    result = _quantized(_photo(64, 80), 4)
    layer = _add_like_ours(viewer, result)
    viewer.layers.remove(layer)
    levels = [result.labels, result.labels[::2, ::2]]
    viewer.add_labels(levels, multiscale=True, colormap=layer.colormap, opacity=1.0)
    path = tmp_path / "ms.png"
    assert viewer.layers.save(str(path), selected=True, plugin=PLUGIN) == [str(path)]
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), result.image)


def test_multichannel_labels_as_tiff_plus_palette_csv(make_napari_viewer, tmp_path):
    from napari.plugins import _npe2

    from napari_kmeans_quantize._writer import write_labels_with_csv
    from napari_kmeans_quantize.palette_io import read_palette_csv

    rng = np.random.default_rng(2)
    cube = rng.integers(0, 4096, (3, 20, 30, 5), dtype=np.uint16)
    result = quantize(cube, 6)
    viewer = make_napari_viewer()
    layer = viewer.add_labels(
        result.labels,
        metadata={"palette": result.palette, "channel_names": list("abcde")},
    )
    _, writers = _npe2.file_extensions_string_for_layers([layer])
    assert f"{PLUGIN}.write_labels_with_csv" in {w.command for w in writers}
    data, meta, _ = layer.as_layer_data_tuple()
    paths = write_labels_with_csv(str(tmp_path / "cells.tif"), data, meta)
    assert paths == [str(tmp_path / "cells.tif"), str(tmp_path / "cells_palette.csv")]
    np.testing.assert_array_equal(tifffile.imread(paths[0]), result.labels)
    palette, names = read_palette_csv(paths[1])
    np.testing.assert_array_equal(palette, result.palette)
    assert names == list("abcde")


def test_a_read_only_palette_csv_is_refused_before_the_tiff(tmp_path):
    from napari.layers import Labels

    from napari_kmeans_quantize._writer import write_labels_with_csv

    result = quantize(np.random.default_rng(3).integers(0, 4096, (8, 9, 2)), 3)
    layer = Labels(result.labels, metadata={"palette": result.palette})
    data, meta, _ = layer.as_layer_data_tuple()
    tif, csv = tmp_path / "cells.tif", tmp_path / "cells_palette.csv"
    tif.write_bytes(b"the older labels")
    csv.write_bytes(b"the older palette")
    csv.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only"):
        write_labels_with_csv(str(tif), data, meta)
    assert tif.read_bytes() == b"the older labels"
    assert csv.read_bytes() == b"the older palette"
