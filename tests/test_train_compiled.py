"""Training on networks the compiler really generates (examples/*.unf)."""

from pathlib import Path

import pytest
import torch

import unfoldc
from unfoldc import train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OPTIONS = {"steps": 3, "lr": 1e-2, "batch": 8, "eval_every": 3, "classical_layers": 0,
           "progress": False}


@pytest.fixture(scope="module")
def task():
    return train.sparse_recovery(m=10, n=20, p=0.2, seed=5, val_size=8, test_size=8)


def _load(name):
    return unfoldc.load(str(EXAMPLES / name))


def test_layerwise_on_compiled_ista_moves_one_layer_at_a_time(task):
    model = _load("ista.unf")(num_layers=3, H=task.givens["A"])
    moved = []
    last = {n: p.detach().clone() for n, p in model.named_parameters()}

    def callback(info):
        now = {n: p.detach().clone() for n, p in info.model.named_parameters()}
        moved.append((info.stage.name, {n for n in now if not torch.equal(now[n], last[n])}))
        last.update(now)

    train.fit(model, task, scheme="layerwise", callback=callback, **OPTIONS)
    assert moved[0] == ("layer 1", {"layers.0.mu_log", "layers.0.rho_raw"})
    assert {n for name, names in moved if name == "layer 3" for n in names} == {
        "layers.2.mu_log", "layers.2.rho_raw"}


def test_compiled_ista_trains_and_reports_classical(task):
    model = _load("ista.unf")(num_layers=4, H=task.givens["A"])
    result = train.fit(model, task, **{**OPTIONS, "steps": 40, "lr": 3e-2,
                                       "classical_layers": 200})
    metrics = result.metrics
    assert metrics["nmse_db"][-1] < metrics["classical_nmse_db"][-1]
    assert metrics["classical_converged"]["nmse_db"] < metrics["classical_nmse_db"][-1]


def test_weights_of_one_spec_refused_by_another(task, tmp_path):
    ista = _load("ista.unf")(num_layers=3, H=task.givens["A"])
    train.save_weights(ista, tmp_path / "w.safetensors")
    lista = _load("lista_cp.unf")(num_layers=3, H=task.givens["A"])
    with pytest.raises(train.WeightsError, match="spec `ISTA`.*spec `LISTA_CP`"):
        train.load_weights(lista, tmp_path / "w.safetensors")
    train.load_weights(_load("ista.unf")(num_layers=3, H=task.givens["A"]),
                       tmp_path / "w.safetensors")


def test_compiled_rpca_with_two_outputs():
    task = train.robust_pca(d=8, rank=2, alpha=0.1, seed=0, val_size=4, test_size=4)
    model = _load("rpca.unf")(num_layers=3)
    binding = train.bind(model, task)
    assert binding.targets == {"L": "X", "S": "S"} and binding.primary == "L"
    result = train.fit(model, task, scheme="deep-supervision", **{**OPTIONS, "batch": 4})
    assert len(result.metrics["nmse_db"]) == 3


def test_gradient_checkpointing_on_compiled_ista(task):
    cls = _load("ista.unf")
    runs = [train.fit(cls(num_layers=3, H=task.givens["A"]), task, grad_checkpoint=flag,
                      **OPTIONS).model.state_dict() for flag in (False, True)]
    for name, value in runs[0].items():
        assert torch.allclose(value, runs[1][name], rtol=1e-12, atol=0), name
