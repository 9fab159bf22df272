"""The seed tutorial's case study: robust PCA unfolded four ways (issue 13, reproduction row 4).

One classical iteration, LRPCA (Cai, Liu, Yin, NeurIPS 2021: soft thresholding of the residual
for the outliers S, then a scaled gradient step on the factors L, R), unfolded along the four
paradigms of Shlezinger et al. 2025, "Deep Unfolding: Recent Developments, Theory, and Design
Guidelines":

    hyperparameters  examples/lrpca.unf             per-layer threshold zeta and step eta
    objective        examples/lrpca_objective.unf   per-layer l1 weight lam and ridge weight gam
    correction       examples/lrpca_correction.unf  classical update + per-layer CNN, zero at init
    inductive bias   examples/lrpca_cnn.unf         a per-layer CNN in place of the thresholding

Each is trained with `unfoldc.train.fit` on synthetic 100 x 100, rank-5 problems with a fraction
alpha of outliers (`train.robust_pca`, the generator of the published instances at a smaller
size), then evaluated on a fixed test set: relative error ||X - X*||_F / ||X*||_F (mean over the
test matrices) after the initialization and after each layer, trainable parameters, training
and inference time, and the convergence verdict of the trained network. Rows `classical` (the
untrained lrpca.unf: constant zeta = 3e-4, eta = 0.5) and `released` (the published parameters
on the published 1000 x 1000 instance, shared/data/lrpca) complete the table. Writes
rpca_paradigms.png (error per layer) and rpca_paradigms.json next to --out.

    OMP_NUM_THREADS=1 python benchmarks/rpca_paradigms.py [--steps 300] [--alpha 0.1] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import unfoldc
from unfoldc import train

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/lrpca")
SIZE = 100  # the nets' specs fix 100 x 100 (E0307: net sizes must be known at construction)


@dataclass(frozen=True)
class Paradigm:
    """One row of the study: a spec and how it is trained."""

    key: str
    spec: str
    lr: float
    promise: str  # what the untrained network is
    group: str  # how `unfoldc info` files what it learns (unfoldc/paradigms.py)


PARADIGMS = (
    Paradigm("hyperparameters", "lrpca.unf", 3e-2, "classical", "hyperparameters"),
    Paradigm("objective", "lrpca_objective.unf", 3e-2, "classical", "objective parameters"),
    Paradigm("correction", "lrpca_correction.unf", 3e-3, "classical", "correction terms"),
    Paradigm("inductive-bias", "lrpca_cnn.unf", 3e-3, "random CNN", "learned operators"),
)


@dataclass
class Row:
    """Measured figures of one network."""

    name: str
    errors: list[float]  # after the initialization, then after each layer
    parameters: int
    train_s: float
    infer_s: float
    verdict: str
    note: str = ""
    extra: dict = field(default_factory=dict)


def build(spec: str, layers: int = 16, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """An untrained network compiled from examples/`spec`, seeded (nets are initialized from 0)."""
    cls = unfoldc.load(ROOT / "examples" / spec)
    torch.manual_seed(0)
    return cls(num_layers=layers).to(dtype)


def initial_estimate(model: torch.nn.Module, Y: torch.Tensor, rank: int = 5) -> torch.Tensor:
    """X before the first layer, as all four specs compute it: the rank-5 truncated SVD of
    Y - soft(Y, zeta0) (forward refuses num_layers=0, so it is recomputed here)."""
    zeta0 = float(model.zeta0)
    U, s, Vh = torch.linalg.svd(Y - torch.sign(Y) * torch.relu(Y.abs() - zeta0),
                                full_matrices=False)
    return U[..., :rank] * s[..., None, :rank] @ Vh[..., :rank, :]


def relative_errors(model: torch.nn.Module, Y: torch.Tensor, X: torch.Tensor) -> list[float]:
    """Mean over the batch of ||X_k - X||_F / ||X||_F for the initialization and every layer k."""
    with torch.no_grad():
        estimates = [initial_estimate(model, Y)] + model(Y, all_layers=True)
    norm = torch.linalg.matrix_norm(X)
    return [float((torch.linalg.matrix_norm(E - X) / norm).mean()) for E in estimates]


def _dtype(model: torch.nn.Module) -> torch.dtype:
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def inference_seconds(model: torch.nn.Module, Y: torch.Tensor) -> float:
    """Wall time of one forward pass over `Y`, per matrix (best of 3)."""
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            model(Y)
            best = min(best, time.perf_counter() - start)
    return best / Y.shape[0]


def measure(name: str, model: torch.nn.Module, task: train.Task, train_s: float,
            note: str = "") -> Row:
    """The table row of `model` on the task's test set."""
    Y, X = task.test["Y"].to(_dtype(model)), task.test["X"].to(_dtype(model))
    return Row(name, relative_errors(model, Y, X), count_parameters(model), train_s,
               inference_seconds(model, Y), model.convergence_report().verdict, note)


