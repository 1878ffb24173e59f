"""Indexed PNG / GIF / palette TIFF: exact round trips, clear errors, atomic writes."""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_kmeans_quantize import _encode, palette_io, quantize
from napari_kmeans_quantize.palette_io import (
    palette_to_uint8,
    png_bit_depth,
    to_gif_bytes,
    to_png_bytes,
    to_tiff_bytes,
    write_indexed_gif,
    write_indexed_png,
    write_palette_tiff,
)


def _smooth_rgb(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A small photo-like RGB image with many distinct colours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    img = img + rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _quantized(k: int) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = quantize(_smooth_rgb(), k)
    return result.labels, result.palette


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    chunks, pos = {}, 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.setdefault(kind, data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return chunks


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


# --- PNG -------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "bits"), [(2, 1), (4, 2), (16, 4), (256, 8)])
def test_png_round_trip_quantized(k, bits):
    labels, palette = _quantized(k)
    assert len(palette) == k
    data = to_png_bytes(labels, palette)
    im = _open(data)
    assert im.mode == "P"
    assert _png_chunks(data)[b"IHDR"][8] == bits  # the smallest bit depth
    assert len(_png_chunks(data)[b"PLTE"]) == 3 * k
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[labels])
    # The indices in the file are the labels themselves.
    np.testing.assert_array_equal(np.asarray(im), labels)


@pytest.mark.parametrize(("k", "bits"), [(1, 1), (3, 2), (5, 4), (17, 8), (129, 8)])
def test_png_bit_depth_boundaries(k, bits):
    assert png_bit_depth(k) == bits
    rng = np.random.default_rng(k)
    labels = rng.integers(0, k, (9, 11)).astype(np.uint8)
    palette = rng.integers(0, 256, (k, 3)).astype(np.uint8)
    data = to_png_bytes(labels, palette)
    assert _png_chunks(data)[b"IHDR"][8] == bits
    np.testing.assert_array_equal(
        np.asarray(_open(data).convert("RGB")), palette[labels]
    )


def test_png_forced_8_bits_still_exact():
    labels, palette = _quantized(16)
    data = to_png_bytes(labels, palette, bits=8)
    assert _png_chunks(data)[b"IHDR"][8] == 8
    np.testing.assert_array_equal(
        np.asarray(_open(data).convert("RGB")), palette[labels]
    )
    with pytest.raises(ValueError, match="at least 4"):
        to_png_bytes(labels, palette, bits=2)


@pytest.mark.parametrize("k", [4, 16, 200])
def test_png_max_effort_is_exact_and_no_larger(k):
    labels, palette = _quantized(k)
    best = to_png_bytes(labels, palette, optimize="max")
    assert len(best) <= len(to_png_bytes(labels, palette))
    # The smaller of the smallest bit depth and 8 bits per index, at level 12.
    import deflate

    depths = {png_bit_depth(k), 8}
    idats = {
        b: len(deflate.zlib_compress(_encode.png_rows(labels, b), 12)) for b in depths
    }
    chunks = _png_chunks(best)
    assert chunks[b"IHDR"][8] == min(idats, key=idats.get)
    assert len(chunks[b"IDAT"]) == min(idats.values())
    im = _open(best)
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[labels])
    np.testing.assert_array_equal(np.asarray(im), labels)


def test_png_optimize_must_be_a_bool_or_max(tmp_path):
    labels, palette = _quantized(4)
    for bad in ("fast", 3, None):
        with pytest.raises(ValueError, match="True, False or 'max'"):
            to_png_bytes(labels, palette, optimize=bad)
        with pytest.raises(ValueError, match="True, False or 'max'"):
            write_indexed_png(tmp_path / "x.png", labels, palette, optimize=bad)
    assert not (tmp_path / "x.png").exists()


