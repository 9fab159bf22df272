"""Learned ISTA (and LISTA-CP) on the published ALISTA 250x500 instance: NMSE at the last layer
over the 1000 published test signals, for the untrained network, the classical iteration run to
convergence, and every training scheme, with wall time.

    python benchmarks/train_sparse_recovery.py                     # ISTA, noiseless, all schemes
    python benchmarks/train_sparse_recovery.py --schemes end-to-end --steps 3000
    python benchmarks/train_sparse_recovery.py --spec examples/lista_cp.unf --snr 20 \
        --schemes layerwise --lr 5e-4

The LISTA-CP reference schedule (layer-wise, MSE loss, lr 5e-4, a stage ends 4000 steps after
its best validation NMSE, here capped at 6000 steps; about 1.5 h on one core):

    python benchmarks/train_sparse_recovery.py --spec examples/lista_cp.unf --snr 20 \
        --schemes layerwise --loss mse --lr 5e-4 --steps 6000 --patience 4000 \
        --eval-every 50 --lasso --out runs/lista-cp-snr20

Budgets (steps) are per scheme: a total for end-to-end / deep supervision / unsupervised, a cap
per stage for layer-wise (3 stages per layer) and per generation for incremental.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import unfoldc
from unfoldc import train
from unfoldc.train import rates
from unfoldc.train.metrics import to_db

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alista" / "sparse_recovery_250x500.npz"
# Steps per scheme, sized for a few minutes each on 2 CPU cores.
BUDGET = {"end-to-end": 3000, "deep-supervision": 3000, "unsupervised": 3000,
          "incremental": 250, "layerwise": 100}


def run_scheme(cls, task, args, scheme: str) -> dict:
    model = cls(num_layers=args.layers, H=task.givens["A"].float())
    steps = args.steps or BUDGET[scheme]
    patience = args.patience if scheme in ("layerwise", "incremental") else None
    start = time.perf_counter()
    out = args.out / scheme if args.out else None
    result = train.fit(model, task, scheme=scheme, steps=steps, lr=args.lr, batch=args.batch,
                       seed=args.seed, patience=patience, eval_every=args.eval_every,
                       loss=args.loss, decay=args.decay, classical_layers=0,
                       checkpoint_every=1000, progress=args.progress, out=out,
                       resume=args.resume)
    return {"scheme": scheme, "steps": result.metrics["steps"],
            "nmse": result.metrics["nmse_db"][-1], "wall": time.perf_counter() - start,
            "classical": result.metrics["classical_nmse_db"][-1]}


def fista(A: torch.Tensor, y: torch.Tensor, lam: float, iterations: int) -> torch.Tensor:
    """FISTA for min_s 0.5 ||A s - y||^2 + lam ||s||_1, batched over the rows of y."""
    L = float(torch.linalg.matrix_norm(A, ord=2)) ** 2
    s = z = y.new_zeros((y.shape[0], A.shape[1]))
    t = 1.0
    for _ in range(iterations):
        v = z - (z @ A.T - y) @ A / L
        s_next = torch.sign(v) * torch.clamp(v.abs() - lam / L, min=0)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = s_next + (t - 1) / t_next * (s_next - s)
        s, t = s_next, t_next
    return s


def nmse_db(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return to_db(float((estimate - truth).pow(2).sum() / truth.pow(2).sum()))


def best_lasso(task, lams=(0.01, 0.02, 0.03, 0.05, 0.1)) -> tuple[float, float]:
    """The LASSO weight best on the validation set, and its test NMSE (float64)."""
    A = task.givens["A"].double()
    val = {lam: nmse_db(fista(A, task.val["y"].double(), lam, 500), task.val["x"].double())
           for lam in lams}
    lam = min(val, key=val.get)
    return lam, nmse_db(fista(A, task.test["y"].double(), lam, 500), task.test["x"].double())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "examples" / "ista.unf"))
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--schemes", default=",".join(BUDGET))
    parser.add_argument("--steps", type=int, help="override every scheme's budget")
    parser.add_argument("--lr", type=rates.parse, default=None,
                        help="R, or per kind scalar=R,matrix=R,net=R (default: unfoldc train's "
                             "rates per parameter kind, docs/training.md)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--snr", type=float, default=math.inf)
    parser.add_argument("--patience", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", choices=("nmse", "mse"), default="nmse")
    parser.add_argument("--decay", type=float, default=0.3, help="layer-wise decay per layer")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--resume", action="store_true", help="continue the runs under --out")
    parser.add_argument("--lasso", action="store_true",
                        help="also print LASSO (FISTA, 500 iterations) at the lambda that is "
                             "best on the validation set: the classical estimator's floor")
    parser.add_argument("--out", type=Path, help="keep each scheme's run directory here")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    task = train.published_sparse_recovery(args.data, p=args.p, snr_db=args.snr, val_size=1000)
    cls = unfoldc.load(args.spec)
    untrained = cls(num_layers=args.layers, H=task.givens["A"].float())
    base = train.measure(untrained, untrained, task, train.bind(untrained, task), 1000)
    print(f"{cls.SPEC_NAME}, {args.layers} layers, ALISTA A 250x500, p={args.p}, "
          f"SNR={args.snr} dB, {task.test['x'].shape[0]} test signals, "
          f"torch threads={torch.get_num_threads()}, "
          f"lr {'per-kind defaults' if args.lr is None else args.lr}")
    print(f"{'network':<28}{'steps':>7}{'NMSE@L (dB)':>13}{'wall (s)':>10}")
    print(f"{'untrained (classical)':<28}{'-':>7}{base['classical_nmse_db'][-1]:>13.2f}{'-':>10}")
    print(f"{'classical, 1000 iterations':<28}{'-':>7}"
          f"{base['classical_converged']['nmse_db']:>13.2f}{'-':>10}")
    if args.lasso:
        lam, nmse = best_lasso(task)
        print(f"{f'LASSO, best lambda {lam:g}':<28}{'-':>7}{nmse:>13.2f}{'-':>10}")
    for scheme in args.schemes.split(","):
        if scheme == "unsupervised" and not callable(getattr(cls, "objective", None)):
            print(f"{'trained: unsupervised':<28}  skipped: the spec declares no `minimize`")
            continue
        row = run_scheme(cls, task, args, scheme)
        print(f"{'trained: ' + scheme:<28}{row['steps']:>7}{row['nmse']:>13.2f}"
              f"{row['wall']:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
