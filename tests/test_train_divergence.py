"""Divergence (issue 14): a scale-aware test, nothing written for an untrained network, and a
resume that may change the learning rate."""

from __future__ import annotations

import json

import pytest
import torch

from unfoldc.cli import main
from unfoldc.train.loop import exploded

NEGATIVE = """algorithm Negative
given H : matrix[m, n]
input x : vector[m]
state s : vector[n] = 0
let L = opnorm(H)^2
train rho : scalar per_layer = 0.1 nonneg
minimize 0.5 * sqnorm(H @ s - x) + 0.1 * norm1(s) - 100
layers 3:
    s <- soft(s - (1 / L) * H.T @ (H @ s - x), rho / L)
output s
"""
FAST = ["--m", "8", "--n", "16", "--p", "0.5", "--layers", "2", "--batch", "4", "--eval-every", "2",
        "--classical-layers", "0", "--no-progress", "--no-plots"]


@pytest.mark.parametrize("first, value, expected", [
    (1.0, 2.0, False), (1.0, 2e4, True), (-100.0, -99.0, False), (-100.0, 50.0, False),
    (-100.0, 2e6, True), (0.0, 1e9, False), (1e-3, 1e-2, False)])
def test_exploded_is_relative_to_the_first_loss(first, value, expected):
    assert exploded(value, first, 1e4) is expected


def test_unsupervised_objective_that_starts_negative_trains(tmp_path, capsys):
    spec = tmp_path / "negative.unf"
    spec.write_text(NEGATIVE)
    out = tmp_path / "run"
    rc = main(["train", str(spec), "--scheme", "unsupervised", "--steps", "4", *FAST,
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["objective"][0] < 0


def _spec(tmp_path):
    from pathlib import Path

    return str(Path(__file__).resolve().parents[1] / "examples" / "ista.unf")


def test_divergence_at_the_start_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", _spec(tmp_path), "--steps", "3", "--lr", "1e30", *FAST,
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "diverged" in err and "initial weights" in err
    assert not (out / "weights.safetensors").exists()
    assert main(["train", _spec(tmp_path), "--steps", "3", *FAST, "--out", str(out)]) == 0


def test_resume_may_change_the_learning_rate(tmp_path, capsys):
    out = tmp_path / "run"
    common = [_spec(tmp_path), *FAST, "--out", str(out), "--eval-every", "1"]
    assert main(["train", *common, "--steps", "2", "--lr", "0.01"]) == 0
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["fingerprint"]["lr"] == 0.01
    # Without --lr the run's own rate is kept; with it, the new one is used from the checkpoint.
    assert main(["train", *common, "--steps", "2", "--resume"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 0.01
    assert main(["train", *common, "--steps", "2", "--resume", "--lr", "0.001"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 0.001
    assert main(["train", *common, "--steps", "2", "--resume", "--batch", "8"]) == 1
    assert "different settings (batch)" in capsys.readouterr().err


def test_an_all_zero_batch_is_not_blamed_on_the_rate(tmp_path, capsys):
    # Sparse signals of length 4 with p = 0.05: most single-sample batches are zero.
    rc = main(["train", _spec(tmp_path), "--m", "4", "--n", "4", "--p", "0.05", "--batch", "1",
               "--steps", "20", "--layers", "2", "--classical-layers", "0", "--no-progress",
               "--no-plots", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1 and "training batch" in err and "learning rate" not in err
