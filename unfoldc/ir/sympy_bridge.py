"""The one bridge between IR expressions and sympy, driven by the operator table's sympy forms.

    to_sympy(e, policy, table)   IR -> sympy, each operator by its `sympy` form in unfoldc/ops.py
    from_sympy(s, table)         sympy -> IR, through the symbol table `to_sympy` filled

A `Policy` says, as data, what a user of the bridge needs:

    ops      the operators it translates by their table form; any other operator is `other`
    arrays   "matrix": vectors as n x 1 and matrices as m x n matrix symbols (matrix calculus);
             "opaque": only scalars built from scalars are translated, any other subterm is
             `other` (the coefficient arithmetic of the convergence analysis)
    other    what the rest becomes: "opaque", a real symbol standing for the subterm (named
             `[its text]`), or "reject", `Unsupported`

A form that comes out as an uninterpreted function (`_fn` in ops.py, e.g. `ediv` for an
elementwise division by a matrix) or a Hadamard product, or that sympy refuses (mismatched
shapes), has no closed form: it is `other` too. The symbol table maps each sympy symbol back to
the IR it stands for, so an opaque subterm comes back as itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy
from sympy.core.function import AppliedUndef

from unfoldc import ops
from unfoldc.ir import fold
from unfoldc.ir.expr import Const, Expr, Op, Sym
from unfoldc.ir.pretty import pretty
from unfoldc.ir.types import DimSum, Type

SymbolTable = dict  # sympy symbol -> the IR expression it stands for


class Unsupported(Exception):
    """No closed form in sympy for this expression under the policy (or sympy's answer has no
    IR reading): the caller falls back (to autograd, or to the unsimplified expression)."""


@dataclass(frozen=True)
class Policy:
    """What the bridge translates, and what becomes of the rest (see the module docstring)."""

    ops: frozenset[str]
    arrays: str  # "matrix" or "opaque"
    other: str  # "opaque" or "reject"

    def __post_init__(self):
        if self.arrays not in ("matrix", "opaque") or self.other not in ("opaque", "reject"):
            raise ValueError(f"unknown policy choice: arrays={self.arrays!r}, other={self.other!r}")
        if self.ops - ops.OPS.keys():
            raise ValueError(f"not operators of the table: {sorted(self.ops - ops.OPS.keys())}")


def to_sympy(e: Expr, policy: Policy, table: SymbolTable | None = None) -> sympy.Basic:
    """`e` as sympy under `policy`; `table`, when given, collects the symbols for `from_sympy`.

    Raises Unsupported when the policy rejects a subterm.
    """
    table = {} if table is None else table
    if isinstance(e, Const):
        v = float(e.value)
        return sympy.Integer(int(v)) if v.is_integer() else sympy.Rational(repr(v))
    if isinstance(e, Sym) and (e.type.kind == "scalar" or policy.arrays == "matrix"):
        return _record(table, _symbol(e), e)
    if isinstance(e, Op) and e.op in policy.ops and _translatable(e, policy):
        form = _form(e.op, [to_sympy(a, policy, table) for a in e.args])
        if form is not None:
            return form
    if policy.other == "reject":
        raise Unsupported(e.op if isinstance(e, Op) else type(e).__name__)
    return _record(table, sympy.Symbol(f"[{pretty(e)}]", real=True), e)


def _symbol(s: Sym) -> sympy.Basic:
    """The sympy symbol of an IR symbol: real for a scalar, n x 1 or m x n for arrays."""
    if s.type.kind == "scalar":
        return sympy.Symbol(s.name, real=True)
    dims = s.type.dims if s.type.kind == "matrix" else (s.type.dims[0], 1)
    return sympy.MatrixSymbol(s.name, *(_dim(d) for d in dims))


def _record(table: SymbolTable, sym: sympy.Basic, e: Expr) -> sympy.Basic:
    table[sym] = e
    return sym


def _translatable(e: Op, policy: Policy) -> bool:
    if policy.arrays == "matrix":
        return True
    return e.type.kind == "scalar" and all(a.type.kind == "scalar" for a in e.args)


def _form(op: str, args: list) -> sympy.Basic | None:
    """The table's sympy form of `op` on `args`; None when it has no closed form there."""
    try:
        out = ops.OPS[op].sympy(*args)
    except (TypeError, ValueError):  # sympy refuses it, e.g. a product of mismatched shapes
        return None
    if isinstance(out, AppliedUndef | sympy.HadamardProduct):
        return None
    return out


def _dim(d):
    if isinstance(d, DimSum):
        return d.scale * _dim(d.name) + d.offset
    return sympy.Integer(d) if isinstance(d, int) else sympy.Symbol(d, integer=True, positive=True)


