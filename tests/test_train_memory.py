"""Per-layer gradient checkpointing: same training, and a clear error without support."""

import pytest
import torch
from train_standin import LearnedISTA

from unfoldc import train

OPTIONS = {"steps": 4, "lr": 1e-2, "batch": 8, "classical_layers": 0, "progress": False}


@pytest.fixture(scope="module")
def task():
    return train.sparse_recovery(m=10, n=20, p=0.2, seed=4, val_size=8, test_size=8)


def test_checkpointed_training_matches_full_backprop(task):
    runs = [train.fit(LearnedISTA(num_layers=4, H=task.givens["A"]), task,
                      grad_checkpoint=flag, **OPTIONS).model.state_dict() for flag in (False, True)]
    for name, value in runs[0].items():
        assert torch.allclose(value, runs[1][name], rtol=1e-12, atol=0), name


class _NoCheckpoint(LearnedISTA):
    def forward(self, x=None, *, num_layers=None, all_layers=False):
        return super().forward(x, num_layers=num_layers, all_layers=all_layers)


def test_network_without_checkpoint_argument_is_refused(task):
    model = _NoCheckpoint(num_layers=2, H=task.givens["A"])
    with pytest.raises(train.ConfigError, match="accept `checkpoint=True`"):
        train.fit(model, task, grad_checkpoint=True, **OPTIONS)
