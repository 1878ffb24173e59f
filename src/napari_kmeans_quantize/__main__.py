"""The command line: ``napari-kmeans-quantize`` (or ``python -m napari_kmeans_quantize``).

Three subcommands, none of which needs a display or imports napari or Qt:

* ``demo``: the k-means compression experiment on a photo bundled with scikit-image:
  quantise at k = 2, 4, ..., 256 and write the images, the indexed PNG files, the
  table (Markdown and CSV), a quality-vs-size plot and a contact sheet.
* ``quantize IMAGE -k K``: quantise your own image and save the indexed file
  (PNG, GIF or palette TIFF by the extension of ``--out``), with its size report;
  ``--fixed-colors``, ``--weights`` and (for several images) ``--shared`` control
  the palette. Many photos (files, folders, glob patterns) each get their own
  palette and file in ``--out-dir``, in parallel processes (``_cli_batch``).
* ``sweep IMAGE``: the table for your own image (and, with ``--out``, every file
  ``demo`` writes); both in ``_cli_sweep``.

How a command runs (one-line errors, notes, signals) is in ``_cli_run``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from . import _cli_batch, _cli_sweep, _targets
from ._atomic import replacing_read_only
from ._cli_run import PROG, Notes, clean_exit_on_signals, describe
from ._file_sizes import EFFORTS
from ._input import (
    DEFAULT_PIXEL_LIMIT,
    FROM_FILE,
    PIXEL_LIMIT_FLAG,
    PixelLimitError,
    read_image,
    read_source,
)
from .sweep import DEFAULT_KS

__all__ = ["main"]

SAMPLES = ("astronaut", "coffee", "chelsea")
_COLOR_SPACES = ("rgb", "lab", "oklab")
# The options of the commands that quantise at several k (demo and sweep).
_SWEEP_OPTIONS = ("--ks", "--color-space", "--workers")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success).

    Every failure is one line on stderr naming the file concerned (a traceback
    only with ``--debug``): exit status 2 for bad arguments and inputs over the
    pixel limit, 1 for other errors.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with (
            clean_exit_on_signals(args.command),
            warnings.catch_warnings(),
            replacing_read_only(args.force),
        ):
            # Warnings (e.g. "only 5 distinct colours") become one-line notes.
            warnings.showwarning = Notes()
            return args.run(args)
    except BrokenPipeError:
        # Output piped into e.g. `head`, which closed early: stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as err:
        if args.debug:
            raise
        print(f"{PROG} {args.command}: error: {describe(err)}", file=sys.stderr)
        return 2 if isinstance(err, PixelLimitError) else 1


# --- arguments -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Compress images by k-means colour quantisation: k palette colours, one "
            "palette index per pixel, written as real indexed (palette) files. No "
            "display needed; napari is not imported."
        ),
        epilog=(
            "Run 'napari-kmeans-quantize COMMAND --help' for the options of a "
            "command. In napari: napari -w napari-kmeans-quantize"
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the k = 2..256 experiment on a photo bundled with scikit-image",
        description=(
            "Quantise a sample photo from scikit-image at k = 2, 4, ..., 256 and "
            "write into a folder: the quantised images (kNNN_quantized.png, 24-bit), "
            "the indexed palette files (kNNN_indexed.png: the real compressed "
            "output), original.png, table.md and table.csv (k, formula bits, real "
            "file bytes, compression ratio, PSNR, mean CIEDE2000, seconds), "
            "plot.png (quality against size over k) and contact_sheet.png. Prints "
            "the folder and the table."
        ),
    )
    demo.add_argument(
        "--sample",
        choices=SAMPLES,
        default="astronaut",
        help="which scikit-image photo to use (default: %(default)s, 512 x 512)",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("kq-demo"),
        metavar="DIR",
        help="output folder, created if needed; files in it are overwritten "
        "(default: ./%(default)s)",
    )
    _add_shared_options(demo, *_SWEEP_OPTIONS)
    _add_common_options(demo)
    demo.set_defaults(run=_cli_sweep.run_demo)

    quant = sub.add_parser(
        "quantize",
        help="quantise your own image to k colours and save the indexed file",
        description=(
            "Quantise IMAGE to K colours and write it as an indexed file: PNG "
            "(smallest bit depth, up to 256 colours; a stack becomes an animated "
            "PNG, also .apng), GIF (up to 256, binary transparency; a stack "
            "becomes an animation), lossless WebP (one image) or palette TIFF (up "
            "to 65536 colours, stacks as pages), chosen by the extension of --out. Prints the size report: raw and "
            "source sizes, the seed formula, the real file bytes, ratio, PSNR and "
            "mean CIEDE2000."
        ),
    )
    _add_input_options(quant, several=True)
    quant.add_argument(
        "-k",
        "--n-colors",
        dest="k",
        type=_positive_int,
        required=True,
        metavar="K",
        help="number of palette colours (1 to 65536; at most 256 for PNG and GIF)",
    )
    quant.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help=f"output file; {', '.join(_targets.INDEXED_FORMATS)} (default: "
        "IMAGE-kK.png next to the input, the extension of --format)",
    )
    quant.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="quantise every IMAGE (files, folders, glob patterns such as "
        "'photos/*.jpg') into DIR, created if needed, as IMAGE-kK plus the "
        "--format extension; an existing file there is refused without --force, "
        "a photo that fails is reported at the end and the others go on "
        "(default with several inputs: next to each input)",
    )
    quant.add_argument(
        "--format",
        choices=[ext.lstrip(".") for ext in _targets.INDEXED_FORMATS],
        default="png",
        help="format of the outputs named after their inputs (default: %(default)s)",
    )
    quant.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="photos quantised at once, each in its own process, with several "
        "inputs (default: the number of CPUs)",
    )
    _add_quantize_options(quant)
    quant.add_argument(
        "--effort",
        choices=EFFORTS,
        default="default",
        help="max: the encoders' slowest settings, for the smallest files (PNG: "
        "libdeflate level 12 and the better of two index depths; WebP: method 6, "
        "seconds per photo) (default: %(default)s)",
    )
    quant.add_argument(
        "--fixed-colors",
        metavar="COLOURS",
        help="colours the palette must hold exactly, as hex values separated by "
        "commas, e.g. '#ffffff,#000000' (scaled for 16-bit and float images)",
    )
    quant.add_argument(
        "--weights",
        type=Path,
        action="append",
        metavar="FILE",
        help="importance map: an image file of the input's size whose grey value "
        "is each pixel's weight in the fit (0 = ignored in the fit, still mapped); "
        "with --shared give one per input, in order",
    )
    quant.add_argument(
        "--shared",
        action="store_true",
        help="quantise all IMAGEs with one palette fitted to all of them, writing "
        "one output per input (named IMAGE-kK.png)",
    )
    quant.add_argument(
        "--dither",
        action="store_true",
        help="assign pixels by Floyd-Steinberg error diffusion (smoother gradients, "
        "larger files)",
    )
    _add_shared_options(quant, "--data-range")
    quant.add_argument(
        "--rgb-out",
        type=Path,
        metavar="FILE",
        help="also save the quantised image as an ordinary (24-bit) image file",
    )
    _add_common_options(quant)
    quant.set_defaults(run=_run_quantize)

    sw = sub.add_parser(
        "sweep",
        help="quality and size of your own image over k (the table, optionally files)",
        description=(
            "Quantise IMAGE at several k and print the table: k, colours, formula "
            "bits, indexed-PNG bytes, compression ratio against the raw image, "
            "PSNR, mean CIEDE2000, seconds. With --out, also write the files of "
            "'demo' into that folder. With --max-ciede2000 and/or --min-psnr, also "
            "print the smallest k meeting the target."
        ),
    )
    _add_input_options(sw)
    _add_channel_options(sw)
    sw.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write images, indexed files, table.md, table.csv, plot.png and "
        "contact_sheet.png into DIR (default: only print the table)",
    )
    _add_shared_options(sw, *_SWEEP_OPTIONS, "--data-range")
    sw.add_argument(
        "--max-ciede2000",
        type=float,
        metavar="DE",
        help="target: largest acceptable mean CIEDE2000 (2.3 is about one "
        "just-noticeable difference)",
    )
    sw.add_argument(
        "--min-psnr",
        type=float,
        metavar="DB",
        help="target: smallest acceptable PSNR in dB",
    )
    _add_common_options(sw)
    sw.set_defaults(run=_cli_sweep.run_sweep)
    return parser


def _add_quantize_options(p: argparse.ArgumentParser) -> None:
    _add_shared_options(p, "--color-space")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed (only used with --max-pixels; the fit itself is "
        "deterministic) (default: %(default)s)",
    )
    p.add_argument(
        "--max-pixels",
        type=_positive_int,
        metavar="N",
        help="fit the palette on at most N random pixels (faster on huge images); "
        "every pixel is still mapped (default: all pixels)",
    )
    _add_channel_options(p)
    p.add_argument(
        "--standardize",
        action="store_true",
        help="fit on the channels scaled to unit variance (channels on different "
        "scales); the palette stays in the image's units",
    )


def _add_channel_options(p: argparse.ArgumentParser) -> None:
    """How the input's channels are read (by :func:`read_source`)."""
    p.add_argument(
        "--channel-axis",
        type=_channel_axis,
        default=FROM_FILE,
        metavar="AXIS",
        help="axis of the channels (1 to 16, e.g. fluorescence channels), or "
        "'none' for a single-channel image (default: read from the file: a TIFF's "
        "C or S axis, else RGB(A) channels last)",
    )
    p.add_argument(
        "--plain-channels",
        action="store_true",
        help="the channels are plain channels (e.g. fluorescence), not RGB or "
        "RGBA colours: the labels go to a TIFF with the palette as CSV beside it "
        "(default: colours, unless a TIFF's metadata names them channels)",
    )


