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


# --- signals ---------------------------------------------------------------------------


def _start_cli(argv: list[str], cwd: Path, prelude: str = "") -> subprocess.Popen:
    """The CLI in a fresh interpreter that says "ready" on stdout just before main."""
    code = textwrap.dedent(
        f"""
        import sys
        from napari_kmeans_quantize.__main__ import main
        {prelude}
        print("ready", flush=True)
        sys.exit(main({argv!r}))
        """
    )
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        # As in a terminal's foreground, whatever started the tests (a background
        # job ignores SIGINT, and the CLI keeps an ignored signal ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline() == "ready\n"
    return proc


def _big_photo(path: Path, h: int = 900, w: int = 1200) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x % 256, y % 256, (x * y) % 256], -1) + rng.integers(
        0, 40, (h, w, 3)
    )
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def _assert_clean_stop(proc: subprocess.Popen, code: int) -> str:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    for crash in ("Traceback", "SystemError", "Segmentation", "Fatal Python error"):
        assert crash not in err, err
    return err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("command", ["quantize", "sweep"])
def test_ctrl_c_mid_run_is_a_clean_exit(tmp_path, command, delay):
    import signal
    import time

    photo = _big_photo(tmp_path / "big.png")
    old = b"the user's previous file"
    if command == "quantize":
        (tmp_path / "q.png").write_bytes(old)
        argv = ["quantize", "big.png", "-k", "256", "--dither", "--out", "q.png"]
        argv += ["--rgb-out", "rgb.png"]
    else:
        (tmp_path / "s").mkdir()
        (tmp_path / "s" / "k016_indexed.png").write_bytes(old)
        argv = ["sweep", "big.png", "--ks", "16", "64", "256", "--out", "s"]
    proc = _start_cli(argv, tmp_path)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    err = _assert_clean_stop(proc, 130)
    assert err.strip().endswith(f"{command}: interrupted; no partial file was left.")
    assert _leftovers(tmp_path) == []
    assert photo.stat().st_size > 0
    # The file there is the old one or a whole new one, never a part.
    kept = tmp_path / ("q.png" if command == "quantize" else "s/k016_indexed.png")
    if kept.read_bytes() != old:
        with Image.open(kept) as im:
            im.load()


# The write stops half-way until a signal comes: a deterministic "mid-write".
STOP_MID_WRITE = textwrap.dedent(
    """
    import time
    from napari_kmeans_quantize import _atomic
    real = _atomic.atomic_write
    def slow(path, write, **kw):
        def half(f):
            f.write(b"half a file")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        return real(path, half, **kw)
    import napari_kmeans_quantize._encode as enc
    import napari_kmeans_quantize.palette_io as pio
    pio.atomic_write = enc.atomic_write = slow
    """
)
_STOP_MID_WRITE = STOP_MID_WRITE.replace("\n", "\n        ")


def _stopped_mid_write(tmp_path: Path, target: Path) -> subprocess.Popen:
    Image.fromarray(_photo()).save(tmp_path / "photo.png")
    argv = ["quantize", "photo.png", "-k", "4", "--out", target.name]
    proc = _start_cli(argv, tmp_path, _STOP_MID_WRITE)
    assert proc.stdout.readline() == "writing\n"
    assert len(_leftovers(tmp_path)) == 1  # the temporary file exists now
    return proc


