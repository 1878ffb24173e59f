"""The k sweep, auto k and the quality-vs-size plot."""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
import threading
import time
import warnings
import weakref

import numpy as np
import pytest

import napari_kmeans_quantize
from napari_kmeans_quantize import quantize
from napari_kmeans_quantize.metrics import size_report
from napari_kmeans_quantize.sweep import (
    DEFAULT_KS,
    SweepTable,
    auto_k,
    plot_sweep,
    sweep,
    sweep_iter,
)


def _photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack(
        [x * 255 / w, y * 255 / h, 128 + 100 * np.sin((x + 2 * y) / 9)], axis=-1
    )
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo()


@pytest.fixture(scope="module")
def table(photo) -> SweepTable:
    return sweep(photo, ks=(2, 4, 8, 16, 32, 64), keep_results=True, source_bytes=9000)


def test_package_exports_the_function():
    assert napari_kmeans_quantize.sweep is sweep
    assert napari_kmeans_quantize.auto_k is auto_k


def test_package_sweep_is_the_function_after_importing_the_submodule():
    code = (
        "from napari_kmeans_quantize.sweep import plot_sweep\n"
        "import napari_kmeans_quantize as kq\n"
        "assert callable(kq.sweep), type(kq.sweep)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rows_are_exactly_quantize_per_k(photo, table):
    assert table.ks == (2, 4, 8, 16, 32, 64)
    assert len(table) == 6 and [row.k for row in table] == list(table.ks)
    for row, result in zip(table, table.results, strict=True):
        alone = quantize(photo, row.k)
        np.testing.assert_array_equal(result.palette, alone.palette)
        np.testing.assert_array_equal(result.labels, alone.labels)
        np.testing.assert_array_equal(result.image, alone.image)
        assert result.channel_axis == alone.channel_axis
        report = size_report(alone, photo, source_bytes=9000)
        assert row.n_colors == report.n_colors == row.k
        assert row.psnr == pytest.approx(report.psnr, rel=1e-12)
        assert row.ciede2000 == pytest.approx(report.ciede2000, rel=1e-12)
        assert row.formula_bits == report.formula_bits
        assert row.png_bytes == report.png_bytes
        assert row.ratio == pytest.approx(report.ratio)
        assert row.report.source_bytes == 9000
        assert row.seconds > 0
    assert table.result(16) is table.results[3]


def test_quality_and_size_rise_with_k(table):
    psnrs = [row.psnr for row in table]
    ciedes = [row.ciede2000 for row in table]
    sizes = [row.png_bytes for row in table]
    assert psnrs == sorted(psnrs)
    assert ciedes == sorted(ciedes, reverse=True)
    assert sizes == sorted(sizes)
    assert [row.formula_bits for row in table] == sorted(
        row.formula_bits for row in table
    )


def test_table_metadata(photo, table):
    h, w = photo.shape[:2]
    assert table.shape == (h, w)
    assert table.bits_per_pixel == 24
    assert table.original_bits == h * w * 24
    assert table.source_bytes == 9000
    assert table.n_distinct == len(np.unique(photo.reshape(-1, 3), axis=0))
    assert table.color_space == "rgb"
    assert table.seconds > 0


def test_markdown_and_csv(table):
    md = table.to_markdown().splitlines()
    assert md[0].startswith("| k | colours | formula bits | PNG bytes | ratio |")
    assert "PSNR (dB)" in md[0] and "mean CIEDE2000" in md[0] and "seconds" in md[0]
    assert len(md) == 2 + len(table)
    assert md[2].startswith(
        f"| 2 | 2 | {table[0].formula_bits:,} | {table[0].png_bytes:,} |"
    )
    records = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert [int(r["k"]) for r in records] == list(table.ks)
    assert set(records[0]) == {
        "k",
        "n_colors",
        "formula_bits",
        "png_bytes",
        "ratio",
        "psnr_db",
        "ciede2000",
        "seconds",
    }
    assert float(records[-1]["psnr_db"]) == table[-1].psnr
    assert table.to_records()[0]["png_bytes"] == table[0].png_bytes


def test_ks_are_sorted_and_deduplicated(photo):
    t = sweep(photo, ks=[8, 2, 8])
    assert t.ks == (2, 8)
    assert sweep(photo, ks=4).ks == (4,)
    assert DEFAULT_KS == (2, 4, 8, 16, 32, 64, 128, 256)


@pytest.mark.parametrize(
    ("ks", "error"),
    [((), ValueError), ((0, 2), ValueError), ((2.5,), TypeError), (None, TypeError)],
)
def test_bad_ks(photo, ks, error):
    with pytest.raises(error):
        sweep(photo, ks=ks)


def test_bad_image_is_refused_before_any_work(photo):
    bad = photo.astype(float)
    bad[0, 0, 0] = np.nan
    gen = sweep_iter(bad, ks=(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        next(gen)
    with pytest.raises(ValueError, match="color_space"):
        sweep(photo, ks=(2,), color_space="hsv")


def test_bad_options_are_refused_before_any_work(photo):
    for options, error in (
        ({"dither": "yes"}, TypeError),
        ({"random_state": "seed"}, TypeError),
        ({"random_state": -1}, ValueError),
    ):
        with pytest.raises(error, match=next(iter(options))):
            next(sweep_iter(photo, ks=(2,), **options))
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:3, :3, 3] = 0
    with pytest.raises(ValueError, match="n_colors=1 cannot keep"):
        next(sweep_iter(rgba, ks=(1, 2)))
    with pytest.raises(ValueError, match="max_ciede2000 must be >= 0"):
        auto_k(photo, max_ciede2000=-1)
    with pytest.raises(ValueError, match="source_bytes must be"):
        next(sweep_iter(photo, ks=(2,), source_bytes=-1))
    # Floats outside [0, 1] have no CIEDE2000: the target could never be met.
    with pytest.raises(ValueError, match=r"float colours in \[0, 1\]"):
        auto_k(photo / 100.0, max_ciede2000=2.3)


def test_table_says_which_peak_its_psnr_used(photo):
    assert sweep(photo, ks=(2,)).psnr_peak == 255
    assert sweep(photo, ks=(2,), data_range=300).psnr_peak == 300


def test_float16_sweep_equals_quantize_and_report(photo):
    image = (photo / 255).astype(np.float16)
    row = sweep(image, ks=(8,))[0]
    report = size_report(quantize(image, 8), image)
    assert (row.psnr, row.ciede2000) == (report.psnr, report.ciede2000)
    assert 15 < row.psnr < 60 and row.ciede2000 > 0


def test_workers_give_the_same_table(photo):
    one = sweep(photo, ks=(2, 8, 32), workers=1)
    two = sweep(photo, ks=(2, 8, 32), workers=2)
    assert [(r.psnr, r.png_bytes) for r in one] == [(r.psnr, r.png_bytes) for r in two]
    with pytest.raises(ValueError, match="workers"):
        sweep(photo, ks=(2,), workers=0)


def test_progress_is_reported(photo):
    seen: list[float] = []
    sweep(photo, ks=(2, 4, 8), progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen)
    assert all(0.0 <= f <= 1.0 for f in seen)


def test_closing_the_generator_stops_the_threads(photo):
    before = threading.active_count()
    big = np.tile(photo, (4, 4, 1))
    gen = sweep_iter(big, ks=(64, 128, 256), workers=2)
    next(gen)
    next(gen)
    t0 = time.perf_counter()
    gen.close()
    assert time.perf_counter() - t0 < 5
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("kq-sweep")]
    assert threading.active_count() <= before


def test_few_colours_warn_once():
    image = np.zeros((10, 10, 3), np.uint8)
    image[:, :5] = (255, 0, 0)
    image[:5, 5:] = (0, 0, 255)  # 3 colours
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = sweep(image, ks=(2, 4, 8))
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "only 3 distinct" in messages[0]
    assert [r.n_colors for r in t] == [2, 3, 3]
    assert t[-1].psnr == math.inf
    assert "| inf |" in t.to_markdown()


def test_grey_image_sweep():
    grey = _photo()[..., 0]
    t = sweep(grey, ks=(2, 4), channel_axis=None)
    assert all(r.ciede2000 is None for r in t)
    assert t.bits_per_pixel == 8
    assert "n/a" in t.to_markdown()


def test_row_lookup_and_results_needed(table, photo):
    assert table.row(8).k == 8
    with pytest.raises(KeyError, match="k=3"):
        table.row(3)
    with pytest.raises(ValueError, match="keep_results"):
        sweep(photo, ks=(2,)).result(2)


# --- auto k --------------------------------------------------------------------------


def test_auto_k_matches_the_table(photo, table):
    target = table.row(16).psnr - 0.01
    assert auto_k(photo, min_psnr=target, ks=table.ks) == 16
    assert table.smallest_k(min_psnr=target).k == 16
    de = table.row(32).ciede2000 + 1e-6
    assert (
        auto_k(photo, max_ciede2000=de, ks=table.ks)
        == table.smallest_k(max_ciede2000=de).k
    )
    both = auto_k(photo, max_ciede2000=100.0, min_psnr=target, ks=table.ks)
    assert both == 16


def test_auto_k_stops_early(photo, monkeypatch):
    sweep_module = sys.modules["napari_kmeans_quantize.sweep"]
    tried: list[tuple[int, ...]] = []
    real = sweep_module.sweep

    def spy(image, ks, **kwargs):
        tried.append(tuple(ks))
        return real(image, ks, **kwargs)

    monkeypatch.setattr(sweep_module, "sweep", spy)
    assert auto_k(photo, min_psnr=0.0) == 2
    assert tried == [(2,)]


def test_auto_k_unreachable_target_warns(photo):
    with pytest.warns(UserWarning, match="No k .* reaches the target"):
        assert auto_k(photo, min_psnr=200.0, ks=(2, 4)) == 4


def test_auto_k_needs_a_target(photo):
    with pytest.raises(ValueError, match="target"):
        auto_k(photo)
    with pytest.raises(ValueError, match="finite"):
        auto_k(photo, min_psnr=float("nan"))
    with pytest.raises(ValueError, match="RGB"):
        auto_k(photo[..., 0], max_ciede2000=2.3, channel_axis=None)


# --- plot ----------------------------------------------------------------------------


def test_plot_has_labels_with_units(table, tmp_path):
    ax = plot_sweep(table, mark_k=16)
    assert "KiB" in ax.get_xlabel()
    assert "dB" in ax.get_ylabel()
    twin = [a for a in ax.figure.axes if a is not ax]
    assert twin and "CIEDE2000" in twin[0].get_ylabel()
    assert "k = 16" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    out = tmp_path / "plot.png"
    ax.figure.savefig(out)
    assert out.stat().st_size > 10_000


def test_plot_into_given_axes_for_grey(tmp_path):
    from matplotlib.figure import Figure

    t = sweep(_photo()[..., 1], ks=(2, 4), channel_axis=None)
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_sweep(t, ax) is ax
    assert len(fig.axes) == 1  # no CIEDE2000 axis without colour


@pytest.mark.parametrize("layout", ["channels_first", "rgba_transparent", "grey"])
def test_shared_histogram_rows_equal_quantize_for_every_layout(photo, layout):
    # The sweep computes one histogram for all k; each row must still be exactly
    # quantize(image, k) whatever the channel layout.
    axis = -1
    image = photo
    if layout == "channels_first":
        image, axis = np.moveaxis(photo, -1, 0), 0
    elif layout == "rgba_transparent":
        alpha = np.full((*photo.shape[:2], 1), 255, dtype=photo.dtype)
        alpha[:8] = 0
        image = np.concatenate([photo, alpha], axis=-1)
    elif layout == "grey":
        image, axis = photo[..., 0], None
    table = sweep(image, ks=(3, 17), channel_axis=axis, keep_results=True)
    for row, result in zip(table, table.results, strict=True):
        alone = quantize(image, row.k, channel_axis=axis)
        np.testing.assert_array_equal(result.image, alone.image)
        np.testing.assert_array_equal(result.labels, alone.labels)
        assert result.channel_axis == alone.channel_axis
        assert row.psnr == pytest.approx(size_report(alone, image).psnr)


# --- data_range ----------------------------------------------------------------------


def test_auto_k_of_12_bit_grey_in_uint16_with_data_range():
    from skimage import data
    from skimage.metrics import peak_signal_noise_ratio

    image = data.coins()[::2, ::2].astype(np.uint16) * 16  # 16..4032
    expected = next(
        k
        for k in DEFAULT_KS
        if peak_signal_noise_ratio(
            image, quantize(image, k, channel_axis=None).image, data_range=4095
        )
        >= 30
    )
    assert expected > 2
    got = auto_k(image, min_psnr=30, channel_axis=None, data_range=4095)
    assert got == expected
    # The default peak of uint16 (65535) flatters every k by 24 dB.
    assert auto_k(image, min_psnr=30, channel_axis=None) == 2


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("data_range", [None, 4095])
def test_sweep_rows_equal_size_report_with_data_range(photo, dtype, data_range):
    from skimage.metrics import peak_signal_noise_ratio

    image = photo.astype(dtype) * 16
    table = sweep(image, ks=(4, 16), keep_results=True, data_range=data_range)
    peak = {np.uint16: 65535, np.int32: float(image.max() - image.min())}[dtype]
    for row, result in zip(table, table.results, strict=True):
        report = size_report(
            quantize(image, row.k), image, data_range=data_range
        ).as_dict()
        for key in ("psnr", "ciede2000"):
            assert getattr(row, key) == report[key]
        assert row.psnr == pytest.approx(
            peak_signal_noise_ratio(image, result.image, data_range=data_range or peak),
            rel=1e-9,
        )
        no_scale = dtype == np.int32 and data_range is None
        assert (row.ciede2000 is None) == no_scale


def test_bad_data_range_is_refused_before_any_work(photo):
    for bad in (0, -4095, float("nan"), float("inf"), "4095"):
        with pytest.raises(ValueError, match="data_range"):
            next(sweep_iter(photo, ks=(2,), data_range=bad))
        with pytest.raises(ValueError, match="data_range"):
            auto_k(photo, min_psnr=20, data_range=bad)


def test_auto_k_ciede_target_of_wide_integers_needs_data_range(photo):
    image = photo.astype(np.int64)
    with pytest.raises(ValueError, match="needs data_range"):
        auto_k(image, max_ciede2000=2.3)
    assert auto_k(image, max_ciede2000=100.0, data_range=255) == 2


# --- RGBA ----------------------------------------------------------------------------


@pytest.mark.parametrize("dither", [False, True])
def test_rgba_rows_equal_size_report_and_cover_the_visible_pixels(photo, dither):
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(5)
    alpha = np.full((*photo.shape[:2], 1), 255, dtype=photo.dtype)
    image = np.concatenate([photo, alpha], axis=-1)
    image[:20, :24, 3] = 0
    image[:20, :24, :3] = rng.integers(0, 256, (20, 24, 3))
    visible = image[..., 3] != 0
    table = sweep(image, ks=(4, 16), dither=dither, keep_results=True)
    for row, result in zip(table, table.results, strict=True):
        alone = quantize(image, row.k, dither=dither)
        np.testing.assert_array_equal(result.image, alone.image)
        report = size_report(alone, image)
        assert (row.psnr, row.ciede2000) == (report.psnr, report.ciede2000)
        assert row.psnr == pytest.approx(
            peak_signal_noise_ratio(
                image[visible][:, :3], alone.image[visible][:, :3], data_range=255
            ),
            rel=1e-9,
        )


def test_sweep_of_a_multichannel_image_is_quantize_per_k():
    rng = np.random.default_rng(5)
    centres = rng.integers(0, 4000, (10, 6))
    img = centres[rng.integers(0, 10, (32, 32))] + rng.integers(0, 50, (32, 32, 6))
    img = np.moveaxis(img.astype(np.uint16), -1, 0)
    table = sweep(img, ks=(2, 4, 8), channel_axis=0, keep_results=True, workers=1)
    for row, result in zip(table, table.results, strict=True):
        alone = quantize(img, row.k, channel_axis=0)
        np.testing.assert_array_equal(result.palette, alone.palette)
        np.testing.assert_array_equal(result.labels, alone.labels)
        assert row.formula_bits == 32 * 32 * math.ceil(math.log2(row.k)) + row.k * 96
        assert row.ciede2000 is None
    scaled = sweep(img, ks=(4,), channel_axis=0, standardize=True, keep_results=True)
    alone = quantize(img, 4, channel_axis=0, standardize=True)
    np.testing.assert_array_equal(scaled.results[0].labels, alone.labels)


def test_sweep_with_weights_fits_as_quantize_and_reports_the_region():
    from skimage import data

    from napari_kmeans_quantize import psnr

    image = data.astronaut()[::4, ::4]
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[10:60, 40:90] = True
    table = sweep(image, ks=(4, 16), weights=mask, keep_results=True, workers=1)
    for row, result in zip(table, table.results, strict=True):
        alone = quantize(image, row.k, weights=mask)
        np.testing.assert_array_equal(result.palette, alone.palette)
        inside = psnr(image[mask][:, None], result.image[mask][:, None])
        assert row.report.psnr_weighted == pytest.approx(inside, rel=1e-12)
        assert row.report.psnr_weighted > row.psnr
    assert sweep(image, ks=(4,)).rows[0].report.psnr_weighted is None


def test_auto_k_passes_weights_to_the_fit():
    from skimage import data

    image = data.astronaut()[::8, ::8]
    with pytest.raises(ValueError, match="spatial shape"):
        auto_k(image, min_psnr=20, weights=np.ones((3, 3)))


def _rgba_with_holes() -> np.ndarray:
    rgba = np.concatenate([_photo(), np.full((48, 64, 1), 255, np.uint8)], axis=-1)
    rgba[:10, :10] = 0  # fully transparent pixels, merged into one colour
    return rgba


@pytest.mark.parametrize("image", [_photo(), _rgba_with_holes()], ids=["rgb", "rgba"])
def test_rows_without_kept_results_have_the_figures_of_quantize(image):
    # Without kept results the rows are measured from each colour's label (no
    # quantised image); the figures must still be those of quantize + report.
    table = sweep(image, ks=(2, 8, 32), workers=1)
    assert table.results is None
    for row in table:
        report = size_report(quantize(image, row.k), image)
        assert row.psnr == pytest.approx(report.psnr, rel=1e-12)
        assert row.ciede2000 == pytest.approx(report.ciede2000, rel=1e-12)
        assert row.png_bytes == report.png_bytes
        assert row.psnr_weighted is None and row.file_bytes is None


@pytest.mark.parametrize("workers", [1, 2])
def test_finished_rows_hold_no_labels_unless_kept(photo, monkeypatch, workers):
    # Each row's labels are an image-sized array: without kept results a sweep
    # must not accumulate one per k, only those of the k running (one a thread).
    module = sys.modules["napari_kmeans_quantize.sweep"]
    real = module.build_size_report
    labels: list[weakref.ref] = []
    alive: list[int] = []

    def recording(result, *args, **kwargs):
        labels.append(weakref.ref(result.labels))
        alive.append(sum(ref() is not None for ref in labels))
        return real(result, *args, **kwargs)

    monkeypatch.setattr(module, "build_size_report", recording)
    ks = (2, 4, 8, 16, 32)
    sweep(photo, ks=ks, workers=workers)
    assert len(alive) == len(ks) and max(alive) <= workers
    labels.clear()
    alive.clear()
    kept = sweep(photo, ks=ks, workers=workers, keep_results=True)
    assert max(alive) == len(ks)
    assert {id(ref()) for ref in labels} == {id(r.labels) for r in kept.results}


def test_weights_add_a_weighted_psnr_column(photo):
    weights = np.zeros(photo.shape[:2])
    weights[10:30, 20:50] = 1.0
    table = sweep(photo, ks=(4, 16), weights=weights)
    for row in table:
        alone = quantize(photo, row.k, weights=weights)
        report = size_report(alone, photo, weights=weights)
        assert row.psnr_weighted == pytest.approx(report.psnr_weighted, rel=1e-12)
        assert row.psnr_weighted != pytest.approx(row.psnr)
    md = table.to_markdown().splitlines()
    assert md[0].endswith("| weighted PSNR (dB) |")
    records = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert float(records[1]["psnr_weighted_db"]) == table[1].psnr_weighted
    # Without weights the column is not there.
    assert "psnr_weighted_db" not in sweep(photo, ks=(4,)).to_csv()


def test_file_formats_give_the_bytes_of_every_format_and_the_smallest(photo):
    table = sweep(photo, ks=(2, 16), file_formats=True)
    assert table.file_formats and "png" in table.file_formats
    for row in table:
        report = size_report(quantize(photo, row.k), photo, file_formats=True)
        assert row.file_bytes == report.file_bytes
        assert row.smallest_format == min(row.file_bytes, key=row.file_bytes.get)
    records = table.to_records()
    for fmt in table.file_formats:
        assert records[0][f"file_bytes_{fmt}"] == table[0].file_bytes[fmt]
    assert records[1]["smallest_format"] == table[1].smallest_format
    assert "| smallest |" in table.to_markdown().splitlines()[0]
    with pytest.raises(TypeError, match="file_formats"):
        sweep(photo, ks=(2,), file_formats="yes")
