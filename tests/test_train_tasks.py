"""Data recipes, published instances and user data files."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from train_standin import LearnedISTA

from unfoldc import train
from unfoldc.train.tasks import add_noise, gaussian_matrix, low_rank_plus_sparse

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_matrix_has_unit_columns_and_gaussian_entries():
    A = gaussian_matrix(400, 300, _gen())
    assert torch.allclose(A.norm(dim=0), torch.ones(300, dtype=A.dtype))
    assert float((A * math.sqrt(400)).std()) == pytest.approx(1.0, abs=0.02)


def test_signals_are_bernoulli_gaussian():
    task = train.sparse_recovery(m=50, n=100, p=0.1, seed=0)
    x = task.train_batch(2000, _gen())["x"]
    assert float((x != 0).double().mean()) == pytest.approx(0.1, abs=0.005)
    assert float(x[x != 0].std()) == pytest.approx(1.0, abs=0.03)


def test_noise_has_requested_snr_per_sample():
    scale = torch.arange(1, 6)[:, None]
    clean = torch.randn(5, 4000, generator=_gen(), dtype=torch.float64) * scale
    noisy = add_noise(clean, 20.0, _gen(1))
    ratio = clean.pow(2).sum(1) / (noisy - clean).pow(2).sum(1)
    assert 10 * torch.log10(ratio) == pytest.approx([20.0] * 5, abs=0.3)
    assert torch.equal(add_noise(clean, math.inf, _gen(1)), clean)


def test_measurements_and_fixed_sets_are_seeded():
    a, b = (train.sparse_recovery(m=8, n=16, seed=5, val_size=4, test_size=4) for _ in range(2))
    assert torch.equal(a.givens["A"], b.givens["A"]) and torch.equal(a.test["y"], b.test["y"])
    assert torch.allclose(a.val["y"], a.val["x"] @ a.givens["A"].T)
    c = train.sparse_recovery(m=8, n=16, seed=6, val_size=4, test_size=4)
    assert not torch.equal(a.val["x"], c.val["x"])
    assert torch.equal(a.train_batch(3, _gen(2))["x"], b.train_batch(3, _gen(2))["x"])


def test_fixed_training_set_draws_its_rows():
    task = train.sparse_recovery(m=8, n=16, seed=5, val_size=4, test_size=4, train_size=10)
    batch = task.train_batch(50, _gen())
    rows = {tuple(r.tolist()) for r in task.train["x"]}
    assert all(tuple(r.tolist()) in rows for r in batch["x"])


def test_low_rank_plus_sparse_recipe():
    out = low_rank_plus_sparse(3, 30, 20, 2, 0.1, _gen())
    assert torch.allclose(out["Y"], out["X"] + out["S"])
    for X, S in zip(out["X"], out["S"], strict=True):
        assert torch.linalg.matrix_rank(X) == 2
        assert int((S != 0).sum()) == 60
        assert float(S.abs().max()) <= float(X.abs().mean())


def test_robust_pca_task_roles():
    task = train.robust_pca(d=12, rank=2, alpha=0.05, seed=0, val_size=2, test_size=3)
    assert task.input_names == ("Y",) and task.target_names == ("X", "S")
    assert task.test["Y"].shape == (3, 12, 12)


@pytest.mark.skipif(not (DATA / "alista").is_dir(), reason="shared data not present")
def test_published_alista_instance():
    task = train.published_sparse_recovery(DATA / "alista" / "sparse_recovery_250x500.npz",
                                           val_size=10)
    assert task.givens["A"].shape == (250, 500) and task.test["x"].shape == (1000, 500)
    assert torch.allclose(task.test["y"], task.test["x"] @ task.givens["A"].T)


@pytest.mark.skipif(not (DATA / "lrpca").is_dir(), reason="shared data not present")
def test_published_lrpca_instance():
    task = train.published_robust_pca(DATA / "lrpca" / "rpca_n1000_r5_alpha0.1.npz",
                                      val_size=1)
    assert task.test["Y"].shape == (1, 1000, 1000)
    assert task.description["alpha"] == pytest.approx(0.1, abs=0.01)


def test_published_file_missing_arrays(tmp_path):
    np.savez(tmp_path / "a.npz", A=np.zeros((2, 3)))
    with pytest.raises(train.DataError, match="lacks array.*`x_test`.*holds `A`"):
        train.published_sparse_recovery(tmp_path / "a.npz")


def _save(path, **arrays):
    if path.suffix == ".pt":
        torch.save({k: torch.as_tensor(v) for k, v in arrays.items()}, path)
    else:
        np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_user_data_by_spec_names(tmp_path, suffix):
    rows = np.random.default_rng(0).normal(size=(20, 6))
    path = _save(tmp_path / f"d{suffix}", x=rows[:, :2], s=rows, H=np.ones((2, 6)))
    task = train.user_task(path, LearnedISTA)
    assert task.train["x"].shape == (18, 2) and task.val["s"].shape == (2, 6)
    assert task.givens["H"].shape == (2, 6) and task.test is task.val


def test_user_data_explicit_splits(tmp_path):
    path = _save(tmp_path / "d.npz", x=np.zeros((5, 2)), s=np.zeros((5, 6)),
                 val_x=np.zeros((3, 2)), val_s=np.zeros((3, 6)),
                 test_x=np.zeros((4, 2)), test_s=np.zeros((4, 6)))
    task = train.user_task(path, LearnedISTA)
    assert [len(task.train["x"]), len(task.val["x"]), len(task.test["x"])] == [5, 3, 4]


@pytest.mark.parametrize("arrays, message", [
    ({"s": np.zeros((4, 6))}, "lacks the input array.*`x`.*holds `s`"),
    ({"x": np.zeros((4, 2)), "s": np.zeros((5, 6))}, "must share a leading batch"),
    ({"x": np.array([["a", "b"]] * 4), "s": np.zeros((4, 6))}, "`x`.*not numeric"),
    ({"x": np.zeros((1, 2)), "s": np.zeros((1, 6))}, "too few to hold out"),
    ({"x": np.zeros((4, 2)), "s": np.zeros((4, 6)), "val_x": np.zeros((2, 2))},
     "lacks the split array.*`val_s`"),
])
def test_user_data_errors(tmp_path, arrays, message):
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(train.DataError, match=message):
        train.user_task(path, LearnedISTA)


def test_user_data_bad_files(tmp_path):
    with pytest.raises(train.DataError, match="does not exist"):
        train.user_task(tmp_path / "none.npz", LearnedISTA)
    (tmp_path / "d.csv").write_text("1,2")
    with pytest.raises(train.DataError, match="must end in .npz or .pt"):
        train.user_task(tmp_path / "d.csv", LearnedISTA)
    (tmp_path / "d.npz").write_text("garbage")
    with pytest.raises(train.DataError, match="cannot read .* as a .npz file"):
        train.user_task(tmp_path / "d.npz", LearnedISTA)
    torch.save([1, 2], tmp_path / "l.pt")
    with pytest.raises(train.DataError, match="must hold a dict of named arrays, not list"):
        train.user_task(tmp_path / "l.pt", LearnedISTA)


def test_binding_by_position_and_by_mapping():
    task = train.sparse_recovery(m=4, n=8, val_size=2, test_size=2)
    binding = train.bind(LearnedISTA, task)
    assert (binding.givens, binding.inputs, binding.targets) == (
        {"H": "A"}, {"x": "y"}, {"s": "x"})
    with pytest.raises(train.DataError, match="mapping sends input `x` to `z`"):
        train.bind(LearnedISTA, task, {"x": "z"})
