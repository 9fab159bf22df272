"""A reference interpreter of the IR: runs a Program on torch tensors, one sample at a time.

It is a second oracle for tests, written independently of the code printer: every value is
unbatched (the batch is a Python loop over samples), every operator is evaluated by the
reference semantics its table entry states (`OPS[op].semantics`: written from the operator's
mathematical definition, inline or in `unfoldc/opsemantics.py`) rather than from its rendering,
and trainables are plain tensors (no constraint parameterization). Comparing a generated module
with this interpreter on the *unoptimized* program cross-checks parser, checker, passes and
printer at once.

    out = run(program, givens={"H": H}, inputs={"x": x}, num_layers=3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from unfoldc.ir.expr import Const, Expr, Op, Sym, walk
from unfoldc.ir.program import Program
from unfoldc.ir.types import DimSum
from unfoldc.ops import OPS, semantics_fn

Env = dict[str, object]


class InterpreterError(Exception):
    """The interpreter cannot evaluate an operator (its table entry has no semantics)."""


def semantics(op: str) -> tuple[Callable, str]:
    """The reference function of operator `op` and its calling convention, from `ops.OPS`."""
    d = OPS.get(op)
    if d is None:
        raise InterpreterError(f"the IR interpreter cannot evaluate `{op}`: it is not in the "
                               "operator table (unfoldc/ops.py)")
    try:
        return semantics_fn(d), d.semantics.call
    except LookupError as err:
        raise InterpreterError(f"the IR interpreter cannot evaluate `{op}`: {err}") from None


class Interpreter:
    """Evaluates expressions of one program in an environment of unbatched tensors."""

    def __init__(self, program: Program, dims: dict[str, int], dtype: torch.dtype):
        self.p, self.dims, self.dtype = program, dims, dtype

    def layer(self, k: int) -> Env:
        """The environment entry of the layer index `layer` in layer (or copy) k."""
        return {"layer": torch.tensor(float(k), dtype=self.dtype)}

    def size(self, d) -> int:
        if isinstance(d, DimSum):
            return d.size(self.dims.__getitem__)
        return d if isinstance(d, int) else self.dims[d]

    def eval(self, e: Expr, env: Env) -> torch.Tensor:
        """The value of `e` (unbatched) where symbols take their values from `env`."""
        if isinstance(e, Const):
            return torch.tensor(e.value, dtype=self.dtype)
        if isinstance(e, Sym):
            if e.role == "dim":
                return torch.tensor(float(self.dims[e.name]), dtype=self.dtype)
            return env[e.name]
        if isinstance(e, Op):
            return self._op(e, env)
        raise TypeError(f"cannot interpret IR node {type(e).__name__}")

    def _op(self, e: Op, env: Env) -> torch.Tensor:
        fn, call = semantics(e.op)
        if call == "shape":
            return fn(tuple(self.size(d) for d in e.type.dims), self.dtype)
        if call == "binder":
            return fn(self.eval, e.args, env)
        return fn(*(self.eval(a, env) for a in e.args))

    def filled(self, value: torch.Tensor, name: str) -> torch.Tensor:
        """`value` broadcast to the declared (unbatched) shape of symbol `name`."""
        shape = tuple(self.size(d) for d in self.p.symbol(name).type.dims)
        return value.expand(shape).clone() if value.shape != shape else value


def _dims(program: Program, givens: dict, inputs: dict) -> dict[str, int]:
    out = {}
    for b in program.dims:
        value = givens.get(b.symbol)
        if value is not None:
            out[b.dim] = value.shape[b.axis]
        else:
            out[b.dim] = inputs[b.symbol].shape[1 + b.axis]  # inputs carry the batch axis
    return out


def _layer_value(value, k: int):
    return value[k] if isinstance(value, Sequence) and not torch.is_tensor(value) else value


def run(program: Program, givens: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor],
        num_layers: int | None = None, params: dict | None = None,
        trainables: dict | None = None, all_layers: bool = False,
        dtype: torch.dtype = torch.float64, nets: dict[str, Callable] | None = None):
    """Run `program` like the generated module would, sample by sample.

    Args:
        program: a checked (or optimized) Program.
        givens: unbatched tensors by name.
        inputs: batched tensors (leading batch axis) by name.
        num_layers: K (default: the spec's layer count).
        params: overrides of fixed parameters by name.
        trainables: trainable values by name (default: their initial values); a per-layer
            trainable may be a list of K values, a `periodic T` one a list of T values.
        all_layers: return the outputs after every layer instead of the last.
        dtype: the dtype of constants and created tensors.
        nets: for a program with learned sub-networks, each net's function of unbatched
            arguments by name (the interpreter has no weights of its own).

    Returns:
        The batched output (a tensor, or a tuple for several outputs), or a list of those.
    """
    K = program.num_layers if num_layers is None else num_layers
    givens = {k: torch.as_tensor(v, dtype=dtype) for k, v in givens.items()}
    it = Interpreter(program, _dims(program, givens, inputs), dtype)
    env: Env = dict(givens) | dict(nets or {})
    for s in program.by_role("param"):
        value = (params or {}).get(s.name)
        env[s.name] = it.filled(torch.as_tensor(value, dtype=dtype) if value is not None
                                else it.eval(s.init, env), s.name)
    for a in program.setup:
        env[a.target] = it.eval(a.value, env)
    for s in program.by_role("train"):
        given = (trainables or {}).get(s.name)
        if given is not None:
            env[s.name] = given
        elif s.per_layer and any(isinstance(n, Sym) and n.role == "layer" for n in walk(s.init)):
            # copy j starts from the initial value evaluated with `layer` = j
            env[s.name] = [it.filled(it.eval(s.init, env | it.layer(j)), s.name)
                           for j in range(s.copies(K))]
        else:
            env[s.name] = it.filled(it.eval(s.init, env), s.name)
    batch = next(iter(inputs.values())).shape[0] if inputs else 1
    samples = [_sample(program, it, env, {k: v[b] for k, v in inputs.items()}, K)
               for b in range(batch)]
    history = [_stack([s[k] for s in samples]) for k in range(K)]
    if all_layers:
        return history
    if K == 0:
        raise ValueError("run with num_layers=0 has no output")
    return history[-1]


def _sample(program: Program, it: Interpreter, static: Env, inputs: Env, K: int) -> list:
    env = dict(static) | inputs
    for a in program.prologue:
        value = it.eval(a.value, env)
        env[a.target] = it.filled(value, a.target) if a.kind == "init" else value
    outs = []
    per_layer = [s for s in program.by_role("train") if s.per_layer]
    for k in range(K):
        env |= it.layer(k)
        for s in per_layer:
            env[s.name] = _layer_value(static[s.name], k if s.period is None else k % s.period)
        for a in program.body:
            value = it.eval(a.value, env)
            env[a.target] = it.filled(value, a.target) if a.kind == "update" else value
        outs.append(tuple(env[o] for o in program.outputs))
    return outs


def _stack(per_sample: list[tuple]) -> torch.Tensor | tuple:
    columns = [torch.stack([s[i] for s in per_sample]) for i in range(len(per_sample[0]))]
    return columns[0] if len(columns) == 1 else tuple(columns)
