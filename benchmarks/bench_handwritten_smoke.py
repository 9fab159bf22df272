"""Smoke benchmark of the hand-written unfolded networks: forward+backward median times.

Run from the repository root:

    python -m benchmarks.bench_handwritten_smoke [--runs 25] [--warmup 5] [--device cpu] [--m 250]

Problem size: m = 250, n = 500, batch 256, 16 layers, float32. One timed run is a forward pass,
an MSE loss against a fixed target and a backward pass to every parameter. Before timing, the
script checks in float64 that the models compute what they should (naive == careful ISTA, and
untrained LISTA == untrained ISTA), so a fast but wrong variant cannot produce a figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):
    # Run as a script (`python benchmarks/...py`): make the `benchmarks` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.handwritten import LISTA, LearnedISTA, NaiveISTA  # noqa: E402

M, N, BATCH, LAYERS = 250, 500, 256, 16


def make_problem(dtype: torch.dtype, device: str, m: int = M, seed: int = 0):
    """Return `(H, x, target)`: a Gaussian `H`, observations of sparse codes, and the codes."""
    gen = torch.Generator().manual_seed(seed)
    H = torch.randn(m, N, generator=gen, dtype=torch.float64) / m**0.5
    codes = torch.randn(BATCH, N, generator=gen, dtype=torch.float64)
    codes = codes * (torch.rand(BATCH, N, generator=gen, dtype=torch.float64) < 0.1)
    x = codes @ H.T + 0.01 * torch.randn(BATCH, m, generator=gen, dtype=torch.float64)
    return (t.to(dtype=dtype, device=device) for t in (H, x, codes))


def check_agreement(device: str, m: int) -> None:
    """Fail loudly unless the variants agree in float64 at the benchmark size."""
    H, x, _ = make_problem(torch.float64, device, m)
    careful = LearnedISTA(H, LAYERS).to(device)
    naive = NaiveISTA(H, LAYERS).to(device)
    lista = LISTA(H, LAYERS).to(device)
    with torch.no_grad():
        reference = careful(x)
        torch.testing.assert_close(naive(x), reference, rtol=0, atol=1e-10)
        torch.testing.assert_close(lista(x), reference, rtol=0, atol=1e-10)


def time_forward_backward(model, x, target, runs: int, warmup: int, device: str) -> list[float]:
    """Return the wall-clock seconds of `runs` forward+backward passes, after `warmup` ones."""
    times = []
    for i in range(warmup + runs):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        if device.startswith("cuda"):
            # CUDA calls return before the kernels finish; wait so the clock measures the work.
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    """Check the models, time them and print medians and naive/careful ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25, help="timed runs per model (>= 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--device", default="cpu")
    # Hoisting H^T H only pays when m > n / 2; other m show where the crossover lies.
    parser.add_argument("--m", type=int, default=M, help=f"rows of H (default {M}; n = {N})")
    args = parser.parse_args(argv)

    check_agreement(args.device, args.m)
    H, x, target = make_problem(torch.float32, args.device, args.m)
    models = {
        "ista (careful)": LearnedISTA(H, LAYERS),
        "ista (naive)": NaiveISTA(H, LAYERS),
        "lista (careful)": LISTA(H, LAYERS),
    }
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    print(
        f"m={args.m} n={N} batch={BATCH} layers={LAYERS} float32, forward+backward, "
        f"median of {args.runs} runs after {args.warmup} warmup"
    )
    medians = {}
    for name, model in models.items():
        times = time_forward_backward(
            model.to(args.device), x, target, args.runs, args.warmup, args.device
        )
        medians[name] = statistics.median(times)
        low, high = min(times), max(times)
        print(
            f"  {name:<16} median {1e3 * medians[name]:8.2f} ms  "
            f"(min {1e3 * low:.2f}, max {1e3 * high:.2f})"
        )
    ratio = medians["ista (naive)"] / medians["ista (careful)"]
    print(f"  ratio ista naive/careful: {ratio:.2f}")


if __name__ == "__main__":
    main()
