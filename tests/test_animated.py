"""Animated PNG and GIF of label stacks: one palette, exact frames, clear refusals."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_kmeans_quantize import _encode, apply_palette, quantize
from napari_kmeans_quantize.palette_io import (
    to_animated_gif_bytes,
    to_apng_bytes,
    to_gif_bytes,
    to_png_bytes,
    write_animated_gif,
    write_apng,
)

ENCODERS = [to_apng_bytes, to_animated_gif_bytes]


def _time_lapse(n_frames: int = 6, h: int = 36, w: int = 48) -> np.ndarray:
    """A (frames, H, W, 3) uint8 series: a still textured background, a moving disc."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    base = np.clip(base + rng.normal(0, 10, base.shape), 0, 255)
    frames = []
    for t in range(n_frames):
        frame = base.copy()
        disc = (y - h / 2) ** 2 + (x - 6 - 6 * t) ** 2 < 36
        frame[disc] = (250, 40, 30)
        frames.append(frame)
    return np.array(frames, dtype=np.uint8)


def _stack(k: int = 16) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = quantize(_time_lapse(), k)
    return result.labels, result.palette


def _frames_back(data: bytes, mode: str) -> tuple[list[np.ndarray], list[Image.Image]]:
    im = Image.open(io.BytesIO(data))
    colours, raw = [], []
    for i in range(im.n_frames):
        im.seek(i)
        colours.append(np.asarray(im.convert(mode)))
        raw.append(im.copy())
    return colours, raw


def _png_chunk_names(data: bytes) -> list[bytes]:
    names, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        names.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return names


@pytest.mark.parametrize("encode", ENCODERS)
@pytest.mark.parametrize("k", [2, 16, 256])
def test_stack_round_trip_is_exact(encode, k):
    labels, palette = _stack(k)
    assert labels.ndim == 3
    colours, _ = _frames_back(encode(labels, palette), "RGB")
    assert len(colours) == len(labels)
    for frame, lab in zip(colours, labels, strict=True):
        np.testing.assert_array_equal(frame, palette[lab])


def test_apng_keeps_the_indices_and_one_palette():
    labels, palette = _stack(16)
    data = to_apng_bytes(labels, palette)
    _, frames = _frames_back(data, "RGB")
    for frame, lab in zip(frames, labels, strict=True):
        assert frame.mode == "P"
        np.testing.assert_array_equal(np.asarray(frame), lab)
    names = _png_chunk_names(data)
    assert names.count(b"PLTE") == 1 and names.count(b"acTL") == 1
    assert names.count(b"fcTL") == len(labels)
    assert names.count(b"fdAT") >= len(labels) - 1


def test_apng_max_effort_is_exact_and_no_larger():
    labels, palette = _stack(16)
    best = to_apng_bytes(labels, palette, optimize="max")
    assert len(best) <= len(to_apng_bytes(labels, palette))
    _, frames = _frames_back(best, "RGB")
    for frame, lab in zip(frames, labels, strict=True):
        np.testing.assert_array_equal(np.asarray(frame), lab)
    with pytest.raises(ValueError, match="True, False or 'max'"):
        to_apng_bytes(labels, palette, optimize="best")


def test_gif_has_one_global_colour_table():
    labels, palette = _stack(16)
    data = to_animated_gif_bytes(labels, palette)
    assert data[10] & 0x80  # global colour table
    # Every image descriptor (0x2C after a graphic control block) has no local table.
    pos, descriptors = 0, 0
    while (pos := data.find(b"\x00\x2c", pos)) != -1:
        if data[pos - 7 : pos - 5] == b"\x21\xf9":
            descriptors += 1
            assert not data[pos + 10] & 0x80
        pos += 1
    assert descriptors == len(labels)


@pytest.mark.parametrize("encode", ENCODERS)
def test_changed_rectangles_make_a_still_background_cheap(encode):
    labels, palette = _stack(16)
    animated = len(encode(labels, palette))
    # Six independent frames cost far more than one frame plus six small updates.
    one = len(encode(labels[:1].repeat(2, axis=0), palette))
    assert animated < 2.5 * one


@pytest.mark.parametrize("encode", ENCODERS)
def test_unchanged_frames_are_kept(encode):
    labels, palette = _stack(16)
    labels = np.concatenate([labels[:2], labels[1:2], labels[1:2], labels[2:]])
    colours, _ = _frames_back(encode(labels, palette), "RGB")
    assert len(colours) == len(labels)
    for frame, lab in zip(colours, labels, strict=True):
        np.testing.assert_array_equal(frame, palette[lab])


def test_apng_rgba_round_trip_with_partial_alpha():
    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, (12, 4)).astype(np.uint8)
    palette[:, 3] = 255
    palette[0, 3], palette[3, 3] = 0, 100
    labels = rng.integers(0, 12, (4, 10, 14)).astype(np.uint8)
    labels[2] = labels[1]
    labels[2, 3:5, 4:9] = 0  # becomes transparent over an opaque frame
    colours, _ = _frames_back(to_apng_bytes(labels, palette), "RGBA")
    for frame, lab in zip(colours, labels, strict=True):
        np.testing.assert_array_equal(frame, palette[lab])


