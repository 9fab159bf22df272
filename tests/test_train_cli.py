"""`unfoldc train` (the piece in unfoldc/train/cli.py): arguments, outputs, exit codes."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from train_standin import LearnedISTA

import unfoldc
from unfoldc.train import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--m", "8", "--n", "16", "--layers", "3", "--steps", "4", "--batch", "8",
        "--classical-layers", "20", "--no-progress", "--no-plots"]


def _parse(argv):
    parser = argparse.ArgumentParser(prog="unfoldc train")
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def spec(tmp_path, monkeypatch):
    """A spec file whose `unfoldc.load` yields the stand-in network."""
    path = tmp_path / "ista.unf"
    path.write_text("algorithm learned_ista\n")
    monkeypatch.setattr(unfoldc, "load", lambda p, options=None: LearnedISTA)
    return str(path)


def test_trains_and_writes_outputs(spec, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.run(_parse([spec, *FAST, "--scheme", "layerwise", "--out", str(out)])) == 0
    assert "trained NMSE" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["nmse_db"]) == 3
    config = json.loads((out / "config.json").read_text())
    assert config["spec_path"] == spec and config["train"]["scheme"] == "layerwise"
    assert config["task"]["m"] == 8


def test_resume_and_refusal(spec, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.run(_parse([spec, *FAST, "--out", out])) == 0
    assert cli.run(_parse([spec, *FAST, "--out", out])) == 1
    assert "--resume" in capsys.readouterr().err
    assert cli.run(_parse([spec, *FAST, "--out", out, "--resume"])) == 0


def test_user_errors_exit_1_without_traceback(spec, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.run(_parse([str(tmp_path / "none.unf"), *FAST, "--out", out])) == 1
    assert "spec file" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, s=np.zeros((4, 16)))
    assert cli.run(_parse([spec, *FAST, "--data", str(bad), "--out", out])) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "lacks the input array" in err
    assert "Traceback" not in err


def test_user_data_needs_givens(spec, tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((10, 8)), s=np.zeros((10, 16)))
    assert cli.run(_parse([spec, *FAST, "--data", str(data), "--out", str(tmp_path / "o")])) == 1
    assert "given(s) `H`" in capsys.readouterr().err
    np.savez(data, x=np.ones((10, 8)), s=np.ones((10, 16)), H=np.eye(8, 16))
    assert cli.run(_parse([spec, *FAST, "--data", str(data), "--out", str(tmp_path / "p")])) == 0


@pytest.mark.parametrize("argv", [["--p", "2"], ["--steps", "0"], ["--scheme", "greedy"],
                                  ["--layer-weights", "a,b"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        _parse(["spec.unf", "--out", "o", *argv])
    assert info.value.code == 2


def test_compiler_errors_are_user_errors(tmp_path, capsys):
    spec = tmp_path / "broken.unf"
    spec.write_text("algorithm ???\n")
    assert cli.run(_parse([str(spec), *FAST, "--out", str(tmp_path / "o")])) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_real_ista_spec(tmp_path):
    out = tmp_path / "run"
    argv = [str(ROOT / "examples" / "ista.unf"), *FAST, "--scheme", "incremental", "--out",
            str(out)]
    assert cli.run(_parse(argv)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["classical_nmse_db"]) == 3


def test_enforced_training_stays_certified(tmp_path):
    """--enforce-convergence: even a large rate keeps every layer a forward-backward step."""
    from unfoldc.cli import main

    spec = str(ROOT / "examples" / "ista.unf")
    out = tmp_path / "run"
    argv = [spec, *FAST, "--steps", "40", "--lr", "0.3", "--enforce-convergence",
            "--out", str(out)]
    assert cli.run(_parse(argv)) == 0
    weights = str(out / "weights.safetensors")
    assert main(["check", spec, "--enforce-convergence", "--weights", weights]) == 0
    assert main(["check", spec, "--weights", weights]) == 1  # the plain spec's keys differ


def test_weights_start_from_a_saved_run(tmp_path):
    spec = str(ROOT / "examples" / "ista.unf")
    first = tmp_path / "first"
    assert cli.run(_parse([spec, *FAST, "--steps", "60", "--lr", "3e-2", "--out", str(first)])) == 0
    saved = json.loads((first / "metrics.json").read_text())
    # One step at a negligible rate: the run starts from, and keeps, the first run's weights,
    # while the classical baseline is still the untrained network.
    again = tmp_path / "again"
    argv = [spec, *FAST, "--steps", "1", "--lr", "1e-12", "--weights",
            str(first / "weights.safetensors"), "--out", str(again)]
    assert cli.run(_parse(argv)) == 0
    metrics = json.loads((again / "metrics.json").read_text())
    assert metrics["nmse_db"] == pytest.approx(saved["nmse_db"], abs=1e-4)
    assert metrics["classical_nmse_db"] == pytest.approx(saved["classical_nmse_db"], abs=1e-6)
    assert metrics["nmse_db"][-1] < metrics["classical_nmse_db"][-1] - 0.5
    config = json.loads((again / "config.json").read_text())
    assert config["init_weights"] == str(first / "weights.safetensors")


def test_weights_of_another_spec_or_depth_are_refused(tmp_path, capsys):
    first = tmp_path / "first"
    ista = str(ROOT / "examples" / "ista.unf")
    assert cli.run(_parse([ista, *FAST, "--out", str(first)])) == 0
    weights = str(first / "weights.safetensors")
    fista = str(ROOT / "examples" / "fista.unf")
    assert cli.run(_parse([fista, *FAST, "--weights", weights, "--out", str(tmp_path / "a")])) == 1
    assert "exact spec" in capsys.readouterr().err
    deeper = [ista, *FAST, "--layers", "4", "--weights", weights, "--out", str(tmp_path / "b")]
    assert cli.run(_parse(deeper)) == 1
    assert "num_layers=3" in capsys.readouterr().err
    missing = [ista, *FAST, "--weights", str(tmp_path / "none"), "--out", str(tmp_path / "c")]
    assert cli.run(_parse(missing)) == 1
    assert "does not exist" in capsys.readouterr().err


def test_layerwise_options_reach_the_config(spec, tmp_path):
    out = tmp_path / "run"
    argv = [spec, *FAST, "--scheme", "layerwise", "--refine", "0.5", "--decay", "1",
            "--shared", "refine", "--lr-schedule", "cosine", "--out", str(out)]
    assert cli.run(_parse(argv)) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert (train["refine"], train["decay"], train["shared"]) == ([0.5], 1.0, "refine")
    assert train["lr_schedule"] == "cosine"


@pytest.mark.parametrize("argv", [["--refine", "a"], ["--refine", "0.2,-1"],
                                  ["--shared", "last"], ["--lr-schedule", "step"]])
def test_layerwise_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        _parse(["spec.unf", "--out", "o", *argv])
    assert info.value.code == 2


def test_safeguarded_training_of_a_real_spec(tmp_path):
    out = tmp_path / "run"
    argv = [str(ROOT / "examples" / "lista_cp.unf"), *FAST, "--safeguard", "--safeguard-delta",
            "0.3", "--out", str(out)]
    assert cli.run(_parse(argv)) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert (train["safeguard"], train["safeguard_delta"]) == (True, 0.3)


@pytest.mark.parametrize("delta", ["0", "1", "-0.5", "x"])
def test_safeguard_delta_outside_0_1_exits_2(delta):
    with pytest.raises(SystemExit) as info:
        _parse(["spec.unf", "--out", "o", "--safeguard-delta", delta])
    assert info.value.code == 2


def test_param_sets_a_fixed_parameter_of_the_trained_network(tmp_path):
    """--param sigma2=...: the network trains with that value (saved with its weights)."""
    from safetensors.torch import load_file

    out = tmp_path / "run"
    argv = [str(ROOT / "examples" / "tista.unf"), *FAST, "--snr", "40", "--param",
            "sigma2=2.5e-5", "--param", "p=0.2", "--out", str(out)]
    assert cli.run(_parse(argv)) == 0
    weights = load_file(str(out / "weights.safetensors"))
    assert float(weights["sigma2"]) == pytest.approx(2.5e-5, rel=1e-6)  # float32
    assert float(weights["p"]) == pytest.approx(0.2, rel=1e-6)
    config = json.loads((out / "config.json").read_text())
    assert config["params"] == {"sigma2": 2.5e-5, "p": 0.2}


def test_param_refuses_a_name_that_is_not_a_param(tmp_path, capsys):
    argv = [str(ROOT / "examples" / "tista.unf"), *FAST, "--param", "gamma=2", "--out",
            str(tmp_path / "run")]
    assert cli.run(_parse(argv)) == 1
    err = capsys.readouterr().err
    assert "`gamma` is not a fixed parameter (`param`) of `TISTA`" in err and "`sigma2`" in err
    assert "Traceback" not in err


def test_param_with_weights_is_refused(tmp_path, capsys):
    argv = [str(ROOT / "examples" / "tista.unf"), *FAST, "--param", "p=0.2", "--weights",
            str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "run")]
    assert cli.run(_parse(argv)) == 1
    assert "drop one of the two" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["sigma2", "sigma2=x", "=1", "p=nan"])
def test_param_usage_errors_exit_2(text):
    with pytest.raises(SystemExit) as info:
        _parse(["spec.unf", "--out", "o", "--param", text])
    assert info.value.code == 2
