"""The layers of a channel quantisation: one Image per channel with its source's
display, the Labels of classes with their channel values as features, the heat
strip of channel means; and the console entry point in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from conftest import drain
from napari_kmeans_quantize._channel_layers import (
    MEANS_ROLE,
    channel_layer_data,
    cluster_rows,
    quantize_channels,
)
from napari_kmeans_quantize._channels import channel_source, quantize_channels_iter


def test_one_layer_with_a_channel_axis_gives_per_channel_outputs(cells, data_hash):
    layer = Image(cells, name="cells", scale=(0.29, 1.0, 0.26, 0.26))
    before = data_hash(cells)
    source = channel_source(layer)  # axis 1 guessed
    assert source.channel_axis == 1 and source.spatial_shape == (60, 256, 256)
    assert [c.name for c in source.channels] == ["cells ch0", "cells ch1"]
    np.testing.assert_array_equal(source.placement["scale"], [0.29, 0.26, 0.26])

    outcome = drain(quantize_channels_iter(source, 6))
    result = outcome.result
    assert result.palette.shape == (6, 2) and result.palette.dtype == np.uint16
    assert result.labels.shape == (60, 256, 256)

    tuples = channel_layer_data(outcome)
    kinds = [kind for _, _, kind in tuples]
    assert kinds == ["image", "image", "labels", "image"]
    for j, (data, meta, _) in enumerate(tuples[:2]):
        assert meta["name"] == f"cells ch{j} k=6"
        assert data.shape == (60, 256, 256)
        # each output channel is exactly that channel of palette[labels]
        np.testing.assert_array_equal(data, result.palette[result.labels, j])
        # one layer shares one range: each channel gets its palette's span
        lo, hi = meta["contrast_limits"]
        assert (lo, hi) == (result.palette[:, j].min(), result.palette[:, j].max())
        assert meta["metadata"]["role"] == "quantised image"
    assert [m["colormap"].name for _, m, _ in tuples[:2]] == ["magenta", "green"]
    assert data_hash(cells) == before


def test_channel_layers_keep_their_display_and_features_name_them(
    cells, channel_layers
):
    nuclei, membranes = channel_layers(cells)
    membranes.rendering = "attenuated_mip"
    source = channel_source([nuclei, membranes])
    assert source.name == "nuclei + membranes" and source.channel_axis is None
    outcome = drain(quantize_channels_iter(source, 8))
    result = outcome.result
    (n_data, n_meta, _), (m_data, m_meta, _), labels_t, strip_t = channel_layer_data(
        outcome
    )
    assert n_meta["name"] == "nuclei k=8" and m_meta["name"] == "membranes k=8"
    assert n_meta["colormap"] is nuclei.colormap
    assert m_meta["colormap"] is membranes.colormap
    assert n_meta["contrast_limits"] == [0, 4095]
    assert m_meta["contrast_limits"] == [0, 65535]
    assert m_meta["gamma"] == 0.8 and m_meta["blending"] == "additive"
    assert m_meta["rendering"] == "attenuated_mip" and n_meta["rendering"] == "mip"
    np.testing.assert_array_equal(n_meta["scale"], [0.29, 0.26, 0.26])
    np.testing.assert_array_equal(n_data, result.palette[result.labels, 0])
    np.testing.assert_array_equal(m_data, result.palette[result.labels, 1])

    labels, labels_meta, _ = labels_t
    assert labels_meta["name"] == "nuclei + membranes k=8 labels"
    features = labels_meta["features"]
    assert list(features.columns) == [
        "index",
        "hex",
        "nuclei",
        "membranes",
        "count",
        "share %",
    ]
    np.testing.assert_array_equal(features["nuclei"], result.palette[:, 0])
    np.testing.assert_array_equal(features["membranes"], result.palette[:, 1])
    np.testing.assert_array_equal(features["count"], np.bincount(labels.ravel()))
    assert features["share %"].sum() == pytest.approx(100, abs=0.05)
    # each class's channel values are the mean of its pixels (a Lloyd fixed point),
    # to within the rounding to uint16
    flat = cells.transpose(0, 2, 3, 1).reshape(-1, 2).astype(np.float64)
    for i in range(result.n_colors):
        mean = flat[labels.ravel() == i].mean(axis=0)
        np.testing.assert_allclose(result.palette[i], mean, atol=0.5 + 1e-6)

    # the class colour: the channels' colormap colours added up
    colormap = labels_meta["colormap"]
    top = np.asarray(colormap.map(np.array([0], labels.dtype)))[0]
    cn = nuclei.colormap.map(np.array([min(result.palette[0, 0] / 4095, 1.0)]))[0]
    cm = membranes.colormap.map(np.array([(result.palette[0, 1] / 65535) ** 0.8]))[0]
    np.testing.assert_allclose(top[:3], np.clip(cn[:3] + cm[:3], 0, 1), atol=1e-6)
    assert features["hex"][0] == "#" + "".join(f"{round(v * 255):02x}" for v in top[:3])

    strip, strip_meta, _ = strip_t
    assert strip.shape == (8, 3, 3)  # class colour column + one per channel
    assert strip_meta["interpolation2d"] == "nearest"
    assert strip_meta["metadata"]["role"] == MEANS_ROLE
    classes = np.asarray(colormap.map(np.arange(8, dtype=labels.dtype)))
    np.testing.assert_allclose(strip[:, 0], classes[:, :3], atol=1e-6)
    # the strip sits right of the image, as tall as it
    assert strip_meta["scale"][0] * 8 == pytest.approx(256 * 0.26)
    assert strip_meta["translate"][1] > 255 * 0.26

    columns, rows = cluster_rows(outcome)
    assert columns == ["hex", "nuclei", "membranes", "pixels", "share %"]
    assert rows[0][1:4] == [
        int(result.palette[0, 0]),
        int(result.palette[0, 1]),
        int(result.counts[0]),
    ]
    counts = [row[3] for row in rows]
    assert counts == sorted(counts, reverse=True)


def test_quantize_channels_adds_layers_to_a_viewer(
    make_napari_viewer, cells, channel_layers
):
    viewer = make_napari_viewer()
    for layer in channel_layers(cells[:20]):
        viewer.add_layer(layer)
    sources = list(viewer.layers)
    layers = quantize_channels(sources, 6, viewer=viewer)
    names = [lay.name for lay in viewer.layers]
    base = "nuclei + membranes k=6"
    assert names[2:] == ["nuclei k=6", "membranes k=6", f"{base} labels",
                         f"{base} channel means"]  # fmt: skip
    labels = viewer.layers["nuclei + membranes k=6 labels"]
    assert isinstance(labels, Labels) and len(labels.features) == 6
    assert viewer.layers["membranes k=6"].colormap.name == sources[1].colormap.name
    assert viewer.layers["membranes k=6"].blending == sources[1].blending
    # hovering a pixel reports its class's channel values
    labels.selected_label = 0
    z, y, x = 10, 80, 80
    status = labels.get_status((z, y, x), world=False)
    value = int(labels.data[z, y, x])
    assert f"nuclei: {labels.features['nuclei'][value]}" in str(status)
    # running again updates in place
    again = quantize_channels(sources, 6, viewer=viewer)
    assert [lay.name for lay in viewer.layers] == names
    assert again[0] is layers[0]


def test_the_labels_save_as_a_tiff_with_the_class_table(
    cells, channel_layers, tmp_path
):
    import tifffile

    from napari_kmeans_quantize._writer import write_labels_with_csv
    from napari_kmeans_quantize.palette_io import read_palette_csv

    outcome = drain(
        quantize_channels_iter(channel_source(channel_layers(cells[:6])), 5)
    )
    labels, meta, _ = channel_layer_data(outcome)[2]
    written = write_labels_with_csv(str(tmp_path / "classes.tif"), labels, meta)
    assert [p.rsplit("/", 1)[-1] for p in written] == [
        "classes.tif",
        "classes_palette.csv",
    ]
    np.testing.assert_array_equal(tifffile.imread(written[0]), labels)
    palette, names = read_palette_csv(written[1])
    assert names == ["nuclei", "membranes"]
    np.testing.assert_array_equal(palette, outcome.result.palette)
