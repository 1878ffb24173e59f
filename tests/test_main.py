"""The command line: demo, quantize, sweep; help texts; no napari or Qt imported."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_kmeans_quantize.__main__ import main

SUBCOMMANDS = ("demo", "quantize", "sweep")


def _photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def photo_file(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(_photo()).save(path)
    return path


# --- help ----------------------------------------------------------------------------


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in out


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("demo", ["--sample", "--out", "--ks", "--color-space", "--workers"]),
        (
            "quantize",
            [
                "-k",
                "--out",
                "--color-space",
                "--dither",
                "--seed",
                "--max-pixels",
                "--rgb-out",
                "--data-range",
            ],
        ),
        (
            "sweep",
            [
                "--out",
                "--ks",
                "--color-space",
                "--max-ciede2000",
                "--min-psnr",
                "--data-range",
            ],
        ),
    ],
)
def test_subcommand_help_explains_every_option(capsys, command, options):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    parser_options = [
        line.split()[0] for line in out.splitlines() if line.strip().startswith("-")
    ]
    for option in options:
        assert any(p.startswith(option) for p in parser_options), option


def test_every_argument_has_a_help_text():
    import argparse

    from napari_kmeans_quantize.__main__ import _parser

    parser = _parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(SUBCOMMANDS)
    for name, subparser in sub.choices.items():
        assert subparser.description, name
        for action in subparser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage:" in capsys.readouterr().out


def test_version(capsys):
    from napari_kmeans_quantize import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


# --- demo ----------------------------------------------------------------------------


def test_demo_writes_every_file(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(["demo", "--sample", "chelsea", "--ks", "2", "16", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    assert "| k | colours | formula bits | PNG bytes | ratio |" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "contact_sheet.png",
            "k002_indexed.png",
            "k002_quantized.png",
            "k016_indexed.png",
            "k016_quantized.png",
            "original.png",
            "plot.png",
            "table.csv",
            "table.md",
        ]
    )
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [int(r["k"]) for r in rows] == [2, 16]
    for row in rows:
        k = int(row["k"])
        indexed = out / f"k{k:03d}_indexed.png"
        # The table's PNG bytes are the real file's size.
        assert int(row["png_bytes"]) == indexed.stat().st_size
        with (
            Image.open(indexed) as im,
            Image.open(out / f"k{k:03d}_quantized.png") as q,
        ):
            assert im.mode == "P"
            assert len(im.getpalette()) // 3 == k
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), np.asarray(q))
        for column in ("formula_bits", "ratio", "psnr_db", "ciede2000", "seconds"):
            assert float(row[column]) > 0
    md = (out / "table.md").read_text()
    assert "| 16 | 16 |" in md and "ordinary PNG" in md
    with (
        Image.open(out / "plot.png") as plot,
        Image.open(out / "contact_sheet.png") as sheet,
    ):
        assert plot.width >= 600 and sheet.width >= 600


@pytest.mark.slow
def test_demo_default_runs_headless_without_napari_or_qt(tmp_path):
    """The whole default demo in a fresh interpreter; napari and Qt never imported."""
    out = tmp_path / "kq-demo"
    code = textwrap.dedent(
        f"""
        import sys
        from napari_kmeans_quantize.__main__ import main
        assert main(["demo", "--sample", "chelsea", "--out", {str(out)!r}]) == 0
        bad = sorted(
            m for m in sys.modules
            if m == "napari" or m.startswith(("napari.", "PyQt", "PySide", "qtpy", "vispy"))
        )
        assert not bad, bad
        import matplotlib
        assert matplotlib.get_backend().lower() == "agg", matplotlib.get_backend()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [int(r["k"]) for r in rows] == [2, 4, 8, 16, 32, 64, 128, 256]
    psnr = [float(r["psnr_db"]) for r in rows]
    png = [int(r["png_bytes"]) for r in rows]
    assert psnr == sorted(psnr) and png == sorted(png)


def test_console_script_and_module_entry_points():
    exe = shutil.which("napari-kmeans-quantize")
    commands = [[sys.executable, "-m", "napari_kmeans_quantize", "--help"]]
    if exe is not None:
        commands.append([exe, "--help"])
    for command in commands:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "demo" in proc.stdout and "quantize" in proc.stdout


# --- quantize ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".gif", ".tif"])
def test_quantize_own_image(photo_file, tmp_path, capsys, suffix):
    out = tmp_path / f"out{suffix}"
    assert main(["quantize", str(photo_file), "-k", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out.stat().st_size:,} bytes" in printed
    assert "formula" in printed and "PSNR" in printed and "CIEDE2000" in printed
    with Image.open(out) as im:
        assert im.mode == "P"
        colors = np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colors) == 8


