"""The paradigm report: classification of every example's trainables and parameter counts."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES

import unfoldc
from unfoldc.cli import main
from unfoldc.paradigms import parse_dims

DIMS = {"m": 250, "n": 500, "h": 16, "w": 16}


@pytest.mark.parametrize("example, expected", [
    ("ista", {"hyperparameters": 32}),
    ("lista", {"hyperparameters": 16, "learned operators": 16 * (500 * 250 + 500 * 500)}),
    ("lista_cp", {"hyperparameters": 16, "learned operators": 16 * 500 * 250}),
    ("learned_objective", {"hyperparameters": 16,
                           "objective parameters": 16 * (250 * 500 + 500)}),
    ("ista_correction", {"hyperparameters": 32,
                         "correction terms": 16 * ((500 * 64 + 64) + (64 * 500 + 500))}),
    ("pnp_pgd", {"hyperparameters": 16,
                 "learned operators": 16 * ((500 * 128 + 128) + (128 * 500 + 500))}),
    ("inpaint2d", {"hyperparameters": 8,
                   "learned operators": (9 * 16 + 16) + (9 * 16 * 16 + 16) + (9 * 16 + 1)}),
    # robust PCA four ways: a scaled net output `c * C(v)` added to an update is a correction
    ("lrpca", {"hyperparameters": 32}),
    ("lrpca_objective", {"objective parameters": 32}),
    ("lrpca_correction", {"correction terms": 16 * ((9 * 8 + 8) + (9 * 8 * 8 + 8) + (9 * 8 + 1))}),
    ("lrpca_cnn", {"learned operators": 16 * ((9 * 8 + 8) + (9 * 8 * 8 + 8) + (9 * 8 + 1))}),
])
def test_paradigm_groups_and_counts(example, expected):
    rep = unfoldc.info(EXAMPLES / f"{example}.unf", DIMS)
    assert rep.by_group() == expected


def test_objective_parameters_inside_a_func_are_classified_as_such(tmp_path):
    spec = tmp_path / "obj.unf"
    spec.write_text(
        "algorithm T\ngiven H : matrix[m, n]\ninput x : vector[m]\nstate s : vector[n] = 0\n"
        "train lam : scalar shared = 0.1 positive\n"
        "func g(v : vector[n]) = lam * norm1(v)\n"
        "train mu : scalar per_layer = 0.1 positive\n"
        "layers 4:\n  s <- prox(mu * g, s - mu * H.T @ (H @ s - x))\noutput s\n")
    groups = unfoldc.info(spec, {"m": 3, "n": 5}).by_group()
    assert groups == {"objective parameters": 1, "hyperparameters": 4}


def test_unknown_dims_give_no_count_and_layers_scale_per_layer_counts():
    rep = unfoldc.info(EXAMPLES / "lista_cp.unf", {"m": 10}, num_layers=3)
    assert rep.by_group() == {"hyperparameters": 3, "learned operators": None}
    assert "?" in str(rep)


def test_cli_info_text_and_json(capsys):
    assert main(["info", str(EXAMPLES / "ista_correction.unf"), "--dims", "m=250,n=500"]) == 0
    out = capsys.readouterr().out
    assert "correction terms" in out and "1,033,056" in out
    assert main(["info", str(EXAMPLES / "ista.unf"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["groups"] == {"hyperparameters": 32}


def test_bad_dims_are_a_usage_error(capsys):
    assert main(["info", str(EXAMPLES / "ista.unf"), "--dims", "m=abc"]) == 2
    assert "--dims" in capsys.readouterr().err
    with pytest.raises(ValueError):
        parse_dims("m250")
