"""benchmarks/finetune_large_batch.py on a small instance in the published format: it trains,
keeps the network that is best on validation, and writes weights that unfoldc loads back."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from conftest import EXAMPLES, ROOT

import unfoldc
from unfoldc import train
from unfoldc.train.metrics import to_db

CLS = unfoldc.load(EXAMPLES / "lista_cp.unf")


def _script():
    spec = importlib.util.spec_from_file_location(
        "finetune_large_batch", ROOT / "benchmarks" / "finetune_large_batch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _problem(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(20, 40)) / np.sqrt(20)
    A /= np.linalg.norm(A, axis=0)
    x = (rng.random((64, 40)) < 0.1) * rng.normal(size=(64, 40))
    np.savez(tmp_path / "problem.npz", A=A, x_test=x.astype(np.float32))
    start = tmp_path / "start.safetensors"
    train.save_weights(CLS(num_layers=3, H=torch.tensor(A, dtype=torch.float32)), start)
    return tmp_path / "problem.npz", start


def _run(data, start, out, lr):
    _script().main(["--spec", str(EXAMPLES / "lista_cp.unf"), "--weights", str(start),
                    "--layers", "3", "--snr", "20", "--batch", "32", "--lr", str(lr),
                    "--steps", "40", "--device", "cpu", "--data", str(data), "--out", str(out)])
    return json.loads((out / "log.json").read_text())


def _saved_nmse(data, out) -> dict:
    """unfoldc's own evaluation of the saved network on the validation and test sets."""
    task = train.published_sparse_recovery(data, p=0.1, snr_db=20, val_size=1000)
    model = train.load_weights(CLS(num_layers=3, H=task.givens["A"].float()),
                               out / "weights.safetensors")
    result = {}
    for key, split in (("best_val_db", task.val), ("test_db", task.test)):
        y, target = split["y"].float(), split["x"].float()
        with torch.no_grad():
            result[key] = to_db(float(((model(y) - target) ** 2).sum() / (target ** 2).sum()))
    return result


def test_finetune_improves_and_saves_the_selected_network(tmp_path):
    data, start = _problem(tmp_path)
    log = _run(data, start, tmp_path / "ft", 1e-2)
    assert log["steps"] == 40 and [c["step"] for c in log["curve"]] == list(range(2, 41, 2))
    vals = [log["start_val_db"]] + [c["val_db"] for c in log["curve"]]
    assert log["best_val_db"] == min(vals) < log["start_val_db"]
    assert log["test_db"] < log["start_test_db"]
    saved = _saved_nmse(data, tmp_path / "ft")
    assert saved == pytest.approx({k: log[k] for k in saved}, abs=1e-4)


def test_finetune_that_never_improves_keeps_the_start(tmp_path):
    data, start = _problem(tmp_path)
    log = _run(data, start, tmp_path / "ft", 3.0)  # far too large: every step makes it worse
    assert all(c["val_db"] > log["start_val_db"] for c in log["curve"])
    assert log["best_val_db"] == log["start_val_db"]
    saved = _saved_nmse(data, tmp_path / "ft")
    assert saved == pytest.approx({"best_val_db": log["start_val_db"],
                                   "test_db": log["start_test_db"]}, abs=1e-4)
