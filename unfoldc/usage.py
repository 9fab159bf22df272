"""What every command-line front end shares: exit codes, the usage error, the depth check.

It lives below `unfoldc.cli` and the subcommand modules (`convergence/cli.py`, `train/cli.py`) so
that they import it instead of each other.
"""

from __future__ import annotations

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
