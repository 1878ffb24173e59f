"""File types of a result: the rules and the dialog's filter (no viewer needed)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import drain
from napari_kmeans_quantize._qt.save import (
    file_filter,
    format_for,
    planes,
    result_file,
    save_iter,
    writer_for,
)

PALETTE = np.array([[0, 0, 0], [255, 128, 0], [10, 200, 30]], dtype=np.uint8)


def test_one_plane_is_a_png_a_stack_a_tiff():
    assert planes(np.zeros((1, 1, 4, 5))) == (4, 5)
    assert format_for(np.zeros((1, 4, 5)), PALETTE, 100, False)[0] == "indexed PNG"
    assert format_for(np.zeros((3, 4, 5)), PALETTE, 100, False)[:2] == (
        "palette TIFF",
        ".tif",
    )
    # no PNG size measured: the palette does not fit a PNG
    assert format_for(np.zeros((4, 5)), PALETTE, None, False)[0] == "palette TIFF"
    assert format_for(np.zeros((4, 5)), PALETTE, None, True)[0] == "indexed PNG"


def test_a_stack_size_is_the_real_multipage_tiff():
    from napari_kmeans_quantize.palette_io import to_tiff_bytes

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (3, 16, 16)).astype(np.uint8)
    file = result_file(labels, PALETTE, 123, lazy=False)
    assert file.format == "palette TIFF"
    assert file.n_bytes == len(to_tiff_bytes(labels, PALETTE))
    lazy = result_file(labels, PALETTE, None, lazy=True)
    assert lazy.n_bytes is None and "every pixel" in lazy.why


def test_unknown_extension_is_refused_with_the_known_ones():
    assert writer_for("a.PNG")[0] == "indexed PNG"
    assert writer_for("a.tiff")[0] == "palette TIFF"
    with pytest.raises(ValueError, match=r"\.png, \.gif, \.tif, \.tiff"):
        writer_for("a.jpg")


def test_save_iter_writes_and_reports_the_size(tmp_path):
    labels = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    path, name, n_bytes = drain(save_iter(str(tmp_path / "q.png"), labels, PALETTE))
    assert path == str(tmp_path / "q.png")
    assert name == "indexed PNG" and n_bytes == (tmp_path / "q.png").stat().st_size


def test_channel_results_save_exactly_as_labels_tiff_and_csv(tmp_path):
    import tifffile

    from napari_kmeans_quantize.palette_io import read_palette_csv

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (3, 16, 16)).astype(np.uint8)  # a z stack
    palette = np.array(
        [[0, 65535, 7], [4095, 12, 40000], [1, 2, 3], [60000, 0, 65535]], np.uint16
    )
    names = ["DAPI", "GFP", "RFP"]
    path = str(tmp_path / "cells.tif")
    written, name, n_bytes = drain(save_iter(path, labels, palette, names))
    assert written == path and name.startswith("labels TIFF + CSV")
    csv = tmp_path / "cells_palette.csv"
    assert n_bytes == (tmp_path / "cells.tif").stat().st_size + csv.stat().st_size
    np.testing.assert_array_equal(tifffile.imread(path), labels)
    back, back_names = read_palette_csv(csv)
    np.testing.assert_array_equal(back, palette)
    assert back_names == names
    # A palette file would lose the channel values: refused before any work.
    with pytest.raises(ValueError, match=r"\.tif, \.tiff \(labels TIFF \+ CSV\)"):
        drain(save_iter(str(tmp_path / "cells.png"), labels, palette, names))
    assert not (tmp_path / "cells.png").exists()


def test_file_filter_lists_every_format_and_selects_the_default():
    filters, selected = file_filter("palette TIFF")
    assert filters.split(";;") == [
        "indexed PNG (*.png)",
        "palette GIF (*.gif)",
        "palette TIFF (*.tif *.tiff)",
        "animated PNG (*.apng)",
        "lossless WebP (*.webp)",
    ]
    assert selected == "palette TIFF (*.tif *.tiff)"


@pytest.mark.parametrize("suffix", [".webp", ".apng"])
def test_save_iter_writes_the_new_formats_exactly(tmp_path, suffix):
    from PIL import Image

    labels = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    path, _name, n_bytes = drain(
        save_iter(str(tmp_path / f"q{suffix}"), labels, PALETTE)
    )
    assert n_bytes == os.path.getsize(path)
    with Image.open(path) as im:
        rgb = np.asarray(im.convert(im.mode if im.mode == "P" else "RGB"))
        if im.mode == "P":
            assert np.array_equal(rgb, labels)
        else:
            assert np.array_equal(rgb, PALETTE[labels][..., :3])


def test_a_stack_saves_as_an_animated_png(tmp_path):
    from PIL import Image

    labels = np.array([[[0, 1]], [[1, 2]], [[2, 0]]], dtype=np.uint8)
    path, _, _ = drain(save_iter(str(tmp_path / "stack.png"), labels, PALETTE))
    with Image.open(path) as im:
        assert im.n_frames == 3
        for i in range(3):
            im.seek(i)
            assert np.array_equal(np.asarray(im), labels[i])


def test_files_written_are_the_files_each_format_writes(tmp_path):
    from napari_kmeans_quantize._qt.save import CHANNEL_FORMATS, FORMATS, files_written

    labels = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    for formats, names in ((FORMATS, None), (CHANNEL_FORMATS, ["a", "b", "c"])):
        for fmt in formats:
            folder = tmp_path / f"{fmt.name}{fmt.extensions[0]}"
            folder.mkdir()
            path = str(folder / f"q{fmt.extensions[0]}")
            drain(save_iter(path, labels, PALETTE, names))
            expected = {os.path.basename(f) for f in files_written(path, formats)}
            assert set(os.listdir(folder)) == expected, fmt.name
    assert files_written("d/c.tif", CHANNEL_FORMATS) == ("d/c.tif", "d/c_palette.csv")


def test_a_read_only_csv_is_refused_before_the_tiff_is_written(tmp_path):
    labels = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    tif, csv = tmp_path / "c.tif", tmp_path / "c_palette.csv"
    tif.write_bytes(b"the older labels")
    csv.write_bytes(b"the older palette")
    csv.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only"):
        drain(save_iter(str(tif), labels, PALETTE, ["r", "g", "b"]))
    assert tif.read_bytes() == b"the older labels"
    assert csv.read_bytes() == b"the older palette"


def test_a_csv_failing_after_the_tiff_names_which_was_written(tmp_path, monkeypatch):
    import errno

    from napari_kmeans_quantize import palette_io

    real = palette_io.atomic_write

    def full_disk_for_the_csv(path, write, **kwargs):
        if str(path).endswith(".csv"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write, **kwargs)

    monkeypatch.setattr(palette_io, "atomic_write", full_disk_for_the_csv)
    labels = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    tif, csv = tmp_path / "c.tif", tmp_path / "c_palette.csv"
    csv.write_bytes(b"the older palette")
    with pytest.raises(OSError) as caught:
        drain(save_iter(str(tif), labels, PALETTE, ["r", "g", "b"]))
    message = str(caught.value)
    assert f"{str(tif)!r} was written but {str(csv)!r} was not" in message
    assert "No space left on device" in message
    assert csv.read_bytes() == b"the older palette"
    # Failing before anything is written, the error is the writer's own.
    tif.unlink()
    with pytest.raises(ValueError, match="must name each"):
        drain(save_iter(str(tif), labels, PALETTE, ["r", "g"]))
    assert not tif.exists()


def test_the_save_tooltip_names_the_dialog_formats_and_every_file(tmp_path):
    from types import SimpleNamespace

    from napari_kmeans_quantize._qt.save import (
        CHANNEL_FORMATS,
        ResultFile,
        save_tooltip,
    )

    stack = SimpleNamespace(file=ResultFile("palette TIFF", ".tif", 10), source=None)
    tip = save_tooltip((stack, None, "z k=8"))
    assert tip.startswith("Save 'z k=8'") and "starts on palette TIFF" in tip
    for entry in file_filter("palette TIFF")[0].split(";;"):
        assert entry in tip
    channels = [SimpleNamespace(name="nuclei"), SimpleNamespace(name="membranes")]
    outcome = SimpleNamespace(file=None, source=SimpleNamespace(channels=channels))
    tip = save_tooltip((outcome, None, "n k=5"))
    entry = file_filter("labels TIFF + CSV", CHANNEL_FORMATS)[1]
    assert tip.startswith(f"Save 'n k=5' as {entry}:")
    assert "writes 'n k=5.tif'\n    writes 'n k=5_palette.csv'" in tip
    assert "PNG" not in tip and "GIF" not in tip
    assert "run a quantisation first" in save_tooltip(None)


def test_the_replace_question_names_every_file_and_no_declines(monkeypatch):
    from qtpy.QtWidgets import QMessageBox

    from napari_kmeans_quantize._qt.save import confirm_replace

    asked = []

    def question(parent, title, text, buttons, default):
        asked.append(text)
        assert default == QMessageBox.StandardButton.No  # Enter keeps the files
        return answer

    monkeypatch.setattr(QMessageBox, "question", question)
    files = ("/d/c.tif", "/d/c_palette.csv")
    answer = QMessageBox.StandardButton.No
    assert not confirm_replace(None, files, ["/d/c_palette.csv"])
    answer = QMessageBox.StandardButton.Yes
    assert confirm_replace(None, files, list(files))
    assert asked[0].startswith("Saving writes 'c.tif' and 'c_palette.csv' in '/d'.")
    assert "'c_palette.csv' already exists. Replace it?" in asked[0]
    assert "'c.tif' and 'c_palette.csv' already exist. Replace them?" in asked[1]
