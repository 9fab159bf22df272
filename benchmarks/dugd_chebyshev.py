"""Deep-unfolded gradient descent (Takabe & Wadayama 2020) against the Chebyshev steps.

On one least-squares problem min_s 0.5 ||H s - x||^2 (H Gaussian, m x n), the network of
examples/dugd.unf is run with three step schedules of T layers and compared by the error after
T layers, ||s_T - s*||^2 / ||s*||^2 (s* the least-squares solution), on fresh test data:

- constant: every step 1 / lambda_max(H^T H) (plain gradient descent, untrained);
- Chebyshev: the Chebyshev steps of H^T H's spectrum [lambda_min, lambda_max] (untrained);
- trained: started from the constant schedule and trained with the incremental scheme of
  `unfoldc.train.fit` (the scheme that avoids the symmetric plateau of equal starting steps).

It prints the steps side by side (each sorted: the order of the steps does not change the
result of a linear iteration on one symmetric matrix), the errors, and each network's
convergence verdict and network bound from its convergence report.

    python benchmarks/dugd_chebyshev.py [--m 120] [--n 60] [--layers 8] [--steps 150]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import unfoldc
from unfoldc.train.fit import fit

ROOT = Path(__file__).resolve().parents[1]


def chebyshev_steps(lo: float, hi: float, count: int) -> np.ndarray:
    """The Chebyshev step sizes of a spectrum [lo, hi] for `count` gradient steps."""
    j = np.arange(count)
    return 1.0 / ((hi + lo) / 2 + (hi - lo) / 2 * np.cos((2 * j + 1) * math.pi / (2 * count)))


def problem(m: int, n: int, seed: int):
    """H (m x n, N(0, 1/m) entries) and the extreme eigenvalues of H^T H."""
    rng = np.random.default_rng(seed)
    H = rng.standard_normal((m, n)) / math.sqrt(m)
    eig = np.linalg.eigvalsh(H.T @ H)
    return H, float(eig[0]), float(eig[-1])


def samples(H: np.ndarray, count: int, seed: int) -> dict[str, np.ndarray]:
    """Observations x ~ N(0, I) and their least-squares solutions s* (the targets)."""
    x = np.random.default_rng(seed).standard_normal((count, H.shape[0]))
    return {"x": x, "s": np.linalg.lstsq(H, x.T, rcond=None)[0].T}


def error(model, data: dict[str, np.ndarray]) -> float:
    """||s_T - s*||^2 / ||s*||^2 over the test set (a ratio of sums)."""
    with torch.no_grad():
        s = model(torch.tensor(data["x"])).numpy()
    return float(((s - data["s"]) ** 2).sum() / (data["s"] ** 2).sum())


def run(m: int, n: int, layers: int, steps: int, seed: int = 0) -> dict:
    """Build, train and evaluate the three schedules; returns the figures."""
    cls = unfoldc.load(ROOT / "examples" / "dugd.unf")
    H, lo, hi = problem(m, n, seed)
    test = samples(H, 256, seed + 2)
    schedules = {"constant": np.full(layers, 1 / hi), "Chebyshev": chebyshev_steps(lo, hi, layers)}
    nets = {name: cls(H=torch.tensor(H), steps=torch.tensor(v), num_layers=layers)
            for name, v in schedules.items()}
    trained = cls(H=torch.tensor(H), steps=torch.tensor(schedules["constant"]), num_layers=layers)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npz"
        np.savez(path, **samples(H, 2048, seed + 1))
        start = time.perf_counter()
        fit(trained, path, scheme="incremental", steps=steps, batch=64, seed=seed, plots=False,
            classical_layers=0, tensorboard=False, progress=False)
        seconds = time.perf_counter() - start
    nets["trained"] = trained
    out = {"m": m, "n": n, "layers": layers, "lambda": (lo, hi), "train_s": seconds}
    for name, net in nets.items():
        report = net.double().convergence_report()
        out[name] = {"steps": sorted(float(layer.gamma.detach()) for layer in net.layers),
                     "error": error(net, test), "verdict": report.verdict,
                     "network_bound": report.network_bound}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=120)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150, help="training steps per generation")
    args = parser.parse_args()
    r = run(args.m, args.n, args.layers, args.steps)
    lo, hi = r["lambda"]
    print(f"H {r['m']} x {r['n']}, lambda(H^T H) in [{lo:.4g}, {hi:.4g}], {r['layers']} layers, "
          f"training {r['train_s']:.1f} s (incremental, {args.steps} steps per generation)")
    names = ("constant", "Chebyshev", "trained")
    print("steps, sorted:  " + "  ".join(f"{n:>10}" for n in names))
    for k in range(r["layers"]):
        print(f"  {k + 1:>12}  " + "  ".join(f"{r[n]['steps'][k]:10.4f}" for n in names))
    for n in names:
        print(f"{n:>10}: error after {r['layers']} layers {r[n]['error']:.3e}, "
              f"report {r[n]['verdict']}, network bound {r[n]['network_bound']:.3e}")


if __name__ == "__main__":
    main()
