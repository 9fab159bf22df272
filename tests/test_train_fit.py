"""fit(): determinism, resume, divergence, output files and metrics."""

import json
import math

import pytest
import torch
from safetensors import safe_open
from train_standin import LearnedISTA

from unfoldc import train
from unfoldc.train.checkpoint import CHECKPOINT

OPTIONS = {"steps": 6, "lr": 1e-2, "batch": 8, "eval_every": 3, "checkpoint_every": 2,
           "classical_layers": 0, "progress": False}


@pytest.fixture(scope="module")
def task():
    return train.sparse_recovery(m=10, n=20, p=0.2, seed=3, val_size=16, test_size=16)


def _model(task, layers=3):
    return LearnedISTA(num_layers=layers, H=task.givens["A"].clone())


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_other_seed_other_weights(task):
    runs = [train.fit(_model(task), task, seed=s, **OPTIONS).model.state_dict()
            for s in (7, 7, 8)]
    assert _same(runs[0], runs[1])
    assert not _same(runs[0], runs[2])


class _Interrupt(Exception):
    pass


def _interrupt_at(total):
    def callback(info):
        if info.stage_index * 100 + info.step == total:
            raise _Interrupt

    return callback


@pytest.mark.parametrize("scheme, stop, schedule", [
    pytest.param("layerwise", 203, "constant", marks=pytest.mark.slow),
    ("end-to-end", 5, "constant"), ("end-to-end", 3, "cosine")])
def test_resume_matches_uninterrupted_run(task, tmp_path, scheme, stop, schedule):
    options = {**OPTIONS, "scheme": scheme, "lr_schedule": schedule}
    full = train.fit(_model(task), task, out=tmp_path / "full", **options)
    with pytest.raises(_Interrupt):
        train.fit(_model(task), task, out=tmp_path / "cut", callback=_interrupt_at(stop),
                  **options)
    resumed = train.fit(_model(task), task, out=tmp_path / "cut", resume=True, **options)
    assert _same(full.model.state_dict(), resumed.model.state_dict())
    assert full.history == resumed.history
    assert full.metrics["nmse_db"] == resumed.metrics["nmse_db"]


def test_resume_refuses_other_settings(task, tmp_path):
    with pytest.raises(_Interrupt):
        train.fit(_model(task), task, out=tmp_path, callback=_interrupt_at(3), **OPTIONS)
    with pytest.raises(train.ConfigError, match=r"different settings \(batch\)"):
        train.fit(_model(task), task, out=tmp_path, resume=True, **{**OPTIONS, "batch": 3})
    with pytest.raises(train.ConfigError, match="already holds the outputs of a run"):
        train.fit(_model(task), task, out=tmp_path, **OPTIONS)


def _failing_loss(bad_call, value):
    calls = []

    def loss(pred, target):
        calls.append(1)
        err = ((pred - target) ** 2).sum(1) / (target**2).sum(1).clamp_min(1e-12)
        return err * value if len(calls) == bad_call else err

    return loss


@pytest.mark.parametrize("value, why", [(math.nan, "the loss is nan"), (1e9, "exploded")])
def test_divergence_stops_and_keeps_last_good_checkpoint(task, tmp_path, value, why):
    model = _model(task)
    with pytest.raises(train.TrainingDiverged, match=why) as info:
        train.fit(model, task, out=tmp_path, loss=_failing_loss(5, value), **OPTIONS)
    message = str(info.value)
    assert "step 5" in message and "checkpoint at step 4" in message
    assert "smaller learning rate" in message
    good = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert good["loop"]["total"] == 4
    assert _same(model.state_dict(), good["model"])
    assert not _same(model.state_dict(), _model(task).state_dict())
    reloaded = train.load_weights(_model(task), tmp_path / "weights.safetensors")
    assert _same(reloaded.state_dict(), good["model"])


def test_nan_parameters_are_divergence(task):
    model = _model(task)
    with pytest.raises(train.TrainingDiverged, match="reset to the initial weights"):
        train.fit(model, task, **{**OPTIONS, "lr": 1e6})
    assert _same(model.state_dict(), _model(task).state_dict())


