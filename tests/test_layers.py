"""QuantizeResult -> napari layers: names, colours, features, placement, quantize_layer."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels, Layer

from conftest import drain
from napari_kmeans_quantize import apply_palette, quantize
from napari_kmeans_quantize._layers import (
    RunOptions,
    layer_data_tuples,
    layer_names,
    quantize_layer,
    quantize_source_iter,
    source_info,
    sweep_source_iter,
)
from napari_kmeans_quantize.metrics import size_report
from napari_kmeans_quantize.palette_io import to_png_bytes
from napari_kmeans_quantize.sweep import sweep


def _drain(gen):
    return drain(gen)


def _layers_from(layer: Image, n_colors: int = 8, **kwargs) -> list[Layer]:
    outcome = _drain(quantize_source_iter(source_info(layer), n_colors, **kwargs))
    return [Layer.create(*t) for t in layer_data_tuples(outcome, layer)]


def _strip_corners(strip) -> np.ndarray:
    """World coordinates of a palette strip's top-left and bottom-right edges."""
    k = strip.data.shape[0]
    return np.array([strip.data_to_world(p) for p in ((-0.5, -0.5), (k - 0.5, 0.5))])


def _rendered(labels: Layer) -> np.ndarray:
    """The RGBA floats napari draws for each pixel of a Labels layer."""
    data = np.asarray(labels.data)
    return np.asarray(labels.colormap.map(data.ravel())).reshape((*data.shape, 4))


def test_names_carry_every_option_that_changes_the_result():
    names = {
        layer_names("a", 16)[0],
        layer_names("a", 16, color_space="lab")[0],
        layer_names("a", 16, dither=True)[0],
        layer_names("a", 16, color_space="lab", dither=True)[0],
        layer_names("a", 16, max_pixels=1000, random_state=0)[0],
        layer_names("a", 16, max_pixels=1000, random_state=1)[0],
        layer_names("a", 32)[0],
    }
    assert len(names) == 7
    assert (
        layer_names("a", 16, color_space="lab", dither=True)[0] == "a k=16 lab dither"
    )
    # the seed alone changes nothing when every pixel is fitted
    assert layer_names("a", 16, random_state=9) == layer_names("a", 16)


def test_layer_names():
    assert layer_names("astronaut", 8) == (
        "astronaut k=8",
        "astronaut k=8 labels",
        "astronaut k=8 palette",
    )


def test_tuples_for_astronaut(astronaut):
    source = Image(astronaut, name="astronaut", rgb=True)
    result = quantize(astronaut, 8)
    tuples = layer_data_tuples(result, source, params={"random_state": 3})
    assert [t[2] for t in tuples] == ["image", "labels", "image"]
    (img, img_meta, _), (lab, lab_meta, _), (strip, strip_meta, _) = tuples
    assert img_meta["name"] == "astronaut k=8"
    assert lab_meta["name"] == "astronaut k=8 labels"
    assert strip_meta["name"] == "astronaut k=8 palette"
    np.testing.assert_array_equal(img, result.palette[lab])
    assert img.dtype == astronaut.dtype and img.shape == astronaut.shape
    assert img_meta["rgb"] is True
    assert lab.dtype == np.uint8
    # every cluster has its own colour, label 0 included, and nothing is see-through
    color_dict = lab_meta["colormap"].color_dict
    assert set(range(8)) <= set(color_dict)
    for i in range(8):
        np.testing.assert_allclose(
            np.asarray(color_dict[i])[:3] * 255, result.palette[i], atol=1e-6
        )
        assert color_dict[i][3] == 1.0
    assert lab_meta["opacity"] == 1.0
    # features: one row per cluster, read on hover
    features = lab_meta["features"]
    assert list(features) == ["index", "hex", "R", "G", "B", "count", "share %"]
    np.testing.assert_array_equal(features["index"], np.arange(8))
    np.testing.assert_array_equal(features["count"], result.counts)
    assert features["hex"][0] == "#{:02x}{:02x}{:02x}".format(*result.palette[0])
    assert abs(sum(features["share %"]) - 100) < 0.05
    # the strip: one swatch per colour, most frequent on top
    np.testing.assert_array_equal(strip[:, 0], result.palette)
    assert np.all(np.diff(result.counts) <= 0)
    assert strip_meta["rgb"] is True
    assert "most frequent colour first" in strip_meta["metadata"]["description"]
    # parameters recorded
    meta = lab_meta["metadata"]
    assert meta["n_colors"] == 8 and meta["n_colors_requested"] == 8
    assert meta["random_state"] == 3
    assert meta["color_space"] == "rgb"
    np.testing.assert_array_equal(meta["palette"], result.palette)


