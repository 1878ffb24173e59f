"""Fit-space conversions."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2lab

from napari_kmeans_quantize.colorspace import from_fit_space, rgb_to_lab, to_fit_space


@pytest.fixture
def colors() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((500, 3))


@pytest.mark.parametrize("space", ["rgb", "lab", "oklab"])
def test_round_trip(colors, space):
    np.testing.assert_allclose(
        from_fit_space(to_fit_space(colors, space), space), colors, atol=1e-6
    )


def test_lab_is_scikit_image_cielab(colors):
    np.testing.assert_allclose(to_fit_space(colors, "lab"), rgb2lab(colors[None])[0])


def test_rgb_to_lab_matches_scikit_image_on_every_8bit_level():
    # Every 8-bit level on every channel, both sides of the sRGB and CIELAB
    # breakpoints (0.04045 and 0.008856), and random colours.
    levels = np.arange(256) / 255.0
    ramps = np.concatenate([np.diag([v, v, v]) for v in levels])
    breaks = np.array([[0.04045] * 3, [np.nextafter(0.04045, 1)] * 3, [0.0] * 3])
    rng = np.random.default_rng(1)
    rgb = np.concatenate(
        [ramps, levels[:, None].repeat(3, 1), breaks, rng.random((5000, 3))]
    )
    np.testing.assert_allclose(
        rgb_to_lab(rgb), rgb2lab(rgb[None])[0], rtol=1e-12, atol=1e-12
    )


def test_rgb_to_lab_leaves_its_input_alone(colors):
    before = colors.copy()
    rgb_to_lab(colors)
    np.testing.assert_array_equal(colors, before)


def test_rgb_to_lab_keeps_leading_axes(colors):
    image = colors[:24].reshape(2, 4, 3, 3)
    np.testing.assert_array_equal(
        rgb_to_lab(image), rgb_to_lab(colors[:24]).reshape(image.shape)
    )


def test_rgb_to_lab_errors():
    with pytest.raises(TypeError, match="divide integer colours"):
        rgb_to_lab(np.array([[255, 0, 0]], dtype=np.uint8))
    with pytest.raises(ValueError, match="3 RGB channels on the last axis"):
        rgb_to_lab(np.zeros((4, 4)))


def test_oklab_reference_values():
    # White is L=1, a=b=0; pure red per Ottosson's published table.
    ok = to_fit_space(np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]), "oklab")
    np.testing.assert_allclose(ok[0], [1.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(ok[1], [0.62796, 0.22486, 0.12585], atol=1e-4)


def test_alpha_kept_as_extra_coordinate(colors):
    rgba = np.concatenate([colors, np.linspace(0, 1, len(colors))[:, None]], axis=1)
    fit = to_fit_space(rgba, "lab")
    assert fit.shape == rgba.shape
    np.testing.assert_allclose(from_fit_space(fit, "lab"), rgba, atol=1e-6)


def test_out_of_gamut_is_clipped():
    back = from_fit_space(np.array([[50.0, 120.0, -120.0]]), "lab")
    assert back.min() >= 0 and back.max() <= 1


def test_rgb_returns_a_copy(colors):
    out = to_fit_space(colors, "rgb")
    out[:] = -1
    assert colors.min() >= 0


def test_errors():
    with pytest.raises(ValueError, match="color_space must be one of"):
        to_fit_space(np.zeros((1, 3)), "hsv")
    with pytest.raises(ValueError, match="needs RGB or RGBA"):
        to_fit_space(np.zeros((1, 1)), "lab")
