"""The photo folder the benchmarks read: one positional argument, one default."""

from __future__ import annotations

import argparse
from pathlib import Path

#: the CQ100 subset beside the checkout (``../shared/data/cq100``)
CQ100 = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cq100"


def add_folder_argument(parser: argparse.ArgumentParser, kinds: str) -> None:
    """Add the optional ``folder`` of `kinds` photos, CQ100 by default."""
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        default=CQ100,
        help=f"folder of {kinds} photos (default: ../shared/data/cq100)",
    )
