"""The numpydoc entries of the quantisation options, written once.

The public docstrings say ``%(options)s`` where their option parameters are
documented (filled with the entry of every option the function takes and does
not document itself) or ``%(name)s`` for a single entry; :func:`fill_doc`
fills them in, as matplotlib's ``_docstring.interpd`` does.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable

OPTION_DOCS: dict[str, str] = {
    "channel_axis": """\
channel_axis : int or None, optional
    Axis of the colour channels, as in scikit-image. None means the image is
    single-channel (intensity quantisation).""",
    "color_space": """\
color_space : {'rgb', 'lab', 'oklab'}, optional
    Space the clustering runs in. 'rgb' minimises the squared error over the
    channels as they are (what PSNR measures), for any channel count; 'lab'
    (CIELAB) and 'oklab' are perceptual and lower the mean CIEDE2000
    difference. Perceptual spaces need RGB(A) images with integer data or
    floats in [0, 1].""",
    "dither": """\
dither : bool, optional
    Assign pixels by serpentine Floyd-Steinberg error diffusion instead of
    nearest colour. The palette is the same.""",
    "random_state": """\
random_state : int, numpy.random.Generator or None, optional
    Seed for the pixel sample when `max_pixels` is set and for the seeds of
    ``init='k-means++'``. The default fit is deterministic.""",
    "max_pixels": """\
max_pixels : int or None, optional
    Fit the palette on at most this many randomly chosen pixels (faster on huge
    images, slightly worse). None (the default) uses every pixel. Every pixel is
    mapped either way.""",
    "max_iter": """\
max_iter : int, optional
    Most Lloyd iterations.""",
    "tol": """\
tol : float, optional
    Stop when an iteration lowers the error by less than this fraction
    (finite, >= 0).""",
    "alpha": """\
alpha : bool, optional
    Whether a 4-channel image is RGBA (the default: fully transparent pixels
    share one palette entry). False says these are 4 plain channels, fitted
    like any other channel count.""",
    "standardize": """\
standardize : bool, optional
    Fit (and assign) on the channels divided by their standard deviation
    over the pixels, so that every channel weighs the same; the palette is
    still returned in the image's units and dtype. Use it when the channels
    are on different scales (a 12-bit and a 16-bit channel, stains of very
    different brightness), where the brightest channel would otherwise
    decide the clusters alone. Leave it off for colour images and for
    channels whose absolute differences matter. Only with
    ``color_space='rgb'``.""",
    "weights": """\
weights : ndarray or dask array, optional
    An importance map: one finite weight >= 0 per pixel (the image's shape
    without the channel axis). The fit minimises the weighted squared error
    (each colour counts with the summed weight of its pixels); weight 0
    leaves a pixel out of the fit, yet every pixel is mapped. A weight of 2
    counts a pixel as if it were there twice. None: every pixel weighs 1.""",
    "fixed_colors": """\
fixed_colors : (m, C) array_like, optional
    Locked colours, m <= `n_colors`, in the image's dtype and range (whole
    numbers for integer images): the palette holds them bit for bit, even
    if no pixel takes them. The fit moves only the other ``n_colors - m``
    entries (weighted Lloyd with the locked ones pinned). With m equal to
    `n_colors` the result is that of :func:`apply_palette`.""",
    "init": """\
init : {'variance-split', 'k-means++'}, optional
    How the centres start. 'variance-split' (the default) is a
    deterministic divisive split of the colours. 'k-means++' seeds with
    :func:`sklearn.cluster.kmeans_plusplus` on the distinct colours (their
    pixel counts, or weights, as sample weights), from `random_state`, as
    :class:`sklearn.cluster.KMeans` does.""",
    "n_init": """\
n_init : int, optional
    Runs from different k-means++ seeds; the palette of lowest inertia is
    kept. Above 1 only with ``init='k-means++'``.""",
}

_FIELD = re.compile(r"%\((\w+)\)s")


def fill_doc(doc: str | None, options: Iterable[str] = ()) -> str | None:
    """`doc` (dedented) with its fields filled: ``%(options)s`` by the entries
    of those `options` it does not document itself, ``%(name)s`` by the entry
    of option `name`."""
    if doc is None or "%(" not in doc:
        return doc
    doc = inspect.cleandoc(doc)
    entries = {
        name: OPTION_DOCS[name]
        for name in options
        if not re.search(rf"^{name} :", doc, re.MULTILINE)
    }

    def entry(match: re.Match[str]) -> str:
        name = match[1]
        return "\n".join(entries.values()) if name == "options" else OPTION_DOCS[name]

    return _FIELD.sub(entry, doc)