def test_quantize_default_output_and_options(photo_file, capsys):
    argv = ["quantize", str(photo_file), "-k", "4", "--color-space", "lab", "--dither"]
    assert main([*argv, "--rgb-out", str(photo_file.with_name("rgb.png"))]) == 0
    default = photo_file.with_name("photo-k4.png")
    assert default.exists()
    with Image.open(default) as im, Image.open(photo_file.with_name("rgb.png")) as rgb:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), np.asarray(rgb))
    assert "(lab)" in capsys.readouterr().out


def test_quantize_grey_and_rgba_images(tmp_path, capsys):
    grey = tmp_path / "grey.png"
    Image.fromarray(_photo()[..., 0]).save(grey)
    assert (
        main(["quantize", str(grey), "-k", "4", "--out", str(tmp_path / "g.png")]) == 0
    )
    assert "mean CIEDE2000 n/a" in capsys.readouterr().out
    rgba = np.dstack([_photo(), np.full(_photo().shape[:2], 255, np.uint8)])
    rgba[:5, :5, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    out = tmp_path / "a.png"
    assert (
        main(["quantize", str(tmp_path / "rgba.png"), "-k", "6", "--out", str(out)])
        == 0
    )
    with Image.open(out) as im:
        back = np.asarray(im.convert("RGBA"))
    assert (back[:5, :5, 3] == 0).all() and (back[10:, 10:, 3] == 255).all()


def test_quantize_channel_first_tiff_is_rgb(tmp_path, capsys):
    # A planar RGB TIFF reads as (3, H, W): its samples are colours, not 3 planes.
    import tifffile

    planar = np.moveaxis(_photo(), -1, 0)
    tifffile.imwrite(
        tmp_path / "chw.tif", planar, photometric="rgb", planarconfig="separate"
    )
    out = tmp_path / "chw.png"
    assert (
        main(["quantize", str(tmp_path / "chw.tif"), "-k", "8", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "x 24 bits" in printed and "mean CIEDE2000 n/a" not in printed
    with Image.open(out) as im:
        assert im.size == (planar.shape[2], planar.shape[1])


def test_quantize_12_bit_png_says_it_looks_dark(tmp_path, capsys):
    import tifffile

    img = _photo()[..., 0].astype(np.uint16) * 16
    tifffile.imwrite(tmp_path / "c12.tif", img)
    argv = ["quantize", str(tmp_path / "c12.tif"), "-k", "8", "--out"]
    assert main([*argv, str(tmp_path / "c12.png")]) == 0
    assert "looks dark" in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "c12-k8.tif")]) == 0
    assert "looks dark" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-k", "300", "--out", "x.png"], "at most 256"),
        (["-k", "4", "--out", "x.bmp"], "format"),
    ],
)
def test_quantize_errors_are_one_line(photo_file, capsys, extra, message):
    assert main(["quantize", str(photo_file), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("napari-kmeans-quantize quantize: error:") and message in err


def test_quantize_missing_file(tmp_path, capsys):
    assert main(["quantize", str(tmp_path / "nope.png"), "-k", "4"]) == 1
    assert "no such image file" in capsys.readouterr().err
    # A folder is a folder of photos (see test_batch.py): here, an empty one.
    assert main(["quantize", str(tmp_path), "-k", "4"]) == 1
    assert (
        capsys.readouterr().err.strip().endswith(f"{tmp_path}: no image files in it.")
    )


def test_bad_arguments_exit_2(photo_file):
    with pytest.raises(SystemExit) as exit_info:
        main(["quantize", str(photo_file), "-k", "0"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["quantize", str(photo_file)])  # -k is required


# --- sweep ---------------------------------------------------------------------------


def test_sweep_prints_table_and_target(photo_file, capsys):
    argv = ["sweep", str(photo_file), "--ks", "2", "8", "32", "--min-psnr", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| 32 | 32 |" in out
    assert "Source file:" in out
    assert "Smallest k reaching PSNR >= 1: k = 2." in out
    assert main(["sweep", str(photo_file), "--ks", "2", "--max-ciede2000", "0.01"]) == 0
    assert "No k in (2,) reaches" in capsys.readouterr().out


def test_sweep_with_out_writes_files_and_notes_few_colours(tmp_path, capsys):
    img = np.zeros((12, 12, 3), np.uint8)
    img[:, 6:] = 200
    Image.fromarray(img).save(tmp_path / "two.png")
    out = tmp_path / "s"
    argv = ["sweep", str(tmp_path / "two.png"), "--ks", "2", "4", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "note: The image has only 2 distinct colours" in captured.err
    assert (out / "table.md").exists() and (out / "k004_indexed.png").exists()


def _sweep_cells(text: str, k: int) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {k} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


@pytest.mark.parametrize(
    ("kind", "n_channels"), [("imagej", 4), ("ome", 3), ("imagej", 2)]
)
def test_sweep_reads_a_fluorescence_tiff_as_quantize_does(
    tmp_path, capsys, kind, n_channels
):
    import tifffile

    from napari_kmeans_quantize import quantize, sweep
    from napari_kmeans_quantize.palette_io import read_palette_csv

    rng = np.random.default_rng(3)
    cells = rng.integers(0, 4096, (n_channels, 30, 40), dtype=np.uint16)  # C Y X
    cells[-1, :10] = 0  # no transparency: a fourth channel is no alpha
    src = tmp_path / "cells.tif"
    metadata = {"axes": "CYX"}
    tifffile.imwrite(src, cells, metadata=metadata, **{kind: True})
    out = tmp_path / "s"
    argv = ["sweep", str(src), "--ks", "2", "4", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # The table of the channels as quantize reads them: plain channels, not RGB(A).
    want = sweep(cells, [2, 4], channel_axis=0, alpha=False)
    cells_4 = _sweep_cells(printed, 4)
    assert cells_4[5] == f"{want.rows[1].psnr:.2f}"
    if n_channels != 3:
        assert cells_4[3] == cells_4[6] == "n/a"  # no PNG, no colour difference
    # Each k's labels as a TIFF with the palette as CSV, as quantize writes them.
    expected = quantize(cells, 4, channel_axis=0, alpha=False)
    np.testing.assert_array_equal(
        tifffile.imread(out / "k004_indexed.tif"), expected.labels
    )
    palette, _ = read_palette_csv(out / "k004_indexed_palette.csv")
    np.testing.assert_array_equal(palette, expected.palette)
    assert not (out / "k004_indexed.png").exists()
    # The pictures show the channels in colour, as napari draws them.
    with Image.open(out / "original.png") as pil:
        assert pil.mode == "RGB" and pil.size == (40, 30)
    assert (out / "contact_sheet.png").exists()


def test_sweep_takes_the_channel_options_of_quantize(photo_file, tmp_path, capsys):
    import tifffile

    from napari_kmeans_quantize import quantize

    out = tmp_path / "s"
    argv = ["sweep", str(photo_file), "--ks", "4", "--out", str(out)]
    assert main([*argv, "--plain-channels"]) == 0
    photo = _photo()
    expected = quantize(photo, 4, alpha=False)
    np.testing.assert_array_equal(
        tifffile.imread(out / "k004_indexed.tif"), expected.labels
    )
    grey = tmp_path / "grey.png"
    Image.fromarray(photo[..., 0]).save(grey)
    capsys.readouterr()
    argv = ["sweep", str(grey), "--ks", "4", "--channel-axis", "0"]
    # The axis given is the one read: 40 rows are 40 channels, refused.
    assert main(argv) == 1
    assert "40 channels along axis 0" in _error_line(capsys)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("text.png", "not an image file that can be read"),
        ("c17.tif", "has 17 channels per pixel"),
    ],
)
def test_sweep_refuses_a_bad_file_in_one_line(tmp_path, capsys, name, says):
    import tifffile

    path = tmp_path / name
    if name.endswith(".tif"):
        c17 = np.zeros((17, 8, 8), np.uint8)
        tifffile.imwrite(path, c17, imagej=True, metadata={"axes": "CYX"})
    else:
        path.write_text("hello")
    assert main(["sweep", str(path), "--ks", "2", "--out", str(tmp_path / "s")]) == 1
    line = _error_line(capsys)
    assert line.startswith(f"napari-kmeans-quantize sweep: error: {path}")
    assert says in line
    assert not (tmp_path / "s").exists()


# --- data range ----------------------------------------------------------------------


@pytest.fixture
def twelve_bit_file(tmp_path) -> Path:
    import tifffile

    path = tmp_path / "twelve.tif"
    tifffile.imwrite(path, _photo().astype(np.uint16) * 16)  # RGB, 0..4080
    return path


def test_quantize_data_range_sets_the_peak_and_the_colour_scale(
    twelve_bit_file, tmp_path, capsys
):
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import peak_signal_noise_ratio

    from napari_kmeans_quantize import quantize

    image = _photo().astype(np.uint16) * 16
    rgb = tmp_path / "rgb.tif"
    argv = [
        "quantize",
        str(twelve_bit_file),
        "-k",
        "8",
        "--out",
        str(tmp_path / "q.tif"),
    ]
    assert main([*argv, "--data-range", "4095", "--rgb-out", str(rgb)]) == 0
    out = capsys.readouterr().out
    # The quantised image written is 8-bit: the 16-bit one is quantize's, as shown.
    quantized = quantize(image, 8).image
    with Image.open(rgb) as im:
        shown = np.asarray(im)
    np.testing.assert_array_equal(
        shown, np.rint(quantized / 65535 * 255).astype(np.uint8)
    )
    expected_psnr = peak_signal_noise_ratio(image, quantized, data_range=4095)
    expected_de = deltaE_ciede2000(
        rgb2lab(image / 4095), rgb2lab(quantized / 4095)
    ).mean()
    assert f"PSNR {expected_psnr:.2f} dB, mean CIEDE2000 {expected_de:.2f}" in out


def test_sweep_data_range(twelve_bit_file, capsys):
    argv = ["sweep", str(twelve_bit_file), "--ks", "4"]
    assert main(argv) == 0
    default = capsys.readouterr().out
    assert main([*argv, "--data-range", "4095"]) == 0
    given = capsys.readouterr().out

    def psnr_cell(text):
        row = next(line for line in text.splitlines() if line.startswith("| 4 |"))
        return float(row.split("|")[6])

    assert psnr_cell(default) - psnr_cell(given) == pytest.approx(
        20 * np.log10(65535 / 4095), abs=0.011
    )


@pytest.mark.parametrize("bad", ["0", "-5", "nan", "inf", "twelve"])
def test_bad_data_range_exits_2(photo_file, capsys, bad):
    for command in (["quantize", "-k", "4"], ["sweep"]):
        with pytest.raises(SystemExit) as exit_info:
            main([command[0], str(photo_file), *command[1:], "--data-range", bad])
        assert exit_info.value.code == 2
        assert "--data-range" in capsys.readouterr().err


def test_quantize_a_multichannel_tiff(tmp_path, capsys):
    import tifffile

    from napari_kmeans_quantize import quantize
    from napari_kmeans_quantize.palette_io import read_palette_csv

    rng = np.random.default_rng(0)
    cells = rng.integers(0, 4096, (2, 5, 30, 40), dtype=np.uint16)  # Z C Y X
    src = tmp_path / "cells.tif"
    tifffile.imwrite(src, cells, imagej=True, metadata={"axes": "ZCYX"})
    out = tmp_path / "cells_k6.tif"
    # The channel axis comes from the file's metadata.
    assert main(["quantize", str(src), "-k", "6", "--out", str(out)]) == 0
    expected = quantize(cells, 6, channel_axis=1)
    np.testing.assert_array_equal(tifffile.imread(out), expected.labels)
    palette, _ = read_palette_csv(tmp_path / "cells_k6_palette.csv")
    np.testing.assert_array_equal(palette, expected.palette)
    assert "5 channels" in capsys.readouterr().out
    # Given explicitly, for a file without channel metadata; PNG refused.
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.moveaxis(cells[0], 0, -1))
    args = ["quantize", str(plain), "-k", "4", "--channel-axis", "-1"]
    assert main([*args, "--out", str(tmp_path / "p.tif"), "--standardize"]) == 0
    scaled = quantize(np.moveaxis(cells[0], 0, -1), 4, standardize=True)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), scaled.labels)
    assert main([*args, "--out", str(tmp_path / "p.png")]) == 1
    assert "5 channels have no colours for a PNG" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_quantize_effort_max_writes_the_smaller_exact_file(
    photo_file, tmp_path, suffix
):
    from napari_kmeans_quantize import quantize

    files = {}
    for effort in ("default", "max"):
        files[effort] = tmp_path / f"{effort}{suffix}"
        argv = ["quantize", str(photo_file), "-k", "16", "--out", str(files[effort])]
        assert main([*argv, "--effort", effort]) == 0
    want = quantize(np.asarray(Image.open(photo_file)), 16).image
    for path in files.values():
        with Image.open(path) as pil:
            np.testing.assert_array_equal(np.asarray(pil.convert("RGB")), want)
    assert files["max"].stat().st_size <= files["default"].stat().st_size


@pytest.mark.parametrize("ome", [False, True])
def test_three_fluorescence_channels_are_channels_not_rgb(tmp_path, capsys, ome):
    import tifffile

    from napari_kmeans_quantize import quantize
    from napari_kmeans_quantize.palette_io import read_palette_csv

    rng = np.random.default_rng(1)
    cells = rng.integers(0, 4096, (3, 30, 40), dtype=np.uint16)  # C Y X
    src = tmp_path / "cells.tif"
    if ome:
        tifffile.imwrite(src, cells, ome=True, metadata={"axes": "CYX"})
    else:
        tifffile.imwrite(src, cells, imagej=True, metadata={"axes": "CYX"})
    out = tmp_path / "cells_k4.tif"
    assert main(["quantize", str(src), "-k", "4", "--out", str(out)]) == 0
    want = quantize(cells, 4, channel_axis=0)
    np.testing.assert_array_equal(tifffile.imread(out), want.labels)
    palette, _ = read_palette_csv(tmp_path / "cells_k4_palette.csv")
    np.testing.assert_array_equal(palette, want.palette)
    assert "3 channels" in capsys.readouterr().out
    assert main(["quantize", str(src), "-k", "4", "--out", str(tmp_path / "c.png")])
    assert "3 plain channels have no colours for a PNG" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_an_rgb_tiff_is_colours_and_plain_channels_says_otherwise(tmp_path, capsys):
    import tifffile

    rgb = _photo()
    src = tmp_path / "rgb.tif"
    tifffile.imwrite(src, rgb, photometric="rgb")
    out = tmp_path / "rgb-k4.tif"
    assert main(["quantize", str(src), "-k", "4", "--out", str(out)]) == 0
    with Image.open(out) as pil:
        assert pil.mode == "P"  # a palette TIFF of colours
    assert not (tmp_path / "rgb-k4_palette.csv").exists()
    png = tmp_path / "photo.png"
    Image.fromarray(rgb).save(png)
    plain = tmp_path / "plain-k4.tif"
    argv = ["quantize", str(png), "-k", "4", "--out", str(plain), "--plain-channels"]
    assert main(argv) == 0
    assert (tmp_path / "plain-k4_palette.csv").exists()
    assert tifffile.imread(plain).shape == rgb.shape[:2]


def test_quantize_fixed_colors_are_in_the_file(photo_file, tmp_path, capsys):
    out = tmp_path / "fixed.png"
    code = main(
        ["quantize", str(photo_file), "-k", "6", "--out", str(out),
         "--fixed-colors", "#ffffff,#00ff00"]
    )  # fmt: skip
    assert code == 0
    with Image.open(out) as pil:
        palette = np.array(pil.getpalette(), dtype=np.uint8).reshape(-1, 3)
    rows = {tuple(row) for row in palette[:6]}
    assert {(255, 255, 255), (0, 255, 0)} <= rows


def test_quantize_weights_file_fits_the_marked_pixels(photo_file, tmp_path, capsys):
    image = np.asarray(Image.open(photo_file))
    mask = np.zeros(image.shape[:2], dtype=np.uint8)
    mask[:20] = 255
    mask_file = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_file)
    out = tmp_path / "weighted.png"
    code = main(
        ["quantize", str(photo_file), "-k", "4", "--out", str(out),
         "--weights", str(mask_file)]
    )  # fmt: skip
    assert code == 0
    assert "PSNR where the weights are" in capsys.readouterr().out
    from napari_kmeans_quantize import quantize

    want = quantize(image, 4, weights=mask.astype(float))
    with Image.open(out) as pil:
        got = np.asarray(pil.convert("RGB"))
    np.testing.assert_array_equal(got, want.image)