def test_labels_render_the_quantised_image(astronaut):
    source = Image(astronaut[::4, ::4], name="astro", rgb=True)
    image, labels, _ = _layers_from(source, 8)
    assert isinstance(labels, Labels)
    rendered = np.rint(_rendered(labels)[..., :3] * 255)
    np.testing.assert_array_equal(rendered, image.data)


def test_spatial_metadata_is_copied_2d(astronaut):
    source = Image(
        astronaut[::4, ::4],
        name="astro",
        rgb=True,
        scale=(0.5, 2.0),
        translate=(10.0, -4.0),
        rotate=20,
        shear=[0.3],
        units=("um", "mm"),
        axis_labels=("y", "x"),
    )
    layers = _layers_from(source, 4)
    for layer in layers[:2]:
        np.testing.assert_allclose(layer.scale, source.scale)
        np.testing.assert_allclose(layer.translate, source.translate)
        np.testing.assert_allclose(layer.rotate, source.rotate)
        np.testing.assert_allclose(layer.shear, source.shear)
        np.testing.assert_allclose(
            layer.affine.affine_matrix, source.affine.affine_matrix
        )
        assert layer.units == source.units
        assert layer.axis_labels == source.axis_labels
        np.testing.assert_allclose(
            layer.data_to_world((5, 7)), source.data_to_world((5, 7))
        )


@pytest.mark.parametrize("n_colors", [3, 8, 64])
def test_palette_strip_sits_right_of_the_source(astronaut, n_colors):
    source = Image(
        astronaut[::4, ::4],
        name="astro",
        rgb=True,
        scale=(2, 3),
        rotate=30,
        shear=[0.2],
    )
    height, width = source.data.shape[:2]
    strip = _layers_from(source, n_colors)[2]
    k = strip.data.shape[0]
    assert k == n_colors
    # the same place and size whatever k: H tall, H / 8 wide
    swatch_w = height / 8
    # top-left corner of the strip: at the top edge, a quarter swatch right of the image
    np.testing.assert_allclose(
        strip.data_to_world((-0.5, -0.5)),
        source.data_to_world((-0.5, width - 0.5 + swatch_w / 4)),
        atol=1e-9,
    )
    # bottom-right corner: at the bottom edge
    np.testing.assert_allclose(
        strip.data_to_world((k - 0.5, 0.5)),
        source.data_to_world((height - 0.5, width - 0.5 + 1.25 * swatch_w)),
        atol=1e-9,
    )


def test_time_stack_shares_one_palette_and_keeps_nd_placement(astronaut):
    frames = np.stack([astronaut[::8, ::8], astronaut[::-8, ::8], astronaut[::8, ::-8]])
    source = Image(
        frames,
        name="movie",
        rgb=True,
        scale=(5.0, 0.5, 0.5),
        translate=(1.0, 2.0, 3.0),
        axis_labels=("t", "y", "x"),
        units=("s", "um", "um"),
    )
    image, labels, strip = _layers_from(source, 6)
    assert labels.data.shape == frames.shape[:3]
    np.testing.assert_array_equal(image.data, labels.metadata["palette"][labels.data])
    for layer in (image, labels):
        np.testing.assert_allclose(layer.scale, source.scale)
        np.testing.assert_allclose(layer.translate, source.translate)
        assert layer.axis_labels == ("t", "y", "x")
    # the strip is 2D, in the last two (spatial) axes
    assert strip.ndim == 2
    assert strip.axis_labels == ("y", "x")
    assert strip.units == source.units[-2:]
    gap = 64 / 8 / 4
    np.testing.assert_allclose(
        strip.data_to_world((-0.5, -0.5)),
        source.data_to_world((0, -0.5, 64 - 0.5 + gap))[1:],
    )


