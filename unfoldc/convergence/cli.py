"""`unfoldc check SPEC [--given H=FILE.npy ...] [--weights FILE]`: the convergence conditions.

Without data it prints the symbolic conditions. With every given operand (or for a spec that
has none) it builds the network, loads the weights if asked, evaluates the conditions per layer
(failing layers highlighted) and exits with the verdict: 0 certified, 1 violated (a required
condition fails), 4 uncertified (no theorem covers the updates, or a sufficient condition fails).
"""

from __future__ import annotations

import argparse
import sys

from unfoldc.usage import EXIT_OK, EXIT_UNCERTIFIED, EXIT_USER, UsageError, check_depth

# check's verdicts: certified 0, violated 1 (a required condition fails), uncertified 4.
VERDICT_EXIT = {"certified": EXIT_OK, "violated": EXIT_USER, "uncertified": EXIT_UNCERTIFIED}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the .unf file")
    p.add_argument("--given", action="append", default=[], metavar="NAME=FILE.npy",
                   help="a given operand as a NumPy .npy file (repeat for several)")
    p.add_argument("--weights", metavar="FILE",
                   help="trained weights: a weights.safetensors written by `unfoldc train` "
                   "(its givens and depth are used unless --given / --layers say otherwise)")
    p.add_argument("--layers", type=int, metavar="K", help="number of layers (default: spec)")
    p.add_argument("--enforce-convergence", action="store_true",
                   help="check the network as compiled (and trained) with --enforce-convergence")


def run(args) -> int:
    from unfoldc.convergence.derive import derive, symbolic_text
    from unfoldc.pipeline import Options, compile_file

    if args.layers is not None:  # before anything is built: --layers 1000000000000 is refused
        check_depth("--layers", args.layers)
    art = compile_file(args.spec, Options(enforce_convergence=args.enforce_convergence))
    an = derive(art.optimized)  # as the generated report does, after enforcement
    print(f"{art.program.name}: convergence conditions derived from {art.program.source_name}")
    for line in symbolic_text(an):
        print("  " + line)
    givens = dict(_parse_given(g) for g in args.given)
    names = [s.name for s in art.program.by_role("given")]
    unknown = sorted(set(givens) - set(names))
    if unknown:
        raise UsageError(f"the spec has no given named {', '.join(unknown)} "
                         f"(givens: {', '.join(names) or 'none'})")
    if not givens and names and not args.weights:
        print("(give the operands with --given NAME=FILE.npy to evaluate them)")
        return EXIT_OK
    missing = [n for n in names if n not in givens]
    if missing and not args.weights:  # a weights file holds the givens it was trained with
        raise UsageError(f"missing --given for {', '.join(missing)}")
    from unfoldc.train.errors import TrainError  # imports torch, as evaluating does

    try:
        report = _evaluate(art, givens, args)
    except TrainError as exc:  # bad arrays or weights: a user error, in one line
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    print()
    print(_highlight(str(report), sys.stdout))
    return VERDICT_EXIT[report.verdict]


def _parse_given(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise UsageError(f"--given takes NAME=FILE.npy, got {text!r}")
    return name, path


def _evaluate(art, paths: dict[str, str], args):
    from unfoldc.loader import class_from
    from unfoldc.train import operands

    cls = class_from(art)
    givens = {name: operands.read_given(name, path) for name, path in paths.items()}
    origins = {name: f"`{path}`" for name, path in paths.items()}
    if args.weights:
        model = operands.build_with_weights(cls, givens, args.weights, args.layers, origins)
    else:
        model = operands.build(cls, givens, args.layers, origins)
    return model.convergence_report()


def _highlight(text: str, stream) -> str:
    from unfoldc.diagnostics import use_color

    if not use_color(stream):
        return text
    return "\n".join(f"\x1b[31;1m{line}\x1b[0m" if line.rstrip().endswith("FAIL") else line
                     for line in text.splitlines())
