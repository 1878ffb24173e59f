"""The real bytes of every exact file that can hold one quantised result.

A 2-D result can be an indexed PNG or a lossless WebP; a stack (frames first) an
APNG, an animated GIF or a multi-page palette TIFF. :func:`file_sizes` encodes the
result in memory in each of them and names the smallest, so a size report or a sweep
can give the size of the file a user would actually keep. The public home of these
names is :mod:`.palette_io`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FileSizes", "file_sizes"]

#: The formats tried, by the number of axes of the labels (leading 1s dropped).
FORMATS_2D = ("png", "webp")
FORMATS_STACK = ("apng", "gif", "tiff")


@dataclass(frozen=True)
class FileSizes:
    """Bytes of each exact file format that holds a result, and why others do not.

    Attributes
    ----------
    sizes : dict of str to int
        Format name (``"png"``, ``"webp"``, ``"apng"``, ``"gif"``, ``"tiff"``) to
        its file size in bytes, smallest first.
    refused : dict of str to str
        Formats tried that cannot hold this result exactly, with the reason.
    """

    sizes: dict[str, int]
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def smallest(self) -> str | None:
        """The format of the smallest file (None if no format holds the result)."""
        return next(iter(self.sizes), None)

    @property
    def smallest_bytes(self) -> int | None:
        """The size of the smallest file in bytes (None if there is none)."""
        return None if self.smallest is None else self.sizes[self.smallest]

    def as_dict(self) -> dict:
        """Plain values (for metadata, JSON or a table row)."""
        return {
            "sizes": dict(self.sizes),
            "refused": dict(self.refused),
            "smallest": self.smallest,
            "smallest_bytes": self.smallest_bytes,
        }


#: The encoders' settings ``file_sizes`` and the command line take: the writers'
#: defaults, or their slowest and smallest.
EFFORTS = ("default", "max")


def file_sizes(
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    webp_method: int | None = None,
    effort: str = "default",
) -> FileSizes:
    """Encode a result in every exact format that can hold it; name the smallest.

    A 2-D image is tried as an indexed PNG (:func:`to_png_bytes`) and a lossless
    WebP (:func:`to_webp_bytes`); a stack (first axis = frames) as an APNG
    (:func:`to_apng_bytes`), an animated GIF (:func:`to_animated_gif_bytes`) and a
    multi-page palette TIFF (:func:`to_tiff_bytes`, the only one for more than three
    axes). A format counts only if reading the file back gives ``palette[labels]``
    exactly: the 8-bit formats need a palette whose values are 8-bit colours (uint8,
    or integers in 0..255), and TIFF a palette of 8-bit or uint16 colours.

    Parameters
    ----------
    labels : (..., H, W) integer ndarray
        Palette index of every pixel, each in ``[0, len(palette))``. Leading axes of
        length 1 are dropped.
    palette : (k, C) ndarray
        The result's colours, C = 1, 3 or 4.
    webp_method : int or None, optional
        libwebp's effort for the WebP (0..6, as :func:`to_webp_bytes`); None
        (default): 4, or 6 with ``effort="max"``. 4 takes about 0.1 s for a
        768 x 512 photo; 6 is a few per cent smaller and takes seconds.
    effort : {"default", "max"}, optional
        ``"max"``: the slowest settings of every encoder, as the writers take
        them (PNG and APNG ``optimize="max"``, WebP method 6): the smallest files,
        in seconds per photo instead of a tenth of a second.

    Returns
    -------
    FileSizes
        ``sizes`` (smallest first), ``refused`` (format -> reason), ``smallest`` and
        ``smallest_bytes``.

    Raises
    ------
    ValueError
        If the labels are empty, not at least 2-D, or refer to entries outside the
        palette, the palette has a wrong shape or more than 65536 colours,
        `webp_method` is not 0..6 or `effort` is neither "default" nor "max".
    TypeError
        If `labels` is not an integer array or the palette is not numeric.

    Examples
    --------
    >>> from napari_kmeans_quantize.palette_io import file_sizes
    >>> labels = np.arange(64, dtype=np.uint8).reshape(8, 8) % 4
    >>> palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    >>> sizes = file_sizes(labels, palette)
    >>> sorted(sizes.sizes), sizes.smallest_bytes == min(sizes.sizes.values())
    (['png', 'webp'], True)
    """
    from . import _animated, _webp
    from . import _encode as enc
    from ._webp import check_method

    if effort not in EFFORTS:
        raise ValueError(f"effort must be 'default' or 'max', got {effort!r}.")
    if webp_method is None:
        webp_method = 6 if effort == "max" else 4
    check_method(webp_method)
    png_options = {"optimize": "max"} if effort == "max" else {}
    lab, pal8 = enc.prepare(
        labels, palette, fmt="a file", max_colors=enc.MAX_TIFF_COLORS, planes=True
    )
    pal = np.asarray(palette)
    pal = pal[:, np.newaxis] if pal.ndim == 1 else pal
    exact8 = np.array_equal(pal8, pal)
    encoders = {
        "png": enc.to_png_bytes,
        "webp": _webp.to_webp_bytes,
        "apng": _animated.to_apng_bytes,
        "gif": _animated.to_animated_gif_bytes,
        "tiff": enc.to_tiff_bytes,
    }
    sizes: dict[str, int] = {}
    refused: dict[str, str] = {}
    for name in FORMATS_2D if lab.ndim == 2 else FORMATS_STACK:
        if not exact8 and not (name == "tiff" and pal.dtype == np.uint16):
            refused[name] = (
                f"{name.upper()} stores 8-bit colours; a {pal.dtype} palette would "
                "be rounded."
            )
            continue
        options = {
            "webp": {"method": webp_method},
            "png": png_options,
            "apng": png_options,
        }.get(name, {})
        try:
            sizes[name] = len(encoders[name](lab, pal, **options))
        except ValueError as err:
            refused[name] = str(err)
    return FileSizes(dict(sorted(sizes.items(), key=lambda kv: kv[1])), refused)
