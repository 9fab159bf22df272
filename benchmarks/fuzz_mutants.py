"""Mutation fuzzer: random mutants of the examples, compiled, built and run (issue 14).

Run from the repository root:

    python -m benchmarks.fuzz_mutants [--seeds 1 2 3] [--count 200] [--show 5]

For each seed, `--count` mutants (tests/fuzz_mutants.py: one to three random edits of an example)
are compiled; those that compile are built on small random givens, run forward once and asked
for their convergence report. Prints the distribution of outcomes (user error, ran, located
run-time error, internal error, unlocated run-time failure; the last two are bugs, target 0),
the time taken, and the first `--show` bugs with the edited spec. Exits 1 when there is a bug.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzz_mutants import INTERNAL, KINDS, UNLOCATED, run_many  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--count", type=int, default=200, help="mutants per seed")
    parser.add_argument("--show", type=int, default=5, help="bugs to print in full")
    args = parser.parse_args(argv)
    total: Counter = Counter()
    bugs = []
    start = time.perf_counter()
    for seed in args.seeds:
        tally, found = run_many(args.count, seed)
        total += tally
        bugs += found
        print(f"seed {seed}: " + ", ".join(f"{k} {tally[k]}" for k in KINDS))
    seconds = time.perf_counter() - start
    n = sum(total.values())
    print(f"\n{n} mutants in {seconds:.0f} s ({1000 * seconds / max(n, 1):.0f} ms each)")
    for kind in KINDS:
        print(f"  {kind:28s} {total[kind]:6d}  {100 * total[kind] / max(n, 1):5.1f} %")
    for text, outcome in bugs[: args.show]:
        print(f"\n--- {outcome.kind}: {outcome.detail}\n{text}")
    return 1 if total[INTERNAL] or total[UNLOCATED] else 0


if __name__ == "__main__":
    sys.exit(main())
