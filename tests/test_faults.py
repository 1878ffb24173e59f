"""Fault injection on the command line: bombs, truncated and fake files, full disks,
read-only targets and signals. Each case checks the one-line message, the exit status,
that an existing file is intact and that nothing is left behind."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_kmeans_quantize.__main__ import main

PROG = "napari-kmeans-quantize"


def _photo(h: int = 40, w: int = 56) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return img.astype(np.uint8)


def _tiff_bomb(path: Path, side: int = 60000, tile: int = 1024) -> Path:
    """A valid tiled Deflate RGB TIFF declaring side x side pixels in a few KB:
    every tile offset points at the same compressed tile of zeros."""
    data = zlib.compress(bytes(tile * tile * 3), 9)
    n_tiles = (-(-side // tile)) ** 2
    bits_at = 8 + len(data)
    offsets_at = bits_at + 6
    counts_at = offsets_at + 4 * n_tiles
    ifd_at = counts_at + 4 * n_tiles
    entries = [
        (256, 4, 1, side),  # ImageWidth
        (257, 4, 1, side),  # ImageLength
        (258, 3, 3, bits_at),  # BitsPerSample 8, 8, 8
        (259, 3, 1, 8),  # Compression: Deflate
        (262, 3, 1, 2),  # Photometric: RGB
        (277, 3, 1, 3),  # SamplesPerPixel
        (284, 3, 1, 1),  # PlanarConfiguration: contiguous
        (322, 3, 1, tile),  # TileWidth
        (323, 3, 1, tile),  # TileLength
        (324, 4, n_tiles, offsets_at),  # TileOffsets
        (325, 4, n_tiles, counts_at),  # TileByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    body = (
        b"II*\x00"
        + struct.pack("<I", ifd_at)
        + data
        + struct.pack("<3H", 8, 8, 8)
        + struct.pack(f"<{n_tiles}I", *([8] * n_tiles))
        + struct.pack(f"<{n_tiles}I", *([len(data)] * n_tiles))
        + ifd
    )
    path.write_bytes(body)
    return path


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + tag
        + data
        + struct.pack(">I", zlib.crc32(tag + data))
    )


def _png_bomb(path: Path, side: int = 60000) -> Path:
    """A PNG declaring side x side RGB pixels, with a few rows of data."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(4 * (1 + 3 * side)), 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )
    return path


def _gif_bomb(path: Path, side: int = 65535) -> Path:
    """A GIF whose screen and single frame declare side x side pixels."""
    path.write_bytes(
        b"GIF89a"
        + struct.pack("<HHBBB", side, side, 0x80, 0, 0)
        + bytes(6)
        + b","
        + struct.pack("<HHHHB", 0, 0, side, side, 0)
        + b"\x02\x02\x44\x01\x00;"
    )
    return path


def _run_limited(
    argv: list[str], cwd: Path, memory_gb: float = 4
) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter whose address space is capped, so that a
    file decoded in full fails instead of filling the machine's memory."""
    code = textwrap.dedent(
        f"""
        import resource, sys
        limit = int({memory_gb} * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from napari_kmeans_quantize.__main__ import main
        sys.exit(main({argv!r}))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def _one_error_line(err: str, command: str = "quantize") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{PROG} {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- bombs -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_tiff_bomb, _png_bomb, _gif_bomb])
def test_bombs_are_refused_from_the_header(tmp_path, make):
    suffix = {_tiff_bomb: ".tif", _png_bomb: ".png", _gif_bomb: ".gif"}[make]
    bomb = make(tmp_path / f"bomb{suffix}")
    assert bomb.stat().st_size < 200_000
    proc = _run_limited(["quantize", bomb.name, "-k", "8", "--out", "b.png"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    side = 65535 if make is _gif_bomb else 60000
    assert f"bomb{suffix} declares {side:,} x {side:,} = {side * side:,} pixels" in line
    assert "limit of 268,435,456" in line and f"--pixel-limit {side * side}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [bomb.name]


def test_tiff_bomb_past_a_raised_limit_still_fails_cleanly(tmp_path):
    # With the limit raised the file is decoded; the memory cap makes that fail,
    # and the failure is still one line.
    _tiff_bomb(tmp_path / "bomb.tif")
    argv = ["quantize", "bomb.tif", "-k", "8", "--out", "b.png"]
    proc = _run_limited([*argv, "--pixel-limit", str(60000**2)], tmp_path, 2)
    assert proc.returncode == 1, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "memory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.tif"]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif", ".bmp", ".webp", ".tif"])
@pytest.mark.parametrize("command", ["quantize", "sweep"])
def test_one_pixel_budget_for_every_reader(tmp_path, capsys, suffix, command):
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(_photo()).save(path)
    extra = ["-k", "4"] if command == "quantize" else ["--ks", "4"]
    assert main([command, str(path), *extra, "--pixel-limit", "1000"]) == 2
    line = _one_error_line(capsys.readouterr().err, command)
    assert "declares 56 x 40 = 2,240 pixels, over the limit of 1,000" in line
    assert "--pixel-limit 2240" in line
    assert main([command, str(path), *extra, "--pixel-limit", "2240"]) == 0


def test_budget_counts_every_frame(tmp_path, capsys):
    frames = [Image.fromarray(_photo() // (i + 1)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    argv = ["quantize", str(tmp_path / "anim.gif"), "-k", "4", "--out"]
    assert main([*argv, str(tmp_path / "a.tif"), "--pixel-limit", "5000"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "3 frames of 56 x 40 = 6,720 pixels" in line
