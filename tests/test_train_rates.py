"""Learning rates per parameter kind (train/rates.py) and the symmetric-plateau note
(train/symmetry.py): the defaults, `--lr` per kind, relative scalar rates, tied layers."""

import argparse
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import unfoldc
from unfoldc import train
from unfoldc.cli import main
from unfoldc.train import cli, rates
from unfoldc.train.symmetry import per_layer_copies, plateau_notes, tied

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = ["--m", "8", "--n", "12", "--layers", "2", "--batch", "8", "--classical-layers", "0",
        "--no-plots", "--no-progress", "--eval-every", "1"]


@pytest.fixture(scope="module")
def task():
    return train.sparse_recovery(m=20, n=10, p=0.5, seed=0, val_size=20, test_size=20)


def _named(model):
    return {name: rates.kind_of(name, p) for name, p in model.named_parameters()}


def test_kinds_of_a_generated_networks_parameters(task):
    H = task.givens["A"]
    ista = unfoldc.load(EXAMPLES / "ista.unf")(H=H, num_layers=2)
    assert set(_named(ista).values()) == {"scalar"}
    lista = _named(unfoldc.load(EXAMPLES / "lista.unf")(H=H, num_layers=2))
    assert lista["layers.0.W1"] == lista["layers.1.W2"] == "matrix"
    assert lista["layers.0.theta"] == "scalar"
    corr = _named(unfoldc.load(EXAMPLES / "ista_correction.unf")(H=H, num_layers=2))
    assert corr["layers.0.mu_log"] == "scalar"
    assert {k for n, k in corr.items() if ".psi." in n} == {"net"}


def test_kinds_of_a_hand_written_network():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.step = nn.Parameter(torch.ones(()))
            self.weights = nn.Parameter(torch.ones(5))
            self.M = nn.Parameter(torch.ones(3, 3))
            self.fc = nn.Linear(3, 3)

    kinds = _named(Net())
    assert kinds == {"step": "scalar", "weights": "scalar", "M": "matrix", "fc.weight": "net",
                     "fc.bias": "net"}


def test_scalar_sizes_are_relative(task):
    """A log or a value kept relative to its init moves at the rate; a raw value at the rate
    times its size."""
    H = task.givens["A"]
    sizes = rates.scales(unfoldc.load(EXAMPLES / "ista.unf")(H=H, num_layers=2))
    assert sizes["layers.0.mu_log"] == 1.0  # positive: a log beside `mu_init`
    assert sizes["layers.1.rho_raw"] == pytest.approx(0.1)  # nonneg: the value itself
    lista = unfoldc.load(EXAMPLES / "lista.unf")(H=H, num_layers=2)
    theta = float(lista.layers[0].theta.detach())
    assert rates.scales(lista) == {"layers.0.theta": pytest.approx(theta),
                                   "layers.1.theta": pytest.approx(theta)}


@pytest.mark.parametrize("text, value", [
    ("1e-3", 1e-3),
    ("scalar=1e-2", {"scalar": 1e-2}),
    ("scalar=1e-2, net=1e-4", {"scalar": 1e-2, "net": 1e-4}),
    ("1e-3,matrix=5e-5", {"scalar": 1e-3, "matrix": 5e-5, "net": 1e-3}),
])
def test_lr_text(text, value):
    assert rates.parse(text) == value