def test_grayscale_uses_the_source_colormap(astronaut):
    grey = astronaut[::4, ::4, 1].astype(np.uint16) * 100
    source = Image(grey, name="grey", colormap="magma", contrast_limits=(0, 20000))
    image, labels, strip = _layers_from(source, 5)
    assert not image.rgb and image.colormap.name == "magma"
    assert tuple(image.contrast_limits) == (0, 20000)
    assert image.dtype == np.uint16
    palette = labels.metadata["palette"]
    assert palette.shape == (5, 1)
    np.testing.assert_array_equal(image.data, palette[labels.data, 0])
    expected = source.colormap.map(np.clip(palette[:, 0] / 20000, 0, 1))
    np.testing.assert_allclose(_rendered(labels)[0, 0], expected[labels.data[0, 0]])
    assert "value" in labels.features.columns and "R" not in labels.features.columns
    assert strip.colormap.name == "magma" and not strip.rgb


def test_rgba_alpha_is_kept(small_rgb):
    alpha = np.full((*small_rgb.shape[:2], 1), 255, np.uint8)
    alpha[:10] = 0
    rgba = np.concatenate([small_rgb, alpha], axis=-1)
    source = Image(rgba, name="rgba", rgb=True)
    image, labels, _ = _layers_from(source, 6)
    assert image.data.shape == rgba.shape
    assert (image.data[:10, :, 3] == 0).all() and (image.data[10:, :, 3] == 255).all()
    assert list(labels.features.columns)[2:6] == ["R", "G", "B", "A"]
    # the transparent cluster is transparent in the labels layer too
    assert _rendered(labels)[0, 0, 3] == 0
    assert _rendered(labels)[20, 0, 3] == 1


