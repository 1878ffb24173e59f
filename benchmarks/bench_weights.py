"""What an importance map buys where it matters, and what it costs elsewhere.

scikit-image's astronaut at k = 16, quantised without weights and with a 0/1
mask over the face (a fixed ellipse); for both, the PSNR inside the mask and
over the whole image (``size_report(..., weights=mask)``), in one run.

Usage::

    python benchmarks/bench_weights.py [--k 16] [--save mask.png]
"""

from __future__ import annotations

import argparse

import numpy as np
from skimage import data

from napari_kmeans_quantize import quantize
from napari_kmeans_quantize.metrics import size_report

# The astronaut's face in the 512 x 512 image: centre (row, column), radii.
FACE_CENTRE = (122, 222)
FACE_RADII = (56, 44)


def face_mask(shape: tuple[int, int]) -> np.ndarray:
    """A 0/1 ellipse over the astronaut's face."""
    y, x = np.ogrid[: shape[0], : shape[1]]
    (cy, cx), (ry, rx) = FACE_CENTRE, FACE_RADII
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def main(argv: list[str] | None = None) -> None:
    """Print PSNR inside the face and overall, without and with the mask."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--save", help="also write the masked image to this PNG")
    args = parser.parse_args(argv)
    image = data.astronaut()
    mask = face_mask(image.shape[:2])
    print(f"astronaut, k = {args.k}, mask: {int(mask.sum())} of {mask.size} pixels")
    print(f"{'fit':<14}{'PSNR face dB':>14}{'PSNR all dB':>14}")
    for name, weights in (("unweighted", None), ("face mask", mask)):
        result = quantize(image, args.k, weights=weights)
        report = size_report(result, image, weights=mask)
        print(f"{name:<14}{report.psnr_weighted:>14.2f}{report.psnr:>14.2f}")
    if args.save:
        from PIL import Image

        shown = image.copy()
        shown[~mask] //= 3
        Image.fromarray(shown).save(args.save)


if __name__ == "__main__":
    main()
