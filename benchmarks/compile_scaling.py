"""Compile time against the size of the spec: is `unfoldc.compile` near-linear? (issue 14)

Run from the repository root:

    python -m benchmarks.compile_scaling [--sizes 10 100 1000] [--depths 5 10 20 30] [--runs 3]

Each family is a spec generated at several sizes N, written to a temporary file and compiled in
process with `unfoldc.compile` (median of --runs wall times, after one warm-up compile of the
smallest spec that loads the grammar):

  - independent updates: N states, each updated once from its own gradient step;
  - independent temporaries: N temporaries, each a proximal step from the state, summed pairwise
    (N - 1 more temporaries) into one update;
  - chained temporaries: t0 from the state, t_k = soft(t_(k-1), ...), the update reads the last;
  - consecutive updates: N updates of one state in a layer (the convergence analysis affords 1000
    inlined operations per statement and reports the rest as skipped);
  - nested funcs: depth D, each level calling the one below once (a call inlines D levels).

Prints a table of times and the ratio time(10 N) / time(N) (time(2 D) / time(D) for funcs): near
10 (near 2) is linear growth, near 100 quadratic. A compile that runs past --budget seconds is
stopped (SIGALRM; Unix only) and shown as `>budget`; the larger sizes of its family are skipped.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))  # run as a script: make `unfoldc` importable from the checkout

import unfoldc  # noqa: E402

HEAD = """algorithm Scale
given  H : matrix[m, n]
input  x : vector[m]
let    L = opnorm(H)^2
train  mu : scalar per_layer = 1 / L   positive
"""
STEP = "mu * H.T @ (H @ {s} - x)"


def independent_updates(n: int) -> str:
    states = "".join(f"state  s{k} : vector[n] = 0\n" for k in range(n))
    body = "".join(f"    s{k} <- soft(s{k} - {STEP.format(s=f's{k}')}, mu * 0.1)\n"
                   for k in range(n))
    outputs = ", ".join(f"s{k}" for k in range(n))
    return f"{HEAD}{states}layers 4:\n{body}output {outputs}\n"


def independent_temporaries(n: int) -> str:
    lines = [f"    t{k} = soft(s - {STEP.format(s='s')}, mu * {k + 1} / {n})" for k in range(n)]
    level, names = 0, [f"t{k}" for k in range(n)]
    while len(names) > 1:  # pairwise sums: every temporary is read once
        pairs = [names[i : i + 2] for i in range(0, len(names), 2)]
        names = [f"u{level}_{j}" if len(p) == 2 else p[0] for j, p in enumerate(pairs)]
        lines += [f"    {name} = {p[0]} + {p[1]}" for name, p in zip(names, pairs) if len(p) == 2]
        level += 1
    body = "\n".join(lines) + f"\n    s <- {names[0]} / {n}\n"
    return f"{HEAD}state  s : vector[n] = 0\nlayers 4:\n{body}output s\n"


def chained_temporaries(n: int) -> str:
    body = f"    t0 = s - {STEP.format(s='s')}\n"
    body += "".join(f"    t{k} = soft(t{k - 1}, mu * 0.01)\n" for k in range(1, n))
    return f"{HEAD}state  s : vector[n] = 0\nlayers 4:\n{body}    s <- t{n - 1}\noutput s\n"


def consecutive_updates(n: int) -> str:
    body = f"    s <- soft(s - {STEP.format(s='s')}, mu * 0.1)\n" * n
    return f"{HEAD}state  s : vector[n] = 0\nlayers 4:\n{body}output s\n"


def nested_funcs(depth: int) -> str:
    funcs = "func f0(a : scalar) = a * a\n"
    funcs += "".join(f"func f{k}(a : scalar) = 0.5 * f{k - 1}(a) + a\n"
                     for k in range(1, depth + 1))
    body = f"    s <- s - f{depth}(mu) * H.T @ (H @ s - x)\n"
    return f"{HEAD}state  s : vector[n] = 0\n{funcs}layers 4:\n{body}output s\n"


FAMILIES: dict[str, Callable[[int], str]] = {
    "independent updates": independent_updates,
    "independent temporaries": independent_temporaries,
    "chained temporaries": chained_temporaries,
    "consecutive updates": consecutive_updates,
}


class OverBudget(Exception):
    """A compile that ran past --budget seconds (raised by SIGALRM inside it)."""


def _alarm(signum, frame):
    raise OverBudget


def compile_time(text: str, runs: int, budget: float = 0) -> float:
    """Median wall time of `unfoldc.compile` on `text` saved as a file, in seconds.

    With a `budget`, a compile is stopped after that many seconds (OverBudget), and a first
    compile longer than a third of it is not repeated.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scale.unf"
        path.write_text(text, "utf-8")
        times: list[float] = []
        previous = signal.signal(signal.SIGALRM, _alarm)
        try:
            while len(times) < runs and not (budget and sum(times) > budget / 3):
                signal.setitimer(signal.ITIMER_REAL, budget)
                start = time.perf_counter()
                unfoldc.compile(path)
                times.append(time.perf_counter() - start)
                if budget and times[-1] >= budget:  # the alarm was caught inside the compiler
                    raise OverBudget
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return statistics.median(times)


def _family(sizes: list[int], make: Callable[[int], str], args) -> list[float | None]:
    """Times per size; None from the first size that runs past the budget on."""
    seconds: list[float | None] = []
    for n in sizes:
        try:
            seconds.append(None if seconds and seconds[-1] is None else
                           compile_time(make(n), args.runs, args.budget))
        except OverBudget:
            seconds.append(None)
    return seconds


def _row(name: str, sizes: list[int], seconds: list[float | None], budget: float) -> str:
    cells = "  ".join(f"N={n:<5d}" + (f"{t:8.3f} s" if t is not None else f">{budget:6.0f} s ")
                      for n, t in zip(sizes, seconds))
    ratios = "  ".join(f"{b / a:5.1f}" if a and b else "    -"
                       for a, b in zip(seconds, seconds[1:]))
    return f"{name:24s} {cells}   ratios {ratios}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--depths", type=int, nargs="+", default=[5, 10, 20, 30])
    parser.add_argument("--runs", type=int, default=3, help="compiles per spec (median)")
    parser.add_argument("--budget", type=float, default=120,
                        help="seconds after which a compile is stopped and larger sizes skipped")
    args = parser.parse_args(argv)
    compile_time(consecutive_updates(1), 1)  # load the grammar and the imports once
    print(f"unfoldc.compile, median of {args.runs} (one run above {args.budget / 3:.0f} s; "
          f"stopped at {args.budget:.0f} s); ratio time(next) / time(N)")
    for name, make in FAMILIES.items():
        print(_row(name, args.sizes, _family(args.sizes, make, args), args.budget), flush=True)
    seconds = _family(args.depths, nested_funcs, args)
    print(_row("nested funcs (depth)", args.depths, seconds, args.budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
