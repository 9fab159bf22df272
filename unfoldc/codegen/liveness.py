"""Which generated names a piece of generated code reads, decided from the IR before printing.

torch.fx knows from `node.users` which values are used before it prints a line; here the IR
expressions and the emitters' few statement forms say it. A name's reads are the names of the
generated scope that the printed code loads: spec symbols as the scope spells them (`name_of`),
dimension sizes, and the locals `like` (dtype and device of new tensors) and `B` (batch size)
that printing introduces. The emitters use them to write only what is read: `B` and `like` where
a later line needs them, the per-call values `_step` and `_output` take from `_start`, the
context and states a method unpacks.

Every rule here mirrors one printing decision, named beside it: `tensor_args` and
`condition_tensor` (codegen/exprs.py) for numbers printed as `like.new_tensor(...)`,
`TAKES_LIKE` (codegen/helpers.py) for helpers called with `like`, SIZED for operators that
print their sizes, `fit` for how a value becomes a state's value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from unfoldc import ops
from unfoldc.codegen.exprs import condition_tensor, tensor_args
from unfoldc.codegen.helpers import TAKES_LIKE
from unfoldc.ir.expr import Const, Expr, Op, Sym
from unfoldc.ir.types import SCALAR, DimSum, Type

SIZED = ("eye", "zeros", "ones")  # operators whose rendering needs their sizes at run time

NameOf = Callable[[Sym], str]


def expr_reads(e: Expr, name_of: NameOf) -> set[str]:
    """The names that `e`, printed by an ExprPrinter with `name_of`, loads."""
    if isinstance(e, Sym):
        return {name_of(e)}
    if isinstance(e, Const):
        return set()
    if not isinstance(e, Op):
        raise TypeError(f"cannot read IR node {type(e).__name__}")
    opdef = ops.OPS[e.op]
    out: set[str] = set()
    for i, a in enumerate(e.args):
        out |= _condition_reads(a, name_of) if opdef.condition_first and i == 0 \
            else expr_reads(a, name_of)
    flags = tensor_args(e)[1:] if opdef.condition_first else tensor_args(e)
    if any(flags) or opdef.helper in TAKES_LIKE:
        out.add("like")
    if e.op in SIZED:  # `eye(n, like)`: the printer spells the sizes (ExprPrinter._spelled)
        out |= {name_of(Sym(d, SCALAR, "dim")) if isinstance(d, str) else d.name
                for d in e.type.dims if isinstance(d, str | DimSum)}
    return out


def _condition_reads(e: Expr, name_of: NameOf) -> set[str]:
    """The reads of `e` printed as a condition (ExprPrinter._condition): a comparison as
    itself, not as its 0/1 mask."""
    out = set().union(*(expr_reads(a, name_of) for a in e.args)) \
        if isinstance(e, Op) and ops.OPS[e.op].boolean else expr_reads(e, name_of)
    return out | ({"like"} if condition_tensor(e) else set())


def reads_of(exprs: Iterable[Expr], name_of: NameOf) -> set[str]:
    """The union of `expr_reads` over `exprs`."""
    return set().union(*(expr_reads(e, name_of) for e in exprs))


def dim_reads(t: Type, dim_name: Callable[[str], str]) -> set[str]:
    """The names `t`'s dimensions print as (a literal size reads nothing, `n - 1` reads `n`)."""
    return {dim_name(d if isinstance(d, str) else d.name) for d in t.dims
            if isinstance(d, str | DimSum)}


# ---- a value written into a state (ModuleEmitter._fit_state prints these forms) ---------------
ZEROS, FULL, SAME, FILL = "zeros", "full", "same", "fill"


def fit(state, v: Expr) -> str:
    """How `v` becomes a value of the state Symbol `state`: `like.new_zeros(shape)` (ZEROS),
    `like.new_full(shape, c)` (FULL), the value as it is (SAME), or `fill(v, shape, like)`
    (FILL: a scalar filling the shape, or an unbatched value getting the batch dimension)."""
    if isinstance(v, Const):
        return ZEROS if v.value == 0 else FULL
    if v.type.batched == state.type.batched and v.type.rank == state.type.rank:
        return SAME
    return FILL


def fit_reads(state, v: Expr, name_of: NameOf, dim_name: Callable[[str], str]) -> set[str]:
    """What the printed value of state Symbol `state` from `v` loads (see `fit`)."""
    how = fit(state, v)
    out = set() if isinstance(v, Const) else expr_reads(v, name_of)
    if how == SAME:
        return out
    out.add("like")
    if state.type.batched:
        out.add("B")
    return out | dim_reads(state.type, dim_name)


def unpacked(names: list[str], reads: set[str]) -> list[str] | None:
    """The targets that unpack the tuple `names` in a method that reads `reads`: `_` for the
    unread ones; None when the method reads none of them (no line at all)."""
    if not any(n in reads for n in names):
        return None
    return [n if n in reads else "_" for n in names]
