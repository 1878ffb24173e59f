"""The table of a sweep: one row of quality and size figures per k.

:class:`SweepTable` and :class:`SweepRow` are documented (and pickled) as
``napari_kmeans_quantize.sweep.SweepTable`` and ``.SweepRow``, where users
import them from.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .quality import SizeReport
from .result import QuantizeResult

# Columns of the table: (attribute, Markdown header, CSV header).
_COLUMNS = (
    ("k", "k", "k"),
    ("n_colors", "colours", "n_colors"),
    ("formula_bits", "formula bits", "formula_bits"),
    ("png_bytes", "PNG bytes", "png_bytes"),
    ("ratio", "ratio", "ratio"),
    ("psnr", "PSNR (dB)", "psnr_db"),
    ("ciede2000", "mean CIEDE2000", "ciede2000"),
    ("seconds", "seconds", "seconds"),
)
# The figures a row takes from its size report, under the same names.
_FROM_REPORT = (
    "n_colors",
    "psnr",
    "ciede2000",
    "formula_bits",
    "png_bytes",
    "ratio",
    "seconds",
    "psnr_weighted",
    "file_bytes",
)


@dataclass(frozen=True)
class SweepRow:
    """One k of a sweep.

    Attributes
    ----------
    k : int
        Palette size asked for.
    n_colors : int
        Palette entries actually used (smaller than k when the image has fewer
        distinct colours).
    psnr : float
        PSNR in dB against the original.
    ciede2000 : float or None
        Mean CIEDE2000 against the original (None for single-channel images, and
        for floats outside [0, 1] and 32- or 64-bit integers without a
        ``data_range``).
    formula_bits : int
        The formula size, ``H*W*ceil(log2 k) + k*24`` (32 per entry for RGBA).
    png_bytes : int or None
        Real bytes of the indexed PNG (None above 256 colours).
    ratio : float or None
        Raw original bytes (H*W*3 for 8-bit RGB) over `png_bytes`.
    seconds : float
        Wall time of this k's quantisation (while other k may run in parallel
        threads, see ``workers``).
    report : SizeReport
        The full size report of this row.
    psnr_weighted : float or None
        PSNR inside the region the sweep's ``weights`` mark (None without
        weights).
    file_bytes : dict of str to int or None
        With ``file_formats=True``: the real bytes of every exact file format
        that holds the row's result, smallest first (None otherwise).
    """

    k: int
    n_colors: int
    psnr: float
    ciede2000: float | None
    formula_bits: int
    png_bytes: int | None
    ratio: float | None
    seconds: float
    report: SizeReport = field(repr=False, compare=False)
    psnr_weighted: float | None = None
    file_bytes: dict[str, int] | None = None

    @property
    def smallest_format(self) -> str | None:
        """The format of the smallest exact file (needs ``file_bytes``)."""
        return self.report.smallest_format

    @classmethod
    def from_report(cls, k: int, report: SizeReport) -> SweepRow:
        figures = {name: getattr(report, name) for name in _FROM_REPORT}
        return cls(k=int(k), report=report, **figures)

    def meets(
        self, *, max_ciede2000: float | None = None, min_psnr: float | None = None
    ) -> bool:
        """Whether this row reaches the quality target(s) given.

        Parameters
        ----------
        max_ciede2000 : float, optional
            Largest acceptable mean CIEDE2000 (2.3 is about one just-noticeable
            difference). Rows without CIEDE2000 (grey images) never meet it.
        min_psnr : float, optional
            Smallest acceptable PSNR in dB.
        """
        if max_ciede2000 is not None and (
            self.ciede2000 is None or self.ciede2000 > max_ciede2000
        ):
            return False
        return min_psnr is None or self.psnr >= min_psnr


@dataclass(frozen=True)
class SweepTable:
    """Quality and size for several k; iterate it for the rows (ascending k).

    Attributes
    ----------
    rows : tuple of SweepRow
        One row per k, ascending.
    shape : tuple of int
        Spatial shape of the image (its labels).
    n_distinct : int
        Distinct colours in the image.
    bits_per_pixel : int
        Bits of one raw pixel (24 for 8-bit RGB).
    original_bits : int
        Raw size of the image, ``n_pixels * bits_per_pixel``.
    source_bytes : int or None
        Size of the file the image came from, when given.
    color_space : str
        Space the palettes were fitted in.
    seconds : float
        Wall time of the whole sweep.
    psnr_peak : float or None
        The peak value the PSNRs used (the ``data_range`` given, or the automatic
        one, see :func:`~napari_kmeans_quantize.metrics.psnr`).
    results : tuple of QuantizeResult or None
        The results per row, when the sweep was asked to keep them.

    Examples
    --------
    >>> from skimage import data
    >>> print(sweep(data.coffee()[::8, ::8], ks=(2, 4)).to_markdown())
    ... # doctest: +NORMALIZE_WHITESPACE, +ELLIPSIS
    | k | colours | formula bits | PNG bytes | ratio | PSNR (dB) | mean CIEDE2000 | seconds |
    |---:|---:|---:|---:|---:|---:|---:|---:|
    | 2 | 2 | 3,798 | ... |
    | 4 | 4 | 7,596 | ... |
    """

    rows: tuple[SweepRow, ...]
    shape: tuple[int, ...]
    n_distinct: int
    bits_per_pixel: int
    original_bits: int
    source_bytes: int | None = None
    color_space: str = "rgb"
    seconds: float = 0.0
    psnr_peak: float | None = None
    results: tuple[QuantizeResult, ...] | None = field(
        default=None, repr=False, compare=False
    )

    def __iter__(self) -> Iterator[SweepRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> SweepRow:
        return self.rows[index]

    @property
    def ks(self) -> tuple[int, ...]:
        """The k of every row."""
        return tuple(row.k for row in self.rows)

    def row(self, k: int) -> SweepRow:
        """The row of palette size `k` (KeyError if it was not swept)."""
        for row in self.rows:
            if row.k == k:
                return row
        raise KeyError(f"k={k} is not in this sweep (ks = {self.ks}).")

    def result(self, k: int) -> QuantizeResult:
        """The quantisation result of palette size `k` (needs ``keep_results``)."""
        if self.results is None:
            raise ValueError("this sweep did not keep its results (keep_results=True).")
        return self.results[self.ks.index(self.row(k).k)]

    def smallest_k(
        self, *, max_ciede2000: float | None = None, min_psnr: float | None = None
    ) -> SweepRow | None:
        """The first row (smallest k) that reaches the target(s), or None."""
        check_targets(max_ciede2000, min_psnr)
        for row in self.rows:
            if row.meets(max_ciede2000=max_ciede2000, min_psnr=min_psnr):
                return row
        return None

    @property
    def file_formats(self) -> tuple[str, ...]:
        """The file formats of the rows' ``file_bytes`` (sorted; empty without
        ``file_formats=True``)."""
        return tuple(sorted({f for row in self.rows for f in row.file_bytes or {}}))

    def _extra_columns(self) -> list[tuple[str, str, Any]]:
        """(Markdown header, CSV header, value of a row) of the columns only
        some sweeps have: the weighted PSNR and the bytes of every format."""
        columns: list[tuple[str, str, Any]] = []
        if any(row.psnr_weighted is not None for row in self.rows):
            columns.append(
                ("weighted PSNR (dB)", "psnr_weighted_db", lambda r: r.psnr_weighted)
            )
        for fmt in self.file_formats:
            columns.append(
                (
                    f"{fmt} file bytes",
                    f"file_bytes_{fmt}",
                    lambda r, fmt=fmt: (r.file_bytes or {}).get(fmt),
                )
            )
        if self.file_formats:
            columns.append(("smallest", "smallest_format", lambda r: r.smallest_format))
        return columns

    def to_records(self) -> list[dict[str, Any]]:
        """The rows as dicts with the CSV column names."""
        extra = self._extra_columns()
        return [
            {csv_name: getattr(row, attr) for attr, _, csv_name in _COLUMNS}
            | {csv_name: value(row) for _, csv_name, value in extra}
            for row in self.rows
        ]

    def to_markdown(self) -> str:
        """The table in GitHub Markdown (ratio against the raw original)."""
        extra = self._extra_columns()
        headers = [md for _, md, _ in _COLUMNS] + [md for md, _, _ in extra]
        header = "| " + " | ".join(headers) + " |"
        rule = "|" + "|".join("---:" for _ in headers) + "|"
        lines = [header, rule]
        for row in self.rows:
            cells = [
                str(row.k),
                str(row.n_colors),
                f"{row.formula_bits:,}",
                "n/a" if row.png_bytes is None else f"{row.png_bytes:,}",
                "n/a" if row.ratio is None else f"{row.ratio:.2f}",
                fmt_psnr(row.psnr),
                "n/a" if row.ciede2000 is None else f"{row.ciede2000:.2f}",
                f"{row.seconds:.2f}",
            ] + [_cell(value(row)) for _, _, value in extra]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_csv(self) -> str:
        """The table as CSV text (full precision, empty cells for n/a)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        records = self.to_records()
        writer.writerow(list(records[0]) if records else [n for _, _, n in _COLUMNS])
        for record in records:
            writer.writerow(["" if v is None else v for v in record.values()])
        return buf.getvalue()


def check_targets(max_ciede2000: float | None, min_psnr: float | None) -> None:
    if max_ciede2000 is None and min_psnr is None:
        raise ValueError("give a target: max_ciede2000 (e.g. 2.3) and/or min_psnr.")
    for name, value in (("max_ciede2000", max_ciede2000), ("min_psnr", min_psnr)):
        if value is not None and not (
            isinstance(value, int | float | np.number) and math.isfinite(value)
        ):
            raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if max_ciede2000 is not None and max_ciede2000 < 0:
        raise ValueError(
            f"max_ciede2000 must be >= 0 (0 means no visible difference at all), "
            f"got {max_ciede2000!r}."
        )


def fmt_psnr(value: float) -> str:
    return "inf" if value == math.inf else f"{value:.2f}"


def _cell(value: object) -> str:
    """A Markdown cell of an optional column."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return fmt_psnr(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
