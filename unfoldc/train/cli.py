"""`unfoldc train SPEC ...`: the training command (wired into unfoldc/cli.py by `add_arguments`
and `run`). User errors print one message on stderr and return 1; usage errors return 2."""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

from unfoldc.limits import MAX_LAYERS
from unfoldc.train import rates
from unfoldc.train.config import TrainConfig
from unfoldc.train.errors import DataError, TrainError
from unfoldc.train.files import CHECKPOINT, check_out_dir, require_file
from unfoldc.train.operands import python_name
from unfoldc.train.schemes import SCHEMES
from unfoldc.train.tasks import Task

TASKS = ("sparse-recovery", "robust-pca")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _depth(text: str) -> int:
    """A number of layers: positive and at most MAX_LAYERS (refused before anything is built)."""
    value = _positive_int(text)
    if value > MAX_LAYERS:
        raise argparse.ArgumentTypeError(f"{text} is more than {MAX_LAYERS} layers, the most "
                                         "unfoldc builds")
    return value


def _baseline_depth(text: str) -> int:
    return 0 if int(text) == 0 else _depth(text)


def _open_unit(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def _weights(text: str):
    if text in ("uniform", "log"):
        return text
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        message = "use `uniform`, `log` or comma-separated numbers"
        raise argparse.ArgumentTypeError(message) from None


def _factors(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(f) for f in text.split(",") if f.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("use comma-separated numbers, e.g. 0.2,0.02") from None
    if any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"factors must be positive, got {text}")
    return values


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or not name.strip() or number is None or not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"use NAME=NUMBER, e.g. sigma2=2e-5, got {text!r}")
    return name.strip(), number


def _rates(text: str):
    try:
        return rates.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (e.g. 1e-3 or scalar=1e-2,matrix=5e-4)") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `unfoldc train`'s arguments on a (sub)parser."""
    parser.add_argument("spec", help="the .unf spec to compile and train")
    problem = parser.add_argument_group("problem")
    problem.add_argument("--task", choices=TASKS, default="sparse-recovery")
    # Long aliases for the one-letter sizes: under torchrun, whose parser also reads the script's
    # arguments, `--m`, `--n`, `--d` are ambiguous abbreviations of its own options.
    problem.add_argument("--m", "--measurements", dest="m", type=_positive_int, default=250,
                         help="measurements")
    problem.add_argument("--n", "--signal-length", dest="n", type=_positive_int, default=500,
                         help="signal length")
    problem.add_argument("--p", type=_fraction, default=0.1, help="nonzero probability")
    problem.add_argument("--snr", type=float, default=math.inf, help="SNR in dB (inf: none)")
    problem.add_argument("--d", "--matrix-size", dest="d", type=_positive_int, default=100,
                         help="robust PCA: matrix size")
    problem.add_argument("--rank", type=_positive_int, default=5, help="robust PCA: rank")
    problem.add_argument("--alpha", type=_fraction, default=0.1, help="robust PCA: outliers")
    problem.add_argument("--data", metavar="FILE",
                         help="a published instance (.npz from shared/data) or user arrays "
                              "(.npz/.pt named after the spec's inputs and outputs)")
    problem.add_argument("--param", type=_param, action="append", default=[],
                         metavar="NAME=VALUE",
                         help="set the spec's fixed parameter NAME (a `param`) to VALUE instead "
                              "of its declared value, e.g. a noise variance; repeatable")
    problem.add_argument("--data-seed", type=int, default=0,
                         help="seed of the generated matrix and validation/test sets")
    train = parser.add_argument_group("training")
    train.add_argument("--layers", type=_depth, help="layers (default: the spec's)")
    train.add_argument("--scheme", choices=SCHEMES, default="end-to-end")
    train.add_argument("--loss", choices=("nmse", "mse"), default="nmse")
    train.add_argument("--steps", type=_positive_int, default=1000,
                       help="total steps, or the cap of each stage (layerwise, incremental)")
    train.add_argument("--lr", type=_rates, metavar="RATES",
                       help="Adam learning rates: R for every parameter kind, or per kind "
                            "(scalar=R,matrix=R,net=R; kinds left out keep their default). "
                            "Defaults: " + rates.describe(None) + " (docs/training.md); with "
                            "--resume, the run's own unless given: pass it to continue at "
                            "another rate")
    train.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                       help="cosine: anneal every stage's rates to 0 at its step cap")
    train.add_argument("--batch", type=_positive_int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--patience", type=_positive_int, help="steps without improvement")
    train.add_argument("--eval-every", type=_positive_int, default=50)
    train.add_argument("--refine", type=_factors, default=(0.2, 0.02), metavar="F1,F2,...",
                       help="layer-wise: refinement lr factors after each new layer")
    train.add_argument("--decay", type=float, default=0.3,
                       help="layer-wise: lr multiplier per later layer already trained")
    train.add_argument("--shared", choices=("first", "refine"), default="first",
                       help="layer-wise: shared parameters train with layer 1, or in refinements")
    train.add_argument("--enforce-convergence", action="store_true",
                       help="train the network compiled with --enforce-convergence: step sizes "
                            "stay in (0, 2/L), thresholds nonnegative (docs/convergence.md)")
    train.add_argument("--weights", metavar="FILE",
                       help="start from these weights (a weights.safetensors of this spec)")
    train.add_argument("--layer-weights", type=_weights, default="uniform",
                       help="deep supervision: uniform, log or w1,w2,...")
    train.add_argument("--every-layer", action="store_true",
                       help="unsupervised: objective on every layer's output")
    train.add_argument("--grad-checkpoint", action="store_true",
                       help="recompute each layer in backward to save memory")
    train.add_argument("--safeguard", action="store_true",
                       help="keep a layer's update per sample only where it shrinks the "
                            "classical layer's fixed-point residual, else take the classical "
                            "update (Heaton et al. 2023); training, validation and test")
    train.add_argument("--safeguard-delta", type=_open_unit, default=0.1, metavar="DELTA",
                       help="the safeguard's required residual decrease, in (0, 1)")
    train.add_argument("--classical-layers", type=_baseline_depth, default=1000,
                       help="iterations of the converged classical baseline (0: skip)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, metavar="DIR",
                        help="directory for the weights, metrics, plots and checkpoint; one "
                             "holding an earlier run's outputs is refused unless --resume or "
                             "--overwrite")
    output.add_argument("--resume", action="store_true", help="continue DIR's checkpoint")
    output.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier run in DIR")
    output.add_argument("--no-plots", action="store_true")
    output.add_argument("--no-progress", action="store_true")
    output.add_argument("--progress-every", type=_positive_int, default=50, metavar="N",
                        help="when stderr is not a terminal, print a progress line every N "
                             "steps (on a terminal one line is redrawn)")
    output.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                        help="log to DIR/tensorboard (default: when tensorboard is installed)")