def test_png_rgba_round_trip_and_short_trns():
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (16, 4)).astype(np.uint8)
    palette[:, 3] = 255
    palette[0] = (0, 0, 0, 0)  # fully transparent
    palette[2, 3] = 128  # partially transparent
    labels = rng.integers(0, 16, (30, 20)).astype(np.uint8)
    data = to_png_bytes(labels, palette)
    # tRNS stops after the last non-opaque entry.
    assert _png_chunks(data)[b"tRNS"] == bytes([0, 255, 128])
    im = _open(data)
    np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), palette[labels])


def test_png_rgba_from_quantize_with_transparency():
    img = np.dstack([_smooth_rgb(), np.full((48, 64), 255, np.uint8)])
    img[:10, :10] = (9, 9, 9, 0)  # transparent corner
    result = quantize(img, 8)
    data = to_png_bytes(result.labels, result.palette)
    back = np.asarray(_open(data).convert("RGBA"))
    np.testing.assert_array_equal(back, result.image)


def test_png_opaque_rgba_has_no_trns():
    palette = np.array([[1, 2, 3, 255], [4, 5, 6, 255]], np.uint8)
    data = to_png_bytes(np.array([[0, 1]], np.uint8), palette)
    assert b"tRNS" not in _png_chunks(data)


def test_png_grey_palette():
    result = quantize(_smooth_rgb()[..., 0], 4, channel_axis=None)
    data = to_png_bytes(result.labels, result.palette)
    back = np.asarray(_open(data).convert("L"))
    np.testing.assert_array_equal(back, result.image)
    # A 1-D palette is grey too.
    data = to_png_bytes(result.labels, result.palette[:, 0])
    np.testing.assert_array_equal(np.asarray(_open(data).convert("L")), result.image)


def test_png_sizes_grow_with_k():
    sizes = [len(to_png_bytes(*_quantized(k))) for k in (2, 16, 256)]
    assert sizes == sorted(sizes)


def test_png_leading_singleton_axes_are_dropped():
    labels = np.zeros((1, 1, 4, 5), np.uint8)
    data = to_png_bytes(labels, np.array([[7, 8, 9]], np.uint8))
    assert _open(data).size == (5, 4)


@pytest.mark.parametrize(
    ("labels", "palette", "error", "match"),
    [
        (np.zeros((4, 4), np.uint16), np.zeros((257, 3), np.uint8), ValueError, "256"),
        (np.zeros((2, 4, 4), np.uint8), np.zeros((2, 3), np.uint8), ValueError, "TIFF"),
        (np.zeros(4, np.uint8), np.zeros((2, 3), np.uint8), ValueError, "2-D"),
        (
            np.full((4, 4), 2, np.uint8),
            np.zeros((2, 3), np.uint8),
            ValueError,
            "0 to 1",
        ),
        (np.full((4, 4), -1, np.int8), np.zeros((2, 3), np.uint8), ValueError, "index"),
        (np.zeros((4, 4)), np.zeros((2, 3), np.uint8), TypeError, "integer"),
        (np.zeros((4, 4), np.uint8), np.zeros((2, 2), np.uint8), ValueError, "shape"),
        (np.zeros((0, 4), np.uint8), np.zeros((2, 3), np.uint8), ValueError, "empty"),
        (np.zeros((4, 4), np.uint8), np.full((2, 3), 1.5), ValueError, r"\[0, 1\]"),
        (np.zeros((4, 4), np.uint8), np.full((2, 3), 300), ValueError, "0..255"),
        (np.zeros((4, 4), np.uint8), np.full((2, 3), np.nan), ValueError, "NaN"),
        (np.zeros((4, 4), np.uint8), np.full((2, 3), "a"), TypeError, "numeric"),
    ],
)
def test_png_clear_errors(labels, palette, error, match):
    with pytest.raises(error, match=match):
        to_png_bytes(labels, palette)


# --- 8-bit conversion of other palette dtypes ----------------------------------------


