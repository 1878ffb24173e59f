"""Multichannel sources on the napari side: one layer with a channel axis, or one
layer per channel, quantised as C-vectors with per-channel outputs."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_kmeans_quantize._channel_layers import (
    channel_layer_data,
)
from napari_kmeans_quantize._channels import (
    channel_source,
    guess_channel_axis,
    quantize_channels_iter,
)


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


def test_progress_runs_from_0_to_1_and_the_input_is_untouched(cells, data_hash):
    before = data_hash(cells)
    _, fractions = _run(channel_source(Image(cells[:8]), channel_axis=1), 4)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions) and len(fractions) > 3
    assert data_hash(cells) == before


def test_one_layer_and_layer_per_channel_give_the_same_classes(cells, channel_layers):
    one, _ = _run(channel_source(Image(cells), channel_axis=1), 5)
    per, _ = _run(channel_source(channel_layers(cells)), 5)
    np.testing.assert_array_equal(one.result.palette, per.result.palette)
    np.testing.assert_array_equal(one.result.labels, per.result.labels)


def test_standardize_changes_the_fit_towards_the_weak_channel(cells, channel_layers):
    source = channel_source(channel_layers(cells))
    scaled, _ = _run(source, 4)
    raw, _ = _run(source, 4, standardize=False)
    # unscaled, the 16-bit membranes decide the classes; standardised, the 12-bit
    # nuclei get classes of their own
    assert np.ptp(scaled.result.palette[:, 0]) > 2 * np.ptp(raw.result.palette[:, 0])
    assert scaled.result.channel_scale is not None and raw.result.channel_scale is None
    raw_names = [meta["name"] for _, meta, _ in channel_layer_data(raw)]
    assert raw_names[0] == "nuclei k=4 unscaled"
    assert any("standardised" in note for note in scaled.notes)


def test_dask_channel_layers_stay_lazy_and_match_numpy(cells, channel_layers):
    import dask.array as da

    eager, _ = _run(channel_source(channel_layers(cells)), 6)
    lazy, _ = _run(channel_source(channel_layers(cells, lazy=True)), 6)
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


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((3, 24, 20), 0), ((4, 3, 24, 20), 1), ((2, 5, 3, 24, 20), 2)],
    ids=["c-y-x", "z-c-y-x", "t-z-c-y-x"],
)
def test_planes_and_time_points_share_one_palette(shape, axis):
    rng = np.random.default_rng(2)
    data = rng.integers(0, 50, shape, dtype=np.uint16) * 80
    outcome, _ = _run(channel_source(Image(data), channel_axis=axis), 6)
    result = outcome.result
    spatial = shape[:axis] + shape[axis + 1 :]
    assert result.labels.shape == spatial and result.palette.shape == (6, shape[axis])
    # one palette: every plane's pixels map to rows of the same table
    np.testing.assert_array_equal(
        np.moveaxis(result.image, axis, -1), result.palette[result.labels]
    )
    # the same as quantising the whole array at once in the engine
    from napari_kmeans_quantize import quantize

    direct = quantize(data, 6, channel_axis=axis, alpha=False, standardize=True)
    np.testing.assert_array_equal(direct.palette, result.palette)


def test_an_importance_map_weighs_the_fit(cells, channel_layers):
    source = channel_source(channel_layers(cells[:6]))
    mask = np.zeros((6, 256, 256), np.uint8)
    mask[:, :128] = 1  # only the top half counts in the fit
    # unscaled: standardising divides by the deviations over every pixel, weighted
    # or not, so only then is the fit that of the top half alone
    weighted, _ = _run(source, 4, weights=mask, standardize=False)
    plain, _ = _run(source, 4, standardize=False)
    assert not np.array_equal(weighted.result.palette, plain.result.palette)
    assert weighted.report.psnr_weighted is not None
    top = channel_source(channel_layers(cells[:6, :, :128]))
    alone, _ = _run(top, 4, standardize=False)
    np.testing.assert_array_equal(alone.result.palette, weighted.result.palette)


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