def test_float_and_uint16_rgb_follow_the_contrast_limits(small_rgb):
    for data in (small_rgb / 255.0, small_rgb.astype(np.uint16) * 257):
        source = Image(data, name="x", rgb=True)
        image, labels, _ = _layers_from(source, 5)
        assert image.dtype == data.dtype
        assert tuple(image.contrast_limits) == tuple(source.contrast_limits)
        lo, hi = source.contrast_limits
        expected = np.clip((image.data - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(_rendered(labels)[..., :3], expected, atol=1e-6)


def test_multiscale_fits_once_and_maps_every_level(astronaut, monkeypatch):
    from napari_kmeans_quantize import _layers

    pyramid = [astronaut, astronaut[::2, ::2], astronaut[::4, ::4]]
    source = Image(pyramid, name="pyr", rgb=True, multiscale=True)
    monkeypatch.setattr(_layers.sources, "MULTISCALE_FIT_PIXELS", 300 * 300)
    outcome = _drain(quantize_source_iter(source_info(source), 6))
    assert outcome.params["fit_level"] == 1
    assert any("Multiscale" in note for note in outcome.notes)
    assert [lab.shape for _, lab in outcome.levels] == [
        (512, 512),
        (256, 256),
        (128, 128),
    ]
    palette = outcome.result.palette
    for img, lab in outcome.levels:
        np.testing.assert_array_equal(img, palette[lab])
    assert np.all(np.diff(outcome.result.counts) <= 0)  # ordered by share on level 0
    image, labels, strip = (
        Layer.create(*t) for t in layer_data_tuples(outcome, source)
    )
    assert image.multiscale and labels.multiscale and not strip.multiscale
    assert len(image.data) == 3 and len(labels.data) == 3


def test_dask_source_stays_lazy_and_matches_in_memory(astronaut):
    import dask.array as da

    small = astronaut[::4, ::4]
    lazy = da.from_array(small, chunks=(32, 32, 3))
    source = Image(lazy, name="lazy", rgb=True)
    outcome = _drain(quantize_source_iter(source_info(source), 5))
    assert any("dask" in note for note in outcome.notes)
    result = outcome.result
    # Outputs are lazy (napari draws them block by block) ...
    assert isinstance(result.image, da.Array) and isinstance(result.labels, da.Array)
    # ... and equal, bit for bit, to the in-memory run.
    eager = quantize(small, 5)
    np.testing.assert_array_equal(result.palette, eager.palette)
    np.testing.assert_array_equal(result.labels.compute(), eager.labels)
    np.testing.assert_array_equal(result.image.compute(), eager.image)
    # The report holds what needs no pass over the pixels.
    assert outcome.report.formula_bits == size_report(eager).formula_bits
    assert outcome.report.png_bytes is None and outcome.report.psnr is None
    assert source.data is lazy


def test_lazy_multiscale_stays_lazy_at_every_level(astronaut):
    import dask.array as da

    levels = [
        da.from_array(astronaut, chunks=(128, 128, 3)),
        da.from_array(astronaut[::2, ::2], chunks=(128, 128, 3)),
    ]
    source = Image(levels, name="pyr", rgb=True, multiscale=True)
    outcome = _drain(quantize_source_iter(source_info(source), 6))
    assert outcome.params["fit_level"] == 0
    assert [img.shape for img, _ in outcome.levels] == [lv.shape for lv in levels]
    eager = quantize(astronaut, 6)
    np.testing.assert_array_equal(outcome.result.palette, eager.palette)
    for (img, lab), level in zip(outcome.levels, levels, strict=True):
        assert isinstance(lab, da.Array)
        mapped = apply_palette(np.asarray(level), eager.palette)
        np.testing.assert_array_equal(lab.compute(), mapped.labels)
        np.testing.assert_array_equal(img.compute(), mapped.image)


def test_lazy_source_with_dither_is_computed_into_memory(astronaut):
    import dask.array as da

    small = astronaut[::8, ::8]
    source = Image(da.from_array(small, chunks=32), name="d", rgb=True)
    outcome = _drain(quantize_source_iter(source_info(source), 4, dither=True))
    assert isinstance(outcome.result.labels, np.ndarray)
    assert any("computed into memory" in note for note in outcome.notes)
    np.testing.assert_array_equal(
        outcome.result.labels, quantize(small, 4, dither=True).labels
    )


def test_outcome_carries_the_size_report(astronaut):
    source = Image(astronaut, name="astro", rgb=True)
    outcome = _drain(quantize_source_iter(source_info(source), 8))
    report = outcome.report
    assert report == size_report(outcome.result, astronaut)
    assert report.original_bits == 512 * 512 * 24
    assert report.formula_bits == 512 * 512 * 3 + 8 * 24
    assert report.formula_ratio == pytest.approx(
        report.original_bits / report.formula_bits
    )
    assert report.png_bytes == len(
        to_png_bytes(outcome.result.labels, outcome.result.palette)
    )
    assert report.ratio == pytest.approx(512 * 512 * 3 / report.png_bytes)
    assert 15 < report.psnr < 40
    assert 0 < report.ciede2000 < 20
    grey = _drain(quantize_source_iter(source_info(Image(astronaut[..., 0])), 4))
    assert grey.report.ciede2000 is None
    assert grey.report.original_bits == 512 * 512 * 8
    tuples = layer_data_tuples(outcome, source)
    assert tuples[1][1]["metadata"]["size_report"] == report.as_dict()


def test_sweep_source_iter_matches_sweep(astronaut):
    small = astronaut[::4, ::4]
    table = _drain(sweep_source_iter(source_info(Image(small, rgb=True)), (2, 8)))
    expected = sweep(small, (2, 8))
    assert table.ks == (2, 8)
    for got, want in zip(table, expected, strict=True):
        assert (got.psnr, got.ciede2000, got.png_bytes) == (
            want.psnr,
            want.ciede2000,
            want.png_bytes,
        )
    pyramid = Image([small, small[::2, ::2]], rgb=True, multiscale=True)
    table = _drain(sweep_source_iter(source_info(pyramid), (4,)))
    assert table.shape == small.shape[:2]


def test_quantize_layer_without_viewer_returns_layers(astronaut, data_hash):
    source = Image(astronaut[::4, ::4], name="astro", rgb=True)
    before = data_hash(source.data)
    layers = quantize_layer(source, n_colors=4)
    assert [type(lay) for lay in layers] == [Image, Labels, Image]
    assert data_hash(source.data) == before


def test_run_options_are_the_keywords_of_quantize_layer():
    import dataclasses
    import inspect

    # One list of options: quantize_layer's keywords (bar the layer, k, viewer
    # and outputs) are RunOptions' fields, with the same defaults.
    params = inspect.signature(quantize_layer).parameters
    run_fields = {f.name: f.default for f in dataclasses.fields(RunOptions)}
    keywords = {
        name: p.default
        for name, p in params.items()
        if name not in ("layer", "n_colors", "viewer", "outputs")
    }
    assert keywords == run_fields


def test_source_run_takes_options_and_keywords_alike(astronaut):
    small = astronaut[::8, ::8]
    source = source_info(Image(small, rgb=True))
    white = np.array([[255, 255, 255]], np.uint8)
    options = RunOptions(color_space="lab", fixed_colors=white)
    by_options = _drain(quantize_source_iter(source, 5, options))
    by_keywords = _drain(
        quantize_source_iter(source, 5, color_space="lab", fixed_colors=white)
    )
    want = quantize(small, 5, color_space="lab", fixed_colors=white)
    for outcome in (by_options, by_keywords):
        np.testing.assert_array_equal(outcome.result.palette, want.palette)
        assert outcome.params["color_space"] == "lab"
        assert outcome.params["fixed_colors"] == [[255, 255, 255]]
    # Keywords replace the options given.
    rgb = _drain(quantize_source_iter(source, 5, options, color_space="rgb"))
    assert rgb.params["color_space"] == "rgb"
    with pytest.raises(TypeError, match="colour_space"):
        _drain(quantize_source_iter(source, 5, colour_space="lab"))


def test_quantize_layer_rejects_other_layer_types():
    with pytest.raises(TypeError, match="Only Image layers"):
        quantize_layer(Labels(np.zeros((4, 4), np.uint8)), n_colors=2)


def test_quantize_layer_adds_and_updates_in_place(make_napari_viewer, astronaut):
    viewer = make_napari_viewer()
    source = viewer.add_image(astronaut[::4, ::4], name="astro", rgb=True)
    first = quantize_layer(source, n_colors=8, viewer=viewer)
    assert [lay.name for lay in viewer.layers] == [
        "astro",
        "astro k=8",
        "astro k=8 labels",
        "astro k=8 palette",
    ]
    assert viewer.layers.selection.active is first[1]
    again = quantize_layer(source, n_colors=8, viewer=viewer, random_state=5)
    assert len(viewer.layers) == 4  # the seed changes nothing without a sample
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert again[1].metadata["random_state"] == 5
    oklab = quantize_layer(source, n_colors=8, viewer=viewer, color_space="oklab")
    assert [lay.name for lay in oklab] == list(
        layer_names("astro", 8, color_space="oklab")
    )
    assert first[1] in viewer.layers and first[1].metadata["color_space"] == "rgb"
    assert oklab[1].metadata["color_space"] == "oklab"
    quantize_layer(source, n_colors=3, viewer=viewer)
    assert len(viewer.layers) == 10
    assert len(viewer.layers["astro k=3 labels"].features) == 3
    assert len(viewer.layers["astro k=8 labels"].features) == 8


def test_only_the_newest_palette_strip_of_a_source_is_shown(
    make_napari_viewer, astronaut
):
    viewer = make_napari_viewer()
    source = viewer.add_image(astronaut[::4, ::4], name="astro", rgb=True)
    other = viewer.add_image(astronaut[::8, ::8], name="other", rgb=True)
    other_strip = quantize_layer(other, n_colors=4, viewer=viewer)[2]
    k8 = quantize_layer(source, n_colors=8, viewer=viewer)[2]
    k64 = quantize_layer(source, n_colors=64, viewer=viewer)[2]
    # both strips of "astro" cover exactly the same area; the older one is hidden
    np.testing.assert_allclose(_strip_corners(k8), _strip_corners(k64))
    assert k64.visible and not k8.visible
    assert other_strip.visible  # another source's strip is left alone
    # re-running k=8 (updated in place) shows its strip again and hides k=64's
    again = quantize_layer(source, n_colors=8, viewer=viewer)
    assert again[2] is k8
    assert k8.visible and not k64.visible
    # ... and its layers move to the top, in order, so k=8 is what is seen
    assert list(viewer.layers)[-3:] == again
    assert [lay.name for lay in viewer.layers][-3:] == [
        "astro k=8",
        "astro k=8 labels",
        "astro k=8 palette",
    ]
    assert other_strip.visible
    # the result images are not hidden; the labels, which look just like them, are
    for lay in viewer.layers:
        if "palette" not in lay.name:
            assert lay.visible == (not isinstance(lay, Labels)), lay.name


def test_too_big_for_memory_says_what_to_do(astronaut, monkeypatch):
    import dask.array as da

    from napari_kmeans_quantize import _layers

    monkeypatch.setattr(_layers.sources, "MAX_PIXELS_IN_MEMORY", 100)
    eager = Image(astronaut[:20, :20], name="eager", rgb=True)
    with pytest.raises(ValueError, match=r"dask\.array\.from_array"):
        _drain(quantize_source_iter(source_info(eager), 4))
    lazy = Image(da.from_array(astronaut[:20, :20]), name="lazy", rgb=True)
    with pytest.raises(ValueError, match="turn dithering off"):
        _drain(quantize_source_iter(source_info(lazy), 4, dither=True))
    # without dithering lazy data never needs to fit in memory
    assert _drain(quantize_source_iter(source_info(lazy), 4)).result.n_colors == 4


# --- the PSNR peak (data_range) ---------------------------------------------------


@pytest.fixture(scope="module")
def coins12() -> np.ndarray:
    """12-bit grey camera-like data stored as uint16 (values 0..4080)."""
    from skimage import data

    return data.coins().astype(np.uint16) * 16


def test_quantize_layer_data_range_sets_the_psnr_peak(coins12):
    from skimage.metrics import peak_signal_noise_ratio

    source = Image(coins12, name="coins12")
    auto = quantize_layer(source, n_colors=8)[1].metadata
    set_ = quantize_layer(source, n_colors=8, data_range=4095)[1].metadata
    result = quantize(coins12, 8, channel_axis=None)
    want = size_report(result, coins12, data_range=4095).psnr
    assert set_["size_report"]["psnr"] == pytest.approx(want)
    assert want == pytest.approx(
        peak_signal_noise_ratio(coins12, result.image, data_range=4095)
    )
    assert auto["size_report"]["psnr"] == pytest.approx(
        size_report(result, coins12).psnr
    )
    # the same palette either way; only the peak differs: 20 log10(65535 / 4095)
    np.testing.assert_array_equal(set_["palette"], auto["palette"])
    gap = auto["size_report"]["psnr"] - set_["size_report"]["psnr"]
    assert gap == pytest.approx(20 * np.log10(65535 / 4095))
    assert (auto["data_range"], set_["data_range"]) == (None, 4095.0)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "4095"])