def test_palette_to_uint8_rules():
    np.testing.assert_array_equal(
        palette_to_uint8(np.array([[0, 257, 65535]], np.uint16)), [[0, 1, 255]]
    )
    np.testing.assert_array_equal(
        palette_to_uint8(np.array([[0.0, 0.2, 1.0]], np.float32)), [[0, 51, 255]]
    )
    np.testing.assert_array_equal(
        palette_to_uint8(np.array([[255, 0, 7]])), [[255, 0, 7]]
    )
    pal = np.array([[1, 2, 3]], np.uint8)
    assert palette_to_uint8(pal) is pal


def test_uint16_palette_round_trip_follows_the_stated_rule():
    img16 = _smooth_rgb().astype(np.uint16) * 257
    result = quantize(img16, 16)
    assert result.palette.dtype == np.uint16
    data = to_png_bytes(result.labels, result.palette)
    back = np.asarray(_open(data).convert("RGB"))
    expected = np.rint(result.image / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(back, expected)


def test_float_palette_round_trip():
    img = _smooth_rgb().astype(np.float64) / 255
    result = quantize(img, 16)
    data = to_png_bytes(result.labels, result.palette)
    back = np.asarray(_open(data).convert("RGB"))
    np.testing.assert_array_equal(back, np.rint(result.image * 255).astype(np.uint8))


# --- GIF -------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 16, 256])
def test_gif_round_trip(k):
    labels, palette = _quantized(k)
    im = _open(to_gif_bytes(labels, palette))
    assert im.format == "GIF"
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[labels])


def test_gif_binary_transparency_round_trip():
    palette = np.array(
        [[10, 20, 30, 255], [0, 0, 0, 0], [200, 100, 50, 255]], dtype=np.uint8
    )
    labels = np.random.default_rng(2).integers(0, 3, (12, 9)).astype(np.uint8)
    im = _open(to_gif_bytes(labels, palette))
    np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), palette[labels])


@pytest.mark.parametrize(
    "alpha", [[255, 128, 255], [0, 0, 255]], ids=["partial", "two-clear"]
)
def test_gif_refuses_what_it_cannot_hold(alpha):
    palette = np.zeros((3, 4), np.uint8)
    palette[:, 3] = alpha
    with pytest.raises(ValueError, match="binary transparency"):
        to_gif_bytes(np.zeros((2, 2), np.uint8), palette)


def test_gif_refuses_more_than_256_colours_and_stacks():
    with pytest.raises(ValueError, match="256"):
        to_gif_bytes(np.zeros((2, 2), np.uint16), np.zeros((300, 3), np.uint8))
    with pytest.raises(ValueError, match="TIFF"):
        to_gif_bytes(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 3), np.uint8))


# --- TIFF ------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 16, 256])
def test_tiff_round_trip(k):
    labels, palette = _quantized(k)
    data = to_tiff_bytes(labels, palette)
    im = _open(data)
    assert im.mode == "P"
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[labels])
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE
        np.testing.assert_array_equal(page.asarray(), labels)
        np.testing.assert_array_equal(
            page.colormap[:, :k].T, palette.astype(np.uint16) * 257
        )