@pytest.mark.parametrize("text, match", [
    ("weights=1", "unknown parameter kind `weights`"),
    ("scalar=-1", "positive"),
    ("scalar=nan", "positive"),
    ("fast", "could not convert"),
])
def test_bad_lr_text_is_a_usage_error(text, match, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", str(EXAMPLES / "ista.unf"), "--lr", text, "--out", "unused"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--lr" in err and match in err and "Traceback" not in err


def test_resolve_fills_every_kind():
    assert rates.resolve(None) == rates.DEFAULT_RATES
    assert rates.resolve(0.5) == dict.fromkeys(rates.KINDS, 0.5)
    assert rates.resolve({"net": 0.5}) == {**rates.DEFAULT_RATES, "net": 0.5}
    assert rates.describe({"net": 0.5}, 0.1).endswith("net=0.05")


@pytest.mark.parametrize("lr", [{"weights": 1e-3}, {"scalar": 0.0}, -1.0, float("inf")])
def test_bad_rates_are_refused(lr):
    with pytest.raises(train.ConfigError, match="lr"):
        train.TrainConfig(lr=lr)


def test_adam_groups_take_each_kinds_rate(task):
    """LISTA's matrices, its thresholds (relative) and an explicit override per kind."""
    model = unfoldc.load(EXAMPLES / "lista.unf")(H=task.givens["A"].clone(), num_layers=2)
    theta = float(model.layers[0].theta.detach())
    seen = {}

    def record(info):
        for g in info.optimizer.param_groups:
            seen[g["kind"]] = g["lr"]

    train.fit(model, task, steps=1, batch=8, classical_layers=0, progress=False,
              plots=False, callback=record, lr={"matrix": 1e-4})
    assert seen == {"matrix": 1e-4,
                    "scalar": pytest.approx(rates.DEFAULT_RATES["scalar"] * theta)}


def test_cli_lr_per_kind_reaches_the_config(tmp_path):
    out = tmp_path / "run"
    argv = [str(EXAMPLES / "ista.unf"), *FAST, "--steps", "2", "--lr", "scalar=0.05",
            "--out", str(out)]
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(argv)) == 0
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == {"scalar": 0.05}
    # Resumed without --lr, the run keeps its own rates.
    assert cli.run(parser.parse_args([*argv[:-4], "--out", str(out), "--resume"])) == 0
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == {"scalar": 0.05}


def test_default_rates_recorded_as_null(tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(EXAMPLES / "ista.unf"), *FAST, "--steps", "1",
                 "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["lr"] is None


# --- the symmetric plateau ------------------------------------------------------------------

def test_tied_needs_equal_starts_and_a_joint_move():
    zero = [torch.zeros(()), torch.zeros(())]
    assert tied(zero, [torch.tensor(0.5), torch.tensor(0.5 + 1e-7)])
    assert not tied(zero, [torch.tensor(0.5), torch.tensor(0.4)])  # separated
    assert not tied(zero, zero)  # never moved
    assert not tied([torch.zeros(()), torch.ones(())], [torch.ones(()), torch.ones(())])


def _gd(task, layers=2):
    return unfoldc.load(EXAMPLES / "gd_steps.unf")(H=task.givens["A"].clone(),
                                                   num_layers=layers)


def test_end_to_end_gd_steps_on_a_quadratic_stay_tied_and_say_so(task):
    """The loss of gradient descent on a quadratic is symmetric in the steps: end-to-end
    training moves them together, and the run says so and suggests the incremental scheme."""
    model = _gd(task)
    result = train.fit(model, task, steps=30, batch=16, eval_every=30, classical_layers=0,
                       progress=False, plots=False)
    mu = [float(layer.mu.detach()) for layer in model.layers]
    assert mu[0] == pytest.approx(mu[1], rel=1e-9) and mu[0] != float(_gd(task).layers[0].mu)
    [note] = result.metrics["notes"]
    assert "`mu`" in note and "symmetric" in note and "--scheme incremental" in note


def test_incremental_training_separates_the_steps(task):
    model = _gd(task)
    result = train.fit(model, task, scheme="incremental", steps=15, batch=16, eval_every=15,
                       classical_layers=0, progress=False, plots=False)
    mu = [float(layer.mu.detach()) for layer in model.layers]
    assert abs(mu[0] - mu[1]) > 1e-3 * mu[0] and result.metrics["notes"] == []


def test_the_untrained_network_is_untouched(task):
    """Nothing is perturbed: the untrained network stays gradient descent with step 1/L."""
    model = _gd(task)
    before = per_layer_copies(model)
    assert plateau_notes(before, model, "end-to-end") == []  # nothing moved: no note
    L = float(torch.linalg.matrix_norm(task.givens["A"], 2) ** 2)
    assert [float(layer.mu) for layer in model.layers] == pytest.approx([1 / L, 1 / L])


def test_the_cli_prints_the_note(tmp_path, capsys):
    rc = main(["train", str(EXAMPLES / "gd_steps.unf"), "--m", "20", "--n", "10", "--p", "0.5",
               "--layers", "2", "--steps", "20", "--batch", "16", "--classical-layers", "0",
               "--no-plots", "--no-progress", "--out", str(tmp_path / "run")])
    assert rc == 0
    assert "note: the 2 layers' `mu` started equal" in capsys.readouterr().err
