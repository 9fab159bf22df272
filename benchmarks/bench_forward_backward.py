"""Forward+backward time of generated ISTA / LISTA against the hand-written baselines.

Run from the repository root:

    python -m benchmarks.bench_forward_backward [--runs 30] [--warmup 5] [--threads 2]
                                                [--data ../shared/data/alista/...npz]

Problem: m = 250, n = 500, batch 256, 16 layers, float32 on the CPU. `H` is the published ALISTA
matrix `A` when the data file exists (else a Gaussian one with the same statistics); the batch is
`y = A x` for the first 256 published test signals (else random sparse codes). One timed run is a
forward pass, the loss `mean(output^2)` and a backward pass to every parameter.

Candidates (all measured interleaved, round-robin with a rotating start, in one process):
  - ista (generated)          `unfoldc.load("examples/ista.unf")`
  - ista (generated, no-gram) the same compiled with `Options(gram=False)` (`--no-gram`)
  - ista (careful)            benchmarks.handwritten.LearnedISTA (H^T H and H^T x hoisted)
  - ista (naive)              benchmarks.handwritten.NaiveISTA (two products per layer)
  - lista (generated)         `unfoldc.load("examples/lista.unf")`
  - lista (careful)           benchmarks.handwritten.LISTA

Before timing, each generated module is checked against its hand-written twin in float64, so a
fast but wrong variant cannot produce a figure. The target: generated within 5% of careful.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` and `unfoldc` importable

import unfoldc  # noqa: E402
from benchmarks.handwritten import LISTA, LearnedISTA, NaiveISTA  # noqa: E402

M, N, BATCH, LAYERS = 250, 500, 256, 16
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "alista" / "sparse_recovery_250x500.npz"
TARGET = 1.05  # generated / careful must stay below this


def load_problem(data: Path, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Return `(H, x, origin)` in float64: the operator, a batch of observations, where from."""
    if data.exists():
        with np.load(data) as npz:
            H = torch.from_numpy(np.asarray(npz["A"], dtype=np.float64))
            codes = torch.from_numpy(np.asarray(npz["x_test"][:BATCH], dtype=np.float64))
        origin = f"published A from {data.resolve()}"
    else:
        gen = torch.Generator().manual_seed(seed)
        H = torch.randn(M, N, generator=gen, dtype=torch.float64) / M**0.5
        codes = torch.randn(BATCH, N, generator=gen, dtype=torch.float64)
        codes = codes * (torch.rand(BATCH, N, generator=gen, dtype=torch.float64) < 0.1)
        origin = f"random Gaussian H (no file at {data})"
    return H, codes @ H.T, origin


def build_candidates(H: torch.Tensor) -> dict[str, torch.nn.Module]:
    """Every candidate, built on `H` (whose dtype sets theirs)."""
    ista = unfoldc.load(ROOT / "examples" / "ista.unf")
    ista_nogram = unfoldc.load(ROOT / "examples" / "ista.unf", unfoldc.Options(gram=False))
    lista = unfoldc.load(ROOT / "examples" / "lista.unf")
    return {
        "ista (generated)": ista(H=H, num_layers=LAYERS),
        "ista (generated, no-gram)": ista_nogram(H=H, num_layers=LAYERS),
        "ista (careful)": LearnedISTA(H, LAYERS),
        "ista (naive)": NaiveISTA(H, LAYERS),
        "lista (generated)": lista(H=H, num_layers=LAYERS),
        "lista (careful)": LISTA(H, LAYERS),
    }


# generated candidate -> the hand-written one it must agree with
TWINS = {
    "ista (generated)": "ista (careful)",
    "ista (generated, no-gram)": "ista (naive)",
    "lista (generated)": "lista (careful)",
}


