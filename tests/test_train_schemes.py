"""Scheme mechanics: which parameters move, at which learning rates, through how many layers."""

import math

import pytest
import torch
from train_standin import LearnedISTA, SharedStepISTA

from unfoldc import train
from unfoldc.train.criterion import Criterion
from unfoldc.train.losses import NMSE
from unfoldc.train.rates import scales
from unfoldc.train.schemes import build_stages

LR = 1e-2


@pytest.fixture(scope="module")
def task():
    return train.sparse_recovery(m=10, n=20, p=0.2, seed=1, val_size=20, test_size=20)


def _model(task, cls=LearnedISTA, layers=3):
    return cls(num_layers=layers, H=task.givens["A"].clone())


def _trace(model, task, **options):
    """Fit and record, after every step, the stage and a copy of every parameter."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    records = []

    def callback(info):
        params = {n: p.detach().clone() for n, p in info.model.named_parameters()}
        # Adam groups per multiplier, with the rate before a scalar's size (rates.scales).
        merged = {}
        for g in info.optimizer.param_groups:
            rate, names = merged.setdefault(g["multiplier"], (g["lr"] / g["size"], []))
            names.extend(_name(info.model, p) for p in g["params"])
        groups = [(rate, sorted(names)) for rate, names in merged.values()]
        records.append((info.stage, info.step, params, groups))

    options = {"steps": 2, "lr": LR, "batch": 8, "eval_every": 1, "classical_layers": 0,
               "progress": False, **options}
    train.fit(model, task, callback=callback, **options)
    return before, records


def _name(model, param):
    return next(n for n, p in model.named_parameters() if p is param)


def _changed(old, new):
    return {n for n in new if not torch.equal(old[n], new[n])}


def _layer(k):
    return {f"layers.{k}.mu_log", f"layers.{k}.rho_raw"}


def test_layerwise_new_layer_stage_moves_only_that_layer(task):
    before, records = _trace(_model(task), task, scheme="layerwise")
    previous = before
    for stage, _, params, _ in records:
        moved = _changed(previous, params)
        t = stage.num_layers
        if "x" not in stage.name:
            assert moved == _layer(t - 1), stage.name
        else:
            assert moved == set().union(*(_layer(k) for k in range(t))), stage.name
        previous = params


def test_layerwise_stage_order_and_depth(task):
    stages = build_stages(_model(task), "layerwise", 5, None)
    assert [(s.name, s.num_layers) for s in stages] == [
        ("layer 1", 1), ("layer 1 x0.2", 1), ("layer 1 x0.02", 1),
        ("layer 2", 2), ("layer 2 x0.2", 2), ("layer 2 x0.02", 2),
        ("layer 3", 3), ("layer 3 x0.2", 3), ("layer 3 x0.02", 3),
    ]


def test_layerwise_lr_multipliers_are_decay_powers_times_stage_factor(task):
    _, records = _trace(_model(task), task, scheme="layerwise")
    for stage, _, _, groups in records:
        t = stage.num_layers
        factor = float(stage.name.split("x")[1]) if "x" in stage.name else None
        if factor is None:
            assert groups == [(pytest.approx(LR, rel=1e-15), sorted(_layer(t - 1)))]
            continue
        assert len(groups) == t
        for k, (lr, names) in enumerate(groups):
            assert set(names) == _layer(k)
            assert lr == pytest.approx(LR * factor * 0.3 ** (t - 1 - k), rel=1e-12)


def test_layerwise_multiplier_really_scales_adams_step(task):
    """Adam's first step moves each scalar by its group's lr (the multiplier is not cancelled)."""
    model = _model(task)
    sizes = scales(model)
    previous, records = _trace(model, task, scheme="layerwise", steps=1)
    for stage, _, params, groups in records:
        for lr, names in groups:
            for name in names:
                step = abs(float(params[name] - previous[name]))
                assert step == pytest.approx(lr * sizes[name], rel=1e-3), (stage.name, name)
        previous = params


def test_shared_parameters_belong_to_first_layer_by_default(task):
    model = _model(task, SharedStepISTA)
    stages = build_stages(model, "layerwise", 1, None)
    assert stages[0].groups == ((("mu_log", "layers.0.rho_raw"), 1.0),)
    layer3_new = stages[6]
    assert layer3_new.groups == ((("layers.2.rho_raw",), 1.0),)
    refine = stages[7].groups
    assert refine[0] == (("mu_log", "layers.0.rho_raw"), pytest.approx(0.2 * 0.3**2))


def test_shared_parameters_refine_policy(task):
    model = _model(task, SharedStepISTA)
    stages = build_stages(model, "layerwise", 1, None, shared="refine")
    assert stages[0].groups == ((("layers.0.rho_raw",), 1.0),)
    assert stages[7].groups[-1] == (("mu_log",), 0.2)
    assert stages[7].groups[0] == (("layers.0.rho_raw",), pytest.approx(0.2 * 0.3**2))


def test_incremental_generations_train_first_g_layers(task):
    before, records = _trace(_model(task), task, scheme="incremental")
    assert [s.num_layers for s, step, *_ in records if step == 1] == [1, 2, 3]
    previous = before
    for stage, _, params, _ in records:
        assert _changed(previous, params) == set().union(
            *(_layer(k) for k in range(stage.num_layers)))
        previous = params


def test_end_to_end_moves_everything(task):
    before, records = _trace(_model(task), task, scheme="end-to-end")
    assert _changed(before, records[-1][2]) == set(before)
    assert {s.supervision for s, *_ in records} == {"final"}


def test_layer_weights():
    assert train.layer_weights("uniform", 4) == [0.25] * 4
    logs = [math.log(2), math.log(3), math.log(4)]
    assert train.layer_weights("log", 3) == pytest.approx([w / sum(logs) for w in logs])
    assert train.layer_weights([1, 0, 2], 3) == [1.0, 0.0, 2.0]
    with pytest.raises(train.ConfigError, match="3 nonnegative numbers"):
        train.layer_weights([1, 2], 3)
    with pytest.raises(train.ConfigError, match="unknown layer weights"):
        train.layer_weights("cubic", 3)


@pytest.mark.parametrize("weights", ["uniform", "log", [0.0, 1.0, 3.0]])
def test_deep_supervision_loss_is_weighted_sum_of_layer_nmse(task, weights):
    model = _model(task)
    stage = build_stages(model, "deep-supervision", 1, None)[0]
    assert stage.supervision == "all"
    y, x = task.val["y"], task.val["x"]
    crit = Criterion(NMSE, ("s",), weights=weights)
    got = crit(model, {"x": y}, {"s": x}, crit.normalizers({"s": x}, len(x)), stage)
    outs = model(y, all_layers=True)
    per_layer = [((o - x) ** 2).sum() / (x**2).sum() for o in outs]
    expected = sum(w * v for w, v in zip(train.layer_weights(weights, 3), per_layer, strict=True))
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)


def test_unsupervised_loss_is_mean_objective(task):
    model = _model(task)
    y = task.val["y"]
    for every_layer in (False, True):
        stage = build_stages(model, "unsupervised", 1, None, every_layer=every_layer)[0]
        crit = Criterion(NMSE, (), unsupervised=True)
        got = crit(model, {"x": y}, {}, crit.normalizers({}, len(y)), stage)
        outs = model(y, all_layers=True)
        values = [model.objective(s=o, x=y).mean() for o in outs]
        expected = sum(values) / 3 if every_layer else values[-1]
        assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)


def test_unsupervised_needs_no_ground_truth(task):
    no_truth = train.Task("no-truth", task.givens, ("y",), (), {"y": task.val["y"]},
                          {"y": task.test["y"]}, lambda c, g: {"y": task.sampler(c, g)["y"]})
    model = _model(task)
    start = model.objective(s=model(task.val["y"]), x=task.val["y"]).mean()
    result = train.fit(model, no_truth, scheme="unsupervised", steps=20, lr=LR, batch=8,
                       classical_layers=0, progress=False)
    assert result.metrics["nmse_db"] is None
    assert result.metrics["objective"][-1] < float(start.detach())
    with pytest.raises(train.ConfigError, match="no ground truth"):
        train.fit(_model(task), no_truth, scheme="end-to-end", steps=1, progress=False)


def test_unknown_scheme_is_reported(task):
    with pytest.raises(train.ConfigError, match="unknown scheme `greedy`"):
        train.fit(_model(task), task, scheme="greedy")
