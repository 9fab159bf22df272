"""The output directory of `unfoldc train` / `fit`: no earlier result is ever lost (issue 14).

A directory holding any output of a run (weights, metrics, config, plots, checkpoint) is refused
unless the run resumes it (`--resume`, with a checkpoint) or replaces it (`--overwrite`); an empty
`--out`, a file, or a path below a file is refused before any training starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from train_standin import LearnedISTA

from unfoldc.cli import main
from unfoldc.train import fit, tasks
from unfoldc.train.errors import ConfigError
from unfoldc.train.files import OUTPUTS, PLOTS, RESULTS, check_out_dir
from unfoldc.train.logs import LAYERS_CSV, STEPS_CSV

FAST = ["--m", "8", "--n", "16", "--layers", "2", "--steps", "2", "--batch", "4",
        "--classical-layers", "0", "--no-progress", "--no-plots"]
SENTINEL = b"an earlier result"


@pytest.fixture
def spec():
    return str(Path(__file__).resolve().parents[1] / "examples" / "ista.unf")


def _train(spec, out, *extra) -> int:
    return main(["train", spec, *FAST, "--out", str(out), *extra])


@pytest.mark.parametrize("name", RESULTS)
def test_any_output_of_a_run_is_kept(name, spec, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / name).write_bytes(SENTINEL)
    assert _train(spec, out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "--overwrite" in err and "--resume" in err
    assert (out / name).read_bytes() == SENTINEL


def test_overwrite_replaces_every_earlier_output(spec, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in OUTPUTS:
        (out / name).write_bytes(SENTINEL)
    assert _train(spec, out, "--overwrite") == 0
    assert not any((out / name).exists() for name in PLOTS)  # --no-plots
    assert all((out / name).read_bytes() != SENTINEL for name in (STEPS_CSV, LAYERS_CSV))
    assert (out / "metrics.json").read_bytes() != SENTINEL


def test_a_second_run_is_refused_and_resume_continues(spec, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(spec, out) == 0
    before = (out / "weights.safetensors").read_bytes()
    assert _train(spec, out, "--lr", "1e9") == 1
    assert (out / "weights.safetensors").read_bytes() == before
    assert _train(spec, out, "--resume") == 0


def test_resume_without_a_checkpoint_keeps_the_outputs(spec, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_bytes(SENTINEL)
    assert _train(spec, out, "--resume") == 1
    assert "no checkpoint.pt" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == SENTINEL


@pytest.mark.parametrize("case", ["empty", "blank", "file", "below a file"])
def test_unusable_out(case, spec, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    out = {"empty": "", "blank": "  ", "file": tmp_path / "f",
           "below a file": tmp_path / "f" / "run"}[case]
    assert _train(spec, out) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert (tmp_path / "f").read_text() == "x"


def test_resume_and_overwrite_exclude_each_other(tmp_path):
    with pytest.raises(ConfigError, match="only one"):
        check_out_dir(tmp_path, resume=True, overwrite=True)


def test_fit_api_refuses_too(tmp_path):
    task = tasks.sparse_recovery(8, 16, val_size=8, test_size=8)
    model = LearnedISTA(H=task.givens["A"], num_layers=2)
    (tmp_path / "weights.safetensors").write_bytes(SENTINEL)
    with pytest.raises(ConfigError, match="overwrite=True"):
        fit(model, task, out=tmp_path, steps=1, classical_layers=0, plots=False)
    with pytest.raises(ConfigError, match="empty"):
        fit(model, task, out="", steps=1, classical_layers=0, plots=False)
    fit(model, task, out=tmp_path, overwrite=True, steps=1, classical_layers=0, plots=False)
    assert (tmp_path / "weights.safetensors").read_bytes() != SENTINEL