def check_agreement(H: torch.Tensor, x: torch.Tensor) -> float:
    """Assert in float64 that every generated module computes what its twin does (and ISTA's
    twins agree with each other); return the largest absolute difference seen."""
    models = build_candidates(H.double())
    x = x.double()
    worst = 0.0
    with torch.no_grad():
        outs = {name: model(x) for name, model in models.items()}
    pairs = list(TWINS.items()) + [("ista (naive)", "ista (careful)"),
                                   ("lista (careful)", "ista (careful)")]
    for got, want in pairs:
        torch.testing.assert_close(outs[got], outs[want], rtol=0, atol=1e-10,
                                   msg=lambda m, g=got, w=want: f"{g} vs {w}: {m}")
        worst = max(worst, (outs[got] - outs[want]).abs().max().item())
    return worst


# wall: elapsed time. cpu: CPU time of this process (all its threads), which a busy shared
# machine inflates far less than wall time; with one thread it measures the work itself.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def one_run(model: torch.nn.Module, x: torch.Tensor, clock=time.perf_counter) -> float:
    """Seconds for one forward pass, loss mean(output^2) and backward pass."""
    model.zero_grad(set_to_none=True)
    start = clock()
    loss = model(x).square().mean()
    loss.backward()
    return clock() - start


def time_interleaved(models: dict, x: torch.Tensor, runs: int, warmup: int,
                     clock=time.perf_counter) -> dict[str, list]:
    """Round-robin timing: every round runs each model once, starting one further along."""
    names = list(models)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            seconds = one_run(models[name], x, clock)
            if r >= warmup:
                times[name].append(seconds)
    return times


def report(times: dict[str, list[float]]) -> dict[str, float]:
    """Print one line per candidate and the ratios; return the medians."""
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        q = statistics.quantiles(t, n=4)
        print(f"  {name:<27} median {1e3 * med[name]:8.2f} ms   "
              f"(IQR {1e3 * q[0]:.2f}-{1e3 * q[2]:.2f}, min {1e3 * min(t):.2f})")
    print("ratios generated / hand-written:")
    rows = [("ista generated / careful", "ista (generated)", "ista (careful)"),
            ("ista generated / naive", "ista (generated)", "ista (naive)"),
            ("ista no-gram / careful", "ista (generated, no-gram)", "ista (careful)"),
            ("ista no-gram / naive", "ista (generated, no-gram)", "ista (naive)"),
            ("lista generated / careful", "lista (generated)", "lista (careful)")]
    print(f"  {'':<27} {'medians':>8} {'paired':>8} {'mins':>8}")
    for label, a, b in rows:
        ratio = med[a] / med[b]
        # Per-round ratios pair runs made seconds apart, so a load change on a shared machine
        # shifts both; their median is the steadier figure when other work competes for cores.
        paired = statistics.median(x / y for x, y in zip(times[a], times[b]))
        mins = min(times[a]) / min(times[b])
        flag = "" if "careful" not in label or "no-gram" in label else (
            "  ok (<= 1.05)" if paired <= TARGET else "  ABOVE TARGET 1.05")
        print(f"  {label:<27} {ratio:8.3f} {paired:8.3f} {mins:8.3f}{flag}")
    return med


def main(argv: list[str] | None = None) -> None:
    """Check agreement, time every candidate interleaved, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per candidate (>= 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ALISTA .npz file")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or process CPU time (steadier on a busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    H, x, origin = load_problem(args.data)
    worst = check_agreement(H, x)
    print(f"agreement (float64): generated == hand-written, max |diff| {worst:.2e}")
    models = build_candidates(H.float())
    xf = x.float()
    print(f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads, "
          f"{args.clock} clock; {origin}")
    print(f"m={M} n={N} batch={BATCH} layers={LAYERS} float32, forward + mean(out^2) + backward,"
          f" interleaved, median of {args.runs} runs after {args.warmup} warm-up rounds")
    report(time_interleaved(models, xf, args.runs, args.warmup, CLOCKS[args.clock]))


if __name__ == "__main__":
    main()
