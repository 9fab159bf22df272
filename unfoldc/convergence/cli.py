"""`unfoldc check SPEC [--given H=FILE.npy ...] [--weights FILE]`: the convergence conditions.

Without data it prints the symbolic conditions. With every given operand (or for a spec that
has none) it builds the network, loads the weights if asked, evaluates the conditions per layer
(failing layers highlighted) and exits with the verdict: 0 certified, 1 violated (a required
condition fails), 4 uncertified (no theorem covers the updates, or a sufficient condition fails).
"""

from __future__ import annotations

import argparse
import sys

from unfoldc.usage import (
    EXIT_OK,
    EXIT_UNCERTIFIED,
    EXIT_USER,
    add_network_arguments,
    check_depth,
    given_paths,
    require_givens,
)

# check's verdicts: certified 0, violated 1 (a required condition fails), uncertified 4.
VERDICT_EXIT = {"certified": EXIT_OK, "violated": EXIT_USER, "uncertified": EXIT_UNCERTIFIED}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the .unf file")
    add_network_arguments(p, "check")


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
    names = [s.name for s in art.program.by_role("given")]
    givens = given_paths(args.given, names)
    if not givens and names and not args.weights:
        print("(give the operands with --given NAME=FILE.npy to evaluate them)")
        return EXIT_OK
    if not args.weights:  # a weights file holds the givens it was trained with
        require_givens(givens, names)
    from unfoldc.train.errors import TrainError  # imports torch, as evaluating does

    try:
        report = _evaluate(art, givens, args)
    except TrainError as exc:  # bad arrays or weights: a user error, in one line
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    print()
    print(_highlight(str(report), sys.stdout))
    return VERDICT_EXIT[report.verdict]


def _evaluate(art, paths: dict[str, str], args):
    from unfoldc.loader import class_from
    from unfoldc.train import operands

    model = operands.build_from_files(class_from(art), paths, args.weights, args.layers)
    return model.convergence_report()


def _highlight(text: str, stream) -> str:
    from unfoldc.diagnostics import use_color

    if not use_color(stream):
        return text
    return "\n".join(f"\x1b[31;1m{line}\x1b[0m" if line.rstrip().endswith("FAIL") else line
                     for line in text.splitlines())
