"""`unfoldc export SPEC [--weights FILE] [--given NAME=FILE.npy ...] --format onnx|pt2 -o OUT`.

Builds the network the way `unfoldc check` does (givens from .npy files, or from a weights file
written by `unfoldc train`, which also sets the depth), casts it to `--dtype`, and writes it with
a dynamic batch size. Importing this module does not import torch; running the command does.
"""

from __future__ import annotations

import argparse
import sys

from unfoldc.diagnostics import Diagnostic, render, use_color
from unfoldc.source import NO_SPAN
from unfoldc.usage import (
    EXIT_OK,
    EXIT_USER,
    UsageError,
    add_network_arguments,
    check_depth,
    given_paths,
    require_givens,
)

FORMATS = ("onnx", "pt2")
DTYPES = ("float32", "float64")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `unfoldc export`."""
    p.add_argument("spec", help="the .unf file")
    p.add_argument("--format", choices=FORMATS,
                   help="onnx (needs the extra unfoldc[export]) or pt2 (torch.export archive); "
                   "default: from the suffix of -o")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the file to write")
    add_network_arguments(p, "export")
    p.add_argument("--dims", metavar="NAME=SIZE,...",
                   help="sizes of input dimensions that no given fixes, e.g. m=64,n=64")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="dtype of the exported network (default: float32)")


def run(args) -> int:
    """Export the spec's network; exit 0, or 1 with a (located) message when it cannot be."""
    from unfoldc.paradigms import parse_dims

    fmt = args.format or _format_from_suffix(args.output)
    if args.layers is not None:
        check_depth("--layers", args.layers)
    try:
        dims = parse_dims(args.dims or "")
    except ValueError as err:
        raise UsageError(f"--dims: {err}") from None
    import unfoldc
    from unfoldc.pipeline import Options

    cls = unfoldc.load(args.spec, Options(enforce_convergence=args.enforce_convergence))
    names = list(cls.GIVENS)
    paths = given_paths(args.given, names)
    if not args.weights:  # a weights file holds the givens it was trained with
        require_givens(paths, names)
    return _export(cls, paths, dims, fmt, args)


def _format_from_suffix(output: str) -> str:
    suffix = output.rsplit(".", 1)[-1].lower() if "." in output else ""
    if suffix not in FORMATS:
        raise UsageError(f"cannot tell the format from `{output}`; pass --format onnx or "
                         "--format pt2")
    return suffix


def _export(cls, paths: dict[str, str], dims: dict[str, int], fmt: str, args) -> int:
    import torch

    from unfoldc.export.exporter import ExportError, example_inputs, export_network
    from unfoldc.train import operands
    from unfoldc.train.errors import TrainError

    try:
        model = operands.build_from_files(cls, paths, args.weights, args.layers)
        model = model.to(getattr(torch, args.dtype))
        notes = export_network(model, example_inputs(model, dims), fmt, args.output)
    except TrainError as exc:  # bad arrays or weights: a user error, in one line
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    except ExportError as exc:
        print(_render(exc), file=sys.stderr)
        return EXIT_USER
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {args.output} ({fmt}, class {cls.__name__}, {model.num_layers} layers, "
          f"batch size dynamic)", file=sys.stderr)
    return EXIT_OK


def _render(exc) -> str:
    """rustc's layout, without an error code: the message, the spec line, the help."""
    color = use_color(sys.stderr)
    diag = Diagnostic("", exc.message, exc.span or NO_SPAN, exc.label, exc.notes, exc.help)
    return render(diag, exc.source if exc.span else None, color)