def _channel_axis(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the channel axis must be an integer or 'none', got {text!r}"
        ) from None


def _add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="write over the input image or over read-only files (which stay "
        "read-only); by default both are refused",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error instead of its one-line message",
    )


def _add_input_options(p: argparse.ArgumentParser, *, several: bool = False) -> None:
    if several:
        p.add_argument(
            "images",
            type=Path,
            nargs="+",
            metavar="IMAGE",
            help="input image file, folder of images or glob pattern (several: "
            "one output each, or one palette for all with --shared)",
        )
    else:
        p.add_argument("image", type=Path, metavar="IMAGE", help="input image file")
    p.add_argument(
        PIXEL_LIMIT_FLAG,
        type=_positive_int,
        default=DEFAULT_PIXEL_LIMIT,
        metavar="N",
        help="refuse an input whose header declares more than N pixels (height x "
        "width x frames), before decoding it (default: %(default)s, 16384 x 16384)",
    )


def _add_shared_options(p: argparse.ArgumentParser, *flags: str) -> None:
    """Options several commands take, each defined once, in the order given."""
    options: dict[str, dict[str, Any]] = {
        "--ks": dict(
            type=_positive_int,
            nargs="+",
            default=list(DEFAULT_KS),
            metavar="K",
            help="palette sizes to try (default: %(default)s)",
        ),
        "--color-space": dict(
            choices=_COLOR_SPACES,
            default="rgb",
            help="space the colours are clustered in: rgb minimises the RGB error "
            "(PSNR), lab (CIELAB) and oklab lower the perceived difference "
            "(CIEDE2000) (default: %(default)s)",
        ),
        "--workers": dict(
            type=_positive_int,
            metavar="N",
            help="k values quantised at once in threads (default: CPUs, at most 4)",
        ),
        "--data-range": dict(
            type=_data_range,
            metavar="PEAK",
            help="peak value for PSNR, and full intensity of integer colours for "
            "CIEDE2000, e.g. 4095 for 12-bit data in a 16-bit file (default: 255 "
            "for 8-bit, 65535 for 16-bit, 1 for floats in [0, 1], the image's max "
            "- min for other floats and 32/64-bit integers)",
        ),
    }
    for flag in flags:
        p.add_argument(flag, **options[flag])


