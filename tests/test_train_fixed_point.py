"""Training a spec that declares `fixed_point(...)`: steps run model.fixed_point (the spec's
backward), metrics report the fixed point, layer-by-layer schemes are refused."""

import pytest
import torch
from conftest import EXAMPLES

import unfoldc
from unfoldc import train
from unfoldc.train.errors import ConfigError

OPTIONS = {"steps": 4, "lr": 1e-2, "batch": 8, "eval_every": 2, "checkpoint_every": 2,
           "classical_layers": 0, "progress": False}


@pytest.fixture(scope="module")
def task():
    return train.sparse_recovery(m=12, n=8, p=0.3, seed=3, val_size=16, test_size=16)


def _model(task):
    cls = unfoldc.load(str(EXAMPLES / "ista_fixed_point.unf"))
    return cls(H=task.givens["A"].clone(), num_layers=2)


def test_steps_train_the_fixed_point(task):
    model = _model(task)
    calls = []
    original = model.fixed_point

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(model.last_fixed_point)
        return out

    model.fixed_point = spy
    result = train.fit(model, task, **OPTIONS)
    trained = [c for c in calls if c.adjoint_iterations is not None]
    assert len(trained) == OPTIONS["steps"]  # one implicit backward per step
    assert all(c.backward == "implicit" and c.converged for c in calls)
    fixed = result.metrics["fixed_point"]
    assert set(fixed) == {"nmse_db", "objective"} and fixed["nmse_db"] < 0
    assert "classical_fixed_point" in result.metrics
    assert result.history[-1]["val_nmse_db"] == pytest.approx(
        train.evaluate(model, task.val, train.bind(model, task))["fixed_point"]["nmse_db"])
    assert model.mu_log.item() != 0.0


@pytest.mark.parametrize("scheme", ["layerwise", "incremental", "deep-supervision"])
def test_layer_schemes_are_refused(task, scheme):
    with pytest.raises(ConfigError, match="declares `fixed_point`"):
        train.fit(_model(task), task, scheme=scheme, **OPTIONS)


def test_unchanged_for_specs_without_the_mode(task):
    cls = unfoldc.load(str(EXAMPLES / "ista.unf"))
    model = cls(H=task.givens["A"].clone(), num_layers=2)
    metrics = train.fit(model, task, **OPTIONS).metrics
    assert "fixed_point" not in metrics and len(metrics["nmse_db"]) == 2
    assert torch.isfinite(torch.tensor(metrics["nmse_db"])).all()


def test_cli_trains_the_fixed_point_and_prints_it(tmp_path, capsys):
    import argparse

    from unfoldc.train import cli

    parser = argparse.ArgumentParser(prog="unfoldc train")
    cli.add_arguments(parser)
    args = parser.parse_args([str(EXAMPLES / "ista_fixed_point.unf"), "--m", "12", "--n", "8",
                              "--steps", "2", "--batch", "8", "--classical-layers", "0",
                              "--no-progress", "--no-plots", "--out", str(tmp_path / "run")])
    assert cli.run(args) == 0
    assert " fixed point  trained " in capsys.readouterr().out
