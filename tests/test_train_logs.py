"""Training logs that tools read: steps.csv, layers.csv, TensorBoard events, progress lines."""

import csv
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from train_standin import LearnedISTA

from unfoldc import train
from unfoldc.train import logs
from unfoldc.train.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"steps": 6, "lr": 1e-2, "batch": 8, "eval_every": 3, "checkpoint_every": 2,
           "classical_layers": 0, "progress": False, "plots": False}


@pytest.fixture(scope="module")
def task():
    return train.sparse_recovery(m=10, n=20, p=0.2, seed=3, val_size=16, test_size=16)


def _model(task, layers=3):
    return LearnedISTA(num_layers=layers, H=task.givens["A"].clone())


def _rows(path):
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_steps_csv_has_one_row_per_step(task, tmp_path):
    result = train.fit(_model(task), task, out=tmp_path, scheme="incremental", **OPTIONS)
    columns, rows = _rows(tmp_path / logs.STEPS_CSV)
    assert tuple(columns) == logs.STEP_COLUMNS
    assert [int(r["step"]) for r in rows] == list(range(1, 3 * 6 + 1))  # 3 generations of 6
    assert [r["stage"] for r in rows[::6]] == ["1", "2", "3"]
    assert [r["num_layers"] for r in rows[::6]] == ["1", "2", "3"]
    assert [int(r["stage_step"]) for r in rows[:6]] == [1, 2, 3, 4, 5, 6]
    assert all(float(r["lr"]) == pytest.approx(1e-2) for r in rows)
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    validated = [r for r in rows if r["val_nmse_db"]]
    assert [int(r["stage_step"]) for r in validated] == [3, 6] * 3  # eval_every 3
    history = [(h["step"], h["val_nmse_db"]) for h in result.history]
    assert [(int(r["step"]), float(r["val_nmse_db"])) for r in validated] == history


def test_layers_csv_holds_the_test_metrics(task, tmp_path):
    result = train.fit(_model(task), task, out=tmp_path, **OPTIONS)
    columns, rows = _rows(tmp_path / logs.LAYERS_CSV)
    assert tuple(columns) == logs.LAYER_COLUMNS
    assert [int(r["layer"]) for r in rows] == [1, 2, 3]
    for key in ("nmse_db", "objective", "classical_nmse_db", "classical_objective"):
        assert [float(r[key]) for r in rows] == result.metrics[key], key


class _Interrupt(Exception):
    pass


def test_resume_keeps_the_rows_before_its_checkpoint(task, tmp_path):
    full = tmp_path / "full"
    train.fit(_model(task), task, out=full, **OPTIONS)

    def stop(info):
        if info.step == 5:  # the last checkpoint was at step 4
            raise _Interrupt

    cut = tmp_path / "cut"
    with pytest.raises(_Interrupt):
        train.fit(_model(task), task, out=cut, callback=stop, **OPTIONS)
    assert len(_rows(cut / logs.STEPS_CSV)[1]) == 5
    train.fit(_model(task), task, out=cut, resume=True, **OPTIONS)
    assert (cut / logs.STEPS_CSV).read_text() == (full / logs.STEPS_CSV).read_text()


def test_overwrite_removes_the_logs_of_the_earlier_run(task, tmp_path):
    (tmp_path / logs.TENSORBOARD).mkdir()
    (tmp_path / logs.TENSORBOARD / "events.old").write_text("x")
    (tmp_path / logs.STEPS_CSV).write_text("step\n1\n2\n3\n4\n5\n6\n7\n8\n9\n")
    train.fit(_model(task), task, out=tmp_path, overwrite=True, tensorboard=False, **OPTIONS)
    assert not (tmp_path / logs.TENSORBOARD).exists()
    assert len(_rows(tmp_path / logs.STEPS_CSV)[1]) == 6


def test_tensorboard_events_when_installed(task, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train.fit(_model(task), task, out=tmp_path, **OPTIONS)  # tensorboard=None: installed, so on
    tags = {}
    for events in sorted((tmp_path / logs.TENSORBOARD).iterdir()):
        acc = EventAccumulator(str(events)).Reload()
        tags.update({tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]})
    assert tags["train/loss"] == [1, 2, 3, 4, 5, 6]
    assert tags["val/nmse_db"] == [3, 6]
    assert tags["test/nmse_db"] == [1, 2, 3]  # the layer is the step


def test_without_tensorboard_no_events_and_a_clear_error_when_asked(task, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(logs, "tensorboard_available", lambda: False)
    train.fit(_model(task), task, out=tmp_path / "a", **OPTIONS)
    assert (tmp_path / "a" / logs.STEPS_CSV).is_file()
    assert not (tmp_path / "a" / logs.TENSORBOARD).exists()
    with pytest.raises(train.ConfigError, match="pip install tensorboard"):
        train.fit(_model(task), task, out=tmp_path / "b", tensorboard=True, **OPTIONS)


def test_progress_lines_every_n_steps_and_at_stage_ends():
    stream = io.StringIO()
    progress = Progress(True, stream=stream, every=4)
    for step in range(1, 11):
        progress.update("end-to-end", 0, 1, step, 10, 0.5, -3.0 if step == 10 else None, step)
    progress.close()
    assert stream.getvalue().splitlines() == [
        "[1/1] end-to-end step 4/10 (total 4)  loss 5.0000e-01",
        "[1/1] end-to-end step 8/10 (total 8)  loss 5.0000e-01",
        "[1/1] end-to-end step 10/10 (total 10)  loss 5.0000e-01  val   -3.00 dB",
    ]


def test_progress_on_a_terminal_redraws_one_line():
    stream = io.StringIO()
    progress = Progress(True, interval=0.0, stream=stream)
    for step in (1, 2):
        progress.update("end-to-end", 0, 1, step, 2, 0.5, None)
    progress.close()
    assert stream.getvalue().count("\r") == 2 and stream.getvalue().count("\n") == 1


@pytest.mark.slow  # quick loop under 90 s (pyproject.toml)
def test_train_prints_progress_lines_when_stderr_is_a_pipe(tmp_path):
    cmd = [sys.executable, "-m", "unfoldc", "train", "examples/ista.unf", "--task",
           "sparse-recovery", "--m", "8", "--n", "16", "--layers", "2", "--steps", "5",
           "--batch", "8", "--eval-every", "5", "--classical-layers", "0", "--no-plots",
           "--no-tensorboard", "--progress-every", "2", "--out", str(tmp_path / "run")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr
    assert [re.sub(r"loss \S+", "loss L", re.sub(r"val +\S+", "val V", line))
            for line in lines] == [
        "[1/1] end-to-end step 2/5 (total 2)  loss L",
        "[1/1] end-to-end step 4/5 (total 4)  loss L",
        "[1/1] end-to-end step 5/5 (total 5)  loss L  val V dB",
    ]
    assert len(_rows(tmp_path / "run" / logs.STEPS_CSV)[1]) == 5
