"""What every command-line front end shares: exit codes, the usage error, the depth check.

It lives below `unfoldc.cli` and the subcommand modules (`convergence/cli.py`, `train/cli.py`,
`export/cli.py`) so that they import it instead of each other. `add_network_arguments`,
`given_paths` and `require_givens` are how `unfoldc check` and `unfoldc export` take the network
to build (`--given NAME=FILE.npy`, `--weights`, `--layers`).
"""

from __future__ import annotations

import argparse

from unfoldc.limits import MAX_LAYERS

# 0 ok, 1 a mistake in the user's spec or data (or `check`: a violated condition), 2 usage,
# 3 internal error (a compiler bug), 4 `check`: uncertified.
EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL, EXIT_UNCERTIFIED = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad command-line usage detected after argparse (exit code 2)."""


def check_depth(option: str, layers: int) -> None:
    """A depth given on the command line: positive and at most MAX_LAYERS (a usage error)."""
    if layers < 1:
        raise UsageError(f"{option} takes a positive number")
    if layers > MAX_LAYERS:
        raise UsageError(f"{option} {layers} is more than {MAX_LAYERS} layers, the most "
                         "unfoldc builds (every layer keeps its parameters and activations)")


def add_network_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    """--given, --weights, --layers and --enforce-convergence, for a command that `verb`s."""
    p.add_argument("--given", action="append", default=[], metavar="NAME=FILE.npy",
                   help="a given operand as a NumPy .npy file (repeat for several)")
    p.add_argument("--weights", metavar="FILE",
                   help="trained weights: a weights.safetensors written by `unfoldc train` "
                   "(its givens and depth are used unless --given / --layers say otherwise)")
    p.add_argument("--layers", type=int, metavar="K", help="number of layers (default: spec)")
    p.add_argument("--enforce-convergence", action="store_true",
                   help=f"{verb} the network as compiled (and trained) with "
                   "--enforce-convergence")


def given_paths(texts: list[str], names: list[str]) -> dict[str, str]:
    """{name: path} from `--given NAME=FILE.npy` texts, every name one of the spec's `names`."""
    paths = dict(_parse_given(text) for text in texts)
    unknown = sorted(set(paths) - set(names))
    if unknown:
        raise UsageError(f"the spec has no given named {', '.join(unknown)} "
                         f"(givens: {', '.join(names) or 'none'})")
    return paths


def require_givens(paths: dict[str, str], names: list[str]) -> None:
    """Every given of the spec named with --given (when no weights file holds them)."""
    missing = [n for n in names if n not in paths]
    if missing:
        raise UsageError(f"missing --given for {', '.join(missing)}")


def _parse_given(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise UsageError(f"--given takes NAME=FILE.npy, got {text!r}")
    return name, path