def run(args: argparse.Namespace) -> int:
    """Run `unfoldc train`; return the exit code."""
    try:
        check_out_dir(args.out, args.resume, args.overwrite)  # before any slow work
        if args.param and args.weights:
            # The file holds its run's params and every value the constructor derived from them.
            raise TrainError("--param sets a fixed parameter of a network built from the spec; "
                             "a --weights file holds its own run's values: drop one of the two")
        model_cls = _load(args.spec, args.enforce_convergence)
        task = _task(args, model_cls)
        model = _build(model_cls, task, args)
        baseline = None
        if args.weights:
            # The untrained network stays the classical baseline; training starts from the file.
            from unfoldc.train.checkpoint import load_weights

            baseline = copy.deepcopy(model)
            # Refuses another spec, depth or shapes; the task's givens are the network's data.
            load_weights(model, args.weights, keep_givens=True)
        result = _fit(model, task, args, baseline)
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except _SpecError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    _summary(result.metrics, Path(args.out))
    return 0


class _SpecError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _load(spec: str, enforce: bool = False):
    require_file(spec, "spec file")
    import unfoldc  # lazily: the compiler is only needed once arguments are valid

    try:
        return unfoldc.load(spec, unfoldc.Options(enforce_convergence=enforce))
    except unfoldc.UserError as exc:
        # Rendered diagnostics; anything else the compiler raises is its bug and propagates.
        raise _SpecError(str(exc)) from None


def _task(args, model_cls) -> Task:
    from unfoldc.train import tasks

    if args.data:
        return _data_task(args, model_cls)
    if args.task == "robust-pca":
        return tasks.robust_pca(args.d, args.rank, args.alpha, args.data_seed)
    return tasks.sparse_recovery(args.m, args.n, args.p, args.snr, args.data_seed)


