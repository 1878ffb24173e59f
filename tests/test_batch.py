"""``quantize`` over many photos: folders, patterns, --out-dir, worker processes,
the progress line, failures reported at the end, Ctrl-C with no partial file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize.__main__ import main
from napari_kmeans_quantize._cli_batch import Outcome, Progress, expand_inputs
from test_faults import _STOP_MID_WRITE, _assert_clean_stop, _start_cli


@pytest.fixture
def photos(tmp_path, photo) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(photo(36, 48, seed=i)).save(folder / f"p{i}.png")
    Image.fromarray(photo(36, 48, seed=9)).save(folder / "p9.jpg", quality=95)
    (folder / "notes.txt").write_text("not a photo, not an image extension")
    return folder


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as pil:
        return np.asarray(pil.convert("RGB"))


def test_a_folder_goes_to_out_dir_one_exact_file_per_photo(photos, tmp_path, capsys):
    out = tmp_path / "out" / "deeper"  # created, parents too
    assert main(["quantize", str(photos), "-k", "8", "--out-dir", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["p0-k8.png", "p1-k8.png", "p2-k8.png", "p3-k8.png", "p9-k8.png"]
    for i in range(4):
        want = quantize(_rgb(photos / f"p{i}.png"), 8).image
        np.testing.assert_array_equal(_rgb(out / f"p{i}-k8.png"), want)
    captured = capsys.readouterr()
    assert "5 of 5 photos written as PNG" in captured.out
    assert f"{photos / 'p2.png'} -> {out / 'p2-k8.png'}" in captured.out
    assert "PSNR" in captured.out


def test_patterns_files_and_formats(photos, tmp_path, capsys):
    out = tmp_path / "out"
    pattern = str(photos / "p[01].png")  # quoted: expanded by the command
    argv = ["quantize", pattern, str(photos / "p1.png"), str(photos / "p3.png")]
    assert main([*argv, "-k", "4", "--out-dir", str(out), "--format", "webp"]) == 0
    # p1 named twice is quantised once.
    assert sorted(p.name for p in out.iterdir()) == [
        "p0-k4.webp",
        "p1-k4.webp",
        "p3-k4.webp",
    ]
    want = quantize(_rgb(photos / "p3.png"), 4).image
    np.testing.assert_array_equal(_rgb(out / "p3-k4.webp"), want)
    assert "3 of 3 photos written as WebP" in capsys.readouterr().out


def test_a_bad_photo_is_reported_at_the_end_and_the_others_go_on(
    photos, photo, tmp_path, capsys
):
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    Image.fromarray(photo(20, 60)).save(photos / "ok.gif")
    out = tmp_path / "out"
    argv = ["quantize", str(photos), str(tmp_path / "nothing-*.png"), "-k", "4"]
    assert main([*argv, "--out-dir", str(out), "--jobs", "2"]) == 1
    written = sorted(p.name for p in out.iterdir())
    assert written == ["ok-k4.png"] + [f"p{i}-k4.png" for i in (0, 1, 2, 3, 9)]
    captured = capsys.readouterr()
    summary = captured.err[captured.err.index("2 not written:") :].splitlines()
    assert len(summary) == 3
    assert "nothing-*.png: no file matches." in summary[1]
    assert "broken.png: not an image file that can be read" in summary[2]
    assert "Traceback" not in captured.err
    assert "6 of 8 photos written" in captured.out


def test_existing_targets_are_refused_without_force(photos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "p1-k4.png").write_bytes(b"the user's file")
    argv = ["quantize", str(photos / "p0.png"), str(photos / "p1.png"), "-k", "4"]
    assert main([*argv, "--out-dir", str(out)]) == 1
    assert (out / "p1-k4.png").read_bytes() == b"the user's file"
    assert (out / "p0-k4.png").exists()
    err = capsys.readouterr().err
    assert "p1-k4.png exists; add --force to replace it" in err
    assert main([*argv, "--out-dir", str(out), "--force"]) == 0
    want = quantize(_rgb(photos / "p1.png"), 4).image
    np.testing.assert_array_equal(_rgb(out / "p1-k4.png"), want)


def test_an_input_is_never_an_output_and_names_do_not_clash(tmp_path, photo, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    Image.fromarray(photo(seed=1)).save(a / "x.png")
    Image.fromarray(photo(seed=2)).save(b / "x.png")
    # x.png's output would be x-k4.png, which is another input here.
    Image.fromarray(photo(seed=3)).save(a / "x-k4.png")
    before = (a / "x-k4.png").read_bytes()
    argv = ["quantize", str(a / "x.png"), str(a / "x-k4.png"), "-k", "4"]
    for force in ([], ["--force"]):  # it is read in this run: never replaced
        assert main([*argv, *force]) == 1
        assert (a / "x-k4.png").read_bytes() == before
        assert "is one of the inputs of this run" in capsys.readouterr().err
    out = tmp_path / "out"
    argv = ["quantize", str(a / "x.png"), str(b / "x.png"), "-k", "4"]
    assert main([*argv, "--out-dir", str(out)]) == 1
    assert "is also that of" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["x-k4.png"]


def test_processes_and_one_process_write_the_same_bytes(photos, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    base = ["quantize", str(photos), "-k", "16", "--format", "gif"]
    assert main([*base, "--out-dir", str(one), "--jobs", "1"]) == 0
    assert main([*base, "--out-dir", str(two), "--jobs", "3"]) == 0
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir()) and len(names) == 5
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes()


def test_one_file_options_are_refused_for_many(photos, capsys):
    for extra, flag in [
        (["--out", "x.png"], "--out"),
        (["--rgb-out", "x.png"], "--rgb-out"),
        (["--weights", "w.png"], "--weights"),
    ]:
        assert main(["quantize", str(photos), "-k", "4", *extra]) == 1
        assert f"{flag} is for one image" in capsys.readouterr().err
    assert main(["quantize", str(photos), "-k", "300", "--format", "gif"]) == 1
    assert "GIF holds at most 256 colours" in capsys.readouterr().err
    assert not any(p.name.endswith("-k4.png") for p in photos.iterdir())


def test_an_out_dir_that_is_a_file_is_refused(photos, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["quantize", str(photos), "-k", "4", "--out-dir", str(tmp_path / "f")])
    assert "exists and is not a folder" in capsys.readouterr().err


def test_multichannel_tiffs_become_labels_and_palette_tables(tmp_path, capsys):
    import tifffile

    from napari_kmeans_quantize.palette_io import read_palette_csv

    rng = np.random.default_rng(0)
    # Three fluorescence channels: channels, not RGB, as the metadata says.
    cells = rng.integers(0, 4096, (3, 30, 40), dtype=np.uint16)  # C Y X
    tifffile.imwrite(tmp_path / "c.tif", cells, imagej=True, metadata={"axes": "CYX"})
    out = tmp_path / "out"
    argv = ["quantize", str(tmp_path / "c.tif"), "-k", "5", "--out-dir", str(out)]
    assert main([*argv, "--format", "tif"]) == 0
    want = quantize(cells, 5, channel_axis=0)
    np.testing.assert_array_equal(tifffile.imread(out / "c-k5.tif"), want.labels)
    palette, _ = read_palette_csv(out / "c-k5_palette.csv")
    np.testing.assert_array_equal(palette, want.palette)
    assert "palette ->" in capsys.readouterr().out


def test_shared_palette_outputs_go_to_out_dir(photos, tmp_path):
    out = tmp_path / "shared"
    files = [str(photos / "p0.png"), str(photos / "p1.png")]
    assert main(["quantize", *files, "-k", "8", "--shared", "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0-k8.png", "p1-k8.png"]
    assert not (photos / "p0-k8.png").exists()


def test_progress_is_one_line_on_a_terminal_and_plain_lines_otherwise(capsys):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain, tty = io.StringIO(), Terminal()
    for stream in (plain, tty):
        progress = Progress(3, stream)
        progress.done(Outcome(Path("a.png"), written="a-k4.png", n_bytes=10))
        progress.done(Outcome(Path("b.png"), error="b.png: damaged."))
        progress.done(Outcome(Path("c.png"), written="c-k4.png", n_bytes=12))
        progress.close()
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("1/3 photos,")
    assert lines[1] == "failed: b.png: damaged."
    assert lines[-1].startswith("3/3 photos, 1 failed,")
    # On a terminal: redrawn in place; only the failure is a line of its own.
    assert tty.getvalue().count("\n") == 1
    assert "\r[################--------] 2/3 photos, 1 failed" in tty.getvalue()
    assert tty.getvalue().endswith("\r\x1b[K")
    assert capsys.readouterr().out.count(" -> ") == 4


def test_expand_inputs_skips_hidden_and_other_files(photos):
    (photos / ".hidden.png").write_bytes(b"")
    (photos / "doc.pdf").write_bytes(b"%PDF-1.4")  # Pillow writes PDF, reads none
    paths, failures = expand_inputs([photos])
    assert [p.name for p in paths] == ["p0.png", "p1.png", "p2.png", "p3.png", "p9.jpg"]
    assert failures == []
    empty = photos / "empty"
    empty.mkdir()
    paths, failures = expand_inputs([empty])
    assert paths == [] and "no image files in it" in failures[0].error


@pytest.mark.parametrize(("signame", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_stops_the_workers_with_no_partial_file(
    photos, tmp_path, signame, code
):
    import signal

    out = tmp_path / "out"
    argv = ["quantize", str(photos), "-k", "4", "--out-dir", str(out), "--jobs", "2"]
    proc = _start_cli(argv, tmp_path, _STOP_MID_WRITE)
    assert "writing" in proc.stdout.readline()  # both workers may say so at once
    assert any(p.name.endswith(".tmp") for p in out.iterdir())
    proc.send_signal(getattr(signal, signame))
    err = _assert_clean_stop(proc, code)
    assert "no partial file was left" in err
    assert list(out.iterdir()) == []