def test_quantize_layer_rejects_a_bad_data_range(make_napari_viewer, coins12, bad):
    viewer = make_napari_viewer()
    source = viewer.add_image(coins12, name="coins12")
    with pytest.raises(ValueError, match="data_range must be a finite number"):
        quantize_layer(source, n_colors=4, viewer=viewer, data_range=bad)
    assert [lay.name for lay in viewer.layers] == ["coins12"]


def test_outcome_psnr_peak_names_the_peak_used(coins12, astronaut):
    def peak(image, **kwargs):
        outcome = _drain(quantize_source_iter(source_info(image), 4, **kwargs))
        return outcome.report.psnr_peak

    assert peak(Image(coins12)) == 65535.0
    assert peak(Image(coins12), data_range=4095) == 4095.0
    assert peak(Image(astronaut, rgb=True)) == 255.0
    assert peak(Image(coins12.astype(np.int32))) == float(np.ptp(coins12))
    assert peak(Image(coins12 / 4080.0)) == 1.0
    pyramid = Image([coins12, coins12[::2, ::2]], multiscale=True)
    assert peak(pyramid, data_range=4095) == 4095.0
    assert peak(pyramid) == 65535.0


def test_sweep_source_iter_passes_data_range(coins12):
    small = coins12[::2, ::2]
    table = _drain(
        sweep_source_iter(source_info(Image(small)), (2, 8), data_range=4095)
    )
    expected = sweep(small, (2, 8), channel_axis=None, data_range=4095)
    default = sweep(small, (2, 8), channel_axis=None)
    assert [r.psnr for r in table] == pytest.approx([r.psnr for r in expected])
    assert table.rows[0].psnr < default.rows[0].psnr - 20