def test_quantize_shared_writes_one_file_per_input(tmp_path, capsys):
    files = []
    for i, (h, w) in enumerate([(30, 40), (24, 50)]):
        path = tmp_path / f"frame{i}.png"
        Image.fromarray(_photo(h, w, seed=i)).save(path)
        files.append(path)
    code = main(["quantize", *map(str, files), "-k", "8", "--shared"])
    assert code == 0
    outs = [f.with_name(f"{f.stem}-k8.png") for f in files]
    from napari_kmeans_quantize import quantize_shared

    want = quantize_shared([np.asarray(Image.open(f)) for f in files], 8)
    for out, result in zip(outs, want, strict=True):
        with Image.open(out) as pil:
            np.testing.assert_array_equal(np.asarray(pil.convert("RGB")), result.image)
    assert "one palette of 8 colours for 2 images" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fixed-colors", "white"], "not a hex colour"),
        (["--fixed-colors", "#ffffff,#ffffff"], "duplicate"),
        (["--weights", "nothing.png"], "no such image file"),
    ],
)
def test_quantize_bad_palette_control_is_an_error(photo_file, capsys, extra, message):
    assert main(["quantize", str(photo_file), "-k", "4", *extra]) == 1
    assert message in capsys.readouterr().err


def test_several_inputs_without_shared_get_a_palette_each(photo_file, capsys):
    other = photo_file.with_name("other.png")
    Image.fromarray(_photo(seed=5)).save(other)
    assert main(["quantize", str(photo_file), str(other), "-k", "4"]) == 0
    assert "2 of 2 photos written as PNG" in capsys.readouterr().out
    for source in (photo_file, other):
        from napari_kmeans_quantize import quantize

        with Image.open(source.with_name(f"{source.stem}-k4.png")) as pil:
            got = np.asarray(pil.convert("RGB"))
        want = quantize(np.asarray(Image.open(source)), 4).image
        np.testing.assert_array_equal(got, want)


