"""Training compiled deep-unfolding networks (see docs/training.md).

    from unfoldc import train
    task = train.sparse_recovery(m=250, n=500, p=0.1)
    result = train.fit(model, task, scheme="layerwise", steps=500, lr=5e-4, out="runs/ista")
    result.metrics["nmse_db"]  # test NMSE (dB) after each layer

Networks stay plain `nn.Module`s: training only reads the attributes of the generated-module
contract (docs/generated-module.md).
"""

from unfoldc.train.binding import Binding, bind
from unfoldc.train.checkpoint import load_weights, save_weights
from unfoldc.train.config import TrainConfig
from unfoldc.train.errors import (
    ConfigError,
    DataError,
    TrainError,
    TrainingDiverged,
    WeightsError,
)
from unfoldc.train.fit import FitResult, fit, measure
from unfoldc.train.loop import StepInfo
from unfoldc.train.losses import MSE, NMSE, Loss, layer_weights
from unfoldc.train.metrics import evaluate
from unfoldc.train.schemes import SCHEMES, Stage, build_stages
from unfoldc.train.tasks import (
    Task,
    published_robust_pca,
    published_sparse_recovery,
    robust_pca,
    sparse_recovery,
)
from unfoldc.train.userdata import load_arrays, user_task

__all__ = [
    "MSE", "NMSE", "SCHEMES", "Binding", "ConfigError", "DataError", "FitResult", "Loss",
    "Stage", "StepInfo", "Task", "TrainConfig", "TrainError", "TrainingDiverged",
    "WeightsError", "bind", "build_stages", "evaluate", "fit", "layer_weights", "load_arrays",
    "load_weights", "measure", "published_robust_pca", "published_sparse_recovery",
    "robust_pca", "save_weights", "sparse_recovery", "user_task",
]
