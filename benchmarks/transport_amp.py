"""Figures for issue 12's examples: log-domain Sinkhorn at small regularization, learned AMP.

    python benchmarks/transport_amp.py [--seed 0]

Sinkhorn (examples/sinkhorn.unf, untrained: it has no trainables) on a 50 x 50 cost in [0, 1]:
whether every value stays finite, the target-marginal error (exact after each layer, by
construction of the g update) and the source-marginal error after K layers, beside the
classical scaling form `u <- a / (K @ v)` (K = exp(-C / epsilon)), for epsilon = 1e-3 in float64
and float32 and epsilon = 1e-4 in float64.
LAMP (examples/lamp.unf, untrained: AMP with tau = 1.1 ||z|| / sqrt(m)) against the same
iteration without the Onsager term, on sparse recovery with m = 250, n = 500, 5% nonzeros,
noise 0.01: the NMSE in dB after K layers (averaged over the batch).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import unfoldc  # noqa: E402

F64 = torch.float64
SCALING = """algorithm SinkhornScaling
given  C : matrix[m, n]
input  a : vector[m]
input  b : vector[n]
param  epsilon : scalar = 0.001
let    K = exp(-C / epsilon)
state  u : vector[m] = 1
state  v : vector[n] = 1
state  P : matrix[m, n] = 0
layers 100:
    u <- a / (K @ v)
    v <- b / (K.T @ u)
    P <- outer(u, v) * K
output P
"""


def sinkhorn(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    m = n = 50
    C = torch.rand(m, n, generator=g, dtype=F64)
    a = torch.rand(4, m, generator=g, dtype=F64) + 0.1
    b = torch.rand(4, n, generator=g, dtype=F64) + 0.1
    a, b = a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)
    log_domain = unfoldc.load(ROOT / "examples" / "sinkhorn.unf")
    scaling = unfoldc.load_source(SCALING, name="scaling.unf")
    print("Sinkhorn, 50 x 50 cost uniform in [0, 1], batch 4")
    print(f"{'epsilon':>8} {'dtype':>8} {'K':>5} {'form':>8} {'finite':>7} {'|P 1 - a|_inf':>14}"
          f" {'|P^T 1 - b|_inf':>16} {'ms':>7}")
    for eps, dtype, K in ((1e-3, F64, 10), (1e-3, F64, 100), (1e-3, F64, 1000),
                          (1e-3, torch.float32, 100), (1e-4, F64, 100)):
        for form, cls in (("log", log_domain), ("scaling", scaling)):
            model = cls(C=C.to(dtype), num_layers=K, epsilon=eps)
            start = time.perf_counter()
            out = model(a.to(dtype), b.to(dtype))
            ms = 1000 * (time.perf_counter() - start)
            P = (out[0] if isinstance(out, tuple) else out).double()
            finite = bool(torch.isfinite(P).all())
            rows = float((P.sum(-1) - a).abs().max())
            cols = float((P.sum(-2) - b).abs().max())
            print(f"{eps:>8g} {str(dtype)[6:]:>8} {K:>5} {form:>8} {str(finite):>7} "
                  f"{rows:>14.3g} {cols:>16.3g} {ms:>7.1f}")


def amp(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    m, n, k, batch = 250, 500, 25, 32
    A = torch.randn(m, n, generator=g, dtype=F64) / math.sqrt(m)
    x0 = torch.zeros(batch, n, dtype=F64)
    for i in range(batch):
        x0[i, torch.randperm(n, generator=g)[:k]] = torch.randn(k, generator=g, dtype=F64)
    y = x0 @ A.T + 0.01 * torch.randn(batch, m, generator=g, dtype=F64)
    text = (ROOT / "examples" / "lamp.unf").read_text("utf-8")
    lamp = unfoldc.load_source(text, name="lamp.unf")
    ist = unfoldc.load_source(text.replace(" + z * mean(abs(r) > tau) / delta", "").replace(
        "let    delta = m / n", ""), name="ist.unf")
    print(f"\nAMP (untrained LAMP) vs the same iteration without the Onsager term: m = {m}, "
          f"n = {n}, {k} nonzeros, noise 0.01, batch {batch}; NMSE in dB")
    print(f"{'K':>4} {'with Onsager':>13} {'without':>9}")
    for K in (2, 5, 10, 20):
        nmse = []
        for cls in (lamp, ist):
            with torch.no_grad():
                err = (cls(A=A, num_layers=K)(y) - x0).square().sum(-1) / x0.square().sum(-1)
            nmse.append(10 * math.log10(float(err.mean())))
        print(f"{K:>4} {nmse[0]:>13.1f} {nmse[1]:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sinkhorn(args.seed)
    amp(args.seed)


if __name__ == "__main__":
    main()
