"""Multichannel sources on the napari side: one layer with a channel axis, or one
layer per channel, quantised as C-vectors with per-channel outputs."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_kmeans_quantize._channel_layers import (
    MEANS_ROLE,
    channel_layer_data,
    cluster_rows,
    quantize_channels,
)
from napari_kmeans_quantize._channels import (
    channel_source,
    guess_channel_axis,
    quantize_channels_iter,
)


def _cells3d_like() -> np.ndarray:
    """A (60, 2, 256, 256) uint16 stand-in for scikit-image's cells3d.

    Channel 0: 12-bit nuclei (three bright ellipsoids); channel 1: 16-bit
    membranes (a bright mesh). Values are stepped so the stack has a few
    hundred distinct pixel vectors, which keeps the exact fit quick.
    """
    z, y, x = np.ogrid[0:60, 0:256, 0:256]
    nuclei = np.zeros((60, 256, 256))
    for cz, cy, cx, r in [(30, 80, 80, 40), (20, 180, 170, 35), (40, 190, 60, 30)]:
        nuclei += np.exp(
            -(((z - cz) * 3.0) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r)
        )
    nuclei = np.round(nuclei / nuclei.max() * 63) * 64  # 0 .. 4032, 12-bit
    mesh = np.abs(np.sin(x / 12.0)) * np.abs(np.sin(y / 15.0)) + 0 * z
    membranes = np.round((1 - mesh) ** 4 * 15) * 4096  # 0 .. 61440, 16-bit
    return np.stack([nuclei, membranes], axis=1).astype(np.uint16)


@pytest.fixture(scope="module")
def cells() -> np.ndarray:
    return _cells3d_like()


def _channel_layers(cells: np.ndarray, lazy: bool = False) -> list[Image]:
    data = [cells[:, 0], cells[:, 1]]
    if lazy:
        import dask.array as da

        data = [da.from_array(d, chunks=(15, 128, 128)) for d in data]
    return [
        Image(
            data[0],
            name="nuclei",
            colormap="magenta",
            contrast_limits=(0, 4095),
            scale=(0.29, 0.26, 0.26),
        ),
        Image(
            data[1],
            name="membranes",
            colormap="green",
            blending="additive",
            contrast_limits=(0, 65535),
            gamma=0.8,
            scale=(0.29, 0.26, 0.26),
        ),
    ]


def _run(source, n_colors, **kwargs):
    gen = quantize_channels_iter(source, n_colors, **kwargs)
    fractions = []
    while True:
        try:
            fractions.append(next(gen))
        except StopIteration as stop:
            return stop.value, fractions


def test_guess_channel_axis_reads_cells3d_layout_labels_and_metadata(cells):
    assert guess_channel_axis(Image(cells)) == 1
    labelled = Image(np.zeros((3, 5, 8, 8)), axis_labels=("z", "ch", "y", "x"))
    assert guess_channel_axis(labelled) == 1  # the label wins over the shorter axis
    told = Image(np.zeros((4, 3, 8, 8)), metadata={"channel_axis": 0})
    assert guess_channel_axis(told) == 0
    assert guess_channel_axis(Image(np.zeros((8, 8)))) is None
    assert guess_channel_axis(Image(np.zeros((40, 8, 8)))) is None  # too long
    assert guess_channel_axis(Image(np.zeros((8, 8, 3), np.uint8), rgb=True)) is None


def test_one_layer_with_a_channel_axis_gives_per_channel_outputs(cells, data_hash):
    layer = Image(cells, name="cells", scale=(0.29, 1.0, 0.26, 0.26))
    before = data_hash(cells)
    source = channel_source(layer)  # axis 1 guessed
    assert source.channel_axis == 1 and source.spatial_shape == (60, 256, 256)
    assert [c.name for c in source.channels] == ["cells ch0", "cells ch1"]
    np.testing.assert_array_equal(source.placement["scale"], [0.29, 0.26, 0.26])

    outcome, fractions = _run(source, 6)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
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


def test_channel_layers_keep_their_display_and_features_name_them(cells):
    nuclei, membranes = _channel_layers(cells)
    source = channel_source([nuclei, membranes])
    assert source.name == "nuclei + membranes" and source.channel_axis is None
    outcome, _ = _run(source, 8)
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


def test_one_layer_and_layer_per_channel_give_the_same_classes(cells):
    one, _ = _run(channel_source(Image(cells), channel_axis=1), 5)
    per, _ = _run(channel_source(_channel_layers(cells)), 5)
    np.testing.assert_array_equal(one.result.palette, per.result.palette)
    np.testing.assert_array_equal(one.result.labels, per.result.labels)


def test_standardize_changes_the_fit_towards_the_weak_channel(cells):
    source = channel_source(_channel_layers(cells))
    scaled, _ = _run(source, 4)
    raw, _ = _run(source, 4, standardize=False)
    # unscaled, the 16-bit membranes decide the classes; standardised, the 12-bit
    # nuclei get classes of their own
    assert np.ptp(scaled.result.palette[:, 0]) > 2 * np.ptp(raw.result.palette[:, 0])
    assert scaled.result.channel_scale is not None and raw.result.channel_scale is None
    raw_names = [meta["name"] for _, meta, _ in channel_layer_data(raw)]
    assert raw_names[0] == "nuclei k=4 unscaled"
    assert any("standardised" in note for note in scaled.notes)


def test_dask_channel_layers_stay_lazy_and_match_numpy(cells):
    import dask.array as da

    eager, _ = _run(channel_source(_channel_layers(cells)), 6)
    lazy, _ = _run(channel_source(_channel_layers(cells, lazy=True)), 6)
    assert isinstance(lazy.result.labels, da.Array)
    np.testing.assert_array_equal(lazy.result.palette, eager.result.palette)
    np.testing.assert_array_equal(lazy.result.labels.compute(), eager.result.labels)
    tuples = channel_layer_data(lazy)
    assert isinstance(tuples[0][0], da.Array)
    np.testing.assert_array_equal(
        tuples[1][0][:2].compute(), eager.result.palette[eager.result.labels[:2], 1]
    )
    assert lazy.report.psnr is None  # never read whole


def test_a_single_layer_dask_stack_with_a_channel_axis(cells):
    import dask.array as da

    layer = Image(da.from_array(cells[:10], chunks=(5, 2, 128, 128)), name="cells")
    outcome, _ = _run(channel_source(layer, channel_axis=1), 4)
    eager, _ = _run(channel_source(Image(cells[:10]), channel_axis=1), 4)
    np.testing.assert_array_equal(outcome.result.labels.compute(), eager.result.labels)


def test_four_channel_layers_are_plain_channels_not_rgba():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    data[3, :16] = 0  # would be "fully transparent" if read as alpha
    layers = [Image(d, name=f"c{i}") for i, d in enumerate(data)]
    outcome, _ = _run(channel_source(layers), 16, standardize=False)
    assert outcome.result.alpha is False and outcome.result.palette.shape == (16, 4)


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        (
            lambda: [
                Image(np.zeros((8, 8)), name="a"),
                Image(np.zeros((8, 9)), name="b"),
            ],
            r"one shape; got 'a' \(8, 8\), 'b' \(8, 9\)",
        ),
        (
            lambda: [Image(np.zeros((8, 8), np.uint16)), Image(np.zeros((8, 8)))],
            "one dtype",
        ),
        (
            lambda: [Image(np.zeros((4, 4))) for _ in range(17)],
            "17 channels; .* 1 to 16",
        ),
        (
            lambda: [
                Image(np.zeros((8, 8))),
                Image(np.zeros((8, 8, 3), np.uint8), rgb=True, name="photo"),
            ],
            "'photo' is an RGB",
        ),
        (lambda: [], "No channel layers"),
        (
            lambda: [
                Image([np.zeros((16, 16)), np.zeros((8, 8))], multiscale=True, name="p")
            ],
            "'p' is multiscale",
        ),
        (lambda: Image(np.zeros((16, 16)), name="flat"), "no axis that looks like"),
        (lambda: Image(np.zeros((20, 16, 16)), name="deep"), "no axis that looks"),
        (
            lambda: Image(
                np.zeros((2, 30, 8, 8)),
                metadata={"plugin": "napari-kmeans-quantize"},
                name="out",
            ),
            "'out' is a result of this plugin",
        ),
    ],
)
def test_bad_sources_are_refused_with_what_to_do(layers, match):
    with pytest.raises(ValueError, match=match):
        channel_source(layers())


def test_bad_channel_axis_and_non_image_layers():
    with pytest.raises(ValueError, match="channel axis 2 does not fit"):
        channel_source(Image(np.zeros((2, 8, 8))), channel_axis=2)
    with pytest.raises(ValueError, match="channel axis 5 does not fit"):
        channel_source(Image(np.zeros((2, 8, 8))), channel_axis=5)
    with pytest.raises(ValueError, match="17 channels"):
        channel_source(Image(np.zeros((17, 8, 8))), channel_axis=0)
    with pytest.raises(TypeError, match="'mask' is a Labels"):
        channel_source(
            [Image(np.zeros((8, 8))), Labels(np.zeros((8, 8), int), name="mask")]
        )


def test_quantize_channels_adds_layers_to_a_viewer(make_napari_viewer, cells):
    viewer = make_napari_viewer()
    viewer.add_image(
        cells[:20],
        channel_axis=1,
        name=["nuclei", "membranes"],
        contrast_limits=[(0, 4095), (0, 65535)],
    )
    sources = list(viewer.layers)
    layers = quantize_channels(sources, 6, viewer=viewer)
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