def test_quantize_layer_keeps_lazy_data_lazy(astronaut):
    import dask.array as da

    lazy = da.from_array(astronaut[::4, ::4], chunks=(32, 32, 3))
    source = Image(lazy, name="lazy", rgb=True)
    image, labels, _ = quantize_layer(source, n_colors=4)
    assert isinstance(image.data, da.Array)
    assert isinstance(labels.data, da.Array)
    assert labels.metadata["size_report"]["psnr"] is None
    assert labels.metadata["size_report"]["png_bytes"] is None
    eager = quantize(astronaut[::4, ::4], 4)
    np.testing.assert_array_equal(np.asarray(labels.data), eager.labels)


def test_channel_note_only_for_a_likely_channel_axis():
    from napari_kmeans_quantize._layers import channel_note

    assert channel_note(source_info(Image(np.zeros((8, 8))))) == ""
    assert channel_note(source_info(Image(np.zeros((30, 8, 8))))) == ""  # a z stack
    assert "Axis 0 (length 3)" in channel_note(source_info(Image(np.zeros((3, 8, 8)))))
    labelled = Image(np.zeros((30, 8, 8)), axis_labels=("c", "y", "x"))
    assert "Axis 0 (length 30)" in channel_note(source_info(labelled))
    rgb = Image(np.zeros((3, 8, 8, 3), np.uint8), rgb=True)
    assert channel_note(source_info(rgb)) == ""


