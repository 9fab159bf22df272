"""Compile time of every example, per stage and as a whole `unfoldc compile` process.

Run from the repository root:

    python -m benchmarks.bench_compile [--runs 20] [--cli-runs 10] [--examples ista lista ...]

Prints, for each examples/*.unf:
  - in-process stage times (median of --runs): read, parse, check (+ lowering and IR lint),
    passes (each followed by lint), codegen, and `unfoldc.compile` end to end;
  - whole-process CLI time: `python -m unfoldc compile X.unf -o TMP` in a subprocess (median of
    --cli-runs), next to a bare `python -c pass` for the interpreter's own start-up;
and then whether `unfoldc compile` imports torch (it should not: compiling needs no torch). That
is checked with `python -X importtime`, which also names the import chain that pulled torch in.
Exits with status 1 when torch is imported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))  # run as a script: make `unfoldc` importable from the checkout

import unfoldc  # noqa: E402
from unfoldc.codegen.module import emit_module  # noqa: E402
from unfoldc.ir.lint import lint  # noqa: E402
from unfoldc.pipeline import Options, optimize, read_source  # noqa: E402
from unfoldc.semantics.check import check  # noqa: E402
from unfoldc.semantics.lower import lower  # noqa: E402
from unfoldc.syntax import parser as unf_parser  # noqa: E402
from unfoldc.syntax.grammar import lark_parser  # noqa: E402

STAGES = ("read", "parse", "check", "passes", "codegen", "total")


def stage_times(path: Path) -> dict[str, float]:
    """Seconds spent in each stage of one in-process compilation (the parser already built)."""
    clock = time.perf_counter
    t0 = clock()
    source = read_source(path)
    t1 = clock()
    ast = unf_parser.parse(source)
    t2 = clock()
    program = lint(lower(check(ast, source)), after="lower")
    t3 = clock()
    optimized, _ = optimize(program, Options())
    t4 = clock()
    emit_module(optimized, source)
    t5 = clock()
    unfoldc.compile(path)
    t6 = clock()
    return dict(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)))


def median_stage_times(path: Path, runs: int) -> dict[str, float]:
    """Median over `runs` compilations of each stage's time."""
    samples = [stage_times(path) for _ in range(runs)]
    return {s: statistics.median(x[s] for x in samples) for s in STAGES}


def grammar_build_time() -> float:
    """Seconds to build the Lark LALR parser from the grammar (done once per process)."""
    lark_parser.cache_clear()  # built once per process: clear it to time the one-off cost
    start = time.perf_counter()
    lark_parser()
    return time.perf_counter() - start


def process_time(argv: list[str], runs: int) -> float:
    """Median wall-clock seconds of running `argv` to completion (it must exit 0)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_argv(spec: Path, out: Path) -> list[str]:
    """The CLI command that compiles `spec` into `out`."""
    return [sys.executable, "-m", "unfoldc", "compile", str(spec), "-o", str(out)]


def api_argv(spec: Path) -> list[str]:
    """A process that compiles `spec` through the Python API and writes nothing."""
    return [sys.executable, "-c", "import sys, unfoldc; unfoldc.compile(sys.argv[1])", str(spec)]


def torch_import_chain(spec: Path, out: Path) -> list[str]:
    """The modules through which `unfoldc compile` imports torch, outermost first ([] if none).

    `-X importtime` lists each module after the ones it imported, indented by nesting depth; the
    importer of a line is the next line below it that is indented less.
    """
    proc = subprocess.run([sys.executable, "-X", "importtime", *cli_argv(spec, out)[1:]],
                          check=True, cwd=ROOT, capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1]
            rows.append((len(name) - len(name.lstrip()), name.strip()))
    start = next((i for i, (_, name) in enumerate(rows) if name == "torch"), None)
    if start is None:
        return []
    chain, depth = ["torch"], rows[start][0]
    for indent, name in rows[start + 1:]:
        if indent < depth:
            chain.append(name)
            depth = indent
    return chain[::-1]


def main(argv: list[str] | None = None) -> int:
    """Measure and print the tables; return 1 when the CLI imports torch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="in-process compilations per spec")
    parser.add_argument("--cli-runs", type=int, default=10, help="CLI processes per spec")
    parser.add_argument("--examples", nargs="*", help="example names (default: all)")
    args = parser.parse_args(argv)
    specs = sorted((ROOT / "examples").glob("*.unf"))
    if args.examples:
        specs = [ROOT / "examples" / f"{name}.unf" for name in args.examples]

    print(f"python {sys.version.split()[0]}, unfoldc {unfoldc.__version__}")
    print(f"grammar -> LALR parser (once per process): {1e3 * grammar_build_time():.1f} ms")
    print(f"\nin-process, median of {args.runs} (ms):")
    print(f"  {'spec':<12}" + "".join(f"{s:>9}" for s in STAGES))
    for spec in specs:
        med = median_stage_times(spec, args.runs)
        print(f"  {spec.stem:<12}" + "".join(f"{1e3 * med[s]:9.2f}" for s in STAGES))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "generated.py"
        bare = process_time([sys.executable, "-c", "pass"], args.cli_runs)
        print(f"\nwhole process `python -m unfoldc compile X.unf -o {out.name}`, "
              f"median of {args.cli_runs} (ms); bare `python -c pass`: {1e3 * bare:.0f} ms")
        print(f"  {'spec':<12}{'CLI':>9}{'API':>9}   (API: `python -c 'import unfoldc; "
              f"unfoldc.compile(X)'`, the floor without the CLI's extra imports)")
        for spec in specs:
            cli = process_time(cli_argv(spec, out), args.cli_runs)
            api = process_time(api_argv(spec), args.cli_runs)
            print(f"  {spec.stem:<12}{1e3 * cli:9.0f}{1e3 * api:9.0f}")
        chain = torch_import_chain(specs[0], out)
    if chain:
        print(f"\nFAIL: `unfoldc compile` imports torch, via {' -> '.join(chain)}")
        return 1
    print("\nok: `unfoldc compile` does not import torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