# --- targets: nothing a user has is lost --------------------------------------------


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_quantize_refuses_to_write_over_its_input(photo_file, capsys):
    before = photo_file.read_bytes()
    argv = ["quantize", str(photo_file), "-k", "2", "--out", str(photo_file)]
    assert main(argv) == 1
    line = _error_line(capsys)
    assert f"{photo_file} is the input image" in line and "--force" in line
    assert photo_file.read_bytes() == before
    assert main([*argv, "--force"]) == 0
    with Image.open(photo_file) as im:
        assert im.mode == "P"


def test_rgb_out_onto_the_input_or_onto_out_is_refused(photo_file, tmp_path, capsys):
    before = photo_file.read_bytes()
    argv = ["quantize", str(photo_file), "-k", "2", "--out", str(tmp_path / "q.png")]
    assert main([*argv, "--rgb-out", str(photo_file)]) == 1
    assert "is the input image" in _error_line(capsys)
    assert main([*argv, "--rgb-out", str(tmp_path / "q.png")]) == 1
    assert "named twice" in _error_line(capsys)
    assert photo_file.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_replacing_keeps_the_mode_and_refuses_read_only(photo_file, tmp_path, capsys):
    private, locked = tmp_path / "private.png", tmp_path / "locked.png"
    for path, mode in ((private, 0o600), (locked, 0o444)):
        path.write_bytes(b"old")
        path.chmod(mode)
    argv = ["quantize", str(photo_file), "-k", "2", "--out"]
    assert main([*argv, str(private)]) == 0
    assert private.stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    assert main([*argv, str(locked)]) == 1
    line = _error_line(capsys)
    assert line.endswith(
        f"{locked}: read-only file; add --force to replace it (it stays read-only)"
    )
    assert locked.read_bytes() == b"old"
    assert main([*argv, str(locked), "--force"]) == 0
    assert locked.stat().st_mode & 0o777 == 0o444 and locked.read_bytes() != b"old"