@pytest.mark.parametrize(
    ("outputs", "kinds", "labels_shown"),
    [
        ("image+strip", ["image", "labels", "palette"], False),
        ("image", ["image", "labels"], False),
        ("labels+strip", ["labels", "palette"], True),
        ("all", ["image", "labels", "palette"], True),
    ],
)
def test_outputs_choose_what_goes_on_the_canvas(
    make_napari_viewer, astronaut, outputs, kinds, labels_shown
):
    viewer = make_napari_viewer()
    source = viewer.add_image(astronaut[::8, ::8], name="astro", rgb=True)
    layers = quantize_layer(source, n_colors=4, viewer=viewer, outputs=outputs)
    roles = {"quantised image": "image", "labels": "labels", "palette strip": "palette"}
    assert [roles[lay.metadata["role"]] for lay in layers] == kinds
    labels = viewer.layers["astro k=4 labels"]
    assert labels.visible == labels_shown
    assert viewer.layers.selection.active is labels  # hover and saving
    # the canvas shows each result once by default: one visible copy of the image
    visible = [
        lay for lay in layers if lay.visible and lay.metadata["role"] != "palette strip"
    ]
    assert len(visible) == (2 if outputs == "all" else 1)


def test_bad_outputs_are_refused_before_any_work(astronaut):
    with pytest.raises(ValueError, match="outputs must be one of"):
        quantize_layer(Image(astronaut[::8, ::8], rgb=True), 4, outputs="everything")


# --- lazy sources: display pyramid, locked colours and importance ------------------


def test_big_lazy_2d_result_is_shown_as_a_pyramid_of_its_own_pixels(
    astronaut, monkeypatch
):
    import dask.array as da

    from napari_kmeans_quantize import _layers

    monkeypatch.setattr(_layers.sources, "DISPLAY_PYRAMID_PIXELS", 64 * 64)
    monkeypatch.setattr(_layers.sources, "DISPLAY_MIN_SIDE", 32)
    monkeypatch.setattr(_layers.sources, "DISPLAY_EAGER_PIXELS", 64 * 64)
    small = astronaut[::2, ::2]  # 256 x 256
    source = Image(da.from_array(small, chunks=(64, 64, 3)), name="big", rgb=True)
    outcome = _drain(quantize_source_iter(source_info(source), 6))
    eager = quantize(small, 6)
    # level 0 is the plain run, bit for bit ...
    np.testing.assert_array_equal(outcome.result.palette, eager.palette)
    np.testing.assert_array_equal(outcome.result.labels.compute(), eager.labels)
    np.testing.assert_array_equal(outcome.result.counts, eager.counts)
    # ... and every coarser level is its every 2nd, 4th, 8th pixel
    assert [lab.shape for _, lab in outcome.levels] == [
        (256, 256),
        (128, 128),
        (64, 64),
        (32, 32),
    ]
    for i, (image, labels) in enumerate(outcome.levels):
        # the fine levels stay lazy; the coarse ones napari draws first are made
        assert isinstance(labels, da.Array) == (i < 2)
        np.testing.assert_array_equal(labels, eager.labels[:: 2**i, :: 2**i])
        np.testing.assert_array_equal(image, eager.image[:: 2**i, :: 2**i])
    image, labels, _ = (Layer.create(*t) for t in layer_data_tuples(outcome, source))
    assert image.multiscale and labels.multiscale
    assert any("pyramid" in note for note in outcome.notes)
    # small lazy results stay single-scale
    tiny = Image(da.from_array(small[:32, :32], chunks=16), name="tiny", rgb=True)
    assert _drain(quantize_source_iter(source_info(tiny), 4)).levels is None


