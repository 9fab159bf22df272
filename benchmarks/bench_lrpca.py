"""LRPCA (Cai, Liu, Yin, NeurIPS 2021) compiled from examples/lrpca.unf, run with the released
trained parameters on the published 1000 x 1000, rank-5 instances (alpha = 0.1, 0.2, 0.3).

Prints ||X - X*||_F / ||X*||_F after the initialization and after each of the 16 layers, and the
time of one forward pass. Parameters: `zeta[0]` is the fixed initialization threshold (`zeta0`),
`zeta[1:]` and `eta[1:]` the per-layer trainables (`eta[0]` is unused by the released code).

    python benchmarks/bench_lrpca.py [--dtype float32|float64] [--data DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import unfoldc

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/lrpca")


def load_released(model: torch.nn.Module, zeta: np.ndarray, eta: np.ndarray) -> None:
    """Write the released per-layer parameters into `model` (zeta and eta positive)."""
    with torch.no_grad():
        for k, layer in enumerate(model.layers):
            layer.zeta_init.fill_(float(zeta[k + 1]))
            layer.zeta_log.zero_()
            layer.eta_init.fill_(float(eta[k + 1]))
            layer.eta_log.zero_()


def build(params: dict, dtype: torch.dtype) -> torch.nn.Module:
    """The compiled LRPCA network with the released parameters."""
    cls = unfoldc.load(ROOT / "examples" / "lrpca.unf")
    zeta, eta = params["zeta"], params["eta"]
    model = cls(num_layers=len(zeta) - 1, zeta0=float(zeta[0])).to(dtype)
    load_released(model, zeta, eta)
    return model


def relative_errors(model, Y: torch.Tensor, X_star: torch.Tensor) -> list[float]:
    """Relative Frobenius error of the initialization and of every layer's X."""
    with torch.no_grad():
        history = model(Y[None], all_layers=True)
    ref = torch.linalg.matrix_norm(X_star)
    return [float(torch.linalg.matrix_norm(X[0] - X_star) / ref) for X in history]


def soft(v: torch.Tensor, t: float) -> torch.Tensor:
    return torch.sign(v) * torch.relu(v.abs() - t)


def released_loop(Y: torch.Tensor, zeta: np.ndarray, eta: np.ndarray, r: int = 5) -> list:
    """The released test written as a plain loop (independent of unfoldc): X after init and
    after each update."""
    U, s, Vh = torch.linalg.svd(Y - soft(Y, float(zeta[0])), full_matrices=False)
    L, R = U[:, :r] * s[:r].sqrt(), Vh[:r].T * s[:r].sqrt()
    out = [L @ R.T]
    for t in range(1, len(zeta)):
        X = L @ R.T
        E = X + soft(Y - X, float(zeta[t])) - Y
        L, R = (L - float(eta[t]) * E @ R @ torch.linalg.inv(R.T @ R),
                R - float(eta[t]) * E.T @ L @ torch.linalg.inv(L.T @ L))
        out.append(L @ R.T)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for alpha in (0.1, 0.2, 0.3):
        inst = np.load(Path(args.data) / f"rpca_n1000_r5_alpha{alpha}.npz")
        params = np.load(Path(args.data) / f"lrpca_params_alpha{alpha}.npz")
        Y = torch.as_tensor(inst["Y"]).to(dtype)
        X_star = torch.as_tensor(inst["U_star"] @ inst["V_star"].T).to(dtype)
        model = build(params, dtype)
        start = time.perf_counter()
        errs = relative_errors(model, Y, X_star)
        seconds = time.perf_counter() - start
        print(f"alpha={alpha}  {args.dtype}  forward {seconds:.2f} s (16 layers, 1000 x 1000)")
        ref = released_loop(Y, params["zeta"], params["eta"])
        norm = torch.linalg.matrix_norm(X_star)
        ref_errs = [float(torch.linalg.matrix_norm(X - X_star) / norm) for X in ref]
        print(f"  init      {ref_errs[0]:.3e}")
        for k, (e, r) in enumerate(zip(errs, ref_errs[1:]), 1):
            print(f"  layer {k:2d}  {e:.3e}   (plain loop {r:.3e})")


if __name__ == "__main__":
    main()