def _data_task(args, model_cls) -> Task:
    """A published instance when the file has its arrays, else user arrays."""
    from unfoldc.train import tasks, userdata
    from unfoldc.train.files import load_arrays

    path = Path(args.data)
    arrays = load_arrays(path)
    if {"A", "x_test"} <= set(arrays):
        task = tasks.published_sparse_recovery(path, args.p, args.snr, args.data_seed)
    elif {"U_star", "V_star", "Y"} <= set(arrays):
        task = tasks.published_robust_pca(path, None, args.data_seed)
    else:
        return userdata.user_task(path, model_cls)
    # A published file may hold more givens than its task uses (ALISTA's analytic `W`).
    held = {python_name(model_cls, k): v for k, v in arrays.items()}
    task.givens.update({name: held[name] for name in model_cls.GIVENS
                        if name in held and name not in task.givens})
    print(f"givens from `{path}`: {', '.join(f'`{name}`' for name in task.givens)}",
          file=sys.stderr)
    return task


def _build(model_cls, task: Task, args):
    from unfoldc.train.binding import bind
    from unfoldc.train.distributed import local_device
    from unfoldc.train.operands import build
    from unfoldc.train.validate import check_task

    binding = bind(model_cls, task)
    missing = [g for g in model_cls.GIVENS if g not in binding.givens]
    if missing:
        raise DataError(f"the spec's given(s) {', '.join(f'`{g}`' for g in missing)} are not "
                        f"provided by the task `{task.name}`; put them in the --data file")
    check_task(model_cls, task, binding)
    device = local_device()
    givens = {k: v.to(device=device, dtype=_dtype()) for k, v in
              binding.model_givens(task).items()}
    return build(model_cls, givens, args.layers, params=dict(args.param))


def _dtype():
    import torch

    return torch.get_default_dtype()


def _fit(model, task: Task, args, baseline=None):
    from unfoldc.train.fit import fit

    config = TrainConfig(
        scheme=args.scheme, loss=args.loss, steps=args.steps, lr=_lr(args), batch=args.batch,
        seed=args.seed, patience=args.patience, eval_every=args.eval_every,
        refine=args.refine, decay=args.decay, shared=args.shared, lr_schedule=args.lr_schedule,
        layer_weights=args.layer_weights, every_layer=args.every_layer,
        grad_checkpoint=args.grad_checkpoint, classical_layers=args.classical_layers,
        safeguard=args.safeguard, safeguard_delta=args.safeguard_delta,
        plots=not args.no_plots, progress=False if args.no_progress else None,
        progress_every=args.progress_every, tensorboard=args.tensorboard,
    )
    record = {"command": ["unfoldc", "train", *sys.argv[2:]] if sys.argv[1:2] == ["train"]
              else sys.argv, "spec_path": str(args.spec), "data": args.data,
              "init_weights": args.weights, "params": dict(args.param),
              "num_layers": model.num_layers}
    return fit(model, task, config, out=args.out, resume=args.resume, overwrite=args.overwrite,
               record=record, baseline=baseline)


def _lr(args) -> float | dict | None:
    """--lr, else the resumed run's rates, else the defaults (None)."""
    from unfoldc.train.checkpoint import checkpoint_lr

    if args.lr is not None:
        return args.lr
    checkpoint = Path(args.out) / CHECKPOINT
    resumed = checkpoint_lr(checkpoint) if args.resume and checkpoint.is_file() else None
    return TrainConfig.lr if resumed is None else resumed


def _summary(metrics: dict, out: Path) -> None:
    trained, classical = metrics["nmse_db"], metrics["classical_nmse_db"]
    if trained:
        print(" layer   trained NMSE (dB)   classical NMSE (dB)")
        for k, (t, c) in enumerate(zip(trained, classical, strict=True), start=1):
            print(f" {k:5d}   {t:17.2f}   {c:19.2f}")
    if "fixed_point" in metrics:  # what a fixed_point spec trains
        t, c = metrics["fixed_point"]["nmse_db"], metrics["classical_fixed_point"]["nmse_db"]
        if t is not None and c is not None:
            print(f" fixed point  trained {t:.2f} dB, classical {c:.2f} dB")
    print(f"{metrics['steps']} steps in {metrics['wall_s']:.1f} s; results in {out}")
    for note in metrics.get("notes", ()):
        print(f"note: {note}", file=sys.stderr)
