"""Cost of `convergence_report()` relative to one forward pass, for every example.

    python benchmarks/bench_convergence.py [--m 250 --n 500 --batch 256 --threads 1]

Prints, per example, the median wall time of the report and of a forward pass (no grad) and
their ratio (runs interleaved). Sizes above 128 use the Krylov (matrix-free) path of the report.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import unfoldc

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("ista", "lista", "lista_cp", "fista", "admm_lasso", "rpca")


def interleaved_medians(fns, repeat: int) -> list[float]:
    """Median wall time of each function, runs interleaved (load from other processes hits
    every function alike, so the ratios stay meaningful on a shared machine)."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def bench(name: str, m: int, n: int, batch: int, repeat: int) -> tuple[float, float]:
    cls = unfoldc.load(EXAMPLES / f"{name}.unf")
    g = torch.Generator().manual_seed(0)
    if cls.GIVENS:
        model = cls(H=torch.randn(m, n, generator=g) / m ** 0.5)
        x = torch.randn(batch, m, generator=g)
    else:  # robust PCA: a batch of small matrices
        model, x = cls(), torch.randn(batch, 32, 32, generator=g)

    def forward():
        with torch.no_grad():
            model(x)

    report, fwd = interleaved_medians([model.convergence_report, forward], repeat)
    return report, fwd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=250)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"H: {args.m} x {args.n}, batch {args.batch}, {args.threads} thread(s), "
          f"16 layers, float32, torch {torch.__version__}")
    print(f"{'example':<12} {'report ms':>10} {'forward ms':>11} {'ratio':>7}")
    for name in NAMES:
        report, forward = bench(name, args.m, args.n, args.batch, args.repeat)
        print(f"{name:<12} {1e3 * report:>10.2f} {1e3 * forward:>11.2f} "
              f"{report / forward:>7.2f}")


if __name__ == "__main__":
    main()
