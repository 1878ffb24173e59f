"""Does scikit-learn's k-means++ seeding (with restarts) beat the default?

For every photo and k, ``quantize`` runs with the default deterministic
variance-split initialisation and with ``init="k-means++"`` at ``n_init`` = 1,
4 and 10; the script prints the mean MSE over the photos (per pixel, summed
over the channels) and the mean wall time of each, with both as a ratio to the default,
in one run on the same images.

Usage::

    python benchmarks/bench_init.py [FOLDER] [--limit N] [--ks 16 64 256]

FOLDER defaults to ``../shared/data/cq100`` beside the repository.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _photos import add_folder_argument
from PIL import Image

from napari_kmeans_quantize import mse, quantize

RUNS = {
    "default": {},
    "k-means++ n_init=1": {"init": "k-means++", "n_init": 1},
    "k-means++ n_init=4": {"init": "k-means++", "n_init": 4},
    "k-means++ n_init=10": {"init": "k-means++", "n_init": 10},
}


def main(argv: list[str] | None = None) -> None:
    """Print MSE and time of every initialisation, per k, beside the default."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_folder_argument(parser, "PNG")
    parser.add_argument("--limit", type=int, default=None, help="first N photos")
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args(argv)
    paths = sorted(args.folder.glob("*.png"))[: args.limit]
    if not paths:
        raise SystemExit(f"no PNG photos in {args.folder}")
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    quantize(photos[0][:32, :32], 4, init="k-means++")  # compile the kernels
    print(f"{len(photos)} photos from {args.folder}")
    for k in args.ks:
        errors = {name: [] for name in RUNS}
        times = {name: [] for name in RUNS}
        for photo in photos:
            for name, kwargs in RUNS.items():
                start = time.perf_counter()
                result = quantize(photo, k, **kwargs)
                times[name].append(time.perf_counter() - start)
                errors[name].append(mse(photo, result.image))
        base_err = statistics.fmean(errors["default"])
        base_time = statistics.fmean(times["default"])
        print(f"\nk = {k}")
        print(f"{'init':<22}{'MSE':>10}{'/default':>10}{'time s':>10}{'/default':>10}")
        for name in RUNS:
            err, sec = statistics.fmean(errors[name]), statistics.fmean(times[name])
            print(
                f"{name:<22}{err:>10.3f}{err / base_err:>10.4f}"
                f"{sec:>10.3f}{sec / base_time:>10.2f}"
            )


if __name__ == "__main__":
    main()
