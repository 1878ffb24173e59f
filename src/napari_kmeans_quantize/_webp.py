"""Lossless WebP of a quantised image: ``palette[labels]``, pixel for pixel.

WebP's lossless mode stores an image of at most 256 colours as palette indices
(its colour-indexing transform) and predicts them from their neighbours, which often
makes it smaller than an indexed PNG of the same pixels. The file holds colours, not
indices: reading it back gives ``palette[labels]`` exactly (RGB, or RGBA when an
entry is not opaque; fully transparent pixels keep their colour too, because the
encoder runs with ``exact=True``). Grey palettes are stored as grey RGB colours.

WebP holds one 2-D image of at most 16383 x 16383 pixels with 8 bits per channel;
stacks, larger images and palettes that cannot be made 8-bit (see
:func:`~napari_kmeans_quantize.palette_io.palette_to_uint8`) are refused with a
ValueError. The public home of these functions is :mod:`.palette_io`.
"""

from __future__ import annotations

from typing import IO

import numpy as np

from ._encode import encode, file_form

__all__ = ["MAX_WEBP_SIDE", "to_webp_bytes", "write_webp"]

#: Largest width or height of a WebP image.
MAX_WEBP_SIDE = 16383


def to_webp_bytes(labels: np.ndarray, palette: np.ndarray, *, method: int = 4) -> bytes:
    """Encode ``palette[labels]`` as a lossless WebP, in memory.

    Parameters
    ----------
    labels : (H, W) integer ndarray
        Palette index of every pixel. Leading axes of length 1 are dropped.
    palette : (k, C) ndarray
        k <= 65536 colours, C = 1 (grey), 3 (RGB) or 4 (RGBA), converted to 8 bits
        by :func:`~napari_kmeans_quantize.palette_io.palette_to_uint8`.
    method : int, optional
        libwebp's effort, 0 (fastest) to 6. The default 4 encodes a 768 x 512
        photo in about 0.1 s; 6 makes the file 1-7 % smaller in about 50 times the
        time.

    Returns
    -------
    webp : bytes
        The complete WebP file.

    Raises
    ------
    ValueError
        If the labels are not one 2-D plane, a side exceeds 16383 pixels, the labels
        refer to entries outside the palette, the palette cannot be made 8-bit, or
        `method` is not 0..6.
    TypeError
        If `labels` is not an integer array.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> labels = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    >>> palette = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    >>> data = to_webp_bytes(labels, palette)
    >>> back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    >>> bool((back == palette[labels]).all())
    True
    """
    return encode(_save_webp, *_checked(labels, palette, method), method=method)


@file_form(to_webp_bytes)
def write_webp() -> str:
    """Write ``palette[labels]`` as a lossless WebP file (atomically).

    Examples
    --------
    The file holds exactly the bytes of :func:`to_webp_bytes`:

    >>> import pathlib, tempfile
    >>> labels, palette = np.eye(3, dtype=int), [[1, 2, 3], [4, 5, 6]]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_webp(pathlib.Path(tmp) / "e.webp", labels, palette)
    ...     pathlib.Path(out).read_bytes() == to_webp_bytes(labels, palette)
    True
    """


def check_method(method: int) -> None:
    """Refuse a libwebp effort outside 0..6 (a ValueError naming the value)."""
    if not isinstance(method, int | np.integer) or not 0 <= method <= 6:
        raise ValueError(f"method must be an integer 0..6, got {method!r}.")


def _checked(
    labels: np.ndarray, palette: np.ndarray, method: int
) -> tuple[np.ndarray, np.ndarray]:
    from ._encode import MAX_TIFF_COLORS, prepare

    check_method(method)
    if sum(n > 1 for n in np.shape(labels)[:-2]):
        raise ValueError(
            f"WebP holds one 2-D image, got labels of shape {np.shape(labels)}. "
            "For a stack write an animated PNG (.apng), an animated GIF or a "
            "multi-page palette TIFF."
        )
    lab, pal = prepare(labels, palette, fmt="WebP", max_colors=MAX_TIFF_COLORS)
    if max(lab.shape) > MAX_WEBP_SIDE:
        raise ValueError(
            f"WebP images are at most {MAX_WEBP_SIDE} pixels wide and high, these "
            f"labels are {lab.shape[1]} x {lab.shape[0]}; write a PNG or a TIFF."
        )
    return lab, pal


def _save_webp(fp: IO[bytes], lab: np.ndarray, pal: np.ndarray, *, method: int) -> None:
    from PIL import Image

    if pal.shape[1] == 1:
        pal = np.repeat(pal, 3, axis=1)
    elif pal.shape[1] == 4 and (pal[:, 3] == 255).all():
        pal = pal[:, :3]
    pixels = np.ascontiguousarray(pal[lab])
    Image.fromarray(pixels).save(
        fp, format="WEBP", lossless=True, quality=100, method=method, exact=True
    )
