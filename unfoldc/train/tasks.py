"""Training problems: synthetic sparse recovery, robust PCA, and published instances.

A `Task` names its arrays by role (`givens`, `inputs`, `targets`) with the task's own names
(`A`, `y`, `x` for sparse recovery); `binding.py` maps them onto a network's spec names. Data is
generated on the CPU in float64 from a `torch.Generator`, so a seed fixes every sample on any
device, and the generator state is all a checkpoint needs to resume the training stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from unfoldc.train.errors import DataError
from unfoldc.train.files import load_arrays

Arrays = dict[str, torch.Tensor]
Sampler = Callable[[int, torch.Generator], Arrays]


@dataclass
class Task:
    """A training problem.

    Attributes:
        name: short description, e.g. `sparse-recovery`.
        givens: operands fixed for the whole problem (the sensing matrix), by task name.
        input_names: names of the per-sample inputs, in order.
        target_names: names of the ground truths, in order (the first is the primary one).
        val: fixed validation set (inputs and targets, leading batch dimension).
        test: fixed test set.
        sampler: draws `count` fresh training samples from a generator (on-the-fly data).
        train: a fixed training set, used instead of `sampler` when given.
        description: JSON-able parameters that regenerate the task (written to config.json).
    """

    name: str
    givens: Arrays
    input_names: tuple[str, ...]
    target_names: tuple[str, ...]
    val: Arrays
    test: Arrays
    sampler: Sampler | None = None
    train: Arrays | None = None
    description: dict = field(default_factory=dict)

    def train_batch(self, batch: int, gen: torch.Generator) -> Arrays:
        """Draw one training batch (fresh samples, or random rows of the fixed set)."""
        if self.train is None:
            return self.sampler(batch, gen)
        size = next(iter(self.train.values())).shape[0]
        rows = torch.randint(size, (batch,), generator=gen)
        return {name: value[rows] for name, value in self.train.items()}


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian_matrix(m: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """m x n matrix with N(0, 1/m) entries, then columns scaled to unit norm (the papers' A)."""
    A = torch.randn(m, n, generator=gen, dtype=torch.float64) / math.sqrt(m)
    return A / A.norm(dim=0, keepdim=True)


def bernoulli_gaussian(count: int, n: int, p: float, gen: torch.Generator,
                       dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """`count` signals of length n: each entry nonzero with probability p, then N(0, 1); drawn
    on the generator's device."""
    support = torch.rand(count, n, generator=gen, dtype=dtype, device=gen.device) < p
    return support * torch.randn(count, n, generator=gen, dtype=dtype, device=gen.device)


def add_noise(clean: torch.Tensor, snr_db: float, gen: torch.Generator) -> torch.Tensor:
    """Add white Gaussian noise at `snr_db` per sample (power ratio over all non-batch dims)."""
    if math.isinf(snr_db):
        return clean
    dims = tuple(range(1, clean.dim()))
    power = clean.pow(2).mean(dim=dims, keepdim=True)
    sigma = torch.sqrt(power / 10 ** (snr_db / 10))
    return clean + sigma * torch.randn(clean.shape, generator=gen, dtype=clean.dtype,
                                       device=clean.device)


def _sparse_sampler(A: torch.Tensor, p: float, snr_db: float) -> Sampler:
    def sample(count: int, gen: torch.Generator) -> Arrays:
        x = bernoulli_gaussian(count, A.shape[1], p, gen)
        return {"y": add_noise(x @ A.T, snr_db, gen), "x": x}

    return sample


def sparse_recovery(
    m: int = 250,
    n: int = 500,
    p: float = 0.1,
    snr_db: float = math.inf,
    seed: int = 0,
    *,
    A: torch.Tensor | None = None,
    test_x: torch.Tensor | None = None,
    val_size: int = 1000,
    test_size: int = 1000,
    train_size: int | None = None,
    source: str | None = None,
) -> Task:
    """Sparse recovery `y = A x + w` with Bernoulli(p)-Gaussian `x` (the LISTA papers' recipe).

    Args:
        m, n: measurement and signal lengths (ignored when `A` is given).
        p: probability that an entry of `x` is nonzero.
        snr_db: per-sample signal-to-noise ratio of `A x` in dB; `inf` for noiseless.
        seed: fixes `A`, the validation and test sets; the training stream is seeded by `fit`.
        A: a given matrix (e.g. the published ALISTA one) instead of a generated one.
        test_x: given test signals (their measurements are computed with this task's noise).
        val_size, test_size: sizes of the fixed validation and test sets.
        train_size: a fixed training set of this size instead of fresh samples per batch.
        source: where `A` came from, recorded in the description.

    Returns:
        A task with given `A`, input `y` and target `x`.
    """
    A = gaussian_matrix(m, n, _generator(seed)) if A is None else A.to(torch.float64)
    sample = _sparse_sampler(A, p, snr_db)
    val = sample(val_size, _generator(seed + 1))
    if test_x is None:
        test = sample(test_size, _generator(seed + 2))
    else:
        x = test_x.to(torch.float64)
        test = {"y": add_noise(x @ A.T, snr_db, _generator(seed + 2)), "x": x}
    train = None if train_size is None else sample(train_size, _generator(seed + 3))
    description = {
        "task": "sparse-recovery", "m": A.shape[0], "n": A.shape[1], "p": p,
        "snr_db": _json_float(snr_db), "seed": seed, "val_size": val_size,
        "test_size": test["x"].shape[0], "train_size": train_size, "source": source,
    }
    return Task("sparse-recovery", {"A": A}, ("y",), ("x",), val, test, sample, train,
                description)


def low_rank_plus_sparse(
    count: int, d1: int, d2: int, rank: int, alpha: float, gen: torch.Generator
) -> Arrays:
    """`count` matrices `Y = X + S`: `X = U V^T` of rank `rank`, `S` a fraction alpha of outliers.

    `U` has N(0, 1/d1) entries and `V` N(0, 1/d2) (N(0, 1/d) for square matrices). The outliers'
    positions are uniform without replacement and their values uniform in [-E|X|, E|X|], with
    E|X| the mean absolute entry of that sample's `X`.
    """
    U = torch.randn(count, d1, rank, generator=gen, dtype=torch.float64) / math.sqrt(d1)
    V = torch.randn(count, d2, rank, generator=gen, dtype=torch.float64) / math.sqrt(d2)
    X = U @ V.transpose(1, 2)
    scale = X.abs().mean(dim=(1, 2), keepdim=True)
    outliers = round(alpha * d1 * d2)
    # The `outliers` smallest of uniform keys pick a uniform subset of that exact size.
    keys = torch.rand(count, d1 * d2, generator=gen, dtype=torch.float64)
    chosen = keys.argsort(dim=1)[:, :outliers]
    mask = torch.zeros(count, d1 * d2, dtype=torch.float64).scatter_(1, chosen, 1.0)
    values = (2 * torch.rand(count, d1, d2, generator=gen, dtype=torch.float64) - 1) * scale
    S = mask.view(count, d1, d2) * values
    return {"Y": X + S, "X": X, "S": S}


def robust_pca(
    d: int = 100,
    rank: int = 5,
    alpha: float = 0.1,
    seed: int = 0,
    *,
    d2: int | None = None,
    val_size: int = 64,
    test_size: int = 64,
    test: Arrays | None = None,
    source: str | None = None,
) -> Task:
    """Robust PCA: recover the low-rank `X` (and outliers `S`) from `Y = X + S`.

    Args:
        d, d2: matrix size d x d2 (d2 defaults to d).
        rank: rank of the low-rank part.
        alpha: fraction of entries that are outliers.
        seed: fixes the validation and test sets.
        val_size, test_size: sizes of the fixed sets.
        test: a given test set (`Y`, `X`, `S`), e.g. the published LRPCA instance.
        source: where the test set came from, recorded in the description.

    Returns:
        A task with input `Y` and targets `X` (primary) and `S`; no givens.
    """
    d2 = d if d2 is None else d2

    def sample(count: int, gen: torch.Generator) -> Arrays:
        return low_rank_plus_sparse(count, d, d2, rank, alpha, gen)

    val = sample(val_size, _generator(seed + 1))
    test = sample(test_size, _generator(seed + 2)) if test is None else test
    description = {
        "task": "robust-pca", "d": d, "d2": d2, "rank": rank, "alpha": alpha, "seed": seed,
        "val_size": val_size, "test_size": test["Y"].shape[0], "source": source,
    }
    return Task("robust-pca", {}, ("Y",), ("X", "S"), val, test, sample, None, description)


def _json_float(value: float) -> float | str:
    return "inf" if math.isinf(value) else value


def _load_npz(path: str | Path, required: tuple[str, ...]) -> dict[str, torch.Tensor]:
    arrays = load_arrays(path)
    missing = [name for name in required if name not in arrays]
    if missing:
        raise DataError(
            f"`{path}` lacks array(s) {', '.join(f'`{n}`' for n in missing)}; "
            f"it holds {', '.join(f'`{n}`' for n in arrays) or 'nothing'}"
        )
    return arrays


def published_sparse_recovery(
    path: str | Path, p: float = 0.1, snr_db: float = math.inf, seed: int = 0, **kwargs
) -> Task:
    """The ALISTA/LISTA-CPSS instance: its matrix `A` and its 1000 test signals `x_test`.

    Args:
        path: `alista/sparse_recovery_250x500.npz` from the shared data folder.
        p, snr_db, seed: as for `sparse_recovery` (training and validation are synthetic).
        **kwargs: passed on to `sparse_recovery` (val_size, train_size).
    """
    arrays = _load_npz(path, ("A", "x_test"))
    A, test_x = arrays["A"], arrays["x_test"]
    return sparse_recovery(p=p, snr_db=snr_db, seed=seed, A=A, test_x=test_x,
                           source=str(path), **kwargs)


def published_robust_pca(path: str | Path, alpha: float | None = None, seed: int = 0,
                         **kwargs) -> Task:
    """The LRPCA test instance (`U_star`, `V_star`, `Y`) as a one-sample test set.

    Args:
        path: e.g. `lrpca/rpca_n1000_r5_alpha0.1.npz`.
        alpha: outlier fraction for the synthetic training data (read from `Y` if None).
        seed: seeds the synthetic validation set.
        **kwargs: passed on to `robust_pca` (val_size).
    """
    arrays = _load_npz(path, ("U_star", "V_star", "Y"))
    U, V, Y = arrays["U_star"], arrays["V_star"], arrays["Y"]
    X = U @ V.T
    S = Y - X
    if alpha is None:
        alpha = float((S.abs() > 1e-6 * X.abs().max()).double().mean())
    test = {"Y": Y[None], "X": X[None], "S": S[None]}
    return robust_pca(Y.shape[0], U.shape[1], alpha, seed, d2=Y.shape[1], test=test,
                      source=str(path), **kwargs)
