"""`unfoldc check SPEC [--given H=FILE.npy ...] [--weights FILE]`: the convergence conditions.

Without data it prints the symbolic conditions. With every given operand (or for a spec that
has none) it builds the network, loads the weights if asked, evaluates the conditions per layer
(failing layers highlighted) and exits 1 when a required condition fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the .unf file")
    p.add_argument("--given", action="append", default=[], metavar="NAME=FILE.npy",
                   help="a given operand as a NumPy .npy file (repeat for several)")
    p.add_argument("--weights", metavar="FILE",
                   help="trained weights: a safetensors file or a torch state_dict")
    p.add_argument("--layers", type=int, metavar="K", help="number of layers (default: spec)")


def run(args) -> int:
    from unfoldc.cli import UsageError
    from unfoldc.convergence.derive import derive, symbolic_text
    from unfoldc.pipeline import compile_file

    art = compile_file(args.spec)
    an = derive(art.program)
    print(f"{art.program.name}: convergence conditions derived from {art.program.source_name}")
    for line in symbolic_text(an):
        print("  " + line)
    givens = dict(_parse_given(g, UsageError) for g in args.given)
    names = [s.name for s in art.program.by_role("given")]
    unknown = sorted(set(givens) - set(names))
    if unknown:
        raise UsageError(f"the spec has no given named {', '.join(unknown)} "
                         f"(givens: {', '.join(names) or 'none'})")
    if not givens and names:
        print("(give the operands with --given NAME=FILE.npy to evaluate them)")
        return EXIT_OK
    missing = [n for n in names if n not in givens]
    if missing:
        raise UsageError(f"missing --given for {', '.join(missing)}")
    report = _evaluate(art, givens, args)
    print()
    print(_highlight(str(report), sys.stdout))
    return EXIT_OK if report.ok else EXIT_FAIL


def _parse_given(text: str, usage) -> tuple[str, object]:
    import numpy as np

    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise usage(f"--given takes NAME=FILE.npy, got {text!r}")
    return name, np.load(Path(path))


def _evaluate(art, givens: dict, args):
    import torch

    from unfoldc.loader import _class_from

    cls = _class_from(art)
    kw = {cls_name: torch.as_tensor(v) for cls_name, v in givens.items()}
    if args.layers:
        kw["num_layers"] = args.layers
    model = cls(**kw)
    if args.weights:
        model.load_state_dict(_load_weights(args.weights))
    return model.convergence_report()


def _load_weights(path: str) -> dict:
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _highlight(text: str, stream) -> str:
    from unfoldc.diagnostics import use_color

    if not use_color(stream):
        return text
    return "\n".join(f"\x1b[31;1m{line}\x1b[0m" if line.rstrip().endswith("FAIL") else line
                     for line in text.splitlines())