@pytest.mark.parametrize("channels", [None, 3])
def test_tiff_keeps_a_uint16_palette_exactly(channels):
    # 12-bit microscopy in uint16: the 16-bit colour map holds the values as
    # they are, not their 8-bit approximation (2471 used to come back as 2570).
    from skimage import data

    from napari_kmeans_quantize import quantize

    img = data.coins()[::4, ::4].astype(np.uint16) * 16
    if channels:
        img = np.stack([img, img // 2, 4095 - img], axis=-1)
    result = quantize(img, 8, channel_axis=None if channels is None else -1)
    with tifffile.TiffFile(
        io.BytesIO(to_tiff_bytes(result.labels, result.palette))
    ) as tif:
        page = tif.pages[0]
        labels, cmap = page.asarray(), page.colormap
    np.testing.assert_array_equal(labels, result.labels)
    colours = cmap[:, labels].transpose(1, 2, 0)
    expected = result.image if channels else np.repeat(result.image[..., None], 3, -1)
    np.testing.assert_array_equal(colours, expected)


def test_tiff_16_bit_indices_for_more_than_256_colours():
    rng = np.random.default_rng(3)
    palette = rng.integers(0, 256, (300, 3)).astype(np.uint8)
    labels = rng.integers(0, 300, (20, 30)).astype(np.uint16)
    data = to_tiff_bytes(labels, palette)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        np.testing.assert_array_equal(page.asarray(), labels)
        cmap = page.colormap
    np.testing.assert_array_equal(
        (cmap[:, labels] // 257).transpose(1, 2, 0), palette[labels]
    )


def test_tiff_stack_is_multi_page():
    labels, palette = _quantized(8)
    stack = np.stack([labels, labels[::-1], labels[:, ::-1]])[
        np.newaxis
    ]  # (1, 3, H, W)
    data = to_tiff_bytes(stack, palette)
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(data)), stack[0])
    im = _open(data)
    assert im.n_frames == 3
    for i in range(3):
        im.seek(i)
        np.testing.assert_array_equal(
            np.asarray(im.convert("RGB")), palette[stack[0, i]]
        )


def test_tiff_refuses_translucent_palettes():
    palette = np.array([[0, 0, 0, 0], [1, 2, 3, 255]], np.uint8)
    with pytest.raises(ValueError, match="no alpha"):
        to_tiff_bytes(np.zeros((2, 2), np.uint8), palette)
    # Opaque RGBA is fine: alpha is dropped.
    palette[0, 3] = 255
    im = _open(to_tiff_bytes(np.array([[0, 1]], np.uint8), palette))
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[[[0, 1]], :3])


# --- files and atomic writes --------------------------------------------------------


@pytest.mark.parametrize(
    ("writer", "suffix"),
    [
        (write_indexed_png, ".png"),
        (write_indexed_gif, ".gif"),
        (write_palette_tiff, ".tif"),
    ],
)
def test_write_files(tmp_path, writer, suffix):
    labels, palette = _quantized(16)
    out = writer(tmp_path / f"q{suffix}", labels, palette)
    assert out == str(tmp_path / f"q{suffix}")
    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[labels])
    # Permissions are the ordinary ones (0o666 minus the umask), not 0o600.
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"q{suffix}"]


def test_write_png_equals_in_memory_bytes(tmp_path):
    labels, palette = _quantized(16)
    out = write_indexed_png(tmp_path / "q.png", labels, palette)
    assert Path(out).read_bytes() == to_png_bytes(labels, palette)


