"""Tests of the dask (bigger-than-memory) and multiscale quantisation paths."""

from __future__ import annotations

import itertools
import logging
import threading
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from skimage import data

from napari_kmeans_quantize import (
    apply_palette,
    quantize,
    quantize_iter,
)
from napari_kmeans_quantize._engine import dask_backend, dask_histogram
from napari_kmeans_quantize._engine.progress import drain
from napari_kmeans_quantize.chunked import (
    quantize_dask_iter,
    quantize_multiscale,
    quantize_multiscale_iter,
)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[::4, ::4])  # 128 x 128 x 3


def _noisy(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-6, 7, size=rgb.shape)
    return np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _assert_same(dask_result, mem_result) -> None:
    """Bit-for-bit equality of a dask result (computed) and an in-memory one."""
    assert isinstance(dask_result.labels, da.Array)
    assert isinstance(dask_result.image, da.Array)
    labels, image = dask.compute(dask_result.labels, dask_result.image)
    np.testing.assert_array_equal(dask_result.palette, mem_result.palette)
    assert dask_result.palette.dtype == mem_result.palette.dtype
    np.testing.assert_array_equal(dask_result.counts, mem_result.counts)
    assert dask_result.counts.dtype == mem_result.counts.dtype
    np.testing.assert_array_equal(labels, mem_result.labels)
    assert labels.dtype == mem_result.labels.dtype
    np.testing.assert_array_equal(image, mem_result.image)
    assert image.dtype == mem_result.image.dtype
    assert dask_result.labels.shape == mem_result.labels.shape
    assert dask_result.image.shape == mem_result.image.shape
    assert dask_result.n_distinct == mem_result.n_distinct
    assert dask_result.inertia == mem_result.inertia
    assert dask_result.n_iter == mem_result.n_iter
    assert dask_result.converged == mem_result.converged
    assert dask_result.channel_axis == mem_result.channel_axis


# --- dask input == numpy input ------------------------------------------------------


@pytest.mark.parametrize(
    "chunks",
    [(64, 64, 3), (37, 53, 3), (128, 128, 1), (13, 128, 2), (128, 7, 3)],
    ids=["even", "odd", "channels-split", "odd-channels-split", "thin"],
)
def test_uint8_rgb_matches_in_memory(rgb, chunks):
    image = _noisy(rgb)
    _assert_same(quantize(da.from_array(image, chunks=chunks), 16), quantize(image, 16))


@pytest.mark.parametrize("color_space", ["lab", "oklab"])
def test_perceptual_spaces_match_in_memory(rgb, color_space):
    image = da.from_array(rgb, chunks=(50, 50, 3))
    _assert_same(
        quantize(image, 12, color_space=color_space),
        quantize(rgb, 12, color_space=color_space),
    )


def test_rgba_with_transparent_pixels_matches_in_memory(rgb):
    alpha = np.full(rgb.shape[:2], 255, dtype=np.uint8)
    alpha[:40, :40] = 0  # transparent, with varied RGB underneath
    alpha[100:, 100:] = 128
    rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)
    _assert_same(
        quantize(da.from_array(rgba, chunks=(30, 50, 4)), 10), quantize(rgba, 10)
    )


def test_grey_uint8_matches_in_memory(rgb):
    grey = np.ascontiguousarray(rgb[..., 1])
    _assert_same(
        quantize(da.from_array(grey, chunks=(40, 33)), 6, channel_axis=None),
        quantize(grey, 6, channel_axis=None),
    )


@pytest.mark.parametrize("channel_axis", [None, -1])
def test_uint16_matches_in_memory(rgb, channel_axis):
    image = _noisy(rgb).astype(np.uint16) * 257 + np.uint16(3)
    if channel_axis is None:
        image = np.ascontiguousarray(image[..., 0])
    chunks = (45, 60) if channel_axis is None else (45, 60, 3)
    _assert_same(
        quantize(da.from_array(image, chunks=chunks), 20, channel_axis=channel_axis),
        quantize(image, 20, channel_axis=channel_axis),
    )


