"""SHA-256 over quantize's output on a fixed image set: proof that a change kept the output.

Run before and after an engine change; equal digests mean every palette, label and
count came out bit-identical. The set: eight of scikit-image's bundled photos and
generated images (RGB, RGBA, grey, uint16, float) at k = 2, 16, 64, 256 in the
``rgb`` and ``lab`` colour spaces (grey and float images in ``rgb`` only).

    python benchmarks/fingerprint.py            # one digest for the whole set
    python benchmarks/fingerprint.py --verbose  # one digest per case as well
"""

from __future__ import annotations

import argparse
import hashlib
import warnings

import numpy as np
from skimage import data

from napari_kmeans_quantize import quantize

KS = (2, 16, 64, 256)


def images() -> dict[str, tuple[np.ndarray, int | None]]:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:96, 0:128]
    ramp = np.stack([x * 2, y * 2, (x + y)], axis=-1).astype(np.uint8)
    cat = data.chelsea()[::3, ::3]
    alpha = np.where(np.arange(cat.shape[1]) > 64, 255, 0)[None, :].repeat(
        cat.shape[0], 0
    )
    return {
        "astronaut": (data.astronaut(), -1),
        "coffee": (data.coffee(), -1),
        "chelsea": (data.chelsea(), -1),
        "rocket": (data.rocket(), -1),
        "ramp": (ramp, -1),
        "rgba": (np.dstack([cat, alpha]).astype(np.uint8), -1),
        "camera": (data.camera(), None),
        "noise16": (rng.integers(0, 4096, (64, 80, 3), dtype=np.uint16), -1),
        "float": (data.astronaut()[::4, ::4].astype(np.float32) / 255, -1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    total = hashlib.sha256()
    for name, (image, axis) in images().items():
        spaces = ("rgb",) if axis is None or image.dtype.kind == "f" else ("rgb", "lab")
        for space in spaces:
            for k in KS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = quantize(image, k, channel_axis=axis, color_space=space)
                case = hashlib.sha256()
                for arr in (r.palette, r.labels, r.counts):
                    arr = np.ascontiguousarray(arr)
                    case.update(repr((arr.shape, arr.dtype.str)).encode())
                    case.update(arr.tobytes())
                total.update(case.digest())
                if args.verbose:
                    print(f"{name:10s} {space:4s} k={k:<4d} {case.hexdigest()[:16]}")
    print(total.hexdigest())


if __name__ == "__main__":
    main()