# ---- back ---------------------------------------------------------------------------------------
def from_sympy(s: sympy.Basic, table: SymbolTable) -> Expr:
    """The IR of sympy expression `s`: sums, products (matrix products for matrix factors),
    powers, transposes, identities, numbers, the symbols of `table`, and the sympy functions that
    are an operator's table form (`exp(x)` is the operator `exp`, `Abs(x)` the operator `abs`).

    Raises Unsupported for anything else (an infinite number, a function of no operator).
    """
    try:
        return _back(s, table)
    except ops.ShapeError as err:  # sympy's answer has no IR reading (a transposed vector)
        raise Unsupported(err.message) from err


def _back(s: sympy.Basic, table: SymbolTable) -> Expr:
    if s in table:
        return table[s]
    if s.is_Number:
        if not s.is_finite:
            raise Unsupported(str(s))
        return Const(float(s))
    if isinstance(s, sympy.Add | sympy.MatAdd):
        return _sum(s.args, table)
    if isinstance(s, sympy.Mul | sympy.MatMul):
        return _product(s.args, table)
    if isinstance(s, sympy.Pow):
        if s.exp == -1:
            return fold.div(fold.ONE, _back(s.base, table))
        return fold.node("pow", _back(s.base, table), _back(s.exp, table))
    if isinstance(s, sympy.Transpose):
        return fold.node("transpose", _back(s.arg, table))
    if isinstance(s, sympy.Identity):
        return Op("eye", (), Type("matrix", (str(s.rows),) * 2))
    op = _heads().get(s.func)
    if op is not None and ops.OPS[op].arity[0] <= len(s.args) <= ops.OPS[op].arity[1]:
        return fold.node(op, *(_back(a, table) for a in s.args))
    raise Unsupported(type(s).__name__)


@functools.cache
def _heads() -> dict:
    """sympy function -> the operator whose table form it is (`exp`, `Abs`, `Max`, ...): read
    off each form applied to scalar symbols. Uninterpreted functions are not among them: a form
    that is one never reaches sympy (`to_sympy` treats it as having no closed form)."""
    out = {}
    for name, d in ops.OPS.items():
        if d.internal:
            continue  # written by the compiler after translation (`net`, `autograd`)
        xs = sympy.symbols(f"x:{d.arity[1]}", real=True)
        try:
            form = d.sympy(*xs)
        except (TypeError, ValueError, AttributeError, IndexError):
            continue  # a form of arrays only (`inv`, `solve`)
        structural = (sympy.Add, sympy.Mul, sympy.Pow)  # read back by _back itself
        if isinstance(form, sympy.Expr) and not (form.is_Atom or form.is_Matrix) \
                and not isinstance(form, AppliedUndef) and set(form.args) == set(xs) \
                and form.func not in structural:
            out.setdefault(form.func, name)
    return out


def _is_matrix(x) -> bool:
    return getattr(x, "is_Matrix", False)


def _product(factors, table: SymbolTable) -> Expr:
    """Scalar factors folded into one coefficient in front of the matrix factors' product; a
    product that starts with a row (a transposed column), `v^T M w`, is the inner product
    dot(v, M w) (the form of `dot` and `sqnorm`: the IR has no transposed vectors)."""
    scalars = [f for f in factors if not _is_matrix(f)]
    mats = [f for f in factors if _is_matrix(f)]
    out = None
    if len(mats) > 1 and mats[0].shape[0] == 1:  # a row: v^T, or (H v - x)^T = v^T H^T - x^T
        row = _back(mats[0].T, table)
        if row.type.kind == "vector":
            out = fold.node("dot", row, _product(mats[1:], table))
            mats = []
    for m in mats:
        term = _back(m, table)
        out = term if out is None else fold.node("matmul", out, term)
    coef = fold.ONE
    for f in scalars:
        coef = fold.mul(coef, _back(f, table))
    if out is None:
        return _tidy_sign(coef)
    if coef == Const(-1.0):
        return fold.node("neg", out)
    return out if coef == fold.ONE else fold.node("mul", coef, out)


def _tidy_sign(e: Expr) -> Expr:
    """`-1 * x` -> `-x`."""
    if isinstance(e, Op) and e.op == "mul" and e.args[0] == Const(-1.0):
        return fold.neg(e.args[1])
    return e


def _sum(terms, table: SymbolTable) -> Expr:
    """Positive terms first, negative ones subtracted: `H @ v - x`, not sympy's `-x + H @ v`."""
    out = None
    for t in sorted(terms, key=lambda t: t.could_extract_minus_sign()):
        negated = t.could_extract_minus_sign()
        e = _back(-t if negated else t, table)
        if out is None:
            out = fold.node("neg", e) if negated else e
        else:
            out = fold.node("sub" if negated else "add", out, e)
    return out
