"""Tests of the public quantisation API: quantize, quantize_iter, apply_palette."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial import cKDTree
from skimage import data
from skimage.transform import rescale

from napari_kmeans_quantize import (
    QuantizeResult,
    apply_palette,
    mean_ciede2000,
    mse,
    quantize,
    quantize_iter,
)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def astronaut_small() -> np.ndarray:
    img = data.astronaut()[::4, ::4]
    return np.ascontiguousarray(img)


def _check_consistent(result: QuantizeResult, image: np.ndarray, k: int) -> None:
    assert result.image.shape == image.shape
    assert result.image.dtype == image.dtype
    assert 1 <= result.n_colors <= k
    assert len(np.unique(result.palette, axis=0)) == result.n_colors
    assert result.counts.sum() == result.labels.size
    assert (result.counts > 0).all()
    assert result.labels.max() < result.n_colors
    expected = result.palette[result.labels]
    if result.channel_axis is None:
        expected = expected[..., 0]
    else:
        expected = np.moveaxis(expected, -1, result.channel_axis)
    np.testing.assert_array_equal(result.image, expected)


# --- basic behaviour ----------------------------------------------------------------


def test_uint8_rgb_image_is_palette_of_labels(astronaut_small):
    result = quantize(astronaut_small, 16)
    _check_consistent(result, astronaut_small, 16)
    assert result.n_colors == 16
    assert result.labels.dtype == np.uint8
    assert result.labels.shape == astronaut_small.shape[:2]
    assert result.palette.dtype == np.uint8
    assert result.bits_per_index == 4
    # most frequent first
    assert (np.diff(result.counts) <= 0).all()


def test_every_colour_maps_to_its_nearest_palette_entry(astronaut_small):
    result = quantize(astronaut_small, 32)
    px = astronaut_small.reshape(-1, 3).astype(float)
    d_own = ((px - result.palette[result.labels.ravel()]) ** 2).sum(1)
    d_best = cKDTree(result.palette.astype(float)).query(px)[0] ** 2
    np.testing.assert_allclose(d_own, d_best)


def test_quality_matches_full_pixel_sklearn_kmeans(astronaut_small):
    from sklearn.cluster import KMeans

    px = astronaut_small.reshape(-1, 3).astype(np.float64)
    ours = mse(astronaut_small, quantize(astronaut_small, 16).image)
    km = KMeans(n_clusters=16, random_state=0).fit(px)
    seed = float(((px - km.cluster_centers_[km.labels_]) ** 2).sum(1).mean())
    # Our palette is rounded to uint8; the seed's centres are not.
    assert ours <= 1.03 * seed


def test_deterministic_bit_identical(astronaut_small):
    a = quantize(astronaut_small, 24)
    b = quantize(astronaut_small, 24)
    np.testing.assert_array_equal(a.palette, b.palette)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.image, b.image)


def test_input_never_modified(astronaut_small):
    img = astronaut_small.copy()
    before = _digest(img)
    img.flags.writeable = False  # any write would raise
    quantize(img, 8)
    quantize(img, 8, color_space="lab", dither=True)
    apply_palette(img, quantize(img, 4).palette)
    assert _digest(img) == before


def test_rgba_input_not_modified_when_transparent_pixels_are_merged():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)
    img[:10, :, 3] = 0
    before = _digest(img)
    quantize(img, 6)
    assert _digest(img) == before


def test_more_than_256_colours_gives_uint16_labels(astronaut_small):
    result = quantize(astronaut_small, 300)
    _check_consistent(result, astronaut_small, 300)
    assert result.labels.dtype == np.uint16
    assert result.n_colors == 300


# --- dtypes and layouts -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.int32, np.uint32])
def test_integer_dtypes(astronaut_small, dtype):
    img = astronaut_small.astype(dtype) * 7
    result = quantize(img, 8)
    _check_consistent(result, img, 8)
    assert result.palette.dtype == dtype
    assert result.palette.min() >= img.min() and result.palette.max() <= img.max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_keeps_values(astronaut_small, dtype):
    # Values far outside [0, 1]: floats must not be rescaled.
    img = astronaut_small.astype(dtype) * 10.0 - 500.0
    result = quantize(img, 8)
    _check_consistent(result, img, 8)
    assert result.palette.dtype == dtype
    assert result.palette.min() >= img.min() - 1e-3
    assert result.palette.max() <= img.max() + 1e-3
    assert result.palette.min() < 0  # values kept, not clipped to [0, 1]


def test_float16_image(astronaut_small):
    img = (astronaut_small / 255).astype(np.float16)
    before = _digest(img)
    result = quantize(img, 8)
    _check_consistent(result, img, 8)
    assert result.palette.dtype == np.float16
    assert _digest(img) == before
    again = apply_palette(img, result.palette)
    np.testing.assert_array_equal(again.image, result.image)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_floats_rejected(bad):
    img = np.zeros((4, 4, 3), dtype=np.float32)
    img[1, 2, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize(img, 2)


def test_rgba_alpha_kept_and_transparent_pixels_do_not_pull_palette():
    rng = np.random.default_rng(0)
    opaque = data.chelsea()[::8, ::8]
    h, w = opaque.shape[:2]
    rgba = np.empty((h, 2 * w, 4), dtype=np.uint8)
    rgba[:, :w, :3] = opaque
    rgba[:, :w, 3] = 255
    # Garbage colour under fully transparent pixels must not matter.
    rgba[:, w:, :3] = rng.integers(0, 256, (h, w, 3))
    rgba[:, w:, 3] = 0
    result = quantize(rgba, 8)
    _check_consistent(result, rgba, 8)
    transparent = result.palette[:, 3] == 0
    assert transparent.sum() == 1
    np.testing.assert_array_equal(result.palette[transparent][0], [0, 0, 0, 0])
    assert (result.image[:, w:, 3] == 0).all()
    assert (result.image[:, :w, 3] == 255).all()
    # The 7 opaque entries are exactly the palette of the opaque half alone.
    alone = quantize(rgba[:, :w], 7)
    np.testing.assert_array_equal(
        np.unique(result.palette[~transparent], axis=0),
        np.unique(alone.palette, axis=0),
    )


def test_single_channel_2d_intensity():
    img = data.camera()[::4, ::4]
    result = quantize(img, 4, channel_axis=None)
    _check_consistent(result, img, 4)
    assert result.palette.shape == (4, 1)
    assert result.labels.shape == img.shape
    # 1-D k-means: clusters are intervals, so sorted palette order is label order.
    order = np.argsort(result.palette[:, 0])
    rank = np.empty_like(order)
    rank[order] = np.arange(4)
    ranks = rank[result.labels]
    by_value = np.argsort(img.ravel(), kind="stable")
    assert (np.diff(ranks.ravel()[by_value]) >= 0).all()


def test_single_channel_with_explicit_channel_axis():
    img = data.camera()[::8, ::8, np.newaxis]
    result = quantize(img, 3)
    _check_consistent(result, img, 3)


def test_nd_stack_shares_one_palette():
    frames = np.stack([data.astronaut()[::8, ::8], data.coffee()[:256:4, :256:4]])
    result = quantize(frames, 12)
    _check_consistent(result, frames, 12)
    assert result.labels.shape == frames.shape[:3]
    # Each frame alone is the shared palette applied to that frame.
    again = apply_palette(frames[1], result.palette)
    np.testing.assert_array_equal(again.labels, result.labels[1])


def test_channel_axis_first():
    img = np.moveaxis(data.astronaut()[::8, ::8], -1, 0).copy()
    result = quantize(img, 8, channel_axis=0)
    _check_consistent(result, img, 8)
    assert result.labels.shape == img.shape[1:]
    last = quantize(np.moveaxis(img, 0, -1), 8)
    np.testing.assert_array_equal(result.labels, last.labels)


def test_one_pixel_image():
    img = np.array([[[10, 20, 30]]], dtype=np.uint8)
    with pytest.warns(UserWarning, match="only 1 distinct"):
        result = quantize(img, 4)
    _check_consistent(result, img, 4)
    np.testing.assert_array_equal(result.palette, [[10, 20, 30]])


def test_constant_image_k1_no_warning():
    img = np.full((5, 6, 3), 7, dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = quantize(img, 1)
    assert result.n_colors == 1
    assert result.bits_per_index == 0
    np.testing.assert_array_equal(result.image, img)


def test_k_larger_than_distinct_colours_returns_them_exactly():
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], dtype=np.uint8)
    img = colours[np.arange(30) % 3].reshape(5, 6, 3)
    with pytest.warns(UserWarning, match="only 3 distinct"):
        result = quantize(img, 8)
    assert result.n_colors == 3
    np.testing.assert_array_equal(
        np.unique(result.palette, axis=0), np.unique(colours, axis=0)
    )
    np.testing.assert_array_equal(result.image, img)


def test_k_equal_to_distinct_colours_is_lossless_without_warning():
    colours = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    img = colours[np.arange(12) % 2].reshape(3, 4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = quantize(img, 2)
    np.testing.assert_array_equal(result.image, img)


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -3, 65537])
def test_k_out_of_range(k):
    with pytest.raises(ValueError, match="n_colors must be between 1 and 65536"):
        quantize(np.zeros((2, 2, 3), np.uint8), k)


@pytest.mark.parametrize("k", [2.5, "8", True, None, 8.0])
def test_k_not_an_integer(k):
    with pytest.raises(TypeError, match="n_colors must be an integer"):
        quantize(np.zeros((2, 2, 3), np.uint8), k)


def test_numpy_integer_k_accepted(astronaut_small):
    assert quantize(astronaut_small, np.int64(4)).n_colors == 4


@pytest.mark.parametrize("shape", [(0, 4, 3), (4, 0, 3), (0,)])
def test_empty_image(shape):
    with pytest.raises(ValueError, match="empty"):
        quantize(np.zeros(shape, np.uint8), 2)


@pytest.mark.parametrize("channels", [2, 5])
def test_wrong_channel_count(channels):
    with pytest.raises(ValueError, match=f"has {channels} channels.*3 \\(RGB\\) or 4"):
        quantize(np.zeros((4, 4, channels), np.uint8), 2)


def test_grey_plus_alpha_gets_the_rgba_recipe():
    img = np.zeros((4, 4, 2), np.uint8)
    img[:2, :, 0] = 90
    img[..., 1] = 255
    with pytest.raises(ValueError, match="grey plus alpha") as info:
        quantize(img, 2)
    # The recipe in the message works.
    recipe = info.value.args[0].split("(channels last) ")[1].rstrip(".")
    rgba = eval(recipe, {"np": np, "img": img})
    assert quantize(rgba, 2).n_colors == 2


def test_2d_grey_without_channel_axis_none_gets_hint():
    with pytest.raises(ValueError, match="channel_axis=None"):
        quantize(np.zeros((16, 16), np.uint8), 2)


def test_bool_and_complex_rejected():
    with pytest.raises(TypeError, match="Boolean"):
        quantize(np.zeros((4, 4, 3), bool), 2)
    with pytest.raises(TypeError, match="numeric"):
        quantize(np.zeros((4, 4, 3), complex), 2)
    with pytest.raises(TypeError, match="numeric"):
        quantize(np.array([["a", "b"]]), 2, channel_axis=None)


def test_bad_options():
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="color_space must be one of"):
        quantize(img, 2, color_space="hsv")
    with pytest.raises(ValueError, match="channel_axis=5 is out of range"):
        quantize(img, 2, channel_axis=5)
    with pytest.raises(ValueError, match="max_pixels"):
        quantize(img, 2, max_pixels=0)
    with pytest.raises(ValueError, match="needs RGB or RGBA"):
        quantize(img[..., 0], 2, channel_axis=None, color_space="lab")
    with pytest.raises(ValueError, match=r"needs float colours in \[0, 1\]"):
        quantize(img.astype(float) + 2, 2, color_space="oklab")
    for value, error in (
        (dict(tol=-1.0), ValueError),
        (dict(tol=np.nan), ValueError),
        (dict(tol="0.1"), TypeError),
        (dict(random_state=-1), ValueError),
        (dict(random_state="seed"), TypeError),
        (dict(dither="yes"), TypeError),
    ):
        name = next(iter(value))
        with pytest.raises(error, match=f"^{name} must be"):
            quantize(img, 2, **value)


@pytest.mark.parametrize("space", ["lab", "oklab"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_perceptual_space_refuses_wide_integers(astronaut_small, space, dtype):
    # No known full intensity: dividing by the dtype's maximum made every colour
    # black. A nested list (int64) is the common way to get here.
    img = astronaut_small.astype(dtype)
    with pytest.raises(
        TypeError, match=f"needs colours on a known scale.*{dtype.__name__}"
    ):
        quantize(img, 4, color_space=space)
    with pytest.raises(TypeError, match="known scale"):
        quantize(img[:3, :3].tolist(), 4, color_space=space)
    with pytest.raises(TypeError, match="known scale"):
        apply_palette(img, img[0, :2], color_space=space)


# --- colour spaces, sampling, progress ----------------------------------------------


def test_perceptual_space_lowers_ciede2000():
    img = np.ascontiguousarray(rescale(data.coffee(), 0.25, channel_axis=-1))
    img = (img * 255).round().astype(np.uint8)
    rgb = quantize(img, 16)
    lab = quantize(img, 16, color_space="lab")
    _check_consistent(lab, img, 16)
    assert lab.color_space == "lab"
    assert mean_ciede2000(img, lab.image) < mean_ciede2000(img, rgb.image)
    # ... at the price of a larger RGB error, as the literature reports.
    assert mse(img, lab.image) > mse(img, rgb.image)


@pytest.mark.parametrize("space", ["lab", "oklab"])
def test_perceptual_space_on_float_and_uint16(space, astronaut_small):
    as_float = astronaut_small / 255.0
    r = quantize(as_float, 8, color_space=space)
    _check_consistent(r, as_float, 8)
    assert r.palette.min() >= 0 and r.palette.max() <= 1
    as16 = astronaut_small.astype(np.uint16) * 257
    _check_consistent(quantize(as16, 8, color_space=space), as16, 8)


def test_max_pixels_sampling_is_seeded(astronaut_small):
    a = quantize(astronaut_small, 16, max_pixels=2000, random_state=1)
    b = quantize(astronaut_small, 16, max_pixels=2000, random_state=1)
    np.testing.assert_array_equal(a.palette, b.palette)
    full = quantize(astronaut_small, 16)
    # Every pixel is still mapped, and a sample fit is not better than the full one.
    _check_consistent(a, astronaut_small, 16)
    assert mse(astronaut_small, full.image) <= mse(astronaut_small, a.image) * 1.001


def test_quantize_iter_reports_progress_and_can_stop(astronaut_small):
    gen = quantize_iter(astronaut_small, 16)
    fractions = []
    while True:
        try:
            fractions.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(0 <= f <= 1 for f in fractions)
    assert np.all(np.diff(fractions) >= 0)
    assert isinstance(result, QuantizeResult)
    # Stopping early: closing the generator ends the work cleanly.
    gen = quantize_iter(astronaut_small, 16)
    next(gen)
    next(gen)
    gen.close()


def test_quantize_iter_validates_before_first_yield():
    gen = quantize_iter(np.zeros((2, 2, 3), np.uint8), 0)
    with pytest.raises(ValueError):
        next(gen)


# --- apply_palette ------------------------------------------------------------------


@pytest.mark.parametrize(("k", "space"), [(10, "rgb"), (64, "rgb"), (64, "lab")])
def test_apply_palette_reproduces_quantize(astronaut_small, k, space):
    # quantize takes most labels from the k-means bounds, apply_palette searches
    # every colour: both must give the same nearest entries.
    result = quantize(astronaut_small, k, color_space=space)
    again = apply_palette(astronaut_small, result.palette, color_space=space)
    np.testing.assert_array_equal(again.labels, result.labels)
    np.testing.assert_array_equal(again.image, result.image)


def test_apply_palette_keeps_order_and_unused_entries():
    palette = np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], dtype=np.uint8)
    img = np.zeros((3, 3, 3), np.uint8)
    img[0] = 250
    result = apply_palette(img, palette)
    np.testing.assert_array_equal(result.palette, palette)
    np.testing.assert_array_equal(result.counts, [3, 6, 0])
    assert (result.labels[0] == 0).all() and (result.labels[1:] == 1).all()


def test_apply_palette_refuses_colours_the_dtype_cannot_hold(astronaut_small):
    palette = quantize(astronaut_small, 8).palette
    before = _digest(palette)
    # Colours in [0, 1] for a uint8 image used to truncate to black.
    with pytest.raises(ValueError, match=r"not whole numbers in 0\.\.255.*multiply"):
        apply_palette(astronaut_small, palette / 255.0)
    for bad in ([[300, 0, 0]], [[-1, 0, 0]], [[10.7, 0, 0]]):
        with pytest.raises(ValueError, match=r"whole numbers in 0\.\.255"):
            apply_palette(astronaut_small, np.array(bad))
    with pytest.raises(ValueError, match="beyond the range of float16"):
        apply_palette(astronaut_small.astype(np.float16), np.array([[1e6, 0, 0]]))
    assert _digest(palette) == before
    # Whole numbers in range are fine whatever their dtype.
    same = apply_palette(astronaut_small, palette.astype(np.float64))
    np.testing.assert_array_equal(same.palette, palette)


def test_k1_rgba_with_transparent_and_visible_pixels_is_refused():
    img = np.full((4, 4, 4), 200, np.uint8)
    img[:2, :, 3] = 0
    with pytest.raises(ValueError, match="n_colors=1 cannot keep"):
        quantize(img, 1)
    # Two entries: the transparent one and the visible colour, each exact.
    result = quantize(img, 2)
    assert result.image[:2, :, 3].max() == 0
    assert (result.image[2:] == 200).all()
    # Refused before any work, like every other bad input.
    with pytest.raises(ValueError, match="n_colors=1 cannot keep"):
        next(quantize_iter(img, 1))
    # All transparent: one entry is enough.
    clear = quantize(img[:2], 1)
    assert clear.n_colors == 1 and clear.palette[0, 3] == 0


def test_apply_palette_bad_palette():
    img = np.zeros((3, 3, 3), np.uint8)
    with pytest.raises(ValueError, match=r"palette must have shape \(k, 3\)"):
        apply_palette(img, np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"palette must have shape"):
        apply_palette(img, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        apply_palette(img, np.array([[np.nan, 0, 0]]))


# --- property-based -----------------------------------------------------------------


@st.composite
def images(draw):
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32, np.int16]))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    spatial = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    if channels is not None and len(spatial) == 1:
        spatial = (*spatial, 2)
    shape = spatial if channels is None else (*spatial, channels)
    if dtype == np.float32:
        elements = st.floats(-1e3, 1e3, width=32)
    else:
        info = np.iinfo(dtype)
        # Few levels so that repeated colours (and k >= distinct) are common.
        elements = st.sampled_from([info.min, 0, 1, 7, info.max])
    img = draw(hnp.arrays(dtype, shape, elements=elements))
    return img, channels


@settings(max_examples=60, deadline=None)
@given(images(), st.integers(1, 20))
def test_property_random_images(img_and_channels, k):
    img, channels = img_and_channels
    axis = None if channels is None else -1
    before = _digest(img)
    px = img.reshape(-1, channels or 1).copy()
    if channels == 4:
        px[px[:, 3] == 0] = 0
    n_distinct = len(np.unique(px, axis=0))
    if k == 1 and channels == 4 and (px[:, 3] == 0).any() and n_distinct > 1:
        # One entry cannot be both transparent and visible.
        with pytest.raises(ValueError, match="n_colors=1 cannot keep"):
            quantize(img, k, channel_axis=axis)
        assert _digest(img) == before
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = quantize(img, k, channel_axis=axis)
    assert _digest(img) == before
    _check_consistent(result, img, k)
    assert result.n_colors == min(k, n_distinct)
    if n_distinct <= k:
        expected = img.copy()
        if channels == 4:
            # Fully transparent pixels are one colour, whatever RGB they carried.
            expected[expected[..., 3] == 0] = 0
        np.testing.assert_array_equal(result.image, expected)


def test_big_image_path_gives_the_same_result(astronaut_small, monkeypatch):
    # Big 8-bit images keep packed colour keys and map pixels through a table over
    # the key space (threaded); small ones use a sorted histogram. Same result.
    from napari_kmeans_quantize import gather, histogram

    small = quantize(astronaut_small, 24)
    monkeypatch.setattr(histogram, "_DENSE_MIN_PIXELS", 1)
    monkeypatch.setattr(gather, "_PARALLEL_MIN", 1)
    big = quantize(astronaut_small, 24)
    np.testing.assert_array_equal(big.labels, small.labels)
    np.testing.assert_array_equal(big.image, small.image)
    np.testing.assert_array_equal(big.palette, small.palette)
    np.testing.assert_array_equal(big.counts, small.counts)


# --- odd input: converted exactly, or refused with a message saying what to do ---


@pytest.mark.parametrize("dtype", [">u2", ">f8", ">i4"])
def test_big_endian_images_give_the_native_result(astronaut_small, dtype):
    native = astronaut_small.astype(np.dtype(dtype).newbyteorder("="))
    if native.dtype.kind == "f":
        native = native / 255
    swapped = native.astype(dtype)
    expected = quantize(native, 8)
    got = quantize(swapped, 8)
    np.testing.assert_array_equal(got.palette, expected.palette)
    np.testing.assert_array_equal(got.labels, expected.labels)
    np.testing.assert_array_equal(got.image, expected.image)
    assert got.image.dtype == expected.image.dtype  # native byte order
    applied = apply_palette(swapped, expected.palette.astype(dtype))
    np.testing.assert_array_equal(applied.labels, expected.labels)


def test_extended_precision_is_refused_up_front(astronaut_small):
    image = (astronaut_small / 255).astype(np.longdouble)
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(TypeError, match=r"astype\(np.float64\)"):
        quantize(image, 4)
    with pytest.raises(TypeError, match="extended precision"):
        apply_palette(image, np.zeros((2, 3)))


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_64_bit_colours_beyond_2_53_are_refused(dtype):
    top = np.iinfo(dtype).max
    image = np.array([0, top - 1000, top], dtype=dtype).repeat(4).reshape(3, 4)
    with pytest.raises(ValueError, match=r"2\*\*53"):
        quantize(image, 2, channel_axis=None)
    with pytest.raises(ValueError, match=r"2\*\*53"):
        apply_palette(
            np.zeros((2, 2), dtype), np.array([0, top], dtype), channel_axis=None
        )


def test_64_bit_colours_within_2_53_are_exact():
    big = (1 << 53) - 1
    image = np.array([0, big - 2, big], dtype=np.int64).repeat(4).reshape(3, 4)
    result = quantize(image, 3, channel_axis=None)
    assert sorted(result.palette.ravel().tolist()) == [0, big - 2, big]
    np.testing.assert_array_equal(result.image, image)


def test_huge_floats_are_refused_clearly():
    image = np.array([[0.0, 1e153], [2e153, 3e153]])
    with pytest.raises(ValueError, match="1e100"):
        quantize(image, 2, channel_axis=None)


def test_apply_palette_refuses_huge_palette_entries():
    image = np.zeros((2, 2, 3))
    palette = np.array([[0.0, 0.0, 0.0], [1e307, 1e307, 1e307]])
    with pytest.raises(ValueError, match="palette holds float values"):
        apply_palette(image, palette)


def test_masked_arrays_are_refused_not_silently_unmasked(astronaut_small):
    mask = np.zeros(astronaut_small.shape, dtype=bool)
    mask[:10] = True
    masked = np.ma.masked_array(astronaut_small, mask=mask)
    with pytest.raises(TypeError, match="masked array"):
        quantize(masked, 4)
    with pytest.raises(TypeError, match="masked array"):
        apply_palette(masked, np.zeros((2, 3), np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_dithered_rgb_labels_equal_diffusion_of_the_float64_pixels(
    astronaut_small, dtype
):
    # rgb's fit space is the pixel values, so quantize hands the image itself to
    # the diffusion kernel; the labels must be those of its float64 values.
    from napari_kmeans_quantize.dither import error_diffusion

    image = astronaut_small.astype(dtype)
    if dtype == np.float32:
        image /= 255
    result = quantize(image, 16, dither=True)
    palette = result.palette.astype(np.float64)
    reference = error_diffusion(image.astype(np.float64), palette)
    assert np.array_equal(result.labels, reference)


def test_dithering_reports_progress_and_stops_when_closed():
    from skimage.transform import resize

    image = (resize(data.astronaut(), (1024, 1024), order=0) * 255).astype(np.uint8)
    gen = quantize_iter(image, 64, dither=True)
    fractions = []
    for fraction in gen:
        fractions.append(fraction)
        if fraction > 0.5:
            break
    gen.close()
    # the diffusion (past 0.3 of the bar) reports as it goes, not in one jump
    inside = [f for f in fractions if 0.3 < f < 1.0]
    assert len(inside) >= 3
    assert fractions == sorted(fractions)