def test_lazy_source_takes_locked_colours_and_importance(astronaut):
    import dask.array as da

    small = astronaut[::4, ::4]
    lazy = Image(da.from_array(small, chunks=(32, 32, 3)), name="lazy", rgb=True)
    white = np.array([[255, 255, 255]], np.uint8)
    weights = np.ones(small.shape[:2])
    weights[20:60, 50:90] = 10.0  # the face counts ten times
    outcome = _drain(
        quantize_source_iter(source_info(lazy), 6, fixed_colors=white, weights=weights)
    )
    eager = quantize(small, 6, fixed_colors=white, weights=weights)
    np.testing.assert_array_equal(outcome.result.palette, eager.palette)
    np.testing.assert_array_equal(outcome.result.labels.compute(), eager.labels)
    assert (outcome.result.palette == white).all(axis=1).any()
    assert outcome.params["fixed_colors"] == white.tolist()
    # locked colours on a lazy multiscale source too
    pyramid = [da.from_array(small, chunks=32), da.from_array(small[::2, ::2])]
    multi = Image(pyramid, name="multi", rgb=True, multiscale=True)
    result = _drain(quantize_source_iter(source_info(multi), 5, fixed_colors=white))
    assert (result.result.palette == white).all(axis=1).any()
    # the engine's multiscale path takes no weights: refused, saying why
    with pytest.raises(ValueError, match="multiscale"):
        _drain(quantize_source_iter(source_info(multi), 5, weights=weights))


def test_dask_sweep_runs_chunk_by_chunk_with_lazy_results(astronaut):
    import dask.array as da

    small = astronaut[::4, ::4]
    lazy = Image(da.from_array(small, chunks=(32, 32, 3)), name="lazy", rgb=True)
    table = _drain(sweep_source_iter(source_info(lazy), (4, 8), keep_results=True))
    eager = sweep(small, ks=(4, 8), keep_results=True)
    for row, ref in zip(table, eager, strict=True):
        assert row.psnr == pytest.approx(ref.psnr)
        assert row.formula_bits == ref.formula_bits
        assert row.png_bytes is None  # would read every pixel
    assert all(isinstance(r.labels, da.Array) for r in table.results)
    np.testing.assert_array_equal(table.results[1].labels, eager.results[1].labels)


def test_labels_volumes_step_aside_in_3d_and_come_back_in_2d(make_napari_viewer):
    from skimage import data

    viewer = make_napari_viewer()
    blobs = data.binary_blobs(32, n_dim=3, volume_fraction=0.1, rng=1)
    volume = viewer.add_image(blobs.astype(np.uint8) * 200, name="vol")
    photo = viewer.add_image(data.astronaut()[::8, ::8], name="photo", rgb=True)
    image, labels, strip = quantize_layer(volume, 4, viewer=viewer, outputs="all")
    flat_labels = quantize_layer(photo, 4, viewer=viewer, outputs="all")[1]
    assert labels.visible
    viewer.dims.ndisplay = 3
    # label 0 (the dark background here) would wall off the volume
    assert not labels.visible
    assert image.visible and image.rendering == volume.rendering
    assert flat_labels.visible  # a 2-D image's labels are a plane in 3D: kept
    assert strip.interpolation3d == "nearest"  # crisp swatches in 3D too
    # a result added while in 3D steps aside at once
    again = quantize_layer(volume, 3, viewer=viewer, outputs="all")[1]
    assert not again.visible
    viewer.dims.ndisplay = 2
    assert labels.visible and again.visible
    # a labels layer the user hid stays hidden
    labels.visible = False
    viewer.dims.ndisplay = 3
    viewer.dims.ndisplay = 2
    assert not labels.visible