@pytest.mark.parametrize(
    ("writer", "suffix"),
    [
        (write_indexed_png, ".png"),
        (write_indexed_gif, ".gif"),
        (write_palette_tiff, ".tif"),
    ],
)
def test_failed_write_leaves_target_untouched(tmp_path, monkeypatch, writer, suffix):
    labels, palette = _quantized(16)
    target = tmp_path / f"q{suffix}"
    target.write_bytes(b"previous content")

    def broken_write(self, fh, *args, **kwargs):
        fh.write(b"half a file")
        raise OSError("disk full")

    # Fail in the middle of encoding, after some bytes reached the temporary file.
    monkeypatch.setattr(Image.Image, "save", broken_write)

    # Our PNG encoder fails while compressing, after its header chunks were written.
    def broken_compress(*args):
        raise OSError("disk full")

    monkeypatch.setattr(_encode.deflate, "zlib_compress", broken_compress)
    monkeypatch.setattr(tifffile, "imwrite", lambda fh, *a, **k: broken_write(None, fh))
    with pytest.raises(OSError, match="disk full"):
        writer(target, labels, palette)
    assert target.read_bytes() == b"previous content"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    # A new path is not created at all.
    with pytest.raises(OSError, match="disk full"):
        writer(tmp_path / f"new{suffix}", labels, palette)
    assert not (tmp_path / f"new{suffix}").exists()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_invalid_data_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="256"):
        write_indexed_png(
            tmp_path / "q.png",
            np.zeros((2, 2), np.uint16),
            np.zeros((300, 3), np.uint8),
        )
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_folder_or_onto_a_folder(tmp_path):
    labels, palette = _quantized(2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_indexed_png(tmp_path / "nope" / "q.png", labels, palette)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(IsADirectoryError):
        write_indexed_png(tmp_path / "dir.png", labels, palette)
    assert [p.name for p in tmp_path.iterdir()] == ["dir.png"]


@pytest.mark.parametrize("k", [2, 3, 5, 17])
def test_png_rows_that_do_not_fill_their_last_byte_round_trip(k):
    # 1, 2 and 4-bit rows pack several indices per byte; widths that leave the
    # last byte part-filled must still decode to the same indices and colours.
    rng = np.random.default_rng(k)
    palette = rng.integers(0, 256, (k, 4)).astype(np.uint8)
    for width in range(1, 10):
        labels = rng.integers(0, k, (3, width)).astype(np.uint8)
        im = Image.open(io.BytesIO(to_png_bytes(labels, palette)))
        np.testing.assert_array_equal(np.asarray(im), labels)
        np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), palette[labels])


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_png_rows_are_the_filter_byte_and_the_packed_indices(bits):
    # The scanlines deflate reads: per row a 0 (filter none), then the indices
    # 8 / bits to a byte, first in the high bits, the last byte padded with 0;
    # for any label dtype and for views that are not contiguous.
    from napari_kmeans_quantize._encode import png_rows

    rng = np.random.default_rng(bits)
    per = 8 // bits
    big = rng.integers(0, 1 << bits, (9, 40))
    for width in (1, 2, 3, 5, 7, 8, 9, 17, 33):
        for labels in (big[:, :width], big[1::2, 3 : 3 + width]):
            padded = np.pad(labels, ((0, 0), (0, -width % per)))
            weights = 1 << (8 - bits * np.arange(1, per + 1))
            packed = (padded.reshape(len(labels), -1, per) * weights).sum(axis=-1)
            expected = np.column_stack([np.zeros(len(labels)), packed])
            for dtype in (np.uint8, np.uint16, np.int64):
                rows = png_rows(labels.astype(dtype), bits)
                assert rows.dtype == np.uint8 and rows.flags.c_contiguous
                np.testing.assert_array_equal(rows, expected)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16])
def test_labels_tiff_and_palette_csv_round_trip(tmp_path, dtype):
    import tifffile

    from napari_kmeans_quantize.palette_io import read_palette_csv, write_labels_tiff

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 300, (2, 9, 11)).astype(np.uint16)
    palette = (rng.normal(0, 1000, (300, 7))).astype(dtype)
    tif, csv = write_labels_tiff(tmp_path / "s.tif", labels, palette)
    np.testing.assert_array_equal(tifffile.imread(tif), labels)
    back, names = read_palette_csv(csv)
    np.testing.assert_array_equal(back.astype(dtype), palette)
    assert names == [f"channel_{c}" for c in range(7)]
    rows = Path(csv).read_text().splitlines()
    assert rows[0].endswith(",pixels,share") and len(rows) == 301
    pixels = [int(r.split(",")[-2]) for r in rows[1:]]
    assert pixels == np.bincount(labels.ravel(), minlength=300).tolist()


def test_labels_tiff_refuses_labels_outside_the_palette(tmp_path):
    from napari_kmeans_quantize.palette_io import write_labels_tiff

    with pytest.raises(ValueError, match="index the palette"):
        write_labels_tiff(
            tmp_path / "s.tif", np.full((4, 4), 3, np.uint8), np.ones((2, 5))
        )
    with pytest.raises(ValueError, match="channel_names"):
        write_labels_tiff(
            tmp_path / "s.tif",
            np.zeros((4, 4), np.uint8),
            np.ones((2, 5)),
            channel_names=["a"],
        )
    assert not list(tmp_path.iterdir())


