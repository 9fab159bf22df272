"""The operator table: one entry per operator, holding everything the compiler knows about it.

Each `OpDef` gives the spelling in a spec, the arity, the shape rule, the sympy form and the
torch rendering, and the facts the later stages read from it:

    semantics    how the IR interpreter evaluates it (ir/interpreter.py): a function written
                 from the definition, inline or named in `opsemantics.py`
    lipschitz    its Lipschitz behaviour in the first argument (convergence/analyze.py)
    conditions   what that behaviour needs of the other arguments, e.g. a threshold >= 0
                 (convergence/derive.py turns them into required conditions)
    prox         for a function a spec may take the prox of, which operator that prox is
                 (ir/prox.py)
    fold         constant folding on numbers (semantics/constants.py, while checking)

Adding an operator touches this file only, then `python docs/gen_ops_table.py --write`; plus
`codegen/helpers.py` when generated code needs a helper function for it, `opsemantics.py` when
its reference semantics takes more than a line, and an `Analyzer._op_<name>` rule when its
Lipschitz fact is "exact". `tests/test_ops_table.py` fails when an entry lacks a fact
(`missing_facts`). Sympy forms are read through ir/sympy_bridge.py (symbolic gradients,
the convergence analysis's coefficients); not here yet: the reverse-mode rules of
`ir/calculus.py` for what sympy's matrix calculus cannot do.

Shape rules take the argument expressions and a `DimTable` and return the *unbatched* result
type; batching is added afterwards (a result is batched when any argument is). They raise
`ShapeError` naming the offending argument. Renderers take printed arguments (`Code`) and return
printed code; generated tensors keep the batch dimension first, so renderers use negative
dimensions and `.mT`, which work with and without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy

from unfoldc.ir.types import SCALAR, DimSum, DimTable, Type, dim_affine, matrix, vector

# Python operator precedence, which generated code follows.
PREC_ADD, PREC_MUL, PREC_NEG, PREC_POW, PREC_ATOM = 1, 2, 3, 4, 5


class ShapeError(Exception):
    """A shape rule failed; `arg` is the index of the argument to point at (None: the call)."""

    def __init__(self, code: str, message: str, label: str = "", arg: int | None = None,
                 help: str = ""):
        super().__init__(message)
        self.code, self.message, self.label, self.arg, self.help = code, message, label, arg, help


@dataclass(frozen=True)
class Code:
    """A printed expression: its text, the precedence of its outermost operator, its type."""

    text: str
    prec: int
    type: Type
    symmetric: bool = False  # a symmetric matrix: A.T may be printed as A

    def at(self, prec: int) -> str:
        """The text, parenthesized when it binds looser than `prec`."""
        return self.text if self.prec >= prec else f"({self.text})"


@dataclass(frozen=True)
class Semantics:
    """How the IR interpreter evaluates an operator (on one sample: unbatched tensors).

    `fn` is a function written from the operator's definition, independently of its rendering:
    inline (tensor methods only: this module does not import torch), or the name of a function
    in `unfoldc/opsemantics.py`. `call` is its calling convention: "values" (the argument
    values), "shape" (the result's unbatched shape and the dtype), "binder" (the unevaluated
    arguments, an evaluator and the environment: for operators that bind a variable).
    """

    fn: Callable | str
    call: str = "values"


# Lipschitz kinds (see `Lipschitz`).
LIPSCHITZ_KINDS = ("exact", "prox", "lipschitz", "minmax", "linear", "none")


@dataclass(frozen=True)
class Lipschitz:
    """An operator's Lipschitz behaviour in its first (state) argument when its other arguments
    are state-free: what the convergence analysis (convergence/analyze.py) may assume.

        exact      handled exactly by a rule of its own (`Analyzer._op_<name>`)
        prox       the proximal map of the closed convex function `prox_of` (of the first
                   argument): firmly nonexpansive, 1-Lipschitz where `conditions` hold; a
                   gradient step inside it is a proximal-gradient step
        lipschitz  Lipschitz with constant `const`, but not a proximal map
        minmax     elementwise min/max with a state-free operand: 1-Lipschitz in the other
        linear     a fixed linear operator with norm at most `const`, kept exact by the analysis
                   as the abstract factor `factor` (the table name of the operator it is, or,
                   with `adjoint`, of which it is `sign` times the adjoint), so that K and K^T
                   are recognized as a pair and ||K||^2 is bounded by const^2
        none       not analyzed: a state-dependent argument makes the bound unknown
    """

    kind: str
    const: float | None = None
    prox_of: str = ""
    why: str = ""
    # For a prox: does its function make an objective have a minimizer? "threshold" (coercive
    # when the threshold, argument 1, is > 0: b * norm), "bounded" (the indicator of a bounded
    # set), "" (neither: the nonnegative orthant). Read by convergence/theorems.py.
    minimizer: str = ""
    factor: str = ""  # kind "linear": the operator this is (or, with `adjoint`, the adjoint of)
    adjoint: bool = False
    sign: float = 1.0


EXACT = Lipschitz("exact")
MINMAX = Lipschitz("minmax", 1.0)


def prox_of(function: str, minimizer: str = "") -> Lipschitz:
    """The proximal map of `function` (written in the further arguments' names); `minimizer`
    says whether the function guarantees a minimizer ("threshold", "bounded" or "")."""
    return Lipschitz("prox", 1.0, function, minimizer=minimizer)


def linear_op(norm: float, factor: str, adjoint: bool = False, sign: float = 1.0) -> Lipschitz:
    """A fixed linear operator with ||op|| <= `norm`: the operator `factor` itself, or `sign`
    times its adjoint (see `Lipschitz`)."""
    return Lipschitz("linear", norm, factor=factor, adjoint=adjoint, sign=sign)


def adjoint_of(name: str) -> tuple[str, float] | None:
    """(op, sign) with the adjoint of the linear operator `name` equal to sign * op (diff ->
    diff_adj, grad2d -> -div2d), read from their "linear" facts; None for other operators."""
    fact = OPS[name].lipschitz
    if fact is None or fact.kind != "linear":
        return None
    for other, d in OPS.items():
        lip = d.lipschitz
        if lip.kind == "linear" and lip.factor == fact.factor and lip.adjoint != fact.adjoint:
            return other, fact.sign * lip.sign
    return None


def unanalyzed(why: str = "") -> Lipschitz:
    return Lipschitz("none", why=why)


@dataclass(frozen=True)
class Arg:
    """An operator's argument by position: 0 is the first (state) argument."""

    index: int

    def text(self) -> str:
        return "abc"[self.index] if self.index < 3 else f"arg{self.index}"


@dataclass(frozen=True)
class ArgCondition:
    """`lhs op rhs` on an operator's further (state-free) arguments, each an `Arg` or a number:
    the operator's Lipschitz fact holds only where it does. `note` names it in the report."""

    lhs: Arg | float
    op: str
    rhs: Arg | float
    note: str

    def text(self) -> str:
        return f"{_side_text(self.lhs)} {self.op} {_side_text(self.rhs)}"


def _side_text(x: Arg | float) -> str:
    return x.text() if isinstance(x, Arg) else f"{x:g}"


@dataclass(frozen=True)
class ProxAtom:
    """For a function g a spec may take the prox of (ir/prox.py): prox of `a * g(p, extra...)`
    at v is `op(v, a, *extra)`, or `op(v, *extra)` when not `scaled` (an indicator: the scale
    does not matter). `op` None is the closed form `v / (1 + 2 a)` (sqnorm). `weighted`: the
    prox of `a * g(w * p)`, w >= 0 elementwise, is `op(v, a * w)`. `separable`: g is a sum of
    one-dimensional terms, so an elementwise function and a box combine exactly."""

    op: str | None
    scaled: bool = True
    weighted: bool = False
    separable: bool = False


@dataclass(frozen=True)
class OpDef:
    """Everything about one operator (the facts after `numbers_after_first`: see the module
    docstring; None means not stated, which `missing_facts` reports)."""

    name: str
    spelling: str  # how a spec writes it: `+`, `@`, `soft`, ...
    arity: tuple[int, int]  # (min, max) number of arguments
    shape: Callable[[DimTable, list], Type]
    render: Callable[[list[Code], Type], tuple[str, int]]
    sympy: Callable[..., sympy.Basic]
    doc: str
    infix: bool = False
    elementwise: bool = False  # batched scalar arguments are broadcast to the result's rank
    helper: str = ""  # name of a helper function the generated file must define
    internal: bool = False  # produced by the compiler only; no spelling in specs
    # Calls (not infix operators) need a tensor first argument: a number there is printed as a
    # tensor; `numbers_after_first` says whether the other arguments may stay Python numbers.
    numbers_after_first: bool = True
    semantics: Semantics | None = None
    lipschitz: Lipschitz | None = None
    # Stated for every operator that takes more than one argument (possibly `()`).
    conditions: tuple[ArgCondition, ...] | None = None
    prox: ProxAtom | None = None
    fold: Callable[..., float | None] | None = None  # on Python numbers; None: undefined there
    # A comparison: its Python symbol (its boolean form, printed inside `where`).
    boolean: str = ""
    # The first argument is a condition: printed as a boolean (`a < b`, or `c != 0`).
    condition_first: bool = False


OPS: dict[str, OpDef] = {}


def _op(name, spelling, arity, shape, render, sym, doc, **kw) -> None:
    if arity[1] <= 1:
        kw.setdefault("conditions", ())  # no further arguments to put conditions on
    OPS[name] = OpDef(name, spelling, arity, shape, render, sym, doc, **kw)


# ---- shape rules --------------------------------------------------------------------------------
def _t(e) -> Type:
    return e.type


def _need(kinds: str, e, i: int, what: str) -> None:
    if _t(e).kind not in kinds.split("|"):
        raise ShapeError("E0306", f"{what} expects a {kinds.replace('|', ' or ')}, "
                         f"found a {_t(e)}", f"this is a {_t(e)}", i)


def _dims_eq(dims: DimTable, a: Type, b: Type) -> bool:
    return a.rank == b.rank and all(dims.unify(x, y) for x, y in zip(a.dims, b.dims))


def broadcast(dims: DimTable, args) -> Type:
    """Elementwise rule: scalars broadcast; otherwise kinds and dimensions must agree."""
    shaped = [_t(a) for a in args if _t(a).kind != "scalar"]
    if not shaped:
        return SCALAR
    first = shaped[0]
    for a in args:
        t = _t(a)
        if t.kind != "scalar" and not _dims_eq(dims, first, t):
            raise ShapeError(
                "E0302", f"elementwise operands have different shapes: {first} and {t}",
                f"{dims.resolve(first)} vs {dims.resolve(t)}", None,
                "elementwise operations need equal shapes or a scalar operand",
            )
    return Type(first.kind, first.dims)


def _same(dims, args):
    return Type(_t(args[0]).kind, _t(args[0]).dims)


def _scalar(dims, args):
    return SCALAR


def _matmul(dims: DimTable, args) -> Type:
    a, b = _t(args[0]), _t(args[1])
    if a.kind == "scalar" or b.kind == "scalar":
        raise ShapeError("E0301", "`@` needs a vector or matrix on both sides; found a scalar",
                         "scalar operand", None, "use `*` to scale by a scalar")
    inner_a = a.dims[-1] if a.kind == "matrix" else a.dims[0]
    inner_b = b.dims[0]
    if not dims.unify(inner_a, inner_b):
        ia, ib = dims.find(inner_a), dims.find(inner_b)
        hint = "did you mean to transpose the left operand (`A.T @ ...`)?"
        raise ShapeError("E0301", f"cannot multiply a {dims.resolve(a)} by a {dims.resolve(b)}",
                         f"inner dimensions {ia} and {ib} differ", None, hint)
    if a.kind == "vector" and b.kind == "vector":
        return SCALAR
    if a.kind == "vector":
        return vector(b.dims[1])
    if b.kind == "vector":
        return vector(a.dims[0])
    return matrix(a.dims[0], b.dims[1])


def _transpose(dims, args) -> Type:
    t = _t(args[0])
    if t.kind == "scalar":
        return SCALAR
    if t.kind == "vector":
        raise ShapeError("E0306", "vectors have no transpose in this language", "a vector", 0,
                         "use `dot(a, b)` for an inner product, or `A.T` on a matrix")
    return matrix(t.dims[1], t.dims[0])


def _square(dims, args, i=0, what="this operator"):
    _need("matrix", args[i], i, what)
    t = _t(args[i])
    if not dims.unify(t.dims[0], t.dims[1]):
        raise ShapeError("E0306", f"{what} needs a square matrix, found {dims.resolve(t)}",
                         "not square", i)
    return matrix(t.dims[0], t.dims[1])


def _solve(dims, args) -> Type:
    a = _square(dims, args, 0, "`solve`")
    b = _t(args[1])
    _need("vector|matrix", args[1], 1, "`solve`'s right-hand side")
    if not dims.unify(a.dims[1], b.dims[0]):
        raise ShapeError("E0301", f"cannot solve a {dims.resolve(a)} system with a right-hand "
                         f"side {dims.resolve(b)}", "sizes differ", 1)
    return Type(b.kind, b.dims)


def _inv(dims, args) -> Type:
    return _square(dims, args, 0, "`inv`")


def _matrix_to_scalar(dims, args) -> Type:
    _need("matrix", args[0], 0, "`opnorm`")
    return SCALAR


def _reduce(dims, args) -> Type:
    return SCALAR


def _eye(dims, args) -> Type:
    if args:
        return matrix(_dim_of(args[0], 0), _dim_of(args[0], 0))
    d = dims.fresh()
    return matrix(d, d)


def _dim_of(e, i: int):
    from unfoldc.ir.expr import Const, Op, Sym  # local: ops.py must not depend on the IR

    if isinstance(e, Sym) and e.role == "dim":
        return e.name
    if isinstance(e, Const) and float(e.value).is_integer() and e.value > 0:
        return int(e.value)
    if isinstance(e, Op) and e.op in ("add", "sub", "mul"):  # `n - 1`, `n + 2`, `2 * n`
        got = _dim_arithmetic(e, i)
        if got is not None:
            return got
    raise ShapeError("E0306", "sizes must be dimension names or positive integers",
                     "not a size", i, "e.g. `zeros(n)` or `ones(m, n)` with `m`, `n` declared dims")


def _dim_arithmetic(e, i: int):
    """`k * d`, `d + k`, `d - k` (k an integer, d a size) as a size; None otherwise."""
    from unfoldc.ir.expr import Const  # local: ops.py must not depend on the IR at import

    def whole(x) -> bool:
        return isinstance(x, Const) and float(x.value).is_integer()

    a, b = e.args
    if e.op == "mul" and (whole(a) or whole(b)):
        k, d = (a, b) if whole(a) else (b, a)
        return dim_affine(_dim_of(d, i), int(k.value), 0)
    if e.op in ("add", "sub") and whole(b):
        return dim_affine(_dim_of(a, i), 1, int(b.value) * (1 if e.op == "add" else -1))
    return None


def _filled(dims, args) -> Type:
    if len(args) == 1:
        return vector(_dim_of(args[0], 0))
    return matrix(_dim_of(args[0], 0), _dim_of(args[1], 1))


def _threshold(dims, args) -> Type:
    _need("vector|matrix|scalar", args[0], 0, "this threshold")
    if _t(args[1]).kind != "scalar":
        return broadcast(dims, args)
    return _same(dims, args)


def _threshold_ss(dims, args) -> Type:
    _need("vector", args[0], 0, "`soft_ss`")
    _need("scalar", args[2], 2, "`soft_ss`'s selected fraction")
    return _threshold(dims, args[:2])


def _svt(dims, args) -> Type:
    _need("matrix", args[0], 0, "`svt`")
    _need("scalar", args[1], 1, "`svt`'s threshold")
    return _same(dims, args)


def _bounds(what: str):
    """`clamp(v, lo, hi)`: each bound a scalar (one for every entry) or of v's shape."""
    def rule(dims, args):
        out = _same(dims, args)
        for i in (1, 2):
            t = _t(args[i])
            if t.kind != "scalar" and not _dims_eq(dims, out, t):
                raise ShapeError("E0302", f"{what}'s bounds are scalars or have the shape of "
                                 f"its first argument ({dims.resolve(out)}), found a "
                                 f"{dims.resolve(t)}", f"a {dims.resolve(t)}", i,
                                 "give one bound for every entry, or a scalar for all")
        return out
    return rule


def _vector_op(what: str, scalars: int = 0):
    def rule(dims, args):
        _need("vector", args[0], 0, what)
        for i in range(1, 1 + scalars):
            if i < len(args):
                _need("scalar", args[i], i, what)
        return _same(dims, args)
    return rule


def _sized(dims, e, i: int, axis: int, what: str, scale: int = 1, offset: int = 0,
           need: str = ""):
    """`scale * d + offset` for the dimension d of argument i's axis, or a ShapeError."""
    d = dims.find(_t(e).dims[axis])
    out = dim_affine(d, scale, offset)
    if out is None:
        raise ShapeError("E0306", f"{what} cannot size its result from a {dims.resolve(_t(e))}",
                         "size unknown or too small", i, need)
    return out


def _diff(dims, args) -> Type:
    if _t(args[0]).kind == "matrix":
        raise ShapeError("E0306", f"`diff` expects a vector, found a {_t(args[0])}",
                         f"this is a {_t(args[0])}", 0,
                         "`grad2d` takes the differences of an image along both axes")
    _need("vector", args[0], 0, "`diff`")
    return vector(_sized(dims, args[0], 0, 0, "`diff`", offset=-1,
                         need="`diff` needs a vector of a declared size, at least 2 entries"))


def _diff_adj(dims, args) -> Type:
    _need("vector", args[0], 0, "`diff_adj`")
    return vector(_sized(dims, args[0], 0, 0, "`diff_adj`", offset=1))


def _grad2d(dims, args) -> Type:
    _need("matrix", args[0], 0, "`grad2d`")
    t = _t(args[0])
    return matrix(_sized(dims, args[0], 0, 0, "`grad2d`", scale=2), t.dims[1])


def _div2d(dims, args) -> Type:
    _need("matrix", args[0], 0, "`div2d`")
    t = _t(args[0])
    d = dims.find(t.dims[0])
    half = None
    if isinstance(d, int) and d % 2 == 0:
        half = d // 2
    elif isinstance(d, DimSum) and d.scale % 2 == 0 and d.offset % 2 == 0:
        half = dim_affine(d.name, d.scale // 2, d.offset // 2)
    if half is None:
        raise ShapeError("E0302", f"`div2d` expects a matrix[2 * m, n] (two stacked m x n "
                         f"images, what `grad2d` returns), found a {dims.resolve(t)}",
                         "not two stacked images", 0,
                         "declare the dual variable as `matrix[2 * m, n]` for images `m x n`")
    return matrix(half, t.dims[1])


def _minmax(dims, args) -> Type:
    return SCALAR if len(args) == 1 else broadcast(dims, args)


def _dot(dims, args) -> Type:
    _need("vector", args[0], 0, "`dot`")
    _need("vector", args[1], 1, "`dot`")
    broadcast(dims, args)
    return SCALAR


def _pow(dims, args) -> Type:
    _need("scalar", args[1], 1, "the exponent")
    return _same(dims, args)


def _mul(dims, args) -> Type:
    return broadcast(dims, args)


def _div(dims, args) -> Type:
    return broadcast(dims, args)


# ---- renderings ---------------------------------------------------------------------------------
def _infix(sym: str, prec: int, right_prec: int | None = None):
    right_prec = prec + 1 if right_prec is None else right_prec

    def render(a: list[Code], out: Type):
        return f"{a[0].at(prec)} {sym} {a[1].at(right_prec)}", prec
    return render


def _call(fn: str):
    def render(a: list[Code], out: Type):
        return f"{fn}({', '.join(x.text for x in a)})", PREC_ATOM
    return render


def _method(meth: str, extra: str = ""):
    def render(a: list[Code], out: Type):
        return f"{a[0].at(PREC_ATOM)}.{meth}({extra})", PREC_ATOM
    return render


def _axes(t: Type) -> str:
    """The trailing dimensions a reduction over the whole (unbatched) value runs over."""
    return {0: "()", 1: "-1", 2: "(-2, -1)"}[t.rank]


def _reduction(fmt: str, of_scalar: tuple[str, int, int] | None = None):
    """`fmt` reduces the trailing (unbatched) axes. A scalar has none (`x.sum(dim=())` would
    sum a batched scalar over the batch): it is itself, or `of_scalar` = (template, its
    precedence, the precedence its argument needs)."""
    def render(a: list[Code], out: Type):
        x = a[0]
        if x.type.rank == 0:
            if of_scalar is None:
                return x.text, x.prec
            text, prec, arg_prec = of_scalar
            return text.format(x=x.at(arg_prec)), prec
        return fmt.format(x=x.at(PREC_ATOM), ax=_axes(x.type)), PREC_ATOM
    return render


def _render_matmul(a: list[Code], out: Type):
    x, y = a
    tx, ty = x.type, y.type
    if tx.kind == "vector" and ty.kind == "vector":
        if tx.batched or ty.batched:
            return f"({x.at(PREC_MUL)} * {y.at(PREC_MUL + 1)}).sum(-1)", PREC_ATOM
        return f"{x.at(PREC_MUL)} @ {y.at(PREC_MUL + 1)}", PREC_MUL
    if tx.kind == "matrix" and ty.kind == "vector":
        if not ty.batched:
            return f"{x.at(PREC_MUL)} @ {y.at(PREC_MUL + 1)}", PREC_MUL
        if not tx.batched:
            # A @ v for a batch of row vectors v is v @ A^T; A^T^T is written A.
            if x.symmetric:
                at = x.at(PREC_MUL + 1)
            else:
                at = x.text[:-3] if _is_transposed(x) else f"{x.at(PREC_ATOM)}.mT"
            return f"{y.at(PREC_MUL)} @ {at}", PREC_MUL
        return f"({x.at(PREC_MUL)} @ {y.at(PREC_ATOM)}.unsqueeze(-1)).squeeze(-1)", PREC_ATOM
    if tx.kind == "vector" and tx.batched and ty.batched:  # v^T A, both batched
        return f"({x.at(PREC_ATOM)}.unsqueeze(-2) @ {y.at(PREC_MUL + 1)}).squeeze(-2)", PREC_ATOM
    return f"{x.at(PREC_MUL)} @ {y.at(PREC_MUL + 1)}", PREC_MUL


def _is_transposed(x: Code) -> bool:
    """True for printed `A.mT`: an atom whose last trailer is `.mT`, so `A` is a primary
    (a name, call, subscription or parenthesized expression) and valid code alone."""
    return x.prec == PREC_ATOM and x.text.endswith(".mT")


def _render_solve(a: list[Code], out: Type):
    m, b = a
    if b.type.kind == "vector" and b.type.batched and not m.type.batched:
        # One factorization for the whole batch: solve A X = B with the batch as columns.
        return f"torch.linalg.solve({m.text}, {b.at(PREC_ATOM)}.mT).mT", PREC_ATOM
    if b.type.kind == "vector" and m.type.batched and not b.type.batched:
        return f"torch.linalg.solve({m.text}, {b.at(PREC_ATOM)}.unsqueeze(-1)).squeeze(-1)", \
            PREC_ATOM
    return f"torch.linalg.solve({m.text}, {b.text})", PREC_ATOM


def _render_eye(a: list[Code], out: Type):
    return f"eye({out.dims[0]}, like)", PREC_ATOM


def _render_filled(fn: str):
    def render(a: list[Code], out: Type):
        return f"{fn}(({', '.join(map(str, out.dims))},), like)", PREC_ATOM
    return render


def _render_minmax(fn: str, red: str):
    def render(a: list[Code], out: Type):
        if len(a) == 1:
            return _reduction("{x}." + red + "(dim={ax})")(a, out)
        return f"torch.{fn}({a[0].text}, {a[1].text})", PREC_ATOM
    return render


def _render_clamp(a: list[Code], out: Type):
    return f"torch.clamp({a[0].text}, {a[1].text}, {a[2].text})", PREC_ATOM


def _render_pow(a: list[Code], out: Type):
    # `**` is right-associative and binds tighter than unary minus on its left.
    return f"{a[0].at(PREC_POW + 1)} ** {a[1].at(PREC_POW)}", PREC_POW


def _render_transpose(a: list[Code], out: Type):
    if a[0].type.rank < 2:
        return a[0].text, a[0].prec
    return f"{a[0].at(PREC_ATOM)}.mT", PREC_ATOM


def _index(dims, args) -> Type:
    """`v[layer]`: a scalar entry of a vector (the checker admits nothing else)."""
    _need("vector", args[0], 0, "an indexed value")
    _need("scalar", args[1], 1, "an index")
    return SCALAR


def _render_index(a: list[Code], out: Type):
    # The last axis, so a stack of vectors (the convergence report's) is indexed the same way.
    return f"{a[0].at(PREC_ATOM)}[..., {a[1].text}]", PREC_ATOM


def _entry(v, k):
    """Entry k (a number) of vector v; an IndexError names the size when v is too short."""
    i = int(k)
    if not 0 <= i < v.shape[-1]:
        raise IndexError(f"layer {i} reads entry {i} of a vector of {v.shape[-1]} entries")
    return v[..., i]


def _render_neg(a: list[Code], out: Type):
    return f"-{a[0].at(PREC_NEG)}", PREC_NEG


# ---- sympy forms --------------------------------------------------------------------------------
def _fn(name: str):
    """An uninterpreted sympy function for operators sympy has no closed form of."""
    f = sympy.Function(name)
    return lambda *a: f(*a)


def _sym_matmul(a, b):
    """Vectors are n x 1 columns, so a vector on the left is a transposed column: v @ w is
    v^T w (1 x 1, as `dot`), v @ M is M^T v (a column, as the IR's vector)."""
    if _is_mat(a) and _is_mat(b) and a.shape[1] != b.shape[0] and a.shape[1] == 1:
        return a.T * b if b.shape[1] == 1 else b.T * a
    return a * b


def _is_mat(x) -> bool:
    return getattr(x, "is_Matrix", False)


def _sym_mul(a, b):
    if _is_mat(a) and _is_mat(b):
        return sympy.HadamardProduct(a, b)
    return a * b


def _sym_div(a, b):
    return _fn("ediv")(a, b) if _is_mat(b) else a / b


def _sym_pow(a, b):
    """Elementwise: a matrix's `**` in sympy is the matrix power, so arrays get `epow`."""
    return _fn("epow")(a, b) if _is_mat(a) else a**b


def _sym_sqnorm(a):
    """v^T v for a vector (an n x 1 column), tr(A^T A) for a matrix, a^2 for a scalar."""
    if not _is_mat(a):
        return a**2
    return a.T * a if a.shape[1] == 1 else sympy.Trace(a.T * a)


def _sym_dot(a, b):
    return a.T * b if _is_mat(a) else a * b


_ABS = ("abs({x})", PREC_ATOM, 0)  # norms of a scalar (builtin abs: numbers and tensors)


# ---- facts --------------------------------------------------------------------------------------
_S = Semantics


def _GE0(i: int, note: str) -> ArgCondition:  # noqa: N802 - reads like a constant in the table
    return ArgCondition(Arg(i), ">=", 0.0, note)


def _BOUNDS(op: str) -> ArgCondition:  # noqa: N802
    return ArgCondition(Arg(1), "<=", Arg(2), f"{op} bounds")


# ---- the table ----------------------------------------------------------------------------------
_op("add", "+", (2, 2), broadcast, _infix("+", PREC_ADD), lambda a, b: a + b,
    "sum; a scalar broadcasts", infix=True, elementwise=True,
    semantics=_S(lambda a, b: a + b), lipschitz=EXACT, conditions=(), fold=lambda a, b: a + b)
_op("sub", "-", (2, 2), broadcast, _infix("-", PREC_ADD), lambda a, b: a - b,
    "difference; a scalar broadcasts", infix=True, elementwise=True,
    semantics=_S(lambda a, b: a - b), lipschitz=EXACT, conditions=(), fold=lambda a, b: a - b)
_op("mul", "*", (2, 2), _mul, _infix("*", PREC_MUL), _sym_mul,
    "product: scaling by a scalar, or elementwise (Hadamard)", infix=True, elementwise=True,
    semantics=_S(lambda a, b: a * b), lipschitz=EXACT, conditions=(), fold=lambda a, b: a * b)
_op("div", "/", (2, 2), _div, _infix("/", PREC_MUL), _sym_div,
    "quotient; elementwise for equal shapes", infix=True, elementwise=True,
    semantics=_S(lambda a, b: a / b), lipschitz=EXACT, conditions=(),
    fold=lambda a, b: a / b if b else None)
_op("pow", "^", (2, 2), _pow, _render_pow, _sym_pow,
    "power with a scalar exponent, elementwise", infix=True, elementwise=True,
    semantics=_S(lambda a, b: a**b), lipschitz=unanalyzed(), conditions=(),
    fold=lambda a, b: a**b if a > 0 or float(b).is_integer() else None)
_op("neg", "-", (1, 1), _same, _render_neg, lambda a: -a, "negation", infix=True,
    semantics=_S(lambda a: -a), lipschitz=EXACT, fold=lambda a: -a)
_op("matmul", "@", (2, 2), _matmul, _render_matmul, _sym_matmul,
    "matrix product: matrix @ matrix, matrix @ vector, vector @ vector (inner product)",
    infix=True,
    semantics=_S(lambda a, b: a @ b), lipschitz=EXACT, conditions=())
_op("transpose", ".T", (1, 1), _transpose, _render_transpose,
    lambda a: a.T if _is_mat(a) else a, "transpose of a matrix (`A.T` or `transpose(A)`)",
    semantics=_S(lambda a: a.T if a.dim() == 2 else a), lipschitz=unanalyzed())
_op("index", "[]", (2, 2), _index, _render_index, _fn("index"),
    "entry k of a vector known at construction, in layer k: `steps[layer]` (the layer index "
    "`layer` is the only index)",
    semantics=_S(_entry), lipschitz=unanalyzed("the indexed vector is never a state"),
    conditions=())
_op("eye", "eye", (0, 1), _eye, _render_eye, lambda *a: sympy.Identity(sympy.Symbol("n")),
    "identity matrix `eye(n)`; `I` infers its size", helper="eye",
    semantics=_S("eye", "shape"), lipschitz=unanalyzed(), conditions=())
_op("zeros", "zeros", (1, 2), _filled, _render_filled("zeros"),
    lambda *a: sympy.ZeroMatrix(*(a + (1,))[:2]), "zero vector/matrix of given sizes",
    helper="zeros",
    semantics=_S("zeros", "shape"), lipschitz=unanalyzed(), conditions=())
_op("ones", "ones", (1, 2), _filled, _render_filled("ones"),
    lambda *a: sympy.OneMatrix(*(a + (1,))[:2]), "vector/matrix of ones", helper="ones",
    semantics=_S("ones", "shape"), lipschitz=unanalyzed(), conditions=())
_op("solve", "solve", (2, 2), _solve, _render_solve,
    lambda a, b: sympy.MatMul(sympy.Inverse(a), b), "solution x of A x = b (A square)",
    semantics=_S("solve"), lipschitz=EXACT, conditions=())
_op("inv", "inv", (1, 1), _inv, _call("torch.linalg.inv"), lambda a: sympy.Inverse(a),
    "inverse of a square matrix",
    semantics=_S("inv"), lipschitz=unanalyzed())
_op("opnorm", "opnorm", (1, 1), _matrix_to_scalar, _call("opnorm"), _fn("opnorm"),
    "spectral norm (largest singular value)", helper="opnorm",
    semantics=_S("opnorm"), lipschitz=unanalyzed())
_op("norm1", "norm1", (1, 1), _reduce, _reduction("{x}.abs().sum(dim={ax})", _ABS), _fn("norm1"),
    "sum of absolute values",
    semantics=_S(lambda a: a.abs().sum()), lipschitz=unanalyzed(),
    prox=ProxAtom("soft", weighted=True, separable=True))
_op("norm2", "norm2", (1, 1), _reduce,
    _reduction("torch.linalg.vector_norm({x}, dim={ax})", _ABS), _fn("norm2"),
    "Euclidean (vector) or Frobenius (matrix) norm",
    semantics=_S(lambda a: (a * a).sum().sqrt()), lipschitz=unanalyzed(),
    prox=ProxAtom("block_soft"))
_op("sqnorm", "sqnorm", (1, 1), _reduce,
    _reduction("{x}.square().sum(dim={ax})", ("{x} ** 2", PREC_POW, PREC_POW + 1)),
    _sym_sqnorm, "squared Euclidean / Frobenius norm",
    semantics=_S(lambda a: (a * a).sum()), lipschitz=unanalyzed(),
    prox=ProxAtom(None, separable=True))
_op("sum", "sum", (1, 1), _reduce, _reduction("{x}.sum(dim={ax})"), _fn("total"),
    "sum of all entries",
    semantics=_S(lambda a: a.sum()), lipschitz=unanalyzed())
_op("mean", "mean", (1, 1), _reduce, _reduction("{x}.mean(dim={ax})"), _fn("mean"),
    "mean of all entries",
    semantics=_S(lambda a: a.mean()), lipschitz=unanalyzed())
_op("dot", "dot", (2, 2), _dot, lambda a, out: _render_matmul(a, out), _sym_dot,
    "inner product of two vectors",
    semantics=_S(lambda a, b: (a * b).sum()), lipschitz=unanalyzed(), conditions=())
_op("abs", "abs", (1, 1), _same, _call("torch.abs"), sympy.Abs, "absolute value, elementwise",
    elementwise=True,
    semantics=_S(lambda a: a.abs()),
    lipschitz=Lipschitz("lipschitz", 1.0, why="||a| - |b|| <= |a - b|, but not a proximal map"))
_op("sign", "sign", (1, 1), _same, _call("torch.sign"), sympy.sign, "sign, elementwise",
    elementwise=True,
    semantics=_S(lambda a: a.sign()), lipschitz=unanalyzed("discontinuous at 0"))
_op("sqrt", "sqrt", (1, 1), _same, _call("torch.sqrt"), sympy.sqrt, "square root, elementwise",
    elementwise=True,
    semantics=_S(lambda a: a.sqrt()), lipschitz=unanalyzed())
_op("exp", "exp", (1, 1), _same, _call("torch.exp"), sympy.exp, "exponential, elementwise",
    elementwise=True,
    semantics=_S(lambda a: a.exp()), lipschitz=unanalyzed())
_op("log", "log", (1, 1), _same, _call("torch.log"), sympy.log, "natural log, elementwise",
    elementwise=True,
    semantics=_S(lambda a: a.log()), lipschitz=unanalyzed())
_op("relu", "relu", (1, 1), _same, _call("torch.relu"), _fn("relu"), "max(v, 0), elementwise",
    elementwise=True,
    semantics=_S(lambda a: a.clamp(min=0)),
    lipschitz=prox_of("indicator of the nonnegative orthant"))
_op("min", "min", (1, 2), _minmax, _render_minmax("minimum", "amin"), sympy.Min,
    "smallest entry (one argument) or elementwise minimum (two)", elementwise=True,
    numbers_after_first=False,
    semantics=_S(lambda a, b=None: a.min() if b is None else a.minimum(b)),
    lipschitz=MINMAX, conditions=())
_op("max", "max", (1, 2), _minmax, _render_minmax("maximum", "amax"), sympy.Max,
    "largest entry (one argument) or elementwise maximum (two)", elementwise=True,
    numbers_after_first=False,
    semantics=_S(lambda a, b=None: a.max() if b is None else a.maximum(b)),
    lipschitz=MINMAX, conditions=())
_op("clamp", "clamp", (3, 3), _bounds("`clamp`"), _render_clamp, _fn("clamp"),
    "clamp(v, lo, hi) elementwise; lo and hi scalars or of v's shape",
    elementwise=True,
    semantics=_S(lambda v, lo, hi: v.maximum(lo).minimum(hi)),
    lipschitz=prox_of("indicator of [b, c]", "bounded"), conditions=(_BOUNDS("clamp"),))
_op("soft", "soft", (2, 2), _threshold, _call("soft"), _fn("soft"),
    "soft threshold sign(v) max(|v| - t, 0); t scalar or elementwise", elementwise=True,
    helper="soft",
    semantics=_S(lambda v, t: v.sign() * (v.abs() - t).clamp(min=0)),
    lipschitz=prox_of("b * norm1", "threshold"), conditions=(_GE0(1, "soft threshold"),))
_op("hard", "hard", (2, 2), _threshold, _call("hard"), _fn("hard"),
    "hard threshold v * (|v| > t); t scalar or elementwise", elementwise=True, helper="hard",
    semantics=_S(lambda v, t: v.where(v.abs() > t, 0.0)),
    lipschitz=unanalyzed("discontinuous at |a| = b"),
    conditions=(_GE0(1, "hard threshold"),))
_op("soft_ss", "soft_ss", (3, 3), _threshold_ss, _call("soft_ss"), _fn("soft_ss"),
    "soft threshold with support selection (LISTA-CPSS): entries of each vector above both t and "
    "the magnitude of rank round(q (n - 1)) in decreasing order (the reference code's \"nearest\" "
    "percentile) pass unchanged, the others are soft-thresholded by t",
    helper="soft_ss",
    semantics=_S("soft_ss"), lipschitz=EXACT,
    conditions=(_GE0(1, "soft_ss threshold"), _GE0(2, "soft_ss selected fraction"),
                ArgCondition(Arg(2), "<=", 1.0, "soft_ss selected fraction")))
_op("svt", "svt", (2, 2), _svt, _call("svt"), _fn("svt"),
    "singular value thresholding: soft threshold of the singular values", helper="svt",
    semantics=_S("svt"), lipschitz=prox_of("b * nucnorm", "threshold"),
    conditions=(_GE0(1, "svt threshold"),))
_op("proj_box", "proj_box", (3, 3), _bounds("`proj_box`"), _render_clamp, _fn("proj_box"),
    "projection onto the box [lo, hi] (elementwise); lo and hi scalars or of v's shape",
    elementwise=True,
    semantics=_S(lambda v, lo, hi: v.maximum(lo).minimum(hi)),
    lipschitz=prox_of("indicator of [b, c]", "bounded"), conditions=(_BOUNDS("proj_box"),))
_op("proj_nonneg", "proj_nonneg", (1, 1), _same, _method("clamp", "min=0"), _fn("proj_nonneg"),
    "projection onto the nonnegative orthant",
    semantics=_S(lambda v: v.clamp(min=0)),
    lipschitz=prox_of("indicator of the nonnegative orthant"))
_op("proj_simplex", "proj_simplex", (1, 1), _vector_op("`proj_simplex`"), _call("proj_simplex"),
    _fn("proj_simplex"), "Euclidean projection onto the probability simplex",
    helper="proj_simplex",
    semantics=_S("proj_simplex"),
    lipschitz=prox_of("indicator of the probability simplex", "bounded"))
# Not elementwise: the helper itself aligns a batched radius (B,).
_op("proj_l2ball", "proj_l2ball", (2, 2), _vector_op("`proj_l2ball`", 1), _call("proj_l2ball"),
    _fn("proj_l2ball"), "projection onto the l2 ball of radius r",
    helper="proj_l2ball",
    semantics=_S("proj_l2ball"),
    lipschitz=prox_of("indicator of the l2 ball of radius b", "bounded"),
    conditions=(_GE0(1, "proj_l2ball radius"),))

# ---- finite differences (total variation): fixed linear operators with known norms ------------
# ||diff||^2 = 4 sin^2(pi (n - 1) / (2 n)) < 4 and ||grad2d||^2 < 8 (Chambolle 2004, Thm 3.1).
_op("diff", "diff", (1, 1), _diff, _call("torch.diff"), _fn("diff"),
    "forward differences v[i+1] - v[i]: vector[n] -> vector[n - 1]",
    semantics=_S("diff"), lipschitz=linear_op(2.0, "diff"))
_op("diff_adj", "diff_adj", (1, 1), _diff_adj, _call("diff_adj"), _fn("diff_adj"),
    "the adjoint of diff, p[i-1] - p[i] with p[-1] = p[n-1] = 0: vector[n - 1] -> vector[n]",
    helper="diff_adj", semantics=_S("diff_adj"), lipschitz=linear_op(2.0, "diff", adjoint=True))
_op("grad2d", "grad2d", (1, 1), _grad2d, _call("grad2d"), _fn("grad2d"),
    "image gradient by forward differences, zero past the last row/column (Chambolle 2004): "
    "matrix[m, n] -> matrix[2 * m, n], the vertical differences stacked over the horizontal",
    helper="grad2d", semantics=_S("grad2d"), lipschitz=linear_op(8 ** 0.5, "grad2d"))
_op("div2d", "div2d", (1, 1), _div2d, _call("div2d"), _fn("div2d"),
    "discrete divergence, the negative adjoint of grad2d (<grad2d u, p> = -<u, div2d p>): "
    "matrix[2 * m, n] -> matrix[m, n]",
    helper="div2d", semantics=_S("div2d"),
    lipschitz=linear_op(8 ** 0.5, "grad2d", adjoint=True, sign=-1.0))


# ---- traces, outer products, log-sum-exp, masks and selections (issue 12) --------------------
def _trace(dims, args) -> Type:
    _square(dims, args, 0, "`trace`")
    return SCALAR


def _outer(dims, args) -> Type:
    _need("vector", args[0], 0, "`outer`")
    _need("vector", args[1], 1, "`outer`")
    return matrix(_t(args[0]).dims[0], _t(args[1]).dims[0])


def _diag(dims, args) -> Type:
    if _t(args[0]).kind == "matrix":
        raise ShapeError("E0306", "`diag` builds a diagonal matrix from a vector, found a "
                         f"{dims.resolve(_t(args[0]))}", "a matrix", 0,
                         "`trace(M)` sums a square matrix's diagonal")
    _need("vector", args[0], 0, "`diag`")
    n = _t(args[0]).dims[0]
    return matrix(n, n)


def _rows(dims, args) -> Type:
    _need("matrix", args[0], 0, "`logsumexp_rows`")
    return vector(_t(args[0]).dims[0])


def _where(dims, args) -> Type:
    return broadcast(dims, args)


def _render_trace(a: list[Code], out: Type):
    return f"{a[0].at(PREC_ATOM)}.diagonal(dim1=-2, dim2=-1).sum(-1)", PREC_ATOM


def _render_outer(a: list[Code], out: Type):
    return f"{a[0].at(PREC_ATOM)}.unsqueeze(-1) * {a[1].at(PREC_ATOM)}.unsqueeze(-2)", PREC_MUL


def _call_last(fn: str, extra: str):
    def render(a: list[Code], out: Type):
        return f"{fn}({a[0].text}, {extra})", PREC_ATOM
    return render


def _render_logsumexp(a: list[Code], out: Type):
    """Over the trailing (unbatched) axes; of a scalar, the scalar itself."""
    if a[0].type.rank == 0:
        return a[0].text, a[0].prec
    return _call_last("torch.logsumexp", f"dim={_axes(a[0].type)}")(a, out)


def _render_compare(sym: str):
    """A 0/1 mask in the network's dtype, by the `as_mask` helper (helper names are reserved in
    generated code, and `mask` is a natural spec name). The comparison binds looser than any
    arithmetic, so operands are printed at sum level."""
    def render(a: list[Code], out: Type):
        return f"as_mask({compare_text(sym, a)}, like)", PREC_ATOM
    return render


def compare_text(sym: str, a: list[Code]) -> str:
    """`a < b` as Python text: a boolean (tensor), for `as_mask(...)` or `torch.where(...)`."""
    return f"{a[0].at(PREC_ADD)} {sym} {a[1].at(PREC_ADD)}"


def _compare(name: str, sym: str, word: str, test: Callable) -> None:
    _op(name, sym, (2, 2), broadcast, _render_compare(sym), _fn(name),
        f"1 where a {sym} b ({word}), else 0, elementwise; a mask without gradient",
        infix=True, elementwise=True, helper="as_mask", boolean=sym,
        semantics=_S(name), lipschitz=unanalyzed("a 0/1 mask, discontinuous"), conditions=(),
        fold=lambda a, b: float(test(a, b)))


_compare("lt", "<", "less than", lambda a, b: a < b)
_compare("le", "<=", "at most", lambda a, b: a <= b)
_compare("gt", ">", "greater than", lambda a, b: a > b)
_compare("ge", ">=", "at least", lambda a, b: a >= b)
_op("where", "where", (3, 3), _where, _call("torch.where"), _fn("where"),
    "b where a is nonzero (true), else c, elementwise: `where(x > 0, x, 0)`; a is usually a "
    "comparison", elementwise=True, numbers_after_first=False, condition_first=True,
    semantics=_S("where"), lipschitz=unanalyzed("selects by a mask"),
    conditions=(), fold=lambda c, a, b: a if c else b)
_op("trace", "trace", (1, 1), _trace, _render_trace, _fn("trace"),
    "trace of a square matrix (sum of its diagonal)",
    semantics=_S("trace"), lipschitz=unanalyzed())
_op("outer", "outer", (2, 2), _outer, _render_outer, _fn("outer"),
    "outer product u v^T: vector[m], vector[n] -> matrix[m, n]",
    semantics=_S(lambda u, v: u.outer(v)), lipschitz=unanalyzed("bilinear"), conditions=())
_op("diag", "diag", (1, 1), _diag, _call("torch.diag_embed"), _fn("diag"),
    "diagonal matrix with the vector v on its diagonal",
    semantics=_S(lambda v: v.diag()), lipschitz=unanalyzed())
_op("logsumexp", "logsumexp", (1, 1), _reduce, _render_logsumexp, _fn("logsumexp"),
    "log of the sum of the exponentials of all entries, computed stably (max shifted out)",
    semantics=_S("logsumexp"), lipschitz=unanalyzed())
_op("logsumexp_rows", "logsumexp_rows", (1, 1), _rows, _call_last("torch.logsumexp", "dim=-1"),
    _fn("logsumexp_rows"),
    "row-wise log-sum-exp of a matrix[m, n], a vector[m] (columns: `logsumexp_rows(M.T)`)",
    semantics=_S("logsumexp_rows"), lipschitz=unanalyzed())

# ---- objectives, proximal results, factorizations (the paradigms' building blocks) ------------
def _norm_any(dims, args) -> Type:
    _need("vector|matrix", args[0], 0, "this norm")
    return SCALAR


def _indicator(scalars: int, kinds: str = "vector|matrix"):
    def rule(dims, args):
        _need(kinds, args[0], 0, "this indicator")
        for i in range(1, 1 + scalars):
            _need("scalar", args[i], i, "this indicator")
        return SCALAR
    return rule


def _ind_box(dims, args) -> Type:
    _need("vector|matrix", args[0], 0, "this indicator")
    _bounds("`ind_box`")(dims, args)
    return SCALAR


def _rank_arg(e, i: int):
    from unfoldc.ir.expr import Const  # local: ops.py must not depend on the IR at import

    if isinstance(e, Const) and float(e.value).is_integer() and e.value > 0:
        return int(e.value)
    raise ShapeError("E0306", "the rank must be a positive integer literal", "not a rank", i,
                     "e.g. `tsvd_left(Y, 5)`")


def _tsvd(dims, args) -> Type:
    _need("matrix", args[0], 0, "a truncated SVD")
    return matrix(_t(args[0]).dims[0], _rank_arg(args[1], 1))


def _tsvd_right(dims, args) -> Type:
    _need("matrix", args[0], 0, "a truncated SVD")
    return matrix(_t(args[0]).dims[1], _rank_arg(args[1], 1))


def _pinv(dims, args) -> Type:
    _need("matrix", args[0], 0, "`pinv`")
    t = _t(args[0])
    return matrix(t.dims[1], t.dims[0])


def _eigvals(dims, args) -> Type:
    a = _square(dims, args, 0, "`eigvals`")
    return vector(a.dims[0])


def _net_rule(dims, args) -> Type:
    """`net(psi, args...)`: the net's signature is carried in its symbol's type (see
    semantics/nets.py): dims = (arch, in dims..., "->", out dims...)."""
    sig = _t(args[0]).dims
    arch, arrow = sig[0], sig.index("->")
    outs = sig[arrow + 1:]
    if arch == "conv2d":
        return matrix(outs[0], outs[1])
    return vector(outs[0])


def _render_net(a: list[Code], out: Type):
    return f"{a[0].text}({', '.join(x.text for x in a[1:])})", PREC_ATOM


def _render_autograd(a: list[Code], out: Type):
    param, value, at = a
    return f"autograd_grad(lambda {param.text}: {value.text}, {at.text})", PREC_ATOM


def _render_indicator(cond: str):
    def render(a: list[Code], out: Type):
        x = a[0]
        ax = _axes(x.type)
        test = cond.format(x=x.at(PREC_ATOM), a=[c.text for c in a], ax=ax)
        return f"indicator({test})", PREC_ATOM
    return render


_op("nucnorm", "nucnorm", (1, 1), _matrix_to_scalar,
    _reduction("torch.linalg.matrix_norm({x}, ord='nuc')"), _fn("nucnorm"),
    "nuclear norm (sum of singular values)",
    semantics=_S("nucnorm"), lipschitz=unanalyzed(), prox=ProxAtom("svt"))
_op("block_soft", "block_soft", (2, 2), _vector_op("`block_soft`", 1),
    _call("block_soft"), _fn("block_soft"),
    "block soft threshold v * max(1 - t / ||v||, 0): the prox of t ||.||_2", helper="block_soft",
    semantics=_S("block_soft"), lipschitz=prox_of("b * norm2", "threshold"),
    conditions=(_GE0(1, "block_soft threshold"),))
_op("ind_box", "ind_box", (3, 3), _ind_box,
    _render_indicator("(({x} >= {a[1]}) & ({x} <= {a[2]})).all(dim={ax})"), _fn("ind_box"),
    "indicator of the box [lo, hi] (bounds scalars or of v's shape): 0 inside, +inf outside",
    helper="indicator",
    semantics=_S("ind_box"), lipschitz=unanalyzed(), conditions=(),
    prox=ProxAtom("proj_box", scaled=False, separable=True))
_op("ind_nonneg", "ind_nonneg", (1, 1), _indicator(0),
    _render_indicator("({x} >= 0).all(dim={ax})"), _fn("ind_nonneg"),
    "indicator of the nonnegative orthant", helper="indicator",
    semantics=_S("ind_nonneg"), lipschitz=unanalyzed(),
    prox=ProxAtom("proj_nonneg", scaled=False, separable=True))
_op("ind_simplex", "ind_simplex", (1, 1), _indicator(0, "vector"),
    _render_indicator("(({x} >= 0).all(dim={ax})) & (({x}.sum(dim={ax}) - 1).abs() <= 1e-6)"),
    _fn("ind_simplex"), "indicator of the probability simplex", helper="indicator",
    semantics=_S("ind_simplex"), lipschitz=unanalyzed(),
    prox=ProxAtom("proj_simplex", scaled=False))
_op("ind_l2ball", "ind_l2ball", (2, 2), _indicator(1, "vector"),
    _render_indicator("torch.linalg.vector_norm({x}, dim={ax}) <= {a[1]}"), _fn("ind_l2ball"),
    "indicator of the l2 ball of radius r", helper="indicator",
    semantics=_S("ind_l2ball"), lipschitz=unanalyzed(), conditions=(),
    prox=ProxAtom("proj_l2ball", scaled=False))
_op("pinv", "pinv", (1, 1), _pinv, _call("torch.linalg.pinv"), _fn("pinv"),
    "Moore-Penrose pseudo-inverse",
    semantics=_S("pinv"), lipschitz=unanalyzed())
_op("chol", "chol", (1, 1), lambda d, a: _square(d, a, 0, "`chol`"),
    _call("torch.linalg.cholesky"), _fn("chol"), "lower Cholesky factor of an SPD matrix",
    semantics=_S("chol"), lipschitz=unanalyzed())
_op("eigvals", "eigvals", (1, 1), _eigvals, _call("eigvals"),
    _fn("eigvals"), "eigenvalues of a symmetric matrix, ascending", helper="eigvals",
    semantics=_S("eigvals"), lipschitz=unanalyzed())
_op("eigvecs", "eigvecs", (1, 1), lambda d, a: _square(d, a, 0, "`eigvecs`"), _call("eigvecs"),
    _fn("eigvecs"), "eigenvectors (columns) of a symmetric matrix", helper="eigvecs",
    semantics=_S("eigvecs"), lipschitz=unanalyzed())
_op("tsvd_left", "tsvd_left", (2, 2), _tsvd, _call("tsvd_left"), _fn("tsvd_left"),
    "left factor U_r diag(sqrt(s_r)) of the rank-r truncated SVD", helper="tsvd",
    semantics=_S("tsvd_left"), lipschitz=unanalyzed(), conditions=())
_op("tsvd_right", "tsvd_right", (2, 2), _tsvd_right, _call("tsvd_right"), _fn("tsvd_right"),
    "right factor V_r diag(sqrt(s_r)): tsvd_left(A, r) @ tsvd_right(A, r).T is the best rank-r "
    "approximation", helper="tsvd",
    semantics=_S("tsvd_right"), lipschitz=unanalyzed(), conditions=())
# Internal operators: written by the compiler, never by name in a spec.
_op("net", "<net>", (2, 9), _net_rule, _render_net, _fn("net"), "apply a learned sub-network",
    internal=True,
    semantics=_S("net"), lipschitz=EXACT, conditions=())
_op("autograd", "<autograd>", (3, 3), lambda d, a: Type(_t(a[2]).kind, _t(a[2]).dims),
    _render_autograd, _fn("grad"), "gradient by autograd (symbolic derivation failed)",
    internal=True, helper="autograd_grad",
    semantics=_S("autograd", "binder"), lipschitz=unanalyzed(), conditions=())

# Functions callable by name in a spec (infix operators are written with their symbols).
FUNCTIONS = {d.spelling: d for d in OPS.values() if not d.infix and not d.internal} | {
    "transpose": OPS["transpose"], "I": OPS["eye"]
}
FUNCTIONS.pop(".T", None)
FUNCTIONS.pop("[]", None)  # written `v[layer]`, not called by name
BINARY = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "^": "pow",
          "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
# Named constants a spec may use as numbers (reserved names).
CONSTANTS = {"pi": math.pi}


# ---- reading and checking the facts -------------------------------------------------------------
SEMANTICS_CALLS = ("values", "shape", "binder")
_COMPARISONS = ("<", "<=", ">", ">=")


def semantics_fn(d: OpDef) -> Callable:
    """The function that evaluates `d` (see `Semantics`). Raises LookupError when it has none."""
    if d.semantics is None:
        raise LookupError(f"operator `{d.name}` has no reference semantics in unfoldc/ops.py")
    fn = d.semantics.fn
    if not isinstance(fn, str):
        return fn
    from unfoldc import opsemantics  # here, not at the top: `unfoldc compile` never loads torch

    found = getattr(opsemantics, fn, None)
    if found is None:
        raise LookupError(f"operator `{d.name}`: unfoldc/opsemantics.py has no function `{fn}`")
    return found


def missing_facts(d: OpDef) -> list[str]:
    """What the entry `d` fails to state, or states inconsistently; empty when complete.

    tests/test_ops_table.py runs this on every entry, so an operator cannot reach the
    interpreter or the convergence analysis without its facts.
    """
    return _semantics_gaps(d) + _lipschitz_gaps(d) + _condition_gaps(d) + _prox_gaps(d)


def _semantics_gaps(d: OpDef) -> list[str]:
    if d.semantics is None:
        return ["semantics: none stated"]
    if d.semantics.call not in SEMANTICS_CALLS:
        return [f"semantics: unknown calling convention {d.semantics.call!r}"]
    try:
        semantics_fn(d)
    except LookupError as err:
        return [f"semantics: {err}"]
    return []


def _lipschitz_gaps(d: OpDef) -> list[str]:
    lip = d.lipschitz
    if lip is None:
        return ["lipschitz: none stated (`unanalyzed()` when the analysis should not use it)"]
    if lip.kind not in LIPSCHITZ_KINDS:
        return [f"lipschitz: unknown kind {lip.kind!r}"]
    if lip.kind == "prox" and not lip.prox_of:
        return ["lipschitz: a proximal map must say of which function (`prox_of`)"]
    if lip.kind in ("lipschitz", "linear") and not (lip.const is not None and lip.const >= 0):
        return ["lipschitz: a Lipschitz operator needs its constant (>= 0)"]
    if lip.kind == "linear" and (lip.factor not in OPS or OPS[lip.factor].lipschitz.factor
                                 != lip.factor or OPS[lip.factor].lipschitz.adjoint):
        return [f"lipschitz: `{lip.factor}` is not a linear operator of the table (the factor "
                "of a linear operator names an operator that is its own factor)"]
    return []


def _condition_gaps(d: OpDef) -> list[str]:
    further = range(1, d.arity[1])
    if d.conditions is None:
        return [] if not further else [
            "conditions: none stated (`conditions=()` when it puts none on its arguments)"]
    out = []
    for c in d.conditions:
        sides = [x for x in (c.lhs, c.rhs) if isinstance(x, Arg)]
        if not sides or any(x.index not in further for x in sides):
            out.append(f"conditions: `{c.text()}` must read the further arguments "
                       f"(1..{d.arity[1] - 1}) only")
        if c.op not in _COMPARISONS or not c.note:
            out.append(f"conditions: `{c.text()}` needs a comparison and a note")
    kind = d.lipschitz.kind if d.lipschitz else ""
    read = {x.index for c in d.conditions for x in (c.lhs, c.rhs) if isinstance(x, Arg)}
    if kind == "prox" and set(further) - read:
        # A proximal map is one only for admissible parameters (threshold >= 0, nonempty set);
        # a parameter without a condition is most likely a forgotten one.
        out.append(f"conditions: a proximal map with parameters must constrain each of them "
                   f"(unconstrained: {sorted(set(further) - read)})")
    return out


def _prox_gaps(d: OpDef) -> list[str]:
    if d.prox is None or d.prox.op is None:
        return []
    target = OPS.get(d.prox.op)
    if target is None or target.lipschitz is None or target.lipschitz.kind != "prox":
        return [f"prox: `{d.prox.op}` is not an operator whose Lipschitz fact is a proximal map"]
    return []
