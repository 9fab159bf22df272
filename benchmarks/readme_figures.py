"""Measure the README quick start's figures, with the conditions they were measured in.

    python benchmarks/readme_figures.py [--skip-tests] [--runs 3]

1. The quick start's training command, read from the README itself (its first `unfoldc train`
   line, so the figure cannot drift from the command a reader runs), run `--runs` times in
   fresh output directories: the training time `unfoldc train` reports (median), the whole
   process time, and NMSE at the last layer, trained and classical.
2. The test suite (`python -m pytest -q -n auto`, what `.ci/run` runs after ruff): how many
   tests and how long, once; then the quick loop (`-m "not slow"`), once.

Every figure is printed with the machine's conditions: CPU count, load average before and
after, torch version and thread settings. On a shared machine the load average says how far
the figures are from an idle machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_command(readme: Path = ROOT / "README.md") -> list[str]:
    """The `unfoldc train ...` command of the README's quick start, as arguments."""
    for line in readme.read_text().splitlines():
        match = re.search(r"unfoldc train (.*?)(?:\s*&&|$)", line)
        if match:
            return shlex.split(match.group(1))
    raise SystemExit("the README has no `unfoldc train` command")


def conditions() -> str:
    """CPU count, load average, torch version and thread settings, on one line."""
    import torch

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return (f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads, "
            f"OMP_NUM_THREADS={threads}), Python {platform.python_version()}")


def train_once(args: list[str]) -> dict:
    """Run the training command once in a fresh directory; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        argv = _with_out(args, out) + ["--no-progress", "--no-plots"]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "unfoldc", "train", *argv], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        process = time.perf_counter() - start
        metrics = json.loads((out / "metrics.json").read_text())
    return {"train_s": metrics["wall_s"], "process_s": process,
            "trained_db": metrics["nmse_db"][-1], "classical_db": metrics["classical_nmse_db"][-1],
            "layers": len(metrics["nmse_db"])}


def _with_out(args: list[str], out: Path) -> list[str]:
    result, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        else:
            result.append(arg)
    return [*result, "--out", str(out)]


def test_suite(*extra: str) -> tuple[str, float]:
    """The pytest summary line and the suite's wall time (`extra`: more pytest arguments)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "auto", "-p",
                           "no:cacheprovider", *extra],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    return summary, wall


def main() -> None:
    """Print the quick start's and the test suite's figures with their conditions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="training runs (median reported)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the test suite")
    options = parser.parse_args()
    command = quick_start_command()
    print(f"conditions before: {conditions()}")
    print(f"quick start: unfoldc train {shlex.join(command)}")
    runs = [train_once(command) for _ in range(options.runs)]
    for k, run in enumerate(runs, start=1):
        print(f"  run {k}: training {run['train_s']:.1f} s, process {run['process_s']:.1f} s, "
              f"NMSE at layer {run['layers']} {run['trained_db']:.2f} dB trained, "
              f"{run['classical_db']:.2f} dB classical")
    print(f"  median training time {statistics.median(r['train_s'] for r in runs):.1f} s, "
          f"median process time {statistics.median(r['process_s'] for r in runs):.1f} s")
    if not options.skip_tests:
        summary, wall = test_suite()
        print(f"test suite (python -m pytest -q -n auto): {summary}; {wall:.0f} s wall")
        summary, wall = test_suite("-m", "not slow")
        print(f"quick loop (python -m pytest -q -n auto -m 'not slow'): {summary}; "
              f"{wall:.0f} s wall")
    print(f"conditions after: {conditions()}")


if __name__ == "__main__":
    main()
