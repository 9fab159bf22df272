"""Command-line values that several subcommands share, checked before anything is built.

`check_depth` for `--layers`/`--unroll`-like depths, and `given_paths` for the repeated
`--given NAME=FILE.npy` of `unfoldc check` and `unfoldc export`. Both raise `UsageError`.
"""

from __future__ import annotations

from unfoldc.diagnostics import UsageError
from unfoldc.limits import MAX_LAYERS


def check_depth(option: str, layers: int) -> None:
    """A depth given on the command line: positive and at most MAX_LAYERS (a usage error)."""
    if layers < 1:
        raise UsageError(f"{option} takes a positive number")
    if layers > MAX_LAYERS:
        raise UsageError(f"{option} {layers} is more than {MAX_LAYERS} layers, the most "
                         "unfoldc builds (every layer keeps its parameters and activations)")


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