def test_gif_binary_transparency_round_trip():
    rng = np.random.default_rng(6)
    palette = rng.integers(0, 256, (9, 4)).astype(np.uint8)
    palette[:, 3] = 255
    palette[4, 3] = 0
    labels = rng.integers(0, 9, (4, 10, 14)).astype(np.uint8)
    labels[:, :3, :3] = 4
    labels[3, 5:, 5:] = 4  # pixels opaque in frame 2 turn transparent in frame 3
    colours, _ = _frames_back(to_animated_gif_bytes(labels, palette), "RGBA")
    for frame, lab in zip(colours, labels, strict=True):
        np.testing.assert_array_equal(frame[..., 3], palette[lab][..., 3])
        visible = palette[lab][..., 3] == 255
        np.testing.assert_array_equal(frame[visible], palette[lab][visible])


def test_stack_quantised_with_one_palette_via_apply_palette():
    series = _time_lapse(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        first = quantize(series[0], 32)
    labels = np.array([apply_palette(frame, first.palette).labels for frame in series])
    colours, _ = _frames_back(to_apng_bytes(labels, first.palette), "RGB")
    np.testing.assert_array_equal(np.array(colours), first.palette[labels])


def _durations(im: Image.Image) -> list[float]:
    seen = []
    for i in range(im.n_frames):
        im.seek(i)
        seen.append(im.info["duration"])
    return seen


def test_timing_and_loop():
    labels, palette = _stack(4)
    durations = [40, 50, 60, 70, 80, 90]
    im = Image.open(io.BytesIO(to_apng_bytes(labels, palette, duration=durations)))
    assert _durations(im) == durations and im.info["loop"] == 0
    gif = Image.open(
        io.BytesIO(to_animated_gif_bytes(labels, palette, duration=durations, loop=3))
    )
    assert _durations(gif) == durations
    assert gif.info["loop"] == 2  # NETSCAPE counts repeats after the first play
    assert (
        Image.open(io.BytesIO(to_apng_bytes(labels, palette, loop=3))).info["loop"] == 3
    )
    once = Image.open(io.BytesIO(to_animated_gif_bytes(labels, palette, loop=1)))
    assert "loop" not in once.info
    # GIF counts hundredths of a second.
    gif = Image.open(io.BytesIO(to_animated_gif_bytes(labels, palette, duration=44)))
    assert gif.info["duration"] == 40


def test_two_d_labels_give_the_ordinary_files():
    labels, palette = _stack(16)
    assert to_apng_bytes(labels[0], palette) == to_png_bytes(labels[0], palette)
    assert to_animated_gif_bytes(labels[0], palette) == to_gif_bytes(labels[0], palette)
    # A stack of one frame is a 2-D image too.
    assert to_apng_bytes(labels[:1], palette) == to_png_bytes(labels[0], palette)


@pytest.mark.parametrize(
    ("kwargs", "labels", "palette", "match"),
    [
        ({}, np.zeros((2, 2, 4, 4), np.uint8), np.zeros((2, 3), np.uint8), "frames"),
        ({}, np.zeros((2, 4, 4), np.uint16), np.zeros((300, 3), np.uint8), "256"),
        ({}, np.full((2, 4, 4), 3, np.uint8), np.zeros((2, 3), np.uint8), "0 to 1"),
        ({"duration": [10]}, np.zeros((2, 4, 4), np.uint8), [[1, 2, 3]], "per frame"),
        ({"duration": -1}, np.zeros((2, 4, 4), np.uint8), [[1, 2, 3]], "0..65535"),
        ({"loop": -1}, np.zeros((2, 4, 4), np.uint8), [[1, 2, 3]], "loop"),
    ],
)
@pytest.mark.parametrize("encode", ENCODERS)
def test_clear_errors(encode, kwargs, labels, palette, match):
    with pytest.raises(ValueError, match=match):
        encode(labels, palette, **kwargs)


def test_gif_refuses_partial_alpha():
    palette = np.array([[1, 2, 3, 255], [4, 5, 6, 128]], np.uint8)
    with pytest.raises(ValueError, match="binary transparency"):
        to_animated_gif_bytes(np.zeros((2, 3, 3), np.uint8), palette)


@pytest.mark.parametrize(
    ("write", "encode", "suffix"),
    [
        (write_apng, to_apng_bytes, ".apng"),
        (write_animated_gif, to_animated_gif_bytes, ".gif"),
    ],
)
def test_write_files_atomically(tmp_path, monkeypatch, write, encode, suffix):
    labels, palette = _stack(16)
    out = write(tmp_path / f"q{suffix}", labels, palette, duration=30)
    before = Path(out).read_bytes()
    assert before == encode(labels, palette, duration=30)
    # Bad data writes nothing; a failure mid-write keeps the old file.
    with pytest.raises(ValueError):
        write(tmp_path / f"bad{suffix}", labels, palette[:2])

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(_encode.deflate, "zlib_compress", broken)
    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        write(out, labels, palette)
    assert Path(out).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"q{suffix}"]