def test_labels_tiff_checks_the_csv_target_before_writing_the_tiff(tmp_path):
    from napari_kmeans_quantize._atomic import replacing_read_only
    from napari_kmeans_quantize.palette_io import read_palette_csv, write_labels_tiff

    labels, palette = np.array([[0, 1], [1, 1]], np.uint8), np.ones((2, 3))
    tif, csv = tmp_path / "c.tif", tmp_path / "c_palette.csv"
    tif.write_bytes(b"the older labels")
    csv.write_bytes(b"the older palette")
    csv.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only"):
        write_labels_tiff(tif, labels, palette)
    assert tif.read_bytes() == b"the older labels"
    assert csv.read_bytes() == b"the older palette"
    # A TIFF name that fits whose CSV name is too long: nothing is written.
    stem = "s" * (os.pathconf(tmp_path, "PC_NAME_MAX") - len(".tif"))
    with pytest.raises(OSError, match="too long"):
        write_labels_tiff(tmp_path / f"{stem}.tif", labels, palette)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([csv.name, tif.name])
    # Replacing read-only files, when asked for (--force), replaces both.
    with replacing_read_only():
        write_labels_tiff(tif, labels, palette)
    np.testing.assert_array_equal(tifffile.imread(tif), labels)
    np.testing.assert_array_equal(read_palette_csv(csv)[0], palette)


def test_new_formats_are_public_in_palette_io():
    from napari_kmeans_quantize import _animated, _webp

    for module in (_animated, _webp):
        for name in module.__all__:
            assert name in palette_io.__all__
            assert getattr(palette_io, name) is getattr(module, name)


def test_gif_wider_than_65535_is_a_clear_error(tmp_path):
    labels = np.zeros((1, 65536), np.uint8)
    with pytest.raises(ValueError, match="GIF stores at most 65535 pixels a side"):
        write_indexed_gif(tmp_path / "w.gif", labels, np.zeros((1, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_tiff_compression_that_cannot_be_written_is_a_clear_error(tmp_path):
    import importlib.util

    labels, palette = _quantized(4)
    with pytest.raises(ValueError, match="TIFF compression 'no-such-codec'"):
        write_palette_tiff(
            tmp_path / "q.tif", labels, palette, compression="no-such-codec"
        )
    # LZW needs imagecodecs: written where it is installed, a clear error elsewhere.
    if importlib.util.find_spec("imagecodecs") is None:
        with pytest.raises(ValueError, match=r"TIFF compression 'lzw'.*imagecodecs"):
            write_palette_tiff(tmp_path / "q.tif", labels, palette, compression="lzw")
        assert list(tmp_path.iterdir()) == []
    else:
        write_palette_tiff(tmp_path / "q.tif", labels, palette, compression="lzw")
        assert (tifffile.imread(tmp_path / "q.tif") == labels).all()


@pytest.mark.parametrize(
    ("name", "suffix"),
    [("apng", ".png"), ("animated_gif", ".gif"), ("webp", ".webp")],
)
def test_writers_made_from_their_encoders_take_path_then_its_parameters(
    tmp_path, name, suffix
):
    import inspect

    write = getattr(palette_io, f"write_{name}")
    encode = getattr(palette_io, f"to_{name}_bytes")
    params = list(inspect.signature(write).parameters.values())
    assert params[0].name == "path"
    assert params[1:] == list(inspect.signature(encode).parameters.values())
    assert inspect.signature(write).return_annotation == "str"
    assert f":func:`{encode.__name__}`" in write.__doc__
    labels, palette = _quantized(4)
    # path and labels by keyword bind as in any function.
    out = write(path=tmp_path / f"q{suffix}", labels=labels, palette=palette)
    assert Path(out).read_bytes() == encode(labels, palette)
    with pytest.raises(TypeError, match=rf"^write_{name}\(\) missing .*'palette'"):
        write(tmp_path / f"bad{suffix}", labels)
    with pytest.raises(TypeError, match=rf"^write_{name}\(\) .*'colour'"):
        write(tmp_path / f"bad{suffix}", labels, palette, colour=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"q{suffix}"]
