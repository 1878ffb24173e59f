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
    assert main([*argv, str(tmp_path / "c12.tif")]) == 0
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


def test_several_inputs_need_shared(photo_file, capsys):
    assert main(["quantize", str(photo_file), str(photo_file), "-k", "4"]) == 1
    assert "--shared" in capsys.readouterr().err