@pytest.mark.parametrize(("signame", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_signal_during_a_write_keeps_the_old_file(tmp_path, signame, code, suffix):
    import signal

    target = tmp_path / f"q{suffix}"
    target.write_bytes(b"old")
    proc = _stopped_mid_write(tmp_path, target)
    proc.send_signal(getattr(signal, signame))
    _assert_clean_stop(proc, code)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", target.name]


def test_sigkill_leftover_is_removed_by_the_next_write(tmp_path, capsys):
    import signal

    target = tmp_path / "q.png"
    target.write_bytes(b"old")
    proc = _stopped_mid_write(tmp_path, target)
    # SIGKILL cannot be caught: the temporary file stays, the old file is whole.
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old" and len(_leftovers(tmp_path)) == 1
    assert (
        main(["quantize", str(tmp_path / "photo.png"), "-k", "4", "--out", str(target)])
        == 0
    )
    assert _leftovers(tmp_path) == []
    with Image.open(target) as im:
        assert im.mode == "P"


# --- truncated and fake files ------------------------------------------------------------


def _noisy(h: int = 60, w: int = 80) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3)).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif", ".webp", ".bmp", ".tif"])
def test_truncated_files_are_one_line(tmp_path, capsys, suffix):
    path = tmp_path / f"cut{suffix}"
    if suffix == ".tif":
        import tifffile

        tifffile.imwrite(path, _noisy(), compression="zlib")
    else:
        Image.fromarray(_noisy()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    old = tmp_path / "q.tif"
    old.write_bytes(b"old")
    assert main(["quantize", str(path), "-k", "4", "--out", str(old)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"error: {path}: cannot read this image file (" in line
    assert old.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "q.tif"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text.png", b"not an image at all\n", "not an image file that can be read"),
        ("empty.jpg", b"", "not an image file that can be read"),
        ("noise.gif", bytes(range(256)) * 4, "not an image file that can be read"),
        ("fake.tif", b"II*\x00" + bytes(60), "the TIFF holds no image"),
        ("bad.tif", b"MM\x00*\xff\xff\xff\xff" + bytes(8), "the TIFF holds no image"),
    ],
)
def test_fake_files_are_one_line(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert (
        main(["quantize", str(path), "-k", "4", "--out", str(tmp_path / "q.png")]) == 1
    )
    line = _one_error_line(capsys.readouterr().err)
    assert f"error: {path}: {message}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_misnamed_files_are_read_by_their_content(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "tiff.png", _noisy())
    Image.fromarray(_noisy()).save(tmp_path / "png.tif", format="PNG")
    for name in ("tiff.png", "png.tif"):
        out = tmp_path / f"q-{name}.png"
        assert (
            main(["quantize", str(tmp_path / name), "-k", "4", "--out", str(out)]) == 0
        )
        with Image.open(out) as im:
            assert im.size == (80, 60)


# --- full disk, read-only file system ----------------------------------------------------


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 96 KiB tmpfs where the machine allows mounting one (root), else None."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = _mount_tmpfs(folder, "96k")
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(params=["tmpfs", "injected ENOSPC"])
def full_disk(request, tmp_path, monkeypatch):
    """A folder on a nearly full disk: a 96 KiB tmpfs (where it can be mounted;
    else as the other case), or one whose writes fail with ENOSPC at fsync."""
    if request.param == "tmpfs":
        folder = request.getfixturevalue("small_disk")
        if folder is not None:
            return folder
    import errno

    from napari_kmeans_quantize import _atomic

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_atomic.os, "fsync", no_space)
    folder = tmp_path / "full"
    folder.mkdir()
    return folder


def test_full_disk_quantize_keeps_the_old_file(tmp_path, capsys, full_disk):
    Image.fromarray(_noisy(300, 400)).save(tmp_path / "noise.png")
    disk = full_disk
    old = disk / "q.png"
    old.write_bytes(b"old" * 100)
    argv = ["quantize", str(tmp_path / "noise.png"), "-k", "256", "--out", str(old)]
    assert main(argv) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.endswith(f"error: {old}: No space left on device"), line
    assert old.read_bytes() == b"old" * 100
    assert [p.name for p in disk.iterdir()] == ["q.png"]


def test_full_disk_demo_leaves_no_empty_or_partial_file(capsys, full_disk):
    out = full_disk / "demo"
    assert (
        main(["demo", "--sample", "chelsea", "--ks", "2", "4", "--out", str(out)]) == 1
    )
    line = _one_error_line(capsys.readouterr().err, "demo")
    assert f"error: {out}/" in line and "No space left on device" in line
    assert ".tmp" not in line
    left = list(out.iterdir())
    assert all(p.stat().st_size > 0 and not p.name.endswith(".tmp") for p in left)
    for p in left:  # whatever was written is whole
        if p.suffix == ".png":
            with Image.open(p) as im:
                im.load()


def test_read_only_file_system_is_one_line(tmp_path, capsys, small_disk):
    if small_disk is None:
        pytest.skip("mounting a file system needs root here")
    Image.fromarray(_noisy()).save(tmp_path / "noise.png")
    old = small_disk / "q.png"
    old.write_bytes(b"old")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    argv = ["quantize", str(tmp_path / "noise.png"), "-k", "4", "--out", str(old)]
    assert main(argv) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.endswith(f"error: {old}: Read-only file system"), line
    assert old.read_bytes() == b"old"
    assert [p.name for p in small_disk.iterdir()] == ["q.png"]


def test_an_ignored_sigint_stays_ignored(tmp_path):
    import signal
    import time

    # A background job (cmd &) starts with SIGINT ignored: Ctrl-C at the terminal
    # is not meant for it, and the run goes on.
    Image.fromarray(_photo()).save(tmp_path / "photo.png")
    prelude = (
        "import signal\n        signal.signal(signal.SIGINT, signal.SIG_IGN)\n        "
        + (_STOP_MID_WRITE.replace("time.sleep(60)", "time.sleep(1.5)"))
    )
    argv = ["quantize", "photo.png", "-k", "4", "--out", "q.png"]
    proc = _start_cli(argv, tmp_path, prelude)
    assert proc.stdout.readline() == "writing\n"
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _assert_clean_stop(proc, 0)
    assert (tmp_path / "q.png").read_bytes().startswith(b"half a file")
    assert _leftovers(tmp_path) == []