def _data_range(text: str) -> float:
    from .metrics import check_data_range

    try:
        return check_data_range(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a finite number greater than 0, got {text!r}"
        ) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- commands ------------------------------------------------------------------------


def _run_quantize(args: argparse.Namespace) -> int:
    from ._palette_control import colors_for_image, parse_hex_colors, weight_map
    from .metrics import size_report
    from .quantize import quantize
    from .shared import quantize_shared

    if _cli_batch.is_batch(args):
        return _cli_batch.run(args)
    paths = args.images
    if len(paths) > 1 and (args.out is not None or args.rgb_out is not None):
        raise ValueError(
            "--out and --rgb-out name one file; with several inputs every output "
            "is named IMAGE-kK.png next to its input."
        )
    n_weights = len(args.weights or ())
    if n_weights not in (0, len(paths)):
        raise ValueError(
            f"--weights given {n_weights} time(s) for {len(paths)} input(s); give "
            "one importance map per input, in order."
        )
    suffix = "." + args.format
    if args.out_dir is not None:
        _cli_batch.make_folder(args.out_dir)
    outs = [
        args.out
        or (args.out_dir or p.parent) / _cli_batch.output_name(p, args.k, suffix)
        for p in paths
    ]
    # Every target is checked before the images are read or quantised.
    fmt = _targets.indexed_format(outs[0], args.k)
    outputs = list(outs)
    rgb_fmt = None
    if args.rgb_out is not None:
        rgb_fmt = _targets.rgb_format(args.rgb_out)
        outputs.append(args.rgb_out)
    _targets.check_distinct(*outputs)
    for path in outputs:
        _targets.check_output(path, inputs=tuple(paths), force=args.force)
    read = [
        read_source(
            p,
            pixel_limit=args.pixel_limit,
            channel_axis=args.channel_axis,
            plain_channels=args.plain_channels,
        )
        for p in paths
    ]
    images = [r.image for r in read]
    channel_axis = read[0].channel_axis
    # The file's word (a TIFF's channels) or the user's: no colours.
    plain = not all(r.colors for r in read)
    if any(r.channel_axis != channel_axis for r in read):
        raise ValueError(
            "--shared needs images of one kind: all colour or all grey (convert "
            "them to the same mode first)."
        )
    colors = True
    for out, image in zip(outs, images, strict=True):
        colors = _targets.check_channels_fit(out, fmt, image, channel_axis, plain=plain)
        _targets.check_indexed_fits(out, fmt, image, channel_axis)
    if rgb_fmt is not None:
        _targets.check_rgb_fits(args.rgb_out, rgb_fmt, images[0], channel_axis)
    weights = [
        weight_map(*read_image(w, pixel_limit=args.pixel_limit))
        for w in args.weights or ()
    ]
    fixed = None
    if args.fixed_colors is not None:
        n_channels = 1 if channel_axis is None else images[0].shape[channel_axis]
        fixed = colors_for_image(
            parse_hex_colors(args.fixed_colors), images[0].dtype, n_channels
        )
    options = dict(
        _cli_batch.quantize_options(args),
        channel_axis=channel_axis,
        fixed_colors=fixed,
        alpha=not plain,
    )
    if args.shared:
        results = quantize_shared(images, args.k, weights=weights or None, **options)
    else:
        one = weights[0] if weights else None
        results = [quantize(images[0], args.k, weights=one, **options)]
    for i, (path, out, image, result) in enumerate(
        zip(paths, outs, images, results, strict=True)
    ):
        written, csv = _targets.write_result(
            out, fmt, result, image, colors=colors, effort=args.effort
        )
        if csv is not None:
            # Channels that are no colours: the labels, and the palette as a table.
            print(f"palette ({result.palette.shape[1]} channels) -> {csv}")
        report = size_report(
            result,
            image,
            source_bytes=path.stat().st_size,
            data_range=args.data_range,
            file_formats=True,
            weights=weights[i] if weights else None,
        )
        print(f"{path} -> {written} ({fmt.name}, {os.path.getsize(written):,} bytes)")
        print(report.to_text())
        if report.psnr_weighted is not None:
            print(f"PSNR where the weights are: {report.psnr_weighted:.2f} dB")
        print(f"time       {result.seconds:.2f} s ({result.color_space})")
    if args.shared:
        n = len(results[0].palette)
        print(f"one palette of {n} colours for {len(paths)} images")
    if args.rgb_out is not None:
        rgb_written = _targets.save_rgb(args.rgb_out, results[0].image, channel_axis)
        print(f"quantised image as an ordinary file: {rgb_written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
