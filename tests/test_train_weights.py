"""Weights files: round trip, and refusals that say what is wrong."""

import pytest
import torch
from train_standin import LearnedISTA, SharedStepISTA, make_matrix

from unfoldc import train


def _trained(H, layers=3):
    model = LearnedISTA(num_layers=layers, H=H)
    with torch.no_grad():
        for k, layer in enumerate(model.layers):
            layer.rho_raw.fill_(0.1 * k)
    return model


def test_round_trip(tmp_path):
    H = make_matrix()
    train.save_weights(_trained(H), tmp_path / "w.safetensors")
    fresh = train.load_weights(LearnedISTA(num_layers=3, H=H), tmp_path / "w.safetensors")
    assert torch.equal(fresh.layers[2].rho_raw, torch.tensor(0.2, dtype=H.dtype))


def test_other_spec_is_refused(tmp_path):
    H = make_matrix()
    train.save_weights(_trained(H), tmp_path / "w.safetensors")
    other = SharedStepISTA(num_layers=3, H=H)
    with pytest.raises(train.WeightsError) as info:
        train.load_weights(other, tmp_path / "w.safetensors")
    message = str(info.value)
    assert "spec `learned_ista`" in message and "spec `shared_step_ista`" in message
    assert LearnedISTA.SPEC_SHA256[:12] in message and "exact spec" in message


def test_other_layer_count_is_refused(tmp_path):
    H = make_matrix()
    train.save_weights(_trained(H), tmp_path / "w.safetensors")
    with pytest.raises(train.WeightsError, match="holds 3 layers but this network has 5"):
        train.load_weights(LearnedISTA(num_layers=5, H=H), tmp_path / "w.safetensors")


def test_other_shapes_are_refused(tmp_path):
    train.save_weights(_trained(make_matrix(20, 40)), tmp_path / "w.safetensors")
    with pytest.raises(train.WeightsError, match=r"shape mismatch for `H`.*\(20, 40\).*\(10, 30\)"):
        train.load_weights(LearnedISTA(num_layers=3, H=make_matrix(10, 30)),
                           tmp_path / "w.safetensors")


def test_unreadable_and_missing_files(tmp_path):
    model = LearnedISTA(num_layers=3, H=make_matrix())
    (tmp_path / "junk.safetensors").write_bytes(b"not a weights file")
    with pytest.raises(train.WeightsError, match="cannot read .* as a safetensors file"):
        train.load_weights(model, tmp_path / "junk.safetensors")
    with pytest.raises(train.WeightsError, match="does not exist"):
        train.load_weights(model, tmp_path / "none.safetensors")


def test_foreign_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "f.safetensors"))
    with pytest.raises(train.WeightsError, match="not written by unfoldc"):
        train.load_weights(LearnedISTA(num_layers=3, H=make_matrix()), tmp_path / "f.safetensors")