def test_outputs_written(task, tmp_path):
    result = train.fit(_model(task), task, out=tmp_path, record={"note": "x"},
                       **{**OPTIONS, "classical_layers": 50})
    for name in ("weights.safetensors", "config.json", "metrics.json", "nmse_per_layer.png",
                 "training_curve.png", "parameters.png", CHECKPOINT):
        assert (tmp_path / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["nmse_db"]) == 3 and len(metrics["classical_nmse_db"]) == 3
    assert metrics["nmse_db"] == result.metrics["nmse_db"]
    assert metrics["classical_converged"]["layers"] == 50
    assert metrics["classical_converged"]["nmse_db"] < metrics["classical_nmse_db"][-1]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["spec"]["sha256"] == LearnedISTA.SPEC_SHA256
    assert config["train"]["steps"] == 6 and config["task"]["m"] == 10 and config["note"] == "x"
    with safe_open(str(tmp_path / "weights.safetensors"), "pt") as f:
        assert f.metadata()["spec_sha256"] == LearnedISTA.SPEC_SHA256


def test_trained_beats_untrained(task):
    options = {**OPTIONS, "steps": 40, "lr": 5e-2, "eval_every": 40}
    result = train.fit(_model(task), task, **options)
    assert result.metrics["nmse_db"][-1] < result.metrics["classical_nmse_db"][-1] - 0.5


def test_nmse_is_ratio_of_sums_per_layer(task):
    model = _model(task)
    got = train.evaluate(model, task.test, train.bind(model, task), chunk=5)
    x = task.test["x"]
    with torch.no_grad():
        outs = model(task.test["y"], all_layers=True)
    expected = [10 * math.log10(float(((o - x) ** 2).sum() / (x**2).sum())) for o in outs]
    assert got["nmse_db"] == pytest.approx(expected, rel=1e-12)
    objective = [float(model.objective(s=o, x=task.test["y"]).mean()) for o in outs]
    assert got["objective"] == pytest.approx(objective, rel=1e-12)


def test_patience_ends_stage_early(task):
    steps = []
    def flat(pred, target):  # no gradient: validation never improves after the first check
        return (pred * 0).sum(1)

    train.fit(_model(task), task, loss=flat, callback=lambda i: steps.append(i.step),
              **{**OPTIONS, "steps": 1000, "patience": 4})
    assert steps == list(range(1, 10))


@pytest.mark.parametrize("option, message", [({"decay": 0}, "decay"), ({"decay": 1.5}, "decay"),
                                             ({"refine": (0.2, -1)}, "refine"),
                                             ({"lr": float("nan")}, "lr"),
                                             ({"lr_schedule": "linear"}, "lr schedule")])
def test_bad_schedule_options_are_refused(option, message):
    with pytest.raises(train.ConfigError, match=message):
        train.TrainConfig(**option)


@pytest.mark.parametrize("scheme", ["end-to-end", "layerwise"])
def test_cosine_schedule_anneals_every_stage_to_zero(task, scheme):
    """Step s of a stage capped at N runs at lr * multiplier * size * (1 + cos(pi s / N)) / 2
    (a scalar's size: rates.scales)."""
    seen = []

    def record(info):
        seen.append((info.stage_index, info.step, info.stage.max_steps,
                     [(g["lr"], g["multiplier"] * g["size"])
                      for g in info.optimizer.param_groups]))

    options = {**OPTIONS, "steps": 4, "scheme": scheme, "lr_schedule": "cosine"}
    train.fit(_model(task), task, callback=record, **options)
    stages = {index for index, *_ in seen}
    assert len(stages) == (1 if scheme == "end-to-end" else 9)
    for _, step, cap, groups in seen:  # the callback sees the step count after the step
        factor = 0.5 * (1 + math.cos(math.pi * (step - 1) / cap))
        for lr, mult in groups:
            assert lr == pytest.approx(OPTIONS["lr"] * mult * factor, rel=1e-12)
    assert [step for index, step, *_ in seen if index == 0] == [1, 2, 3, 4]
    last_lr, scale = seen[3][3][0]
    assert last_lr < 0.15 * OPTIONS["lr"] * scale  # the last step of a stage is near 0


def test_unknown_option_is_named(task):
    with pytest.raises(train.ConfigError, match="unknown training option.*stepz"):
        train.fit(_model(task), task, stepz=3)


def test_user_data_file(task, tmp_path):
    path = tmp_path / "data.npz"
    import numpy as np

    np.savez(path, x=task.val["y"].numpy(), s=task.val["x"].numpy())
    result = train.fit(_model(task), path, **OPTIONS)
    assert len(result.metrics["nmse_db"]) == 3
