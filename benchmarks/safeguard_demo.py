"""The safeguard (Heaton et al., "Safeguarded Learned Convex Optimization", AAAI 2023) on
LISTA-CP (examples/lista_cp.unf), run far past its trained depth.

1. Bad weights: every layer's W scaled by --scale (a step of scale/L: ISTA diverges for > 2).
   Run 300 layers with and without the safeguard; print the distance to the LASSO solution of
   classical ISTA (min 0.5 ||H s - y||^2 + 0.1 ||s||_1, what the untrained network iterates),
   computed with --fista-iterations FISTA then --ista-iterations ISTA iterations (the script
   prints ISTA's fixed-point residual there).
2. A trained LISTA-CP (16 layers, end-to-end, --train-steps Adam steps on the published
   250 x 500 ALISTA problem; --synthetic M N for a generated one): fallback counts per layer
   with the safeguard, and the distance to the LASSO solution at 16, 50, 100, 200 layers with
   and without it.

    python benchmarks/safeguard_demo.py                        # the published 250 x 500 problem
    python benchmarks/safeguard_demo.py --synthetic 50 100     # small, for a quick look

Distances are relative, ||s - s*|| / ||s*|| over the test signals (float64 evaluation).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import unfoldc
from unfoldc import train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alista" / "sparse_recovery_250x500.npz"
DEPTHS = (16, 50, 100, 200, 300)


def ista_step(H: torch.Tensor, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """One step of classical ISTA (step 1/L, threshold 0.1/L: lista_cp.unf untrained)."""
    mu = 1 / torch.linalg.matrix_norm(H, ord=2) ** 2
    v = s - mu * (s @ H.T - y) @ H
    return torch.sign(v) * torch.relu(v.abs() - 0.1 * mu)


def lasso_solution(H: torch.Tensor, y: torch.Tensor, fista: int, ista: int) -> torch.Tensor:
    """The fixed point of classical ISTA (the LASSO solution): `fista` FISTA iterations (the
    same prox-gradient map with momentum, much faster), then `ista` plain ISTA iterations."""
    s = z = y.new_zeros((y.shape[0], H.shape[1]))
    t = 1.0
    for _ in range(fista):
        s_next = ista_step(H, y, z)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        z = s_next + (t - 1) / t_next * (s_next - s)
        s, t = s_next, t_next
    for _ in range(ista):
        s = ista_step(H, y, s)
    return s


def distances(model, y, star, safeguard: bool) -> dict[int, float]:
    """Relative distance to `star` after each of DEPTHS layers (one run of max(DEPTHS))."""
    with torch.no_grad():
        history = model(y, num_layers=max(DEPTHS), all_layers=True, safeguard=safeguard)
    return {k: float((history[k - 1] - star).norm() / star.norm()) for k in DEPTHS}


def row(label: str, values: dict[int, float]) -> str:
    return f"{label:<34}" + "".join(f"{values[k]:>11.3e}" for k in DEPTHS)


def header() -> str:
    return f"{'relative distance to s* after K':<34}" + "".join(f"{'K=' + str(k):>11}"
                                                                  for k in DEPTHS)


def bad_weights(cls, H, y, star, scale: float) -> None:
    model = cls(H=H, num_layers=16)
    with torch.no_grad():
        for layer in model.layers:
            layer.W.mul_(scale)
    print(f"\n1. LISTA-CP with every W scaled by {scale} (untrained otherwise)")
    print(header())
    print(row("classical ISTA (untrained net)", distances(cls(H=H, num_layers=16), y, star,
                                                          False)))
    print(row("bad weights, no safeguard", distances(model, y, star, False)))
    print(row("bad weights, safeguard", distances(model, y, star, True)))
    counts = model.last_safeguard
    print(f"fallbacks (of {y.shape[0]} samples): layers 1-16 {counts[:16]}, "
          f"layers 17-300 {sum(counts[16:])} in all")


def trained(cls, task, H, y, star, args) -> None:
    model = cls(H=task.givens["A"].float(), num_layers=16)
    start = time.perf_counter()
    result = train.fit(model, task, scheme="end-to-end", steps=args.train_steps, lr=args.lr,
                       batch=64, eval_every=max(1, args.train_steps // 4), classical_layers=0,
                       plots=False, progress=False)
    wall = time.perf_counter() - start
    print(f"\n2. LISTA-CP trained end-to-end ({result.metrics['steps']} steps, {wall:.0f} s): "
          f"test NMSE at layer 16 {result.metrics['nmse_db'][-1]:.1f} dB "
          f"(untrained: {result.metrics['classical_nmse_db'][-1]:.1f} dB)")
    model = model.double()
    print(header())
    print(row("trained, no safeguard", distances(model, y, star, False)))
    print(row("trained, safeguard", distances(model, y, star, True)))
    counts = model.last_safeguard
    print(f"fallbacks (of {y.shape[0]} samples) per layer, layers 1-16: {counts[:16]}")
    print(f"layers 17-{max(DEPTHS)}: {sum(counts[16:])} in all, of "
          f"{y.shape[0] * (max(DEPTHS) - 16)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", nargs=2, type=int, metavar=("M", "N"))
    parser.add_argument("--test", type=int, default=100, help="test signals used")
    parser.add_argument("--scale", type=float, default=3.0)
    parser.add_argument("--fista-iterations", type=int, default=3000)
    parser.add_argument("--ista-iterations", type=int, default=1000)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=5e-4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.synthetic:
        m, n = args.synthetic
        task = train.sparse_recovery(m=m, n=n, seed=0, val_size=256, test_size=args.test)
        print(f"synthetic sparse recovery {m} x {n}")
    else:
        task = train.published_sparse_recovery(DATA, val_size=256)
        print(f"published ALISTA problem {tuple(task.givens['A'].shape)} ({DATA.name})")
    cls = unfoldc.load(ROOT / "examples" / "lista_cp.unf")
    H = task.givens["A"].double()
    y = task.test["y"][:args.test].double()
    start = time.perf_counter()
    star = lasso_solution(H, y, args.fista_iterations, args.ista_iterations)
    first = ista_step(H, y, torch.zeros_like(star)).norm()  # ||0 - T(0)||
    tail = (star - ista_step(H, y, star)).norm() / first
    print(f"s*: {args.fista_iterations} FISTA then {args.ista_iterations} ISTA iterations "
          f"({time.perf_counter() - start:.0f} s), {y.shape[0]} test signals; ISTA's fixed-point "
          f"residual ||s* - T(s*)|| / ||T(0)|| = {float(tail):.1e}")
    bad_weights(cls, H, y, star, args.scale)
    trained(cls, task, H, y, star, args)


if __name__ == "__main__":
    main()