def test_signed_int_matches_in_memory(rgb):
    image = rgb.astype(np.int16) - 128
    _assert_same(
        quantize(da.from_array(image, chunks=(50, 50, 3)), 8), quantize(image, 8)
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_matches_in_memory(rgb, dtype):
    image = _noisy(rgb).astype(dtype) / 255
    image[0, 0] = -0.0  # -0.0 and 0.0 are one colour
    image[0, 1] = 0.0
    _assert_same(
        quantize(da.from_array(image, chunks=(33, 70, 3)), 16, color_space="oklab"),
        quantize(image, 16, color_space="oklab"),
    )


def test_frame_stack_matches_in_memory(rgb):
    stack = np.stack([_noisy(rgb, s) for s in range(3)])  # (3, 128, 128, 3)
    _assert_same(
        quantize(da.from_array(stack, chunks=(1, 50, 64, 3)), 16),
        quantize(stack, 16),
    )


def test_channels_first_matches_in_memory(rgb):
    image = np.ascontiguousarray(np.moveaxis(rgb, -1, 0))  # (3, H, W)
    result = quantize(da.from_array(image, chunks=(1, 40, 40)), 8, channel_axis=0)
    _assert_same(result, quantize(image, 8, channel_axis=0))
    assert result.image.shape == image.shape


def test_max_pixels_sample_matches_in_memory(rgb):
    image = _noisy(rgb)
    kwargs = {"max_pixels": 3000, "random_state": 7}
    _assert_same(
        quantize(da.from_array(image, chunks=(37, 41, 3)), 16, **kwargs),
        quantize(image, 16, **kwargs),
    )


def test_few_colours_warns_and_matches(rgb):
    image = (rgb // 128) * 128  # at most 8 colours
    with pytest.warns(UserWarning, match="distinct colours"):
        mem = quantize(image, 50)
    with pytest.warns(UserWarning, match="distinct colours"):
        res = quantize(da.from_array(image, chunks=(64, 64, 3)), 50)
    _assert_same(res, mem)


def test_more_than_256_colours_gives_uint16_labels(rgb):
    image = _noisy(rgb)
    res = quantize(da.from_array(image, chunks=(64, 64, 3)), 300, max_iter=5)
    assert res.labels.dtype == np.uint16
    _assert_same(res, quantize(image, 300, max_iter=5))


def test_dense_block_counting_matches(rgb, monkeypatch):
    # Blocks this large are counted by a bincount over all 2**24 colours.
    monkeypatch.setattr(dask_histogram, "_BINCOUNT_MIN_FILL", 0.0001)
    image = _noisy(rgb)
    _assert_same(
        quantize(da.from_array(image, chunks=(64, 64, 3)), 16), quantize(image, 16)
    )


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_shared_counts_match_in_memory(rgb, scheduler):
    image = _noisy(rgb)
    lazy = da.from_array(image, chunks=(40, 50, 3))
    with dask.config.set(scheduler=scheduler):
        assert dask_histogram._shares_memory(lazy)
        res = quantize(lazy, 16)
        _assert_same(res, quantize(image, 16))
    with dask.config.set(scheduler="processes"):
        assert not dask_histogram._shares_memory(lazy)


@pytest.mark.parametrize(
    ("limit", "arrays"),
    [(None, None), (700, None), (None, 1)],
    ids=["uint32", "spilling", "one-array"],
)
def test_dense_counter_counts_concurrent_adds_exactly(limit, arrays, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from napari_kmeans_quantize._engine.dense import DenseCounter
    from napari_kmeans_quantize._engine.keys import KeySpec

    if limit is not None:
        # Small enough that the uint32 arrays spill into int64 (and chunks split).
        monkeypatch.setattr(DenseCounter, "_LIMIT", limit)
    if arrays is not None:
        # The tasks past the cap wait for an array instead of making one.
        monkeypatch.setattr(DenseCounter, "_MAX_ARRAYS", arrays)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 8, size=(20_000, 3), dtype=np.uint8) * 32
    counter = DenseCounter(KeySpec(pixels.dtype, 3))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(counter.add, np.array_split(pixels, 37)))
    assert 1 <= len(counter._arrays) <= DenseCounter._MAX_ARRAYS
    keys, counts = counter.result()
    colours, expected = np.unique(pixels, axis=0, return_counts=True)
    keyed = (colours.astype(np.int64) << [16, 8, 0]).sum(axis=1)
    np.testing.assert_array_equal(keys, keyed)
    np.testing.assert_array_equal(counts, expected)
    assert keys.dtype == np.uint32 and counts.dtype == np.int64
    assert counter.result()[0].size == 0  # the arrays were released


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_histogram_methods_agree(rgb, method):
    image = _noisy(rgb)
    res = chunked_quantize(da.from_array(image, chunks=(50, 50, 3)), 16, method)
    _assert_same(res, quantize(image, 16))


def chunked_quantize(image, k, method, **kwargs):
    gen = quantize_dask_iter(image, k, histogram_method=method, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def test_dense_method_refused_for_big_key_space(rgb):
    rgba = np.concatenate([rgb, rgb[..., :1]], axis=-1)
    with pytest.raises(ValueError, match="histogram_method='dense'"):
        chunked_quantize(da.from_array(rgba), 4, "dense")


# --- laziness -----------------------------------------------------------------------


class _Counter:
    """A map_blocks function that counts how often source chunks are read."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, block: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls += 1
        return block


def test_results_are_lazy_and_labels_never_rerun_the_histogram(rgb):
    counter = _Counter()
    source = da.from_array(_noisy(rgb), chunks=(64, 64, 3))
    image = source.map_blocks(counter, meta=source._meta)
    n_blocks = 4
    res = quantize(image, 8)
    assert counter.calls == n_blocks  # one histogram pass, nothing else yet
    assert isinstance(res.labels, da.Array) and isinstance(res.image, da.Array)
    assert res.labels.chunks == ((64, 64), (64, 64))
    res.labels.compute()
    res.labels.compute()
    # Each computation reads every chunk once; the histogram is not redone.
    assert counter.calls == 3 * n_blocks
    names = {k[0] if isinstance(k, tuple) else k for k in res.labels.dask}
    assert not any("_block_histogram" in n or "_merge_partials" in n for n in names)
    # The graph: source chunks, the label chunks and one node with the table.
    assert len(dict(res.labels.__dask_graph__())) == 3 * n_blocks + 1
    # Labels and image computed together read the source once.
    dask.compute(res.labels, res.image)
    assert counter.calls == 4 * n_blocks


def test_progress_over_chunks_and_cancel(rgb):
    image = da.from_array(_noisy(rgb), chunks=(16, 16, 3))  # 64 chunks
    fractions = list(_progress(quantize_iter(image, 8)))
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(fractions))
    hist_steps = [f for f in fractions if 0 < f <= dask_backend._HIST_END]
    assert len(hist_steps) >= 8  # the bar moves while chunks are read

    counter = _Counter()
    gen = quantize_iter(image.map_blocks(counter, meta=image._meta), 8)
    next(gen)
    next(gen)  # one batch of chunks done
    gen.close()
    assert 0 < counter.calls < 64


def _progress(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


# --- errors -------------------------------------------------------------------------


def _errors(func):
    try:
        func()
    except (TypeError, ValueError) as err:
        return type(err), str(err)
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("image", "kwargs"),
    [
        (np.zeros((8, 8, 17), np.uint8), {}),
        (np.zeros((8, 8, 0), np.uint8), {}),
        (np.zeros((8, 8, 5), np.uint8), {"color_space": "lab"}),
        (np.zeros((8, 8, 4), np.uint8), {"color_space": "oklab", "alpha": False}),
        (np.zeros((8, 8, 5), np.uint8), {"standardize": True, "color_space": "lab"}),
        (np.zeros((8, 8, 3), bool), {}),
        (np.zeros((0, 8, 3), np.uint8), {}),
        (np.zeros((8, 8, 3), np.uint8), {"channel_axis": 3}),
        (np.zeros((8, 8), np.uint8), {}),
        (np.zeros((8, 8), np.uint8), {"channel_axis": None, "color_space": "lab"}),
        (np.full((8, 8, 3), 2.0), {"color_space": "lab"}),
        (np.full((8, 8, 3), -3, np.int8), {"color_space": "oklab"}),
        (np.zeros((8, 8, 3), np.uint8), {"color_space": "xyz"}),
        # odd input: refused up front (or after the histogram pass) alike
        (np.zeros((8, 8, 3), np.longdouble), {}),
        (
            np.array([[0, 2**63 - 1001], [2**63 - 1, 5]], np.int64),
            {"channel_axis": None},
        ),
        (np.array([[0, 2**64 - 1], [7, 5]], np.uint64), {"channel_axis": None}),
        (np.full((8, 8, 3), 1e153), {}),
        (np.full((8, 8, 3), -1e300), {}),
        (np.ma.masked_array(np.zeros((8, 8, 3), np.uint8), mask=True), {}),
    ],
)
def test_bad_input_gives_the_in_memory_error(image, kwargs):
    mem = _errors(lambda: quantize(image, 4, **kwargs))
    lazy = _errors(lambda: quantize(da.from_array(image, chunks=4), 4, **kwargs))
    assert lazy == mem


@pytest.mark.parametrize("dtype", [">u2", ">f8"])
def test_big_endian_matches_native_in_memory(rgb, dtype):
    native = rgb.astype(np.dtype(dtype).newbyteorder("="))
    swapped = native.astype(dtype)
    lazy = quantize(da.from_array(swapped, chunks=(40, 40, 3)), 8)
    _assert_same(lazy, quantize(native, 8))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"tol": -1.0}, ValueError),
        ({"tol": "small"}, TypeError),
        ({"random_state": -3}, ValueError),
        ({"random_state": 1.5}, TypeError),
        ({"max_iter": True}, ValueError),
    ],
)
def test_public_dask_entry_points_check_every_option(rgb, pyramid, kwargs, error):
    image = da.from_array(rgb)
    with pytest.raises(error):
        next(quantize_dask_iter(image, 4, **kwargs))
    with pytest.raises(error):
        next(quantize_multiscale_iter(pyramid, 4, **kwargs))


@pytest.mark.parametrize("n_colors", [0, 65537, 2.5])
def test_bad_n_colors(rgb, n_colors):
    image = da.from_array(rgb)
    assert _errors(lambda: quantize(image, n_colors)) == _errors(
        lambda: quantize(rgb, n_colors)
    )
    with pytest.raises((TypeError, ValueError), match="n_colors"):
        chunked_quantize(image, n_colors, "auto")


def test_nan_in_one_chunk_is_found():
    image = np.random.default_rng(0).random((60, 60, 3))
    image[45, 10, 2] = np.nan
    image[50, 12, 0] = np.inf
    lazy = da.from_array(image, chunks=(20, 20, 3))
    with pytest.raises(ValueError, match=r"2 NaN or infinite.*\(2, 0\)"):
        quantize(lazy, 4)


def test_nan_under_transparent_pixel_is_found():
    image = np.ones((10, 10, 4), dtype=np.float32)
    image[3, 3] = (np.nan, 0.5, 0.5, 0.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize(image, 4)
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize(da.from_array(image, chunks=5), 4)


def test_dither_is_refused_with_a_reason(rgb):
    with pytest.raises(ValueError, match="dither=True is not supported for dask"):
        quantize(da.from_array(rgb), 4, dither=True)


# --- multiscale ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyramid() -> list[np.ndarray]:
    img = np.ascontiguousarray(data.astronaut()[::2, ::2])  # 256 x 256
    levels = [img]
    for _ in range(2):
        prev = levels[-1].astype(np.uint16)
        levels.append(
            (
                (prev[::2, ::2] + prev[1::2, ::2] + prev[::2, 1::2] + prev[1::2, 1::2])
                // 4
            ).astype(np.uint8)
        )
    return levels


def test_multiscale_one_palette_and_aligned_levels(pyramid):
    levels = [da.from_array(level, chunks=(64, 64, 3)) for level in pyramid]
    results = quantize_multiscale(levels, 12)
    assert len(results) == 3
    palette = results[0].palette
    for level, res in zip(pyramid, results, strict=True):
        np.testing.assert_array_equal(res.palette, palette)
        assert res.labels.shape == level.shape[:2]
        assert res.image.shape == level.shape
        assert isinstance(res.labels, da.Array) and isinstance(res.image, da.Array)
    # The fit level is exactly quantize() of it.
    _assert_same(results[0], quantize(pyramid[0], 12))
    # The others are apply_palette() of them, and their counts are lazy.
    for level, res in zip(pyramid[1:], results[1:], strict=True):
        mem = apply_palette(level, palette)
        labels, image, counts = dask.compute(res.labels, res.image, res.counts)
        np.testing.assert_array_equal(labels, mem.labels)
        np.testing.assert_array_equal(image, mem.image)
        np.testing.assert_array_equal(counts, mem.counts)


def test_multiscale_fit_on_a_coarser_level(pyramid):
    # Mixed input types, as napari may hold them: dask and NumPy levels.
    levels = [da.from_array(pyramid[0], chunks=(100, 100, 3)), *pyramid[1:]]
    results = quantize_multiscale(levels, 8, fit_level=-1, color_space="oklab")
    _assert_same(results[2], quantize(pyramid[2], 8, color_space="oklab"))
    mem0 = apply_palette(pyramid[0], results[2].palette, color_space="oklab")
    np.testing.assert_array_equal(results[0].labels.compute(), mem0.labels)
    assert results[0].n_distinct == 0


def test_multiscale_grey_and_progress(pyramid):
    levels = [np.ascontiguousarray(level[..., 0]) for level in pyramid]
    fractions = list(_progress(quantize_multiscale_iter(levels, 5, channel_axis=None)))
    assert fractions[-1] == 1.0
    results = quantize_multiscale(levels, 5, channel_axis=None)
    assert [r.image.shape for r in results] == [lv.shape for lv in levels]
    np.testing.assert_array_equal(
        results[1].image.compute(),
        apply_palette(levels[1], results[0].palette, channel_axis=None).image,
    )


def test_multiscale_bad_levels(pyramid):
    with pytest.raises(ValueError, match="level 1"):
        quantize_multiscale([pyramid[0], pyramid[1][..., :1]], 4)
    with pytest.raises(ValueError, match="fit_level"):
        quantize_multiscale(pyramid, 4, fit_level=3)
    with pytest.raises(TypeError, match="list of arrays"):
        quantize_multiscale(pyramid[0], 4)
    with pytest.raises(ValueError, match="dither"):
        quantize_multiscale(pyramid, 4, dither=True)


# --- dask.distributed -------------------------------------------------------------


@pytest.mark.slow
def test_distributed_client_matches_in_memory(rgb, pyramid):
    import distributed

    image = _noisy(rgb)
    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        warnings.simplefilter("ignore", UserWarning)  # e.g. large graph warnings
        lazy = da.from_array(image, chunks=(37, 50, 3))
        with distributed.get_task_stream(client) as stream:
            res = quantize(lazy, 16)
            _assert_same(res, quantize(image, 16))
        # The histogram and the labels ran as tasks on both worker processes.
        names = {
            t["key"][0] if isinstance(t["key"], tuple) else t["key"]
            for t in stream.data
        }
        assert any(n.startswith("_block_histogram") for n in names)
        assert any(n.startswith("kmq-labels") for n in names)
        assert len({t["worker"] for t in stream.data}) == 2
        ms = quantize_multiscale([da.from_array(lv, chunks=64) for lv in pyramid], 6)
        np.testing.assert_array_equal(
            ms[1].labels.compute(), apply_palette(pyramid[1], ms[0].palette).labels
        )


@pytest.mark.parametrize("dither", [False, True])
def test_multiscale_in_memory_is_quantize_then_apply_palette(pyramid, dither):
    results = quantize_multiscale(pyramid, 8, fit_level=1, lazy=False, dither=dither)
    fitted = quantize(pyramid[1], 8, dither=dither)
    np.testing.assert_array_equal(results[1].labels, fitted.labels)
    np.testing.assert_array_equal(results[1].counts, fitted.counts)
    for level, result in zip(pyramid, results, strict=True):
        assert isinstance(result.labels, np.ndarray)
        np.testing.assert_array_equal(result.palette, fitted.palette)
        if level is pyramid[1]:
            continue
        mapped = apply_palette(level, fitted.palette, dither=dither)
        np.testing.assert_array_equal(result.labels, mapped.labels)
        np.testing.assert_array_equal(result.image, mapped.image)
        np.testing.assert_array_equal(result.counts, mapped.counts)
        assert result.n_iter == fitted.n_iter


def test_multiscale_lazy_and_eager_agree_without_dithering(pyramid):
    lazy = quantize_multiscale(pyramid, 8, fit_level=1)
    eager = quantize_multiscale(pyramid, 8, fit_level=1, lazy=False)
    for a, b in zip(lazy, eager, strict=True):
        labels, counts = dask.compute(a.labels, a.counts)
        np.testing.assert_array_equal(labels, b.labels)
        np.testing.assert_array_equal(counts, b.counts)


@pytest.mark.parametrize("lazy", [True, False])
def test_multiscale_standardized_levels_share_the_fit_space(lazy):
    from napari_kmeans_quantize.chunked import quantize_multiscale

    rng = np.random.default_rng(0)
    img = rng.integers(0, 4000, (64, 64, 5)).astype(np.uint16)
    img[..., 0] *= 16
    res = quantize_multiscale([img, img[::2, ::2]], 6, lazy=lazy, standardize=True)
    full = quantize(img, 6, standardize=True)
    np.testing.assert_array_equal(res[0].palette, full.palette)
    # The coarser level is mapped with the fit's channel scale, not in raw units.
    coarse = img[::2, ::2, None, :].astype(float)
    d = (((coarse - full.palette) / full.channel_scale) ** 2).sum(-1)
    np.testing.assert_array_equal(np.asarray(res[1].labels), d.argmin(-1))


def test_quantize_dask_iter_takes_every_option_of_quantize():
    # Its signature comes from the same option list as quantize's: the weights,
    # locked colours and seeding reach the dask path as they reach quantize.
    img = data.astronaut()[::8, ::8]
    weights = np.ones(img.shape[:2])
    weights[:20] = 5.0
    fixed = np.array([[0, 0, 0]], dtype=np.uint8)
    options = dict(weights=weights, fixed_colors=fixed, init="k-means++", n_init=2)
    lazy = drain(
        quantize_dask_iter(da.from_array(img, chunks=(32, 32, 3)), 6, **options)
    )
    alone = quantize(img, 6, **options)
    np.testing.assert_array_equal(lazy.palette, alone.palette)
    np.testing.assert_array_equal(np.asarray(lazy.labels), alone.labels)
    with pytest.raises(TypeError, match=r"quantize_dask_iter\(\).*colour_space"):
        next(quantize_dask_iter(img, 6, colour_space="lab"))
