"""Lossless WebP of a quantised image: exact colours (and alpha), clear refusals."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize.palette_io import to_png_bytes, to_webp_bytes, write_webp


def _quantized(image: np.ndarray, k: int, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return quantize(image, k, **kwargs)


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "WEBP"
    return im


@pytest.mark.parametrize("k", [2, 16, 256, 1000])
def test_rgb_round_trip_is_exact(photo, k):
    result = _quantized(photo(48, 64), k)
    im = _open(to_webp_bytes(result.labels, result.palette))
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), result.image)


def test_rgba_round_trip_keeps_alpha_and_hidden_colours(photo):
    image = np.dstack([photo(48, 64), np.full((48, 64), 255, np.uint8)])
    image[:12, :12] = (9, 200, 9, 0)
    image[30:, 40:, 3] = 128
    result = _quantized(image, 8)
    im = _open(to_webp_bytes(result.labels, result.palette))
    assert im.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(im), result.image)


def test_opaque_rgba_palette_is_stored_as_rgb():
    palette = np.array([[1, 2, 3, 255], [200, 100, 0, 255]], np.uint8)
    labels = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    im = _open(to_webp_bytes(labels, palette))
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), palette[labels][..., :3])


def test_grey_palette_is_stored_as_grey_colours(photo):
    result = _quantized(photo(48, 64)[..., 1], 6, channel_axis=None)
    im = _open(to_webp_bytes(result.labels, result.palette))
    np.testing.assert_array_equal(np.asarray(im.convert("L")), result.image)


def test_uint16_palette_follows_the_8_bit_rule(photo):
    result = _quantized(photo(48, 64).astype(np.uint16) * 257, 16)
    im = _open(to_webp_bytes(result.labels, result.palette))
    np.testing.assert_array_equal(
        np.asarray(im), np.rint(result.image / 257.0).astype(np.uint8)
    )


def test_smaller_than_png_on_a_photo_like_image():
    from skimage import data

    result = _quantized(data.astronaut()[::2, ::2], 64)
    assert len(to_webp_bytes(result.labels, result.palette)) < len(
        to_png_bytes(result.labels, result.palette)
    )


@pytest.mark.parametrize(
    ("labels", "palette", "kwargs", "error", "match"),
    [
        (np.zeros((2, 4, 4), np.uint8), [[1, 2, 3]], {}, ValueError, "stack"),
        (np.zeros((4, 16384), np.uint8), [[1, 2, 3]], {}, ValueError, "16383"),
        (np.full((4, 4), 2, np.uint8), [[1, 2, 3]] * 2, {}, ValueError, "0 to 1"),
        (np.zeros((4, 4)), [[1, 2, 3]], {}, TypeError, "integer"),
        (np.zeros((4, 4), np.uint8), [[1.5, 0, 0]], {}, ValueError, r"\[0, 1\]"),
        (np.zeros((4, 4), np.uint8), [[1, 2, 3]], {"method": 7}, ValueError, "0..6"),
    ],
)
def test_clear_errors(labels, palette, kwargs, error, match):
    with pytest.raises(error, match=match):
        to_webp_bytes(labels, np.asarray(palette), **kwargs)


def test_leading_singleton_axes_are_dropped():
    im = _open(to_webp_bytes(np.zeros((1, 1, 3, 5), np.uint8), np.array([[7, 8, 9]])))
    assert im.size == (5, 3)


def test_write_is_atomic(photo, tmp_path, monkeypatch):
    result = _quantized(photo(48, 64), 16)
    out = write_webp(tmp_path / "q.webp", result.labels, result.palette)
    before = Path(out).read_bytes()
    assert before == to_webp_bytes(result.labels, result.palette)
    with pytest.raises(ValueError):
        write_webp(tmp_path / "bad.webp", result.labels, result.palette[:2])

    def broken(self, fp, *args, **kwargs):
        fp.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        write_webp(out, result.labels, result.palette)
    assert Path(out).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["q.webp"]
