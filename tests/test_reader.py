"""The npe2 reader: a saved indexed file opens in napari as its labels and palette."""

from __future__ import annotations

import warnings

import napari
import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_kmeans_quantize import palette_io, quantize, quantize_layer
from napari_kmeans_quantize._reader import get_reader

PLUGIN = "napari-kmeans-quantize"


def _series(photo, n: int = 4) -> np.ndarray:
    frames = np.repeat(photo()[np.newaxis], n, axis=0)
    for t in range(n):
        frames[t, 10:20, 5 + 8 * t : 15 + 8 * t] = (240, 30, 20)
    return frames


def _quantized(image, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return quantize(image, k)


def _colors(layer, n: int) -> np.ndarray:
    return np.array([layer.colormap.color_dict[i] for i in range(n)])


def _quantize_in_viewer(viewer, image, k):
    source = viewer.add_image(image, name="photo", rgb=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, labels, _ = quantize_layer(source, n_colors=k, viewer=viewer)
    return labels


def _assert_same_labels(opened, saved):
    np.testing.assert_array_equal(np.asarray(opened.data), np.asarray(saved.data))
    k = len(saved.metadata["palette"])
    np.testing.assert_allclose(
        _colors(opened, k), _colors(saved, k), atol=0.5 / 255, rtol=0
    )
    np.testing.assert_array_equal(opened.metadata["palette"], saved.metadata["palette"])


@pytest.mark.parametrize("suffix", [".png", ".gif", ".tif"])
def test_saved_result_comes_back_as_it_was(photo, make_napari_viewer, tmp_path, suffix):
    viewer = make_napari_viewer()
    saved = _quantize_in_viewer(viewer, photo(), 16)
    path = str(tmp_path / f"q-k16{suffix}")  # a name of ours: see napari.yaml
    assert napari.save_layers(path, [saved], plugin=PLUGIN) == [path]
    _, opened = viewer.open(path, plugin=PLUGIN)
    assert opened._type_string == "labels"
    _assert_same_labels(opened, saved)
    assert opened.metadata["file_format"] == {".png": "PNG", ".gif": "GIF"}.get(
        suffix, "TIFF"
    )
    # The palette readout: one feature row per entry, with the real counts.
    counts = np.bincount(np.asarray(saved.data).ravel(), minlength=16)
    np.testing.assert_array_equal(opened.features["count"], counts)
    assert list(opened.features["hex"]) == saved.metadata["palette_hex"]
    # Label 0 is drawn in its colour (not as transparent background).
    assert opened.colormap.map(np.array([0]))[0, 3] == 1.0


@pytest.mark.parametrize("suffix", [".png", ".apng", ".gif", ".tif"])
def test_stack_round_trip_through_save_and_open(
    photo, make_napari_viewer, tmp_path, suffix
):
    viewer = make_napari_viewer()
    saved = _quantize_in_viewer(viewer, _series(photo), 32)
    assert np.asarray(saved.data).shape == (4, 40, 56)
    path = str(tmp_path / f"s-k32{suffix}")
    assert napari.save_layers(path, [saved], plugin=PLUGIN) == [path]
    _, opened = viewer.open(path, plugin=PLUGIN)
    _assert_same_labels(opened, saved)
    if suffix != ".tif":
        assert opened.metadata["frame_durations_ms"] == [100] * 4
        assert opened.metadata["loop"] == 0
        with Image.open(path) as im:
            assert im.n_frames == 4


def test_rgba_result_round_trip(photo, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = np.dstack([photo(), np.full((40, 56), 255, np.uint8)])
    image[:8, :12] = 0
    image[30:, 40:, 3] = 128
    saved = _quantize_in_viewer(viewer, image, 16)
    for suffix in (".png", ".apng"):
        path = str(tmp_path / f"a-k16{suffix}")
        assert napari.save_layers(path, [saved], plugin=PLUGIN) == [path]
        _, opened = viewer.open(path, plugin=PLUGIN)
        _assert_same_labels(opened, saved)
        assert opened.metadata["palette"].shape[1] == 4


def test_the_image_comes_too_hidden_below_the_labels(
    photo, make_napari_viewer, tmp_path
):
    viewer = make_napari_viewer()
    result = _quantized(photo(), 8)
    path = palette_io.write_indexed_png(
        tmp_path / "q-k8.png", result.labels, result.palette
    )
    image, labels = viewer.open(path, plugin=PLUGIN)
    assert image.rgb and not image.visible and labels.visible
    assert (image.name, labels.name) == ("q-k8", "q-k8 labels")
    assert list(viewer.layers).index(image) < list(viewer.layers).index(labels)
    np.testing.assert_array_equal(image.data, result.image)
    np.testing.assert_array_equal(labels.data, result.labels)


def test_frame_times_survive_open_and_save(photo, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    result = _quantized(_series(photo), 16)
    durations = [30, 60, 90, 120]
    path = palette_io.write_animated_gif(
        tmp_path / "a-k16.gif",
        result.labels,
        result.palette,
        duration=durations,
        loop=2,
    )
    _, opened = viewer.open(path, plugin=PLUGIN)
    assert opened.metadata["frame_durations_ms"] == durations
    assert opened.metadata["loop"] == 2
    again = str(tmp_path / "b.apng")
    assert napari.save_layers(again, [opened], plugin=PLUGIN) == [again]
    with Image.open(again) as im:
        seen = []
        for i in range(im.n_frames):
            im.seek(i)
            seen.append(im.info["duration"])
        assert seen == durations and im.info["loop"] == 2


def test_uint16_palette_tiff_keeps_its_16_bit_colours(
    photo, make_napari_viewer, tmp_path
):
    viewer = make_napari_viewer()
    result = _quantized(photo().astype(np.uint16) * 200, 8)
    path = palette_io.write_palette_tiff(
        tmp_path / "q-k8.tif", result.labels, result.palette
    )
    image, labels = viewer.open(path, plugin=PLUGIN)
    np.testing.assert_array_equal(labels.metadata["palette"], result.palette)
    np.testing.assert_array_equal(image.data, result.image)


def test_gif_with_local_colour_tables_keeps_its_colours(tmp_path):
    # Pillow gives each frame its own table when the frames' palettes differ.
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(3):
        im = Image.fromarray(rng.integers(0, 4, (6, 7)).astype(np.uint8), mode="L")
        im = im.convert("P")
        im.putpalette(rng.integers(0, 256, 12).astype(np.uint8).tobytes())
        frames.append(im)
    path = tmp_path / "local.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], optimize=False)
    [_, (labels, meta, kind)] = get_reader(str(path))(str(path))
    assert kind == "labels"
    palette = meta["metadata"]["palette"]
    with Image.open(path) as im:
        for i in range(3):
            im.seek(i)
            np.testing.assert_array_equal(
                palette[labels[i]][..., :3], np.asarray(im.convert("RGB"))
            )


def test_other_files_are_left_to_napari(photo, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    rgb = str(tmp_path / "rgb-k4.png")  # a name of ours, not an indexed file
    Image.fromarray(photo()).save(rgb)
    grey = str(tmp_path / "grey.png")
    Image.fromarray(photo()[..., 0]).save(grey)
    plain_tif = str(tmp_path / "plain.tif")
    tifffile.imwrite(plain_tif, np.zeros((5, 5), np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    webp = str(tmp_path / "q.webp")
    result = _quantized(photo(), 4)
    palette_io.write_webp(webp, result.labels, result.palette)
    for path in (rgb, grey, plain_tif, str(broken), webp, str(tmp_path), "/nope.png"):
        assert get_reader(path) is None
    indexed = palette_io.write_indexed_png(
        tmp_path / "i.png", result.labels, result.palette
    )
    assert get_reader([indexed, indexed]) is None
    assert get_reader([indexed]) is not None
    # napari opens the truecolour file itself; ours refuses it by name.
    [layer] = viewer.open(rgb, plugin="napari")
    np.testing.assert_array_equal(layer.data, photo())
    with pytest.raises(ValueError, match="refused"):
        viewer.open(rgb, plugin=PLUGIN)


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_binary_transparency_round_trip(photo, make_napari_viewer, tmp_path, suffix):
    viewer = make_napari_viewer()
    image = np.concatenate([_series(photo), np.full((4, 40, 56, 1), 255, np.uint8)], -1)
    image[:, :10, :10] = 0  # one fully transparent colour, the others opaque
    saved = _quantize_in_viewer(viewer, image, 8)
    assert (saved.metadata["palette"][:, 3] == 0).sum() == 1
    path = str(tmp_path / f"t-k8{suffix}")
    assert napari.save_layers(path, [saved], plugin=PLUGIN) == [path]
    image_layer, opened = viewer.open(path, plugin=PLUGIN)
    _assert_same_labels(opened, saved)
    np.testing.assert_array_equal(
        image_layer.data[..., 3], saved.metadata["palette"][np.asarray(saved.data), 3]
    )


def test_open_without_a_plugin_asks_only_for_names_of_ours(
    photo, make_napari_viewer, tmp_path
):
    from napari.errors import MultipleReaderError
    from napari.settings import get_settings

    # plugin=None is what File > Open passes (viewer.open's default is "napari").
    viewer = make_napari_viewer()
    plain = tmp_path / "holiday.png"
    Image.fromarray(photo()).save(plain)
    result = _quantized(photo(), 8)
    # Any other PNG, an indexed one too, is napari's: no question.
    other = palette_io.write_indexed_png(
        tmp_path / "other.png", result.labels, result.palette
    )
    for path in (plain, other):
        [layer] = viewer.open(path, plugin=None)
        assert layer._type_string == "image"
    # .apng is claimed by this plugin only: labels and palette, no question.
    frames = _quantized(_series(photo), 8)
    apng = palette_io.write_apng(tmp_path / "t.apng", frames.labels, frames.palette)
    image, labels = viewer.open(apng, plugin=None)
    np.testing.assert_array_equal(labels.data, frames.labels)
    assert labels.metadata["n_colors"] == 8 and not image.visible
    # A name this plugin gives: napari asks, offering this reader; a preference
    # (napari's "remember this choice", here by pattern) opens it as labels.
    ours = palette_io.write_indexed_png(
        tmp_path / "holiday-k8.png", result.labels, result.palette
    )
    with pytest.raises(MultipleReaderError) as info:
        viewer.open(ours, plugin=None)
    assert PLUGIN in info.value.available_plugins
    settings = get_settings().plugins
    before = dict(settings.extension2reader)
    settings.extension2reader = {**before, "*-k[0-9]*.png": PLUGIN}
    try:
        _, labels = viewer.open(ours, plugin=None)
    finally:
        settings.extension2reader = before
    np.testing.assert_array_equal(labels.data, result.labels)
    # Still napari's for a plain PNG under that preference.
    [layer] = viewer.open(plain, plugin=None)
    assert layer._type_string == "image"
    # npe2 offers a reader only the files its patterns match, even when named.
    with pytest.raises(ValueError, match="not a compatible reader"):
        viewer.open(other, plugin=PLUGIN)
