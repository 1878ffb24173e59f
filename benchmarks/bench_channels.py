"""Multichannel benchmark: ``quantize`` against scikit-learn's KMeans on the same vectors.

The image is a generated 8-channel uint16 cube of 1414 x 1414 pixels (2.0 MP), a
stand-in for a multiplexed fluorescence or spectral image: 12 "tissue" classes
laid out as smooth random regions (the argmax of 12 Gaussian-filtered noise
fields, sigma 12 px), every class an 8-vector of channel means drawn from 500 to
40000, plus Gaussian noise of sigma 300 per channel (``np.random.default_rng(0)``),
rounded and clipped to uint16. Nearly every pixel is a distinct vector.

Methods, both fed the same (H, W, 8) uint16 array and ending with the quantised
uint16 array:

* ``ours``: ``quantize(cube, k)`` (defaults: every pixel, exact weighted k-means).
* ``sklearn``: ``KMeans(n_clusters=k, n_init=1, random_state=0)`` fit on every
  pixel as float64, ``predict`` on every pixel, palette = cluster centres rounded
  to uint16.

MSE is the mean over pixels of the squared error summed over the 8 channels (as
``napari_kmeans_quantize.mse``). Time is the wall time of one call after a warm-up
call on a 64 x 64 crop (compiled kernels, thread pools), best of ``--repeat``.

Usage::

    python benchmarks/bench_channels.py               # k = 8 and 32
    python benchmarks/bench_channels.py --ks 8 --side 512   # smoke test
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.cluster import KMeans

from napari_kmeans_quantize import mse, quantize


def make_cube(side: int, n_channels: int = 8, n_classes: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    fields = np.stack(
        [gaussian_filter(rng.normal(size=(side, side)), 12) for _ in range(n_classes)]
    )
    classes = fields.argmax(axis=0)
    means = rng.uniform(500, 40000, (n_classes, n_channels))
    cube = means[classes] + rng.normal(0, 300, (side, side, n_channels))
    return np.clip(np.rint(cube), 0, 65535).astype(np.uint16)


def ours(cube: np.ndarray, k: int) -> np.ndarray:
    return quantize(cube, k).image


def sklearn(cube: np.ndarray, k: int) -> np.ndarray:
    pixels = cube.reshape(-1, cube.shape[-1]).astype(np.float64)
    model = KMeans(n_clusters=k, n_init=1, random_state=0).fit(pixels)
    palette = np.clip(np.rint(model.cluster_centers_), 0, 65535).astype(np.uint16)
    return palette[model.predict(pixels)].reshape(cube.shape)


def timed(method, cube: np.ndarray, k: int, repeat: int) -> tuple[float, np.ndarray]:
    method(cube[:64, :64], k)
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = method(cube, k)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--side", type=int, default=1414)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    cube = make_cube(args.side)
    n_distinct = len(np.unique(cube.reshape(-1, 8), axis=0))
    print(
        f"cube {cube.shape} {cube.dtype}, {cube.shape[0] * cube.shape[1] / 1e6:.2f} MP, "
        f"{n_distinct} distinct vectors"
    )
    header = (
        f"{'k':>3} | {'ours MSE':>12} | {'sklearn MSE':>12} | {'MSE ratio':>9} | "
        f"{'ours s':>7} | {'sklearn s':>9} | {'time ratio':>10}"
    )
    print(header)
    print("-" * len(header))
    for k in args.ks:
        t_ours, q_ours = timed(ours, cube, k, args.repeat)
        t_sk, q_sk = timed(sklearn, cube, k, args.repeat)
        m_ours, m_sk = mse(cube, q_ours), mse(cube, q_sk)
        print(
            f"{k:>3} | {m_ours:>12.0f} | {m_sk:>12.0f} | {m_ours / m_sk:>9.3f} | "
            f"{t_ours:>7.2f} | {t_sk:>9.2f} | {t_ours / t_sk:>10.2f}"
        )


if __name__ == "__main__":
    main()