@pytest.mark.parametrize(
    ("rgb_out", "message"),
    [
        ("rgb.xyz", "cannot tell an image format to write from the extension"),
        ("missing/rgb.png", "rgb.png: its folder '"),
        ("rgb.jpg", "JPEG cannot hold this RGBA image"),
    ],
)
def test_rgb_out_is_checked_before_any_work(tmp_path, capsys, rgb_out, message):
    rgba = np.dstack([_photo(), np.full(_photo().shape[:2], 200, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    out = tmp_path / "q.png"
    argv = ["quantize", str(tmp_path / "rgba.png"), "-k", "4", "--out", str(out)]
    assert main([*argv, "--rgb-out", str(tmp_path / rgb_out)]) == 1
    assert message in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgba.png"]


def test_gif_wider_than_65535_is_refused_before_any_work(tmp_path, capsys):
    Image.fromarray(np.tile(_photo()[:1], (1, 1200, 1))).save(tmp_path / "wide.png")
    argv = ["quantize", str(tmp_path / "wide.png"), "-k", "4", "--out"]
    assert main([*argv, str(tmp_path / "w.gif")]) == 1
    line = _error_line(capsys)
    assert "GIF stores at most 65,535 pixels a side, the image is 67,200 x 1" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.png"]


def test_a_250_character_target_name_works(photo_file, capsys):
    out = photo_file.with_name("n" * 246 + ".png")
    assert main(["quantize", str(photo_file), "-k", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in photo_file.parent.iterdir()) == [
        out.name,
        "photo.png",
    ]
    too_long = photo_file.with_name("n" * 300 + ".png")
    assert main(["quantize", str(photo_file), "-k", "2", "--out", str(too_long)]) == 1
    assert "file name too long" in _error_line(capsys)


def test_sweep_folder_with_a_read_only_file_is_refused_before_any_work(
    photo_file, tmp_path, capsys
):
    out = tmp_path / "s"
    out.mkdir()
    (out / "table.md").write_text("mine")
    (out / "table.md").chmod(0o444)
    argv = ["sweep", str(photo_file), "--ks", "2", "--out", str(out)]
    assert main(argv) == 1
    assert _error_line(capsys).endswith(
        f"{out / 'table.md'}: read-only file; add --force to replace it (it stays "
        "read-only)"
    )
    assert [p.name for p in out.iterdir()] == ["table.md"]
    assert main([*argv, "--force"]) == 0
    assert (out / "table.md").read_text() != "mine"


def test_sweep_refuses_to_write_over_its_input_in_the_folder(tmp_path, capsys):
    Image.fromarray(_photo()).save(tmp_path / "original.png")
    before = (tmp_path / "original.png").read_bytes()
    argv = [
        "sweep",
        str(tmp_path / "original.png"),
        "--ks",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 1
    assert "is the input image" in _error_line(capsys)
    assert (tmp_path / "original.png").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["original.png"]


def test_demo_writes_every_file_through_the_atomic_writer(tmp_path, monkeypatch):
    from napari_kmeans_quantize import _atomic

    written = []
    real = _atomic.atomic_write

    def spy(path, write, **kwargs):
        written.append(os.path.basename(path))
        return real(path, write, **kwargs)

    # Every writer module reaches the one function through its own import.
    from napari_kmeans_quantize import _cli_sweep as cli
    from napari_kmeans_quantize import _encode, _targets, palette_io

    for module in (cli, _targets, palette_io, _encode):
        monkeypatch.setattr(module, "atomic_write", spy)
    out = tmp_path / "demo"
    assert main(["demo", "--sample", "chelsea", "--ks", "2", "--out", str(out)]) == 0
    assert sorted(written) == sorted(p.name for p in out.iterdir())
    assert len(written) == 7


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["quantize", str(tmp_path / "nope.png"), "-k", "2", "--debug"])


# --- inputs read as they are ---------------------------------------------------------


def _png16(path: Path, image: np.ndarray) -> Path:
    """A 16-bit PNG (grey+alpha, RGB or RGBA) using every row filter in turn."""
    import struct
    import zlib

    h, w, c = image.shape
    ctype = {2: 4, 3: 2, 4: 6}[c]
    raw = image.astype(">u2").view(np.uint8).reshape(h, -1).astype(np.int32)
    bpp = 2 * c
    rows = []
    for y in range(h):
        x = raw[y]
        up = raw[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        kind = y % 5
        if kind == 0:
            pred = np.zeros_like(x)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = up
        elif kind == 3:
            pred = (left + up) // 2
        else:
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            pred = np.where(
                (pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft)
            )
        rows.append(bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes())

    def chunk(tag, data):
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data))
        )

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16_bit_png_is_read_with_its_16_bits(tmp_path, channels):
    from napari_kmeans_quantize._input import read_image

    rng = np.random.default_rng(channels)
    image = rng.integers(0, 65536, (9, 13, channels)).astype(np.uint16)
    image[..., 0] = np.arange(13) * 4000  # smooth rows exercise the predictors
    back, back_axis = read_image(_png16(tmp_path / "p16.png", image))
    assert back.dtype == np.uint16 and back_axis == -1
    if channels == 2:  # grey + alpha reads as RGBA
        expected = np.concatenate(
            [np.repeat(image[..., :1], 3, -1), image[..., 1:]], -1
        )
    else:
        expected = image
    np.testing.assert_array_equal(back, expected)


def test_quantize_12_bit_rgb_png_keeps_its_bits(tmp_path, capsys):
    image = _photo().astype(np.uint16) * 16  # 12-bit data
    path = _png16(tmp_path / "c12.png", image)
    argv = ["quantize", str(path), "-k", "8", "--out", str(tmp_path / "q.tif")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "x 48 bits" in out
    import tifffile

    with tifffile.TiffFile(tmp_path / "q.tif") as tif:
        colormap = tif.pages[0].colormap
    # The 16-bit colour map holds the 12-bit values, not 8-bit ones scaled up.
    assert 0 < colormap[:, :8].max() <= 4080


def test_truncated_16_bit_png_is_one_line(tmp_path, capsys):
    path = _png16(tmp_path / "p16.png", _photo().astype(np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert (
        main(["quantize", str(path), "-k", "4", "--out", str(tmp_path / "q.tif")]) == 1
    )
    line = _error_line(capsys)
    assert str(path) in line and "truncated" in line


def test_every_frame_of_an_animated_gif_is_read(tmp_path, capsys):
    import tifffile

    frames = [_photo() // (i + 1) for i in range(3)]
    pil = [Image.fromarray(f) for f in frames]
    gif = tmp_path / "anim.gif"
    pil[0].save(gif, save_all=True, append_images=pil[1:], loop=0, duration=40)
    argv = ["quantize", str(gif), "-k", "8", "--out"]
    assert main([*argv, str(tmp_path / "q.tif")]) == 0
    labels = tifffile.imread(tmp_path / "q.tif")
    assert labels.shape == (3, 40, 56)
    # a .png given a stack is an animated PNG with the same frames
    assert main([*argv, str(tmp_path / "q.png")]) == 0
    with Image.open(tmp_path / "q.png") as apng:
        assert apng.n_frames == 3
        for i in range(3):
            apng.seek(i)
            assert np.array_equal(np.asarray(apng), labels[i])


def test_webp_holds_one_image_and_says_what_holds_a_stack(tmp_path, capsys):
    frames = np.stack([_photo(), _photo() // 2])
    path = tmp_path / "stack.tif"
    import tifffile

    tifffile.imwrite(path, frames)
    assert main(["quantize", str(path), "-k", "4", "--out", str(tmp_path / "q.webp")])
    line = _error_line(capsys)
    assert "q.webp: WebP holds one image, and the input is a stack of 2 planes" in line
    assert "(q.tif)" in line and "(q.png)" in line
    assert not (tmp_path / "q.webp").exists()


def test_webp_out_round_trips_the_quantised_image(tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(_photo()).save(path)
    out, rgb = tmp_path / "q.webp", tmp_path / "q.tif"
    argv = ["quantize", str(path), "-k", "8"]
    assert main([*argv, "--out", str(out)]) == 0
    assert main([*argv, "--out", str(rgb)]) == 0
    import tifffile

    with tifffile.TiffFile(rgb) as tif:
        labels = tif.asarray()
        colormap = tif.pages[0].colormap
    palette = (colormap.T[: labels.max() + 1] >> 8).astype(np.uint8)
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), palette[labels])


def test_tiff_series_of_one_shape_are_one_stack_others_a_note(tmp_path, capsys):
    import tifffile

    same, mixed = tmp_path / "same.tif", tmp_path / "mixed.tif"
    with tifffile.TiffWriter(same) as tw:
        tw.write(_photo())
        tw.write(_photo() // 2)
    with tifffile.TiffWriter(mixed) as tw:
        tw.write(_photo())
        tw.write(_photo()[:10, :10])
    out = tmp_path / "q.tif"
    assert main(["quantize", str(same), "-k", "4", "--out", str(out)]) == 0
    assert "2 image series of shape (40, 56, 3); read them as one stack" in (
        capsys.readouterr().err
    )
    assert tifffile.imread(out).shape == (2, 40, 56)
    assert main(["quantize", str(mixed), "-k", "4", "--out", str(out)]) == 0
    assert (
        "2 image series of different shapes ((40, 56, 3), (10, 10, 3)); read only"
        in (capsys.readouterr().err)
    )
    assert tifffile.imread(out).shape == (40, 56)


def test_five_channel_tiff_is_five_channels_and_seventeen_a_refusal(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "c5.tif", np.zeros((32, 32, 5), np.uint8))
    argv = ["quantize", str(tmp_path / "c5.tif"), "-k", "4", "--out"]
    assert main([*argv, str(tmp_path / "q.tif")]) == 0
    assert tifffile.imread(tmp_path / "q.tif").shape == (32, 32)
    assert (tmp_path / "q_palette.csv").exists()
    capsys.readouterr()
    c17 = np.zeros((17, 32, 32), np.uint8)
    tifffile.imwrite(tmp_path / "c17.tif", c17, imagej=True, metadata={"axes": "CYX"})
    argv = ["quantize", str(tmp_path / "c17.tif"), "-k", "4", "--out"]
    assert main([*argv, str(tmp_path / "r.tif")]) == 1
    line = _error_line(capsys)
    assert "has 17 channels per pixel (shape (17, 32, 32))" in line
    assert "1 to 16 channels" in line
    assert not (tmp_path / "r.tif").exists()


@pytest.mark.parametrize("suffix", [".png", ".gif", ".tif"])
def test_float_tiff_with_values_0_to_255_is_written(tmp_path, capsys, suffix):
    import tifffile

    image = _photo().astype(np.float64)
    tifffile.imwrite(tmp_path / "f.tif", image, photometric="rgb")
    out = tmp_path / f"q{suffix}"
    rgb = tmp_path / "rgb.png"
    argv = ["quantize", str(tmp_path / "f.tif"), "-k", "8", "--out", str(out)]
    assert main([*argv, "--rgb-out", str(rgb)]) == 0
    assert (
        "floats in [0, 255], not [0, 1]: its colours are written as 8-bit values"
        in (capsys.readouterr().err)
    )
    from napari_kmeans_quantize import quantize

    expected = np.rint(quantize(image, 8).image).astype(np.uint8)
    with Image.open(out) as im, Image.open(rgb) as shown:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), expected)
        np.testing.assert_array_equal(np.asarray(shown), expected)


def test_sweep_out_that_is_a_file_is_refused_before_any_work(
    photo_file, tmp_path, capsys
):
    (tmp_path / "taken").write_text("mine")
    argv = ["sweep", str(photo_file), "--ks", "2", "--out"]
    assert main([*argv, str(tmp_path / "taken")]) == 1
    assert _error_line(capsys).endswith(
        "exists and is not a folder; give a folder for --out"
    )
    assert main([*argv, str(tmp_path / "taken" / "sub")]) == 1
    assert _error_line(capsys).endswith(f"{tmp_path / 'taken'}: is not a folder")
    assert (tmp_path / "taken").read_text() == "mine"
