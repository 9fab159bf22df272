"""The `unfoldc` command line: compile, graph, and the subcommands of later stages.

Exit codes: 0 ok, 1 mistake in the user's spec or data, 2 usage, 3 internal error (a compiler
bug: the message names the stage and shows where it happened). No Python traceback is ever
shown for user input.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from unfoldc.diagnostics import UserError, render, use_color
from unfoldc.usage import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_USER,
    UsageError,
)
from unfoldc.version import __version__


def _options(args):
    from unfoldc.pipeline import Options

    return Options(gram=not args.no_gram, hoist=not args.no_hoist, cse=not args.no_cse,
                   enforce_convergence=getattr(args, "enforce_convergence", False))


def _add_pass_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-gram", action="store_true",
                   help="keep A.T @ (A @ v - b) as written (no precomputed Gram matrix)")
    p.add_argument("--no-hoist", action="store_true", help="do not hoist loop-invariant work")
    p.add_argument("--no-cse", action="store_true", help="no common-subexpression elimination")
    p.add_argument("--enforce-convergence", action="store_true",
                   help="reparametrize trainables so the derived convergence conditions hold "
                   "by construction (see docs/convergence.md)")


def _report_warnings(art) -> None:
    color = use_color(sys.stderr)
    for w in art.warnings:
        print(render(w, art.source, color) + "\n", file=sys.stderr)


def cmd_compile(args) -> int:
    """Write the generated module (to -o, or stdout)."""
    from unfoldc.codegen.module import network_class_name
    from unfoldc.pipeline import compile_file

    art = compile_file(args.spec, _options(args))
    _report_warnings(art)
    if args.output in (None, "-"):
        sys.stdout.write(art.code)
    else:
        Path(args.output).write_text(art.code, encoding="utf-8")
        print(f"wrote {args.output} (class {network_class_name(art.optimized)})",
              file=sys.stderr)
    return EXIT_OK


def cmd_graph(args) -> int:
    """Print or draw the iteration graph."""
    from unfoldc.graphs.render import FORMATS
    from unfoldc.graphs.render import render as render_graph
    from unfoldc.ir.graph import GraphTooLarge
    from unfoldc.pipeline import compile_file

    if args.unroll is not None and args.unroll < 1:  # too many: GraphTooLarge, with its size
        raise UsageError("--unroll takes a positive number of layers")
    if args.format not in FORMATS:
        raise UsageError(f"unknown format {args.format!r}; choose from {', '.join(FORMATS)}")
    art = compile_file(args.spec, _options(args))
    _report_warnings(art)
    try:
        graph = art.graph(args.unroll)
    except GraphTooLarge as err:
        raise UsageError(str(err)) from None
    out = render_graph(graph, args.format)
    if isinstance(out, bytes):
        if args.output in (None, "-"):
            raise UsageError(f"--format {args.format} is binary: give -o FILE")
        Path(args.output).write_bytes(out)
    elif args.output in (None, "-"):
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
    else:
        Path(args.output).write_text(out, encoding="utf-8")
    return EXIT_OK


def cmd_info(args) -> int:
    """Print the paradigm report: symbols, paradigms, parameter counts."""
    from unfoldc.paradigms import parse_dims, report
    from unfoldc.pipeline import compile_file

    try:
        dims = parse_dims(args.dims or "")
    except ValueError as err:
        raise UsageError(f"--dims: {err}") from None
    if args.layers is not None and args.layers < 1:
        raise UsageError("--layers takes a positive number")
    art = compile_file(args.spec)
    _report_warnings(art)
    rep = report(art.program, dims, args.layers)
    sys.stdout.write(rep.to_json() + "\n" if args.format == "json" else str(rep))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="unfoldc", description="Compile .unf specs of iterative solvers into unrolled, "
        "trainable PyTorch networks (deep unfolding).")
    parser.add_argument("--version", action="version", version=f"unfoldc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("compile", help="generate the PyTorch module of a spec")
    p.add_argument("spec", help="the .unf file")
    p.add_argument("-o", "--output", help="where to write the module (default: stdout)")
    _add_pass_flags(p)
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("graph", help="show the iteration graph of a spec")
    p.add_argument("spec", help="the .unf file")
    p.add_argument("--format", default="text",
                   help="text, json (networkx node-link), dot, mermaid, svg or png")
    p.add_argument("--unroll", type=int, metavar="K", help="show K layers unrolled")
    p.add_argument("-o", "--output", help="output file (required for png)")
    _add_pass_flags(p)
    p.set_defaults(run=cmd_graph)

    p = sub.add_parser("info", help="symbols, paradigms and parameter counts of a spec")
    p.add_argument("spec", help="the .unf file")
    p.add_argument("--dims", help="sizes for the parameter counts, e.g. m=250,n=500")
    p.add_argument("--layers", type=int, metavar="K", help="depth (default: the spec's)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=cmd_info)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub) -> None:
    """Subcommands that live in other packages (training, checks, reports).

    `train` needs torch for its own arguments; it is only listed here (its full parser is
    built by `_train_parser` when the command runs), so that `unfoldc compile` never imports
    torch.
    """
    sub.add_parser("train", help="train a compiled network on a task or data set",
                   add_help=False)
    from unfoldc.convergence import cli as check_cli

    p = sub.add_parser("check", help="derive and evaluate the convergence conditions of a spec")
    check_cli.add_arguments(p)
    p.set_defaults(run=check_cli.run)

    from unfoldc.export import cli as export_cli  # its module does not import torch

    p = sub.add_parser("export", help="write the network as ONNX or a torch.export archive")
    export_cli.add_arguments(p)
    p.set_defaults(run=export_cli.run)


def _train_parser() -> tuple[argparse.ArgumentParser, object]:
    from unfoldc.train import cli as train_cli  # imports torch: only for this command

    parser = argparse.ArgumentParser(prog="unfoldc train",
                                     description="Train a compiled network (docs/training.md).")
    train_cli.add_arguments(parser)
    return parser, train_cli


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        parser, train_cli = _train_parser()
        args = parser.parse_args(argv[1:])
        args.run = train_cli.run
    else:
        parser = build_parser()
        args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UserError as err:
        color = use_color(sys.stderr)
        for d in err.diagnostics:
            print(render(d, err.source, color) + "\n", file=sys.stderr)  # rustc: blank between
        n = sum(d.is_error for d in err.diagnostics)
        print(f"error: could not compile `{getattr(args, 'spec', '')}`: "
              f"{n} error{'s' * (n != 1)}", file=sys.stderr)
        return EXIT_USER
    except UsageError as err:
        parser.print_usage(sys.stderr)
        print(f"unfoldc: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as err:
        print(f"error: no such file or directory: `{err.filename or err}`", file=sys.stderr)
        if _is_spec(err.filename, args):
            print("  = help: check the path (specs are usually named `NAME.unf`)",
                  file=sys.stderr)
        return EXIT_USER
    except IsADirectoryError as err:
        what = "a spec file" if _is_spec(err.filename, args) else "a file"
        print(f"error: `{err.filename}` is a directory, not {what}", file=sys.stderr)
        return EXIT_USER
    except PermissionError as err:
        print(f"error: permission denied: `{err.filename}`", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: report, don't crash
        return _internal_error(err)


def _is_spec(filename, args) -> bool:
    """Whether an OS error is about the spec (for a hint about spec names)."""
    return filename is not None and str(filename) == str(getattr(args, "spec", None))


def _internal_error(err: Exception) -> int:
    frames = traceback.extract_tb(err.__traceback__)
    stage = next((f.filename.split("unfoldc/")[-1] for f in reversed(frames)
                  if "unfoldc/" in f.filename), "unknown")
    print(f"internal error in {stage}: {type(err).__name__}: {err}", file=sys.stderr)
    print("this is a bug in unfoldc, not in your spec; please report it with the spec.",
          file=sys.stderr)
    if "UNFOLDC_DEBUG" in __import__("os").environ:
        traceback.print_exc()
    return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