def train_paradigm(p: Paradigm, task: train.Task, steps: int, batch: int,
                   layers: int = 16) -> Row:
    """Train `p` end to end (NMSE of the last layer, cosine rate) and measure it."""
    model = build(p.spec, layers)
    start = time.perf_counter()
    train.fit(model, task, scheme="end-to-end", steps=steps, lr=p.lr, lr_schedule="cosine",
              batch=batch, eval_every=max(steps // 4, 1), classical_layers=0, progress=False,
              plots=False)
    return measure(p.key, model, task, time.perf_counter() - start, f"untrained: {p.promise}")


def released_row(alpha: float, data: Path) -> Row | None:
    """The released LRPCA parameters on the published 1000 x 1000 instance (None without data)."""
    instance = data / f"rpca_n1000_r5_alpha{alpha}.npz"
    params = data / f"lrpca_params_alpha{alpha}.npz"
    if not (instance.is_file() and params.is_file()):
        return None
    task = train.published_robust_pca(instance, alpha=alpha, val_size=1)
    model = bench_lrpca().build(np.load(params), torch.float64)
    return measure("released", model, task, 0.0, "published 1000 x 1000 instance")


def bench_lrpca():
    """benchmarks/bench_lrpca.py as a module (its loader of the released parameters and its
    plain-loop reference), found by path so this script runs from any directory."""
    path = ROOT / "benchmarks" / "bench_lrpca.py"
    spec = importlib.util.spec_from_file_location("bench_lrpca", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_cost(spec: str, size: int, batch: int = 1, layers: int = 16) -> dict[str, float]:
    """Seconds (wall and CPU) of one training step of `spec` on `size` x `size` matrices: the
    truncated-SVD initialization alone (as `initial_estimate`), then forward + backward of all
    layers (SVD included)."""
    model = build(spec, layers)
    Y = train.robust_pca(size, 5, 0.1, val_size=batch, test_size=1).val["Y"].float()
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        initial_estimate(model, Y)
    init = {"init_wall_s": time.perf_counter() - wall, "init_cpu_s": time.process_time() - cpu}
    wall, cpu = time.perf_counter(), time.process_time()
    model(Y).square().sum().backward()
    return {**init, "step_wall_s": time.perf_counter() - wall,
            "step_cpu_s": time.process_time() - cpu}


def table(rows: list[Row], selected: tuple[int, ...] = (0, 1, 2, 4, 8, 16)) -> str:
    """The printed table: errors at `selected` layers (0 = initialization) and the figures."""
    head = ["network", *(f"layer {k}" if k else "init" for k in selected), "params", "train s",
            "infer ms", "verdict", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        errs = [f"{r.errors[k]:.2e}" if k < len(r.errors) else "" for k in selected]
        lines.append("| " + " | ".join([r.name, *errs, str(r.parameters), f"{r.train_s:.0f}",
                                        f"{1e3 * r.infer_s:.1f}", r.verdict, r.note]) + " |")
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> None:
    """Error per layer of every row, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in rows:
        ax.semilogy(range(len(r.errors)), r.errors, marker="o", markersize=3, label=r.name)
    ax.set_xlabel("layer (0 = truncated-SVD initialization)")
    ax.set_ylabel("||X - X*||_F / ||X*||_F")
    ax.set_title("robust PCA unfolded four ways (LRPCA iteration)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(steps: int, batch: int, alpha: float, test_size: int, data: Path, out: Path,
        layers: int = 16, size: int = SIZE) -> list[Row]:
    """Train and measure every paradigm, the classical iteration and the released parameters."""
    task = train.robust_pca(size, 5, alpha, seed=0, val_size=test_size, test_size=test_size)
    rows = [measure("classical", build("lrpca.unf", layers), task, 0.0,
                    "zeta 3e-4, eta 0.5")]
    rows += [train_paradigm(p, task, steps, batch, layers) for p in PARADIGMS]
    released = released_row(alpha, data)
    out.mkdir(parents=True, exist_ok=True)
    plot(rows, out / "rpca_paradigms.png")
    if released is not None:
        rows.append(released)
    (out / "rpca_paradigms.json").write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps per paradigm")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--test-size", type=int, default=16)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default="runs/rpca_paradigms")
    ap.add_argument("--cost", type=int, metavar="SIZE",
                    help="only time one training step of lrpca.unf on SIZE x SIZE matrices")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.cost:
        cost = step_cost("lrpca.unf", args.cost)
        print(f"lrpca.unf, {args.cost} x {args.cost}, batch 1, 16 layers, float32, 1 thread: "
              + ", ".join(f"{k} {v:.2f}" for k, v in cost.items()))
        return
    start = time.perf_counter()
    rows = run(args.steps, args.batch, args.alpha, args.test_size, Path(args.data), Path(args.out))
    print(f"robust PCA, {SIZE} x {SIZE}, rank 5, alpha {args.alpha}; {args.steps} steps of batch "
          f"{args.batch} per paradigm; test: {args.test_size} matrices; float32 "
          "(released: float64), 1 thread")
    print(table(rows))
    print(f"total {time.perf_counter() - start:.0f} s; "
          f"plot: {Path(args.out) / 'rpca_paradigms.png'}")


if __name__ == "__main__":
    main()
