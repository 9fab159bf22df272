"""Linear operators as combinations of matrix products, with scalar coefficients.

    Lin := sum_k coef_k * (F_k1 @ F_k2 @ ... @ F_kr)      (r = 0: the identity)

A `Lin` is the exact Jacobian block of an affine expression with respect to one state (or
input): `s - mu * H.T @ (H @ s - x)` has the block `1 * I + (-mu) * (H.T @ H)` for `s` and
`mu * H.T` for `x`. Coefficients are scalar IR expressions; factors are state-free IR matrices.
Products are kept flat (`H.T @ H` is the two factors `H.T`, `H`) so that equal monomials merge
and structure (symmetry, positive semidefiniteness) can be read off. Coefficients are built with
the folding constructors of ir/fold.py and simplified by sympy through ir/sympy_bridge.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy

from unfoldc import ops
from unfoldc.ir import fold
from unfoldc.ir import sympy_bridge as bridge
from unfoldc.ir.expr import Const, Expr, Op, Sym, dim_value
from unfoldc.ir.fold import ONE, ZERO, negative
from unfoldc.ir.pretty import pretty
from unfoldc.ir.sympy_bridge import Policy, Unsupported
from unfoldc.ir.types import Type, matrix

Monomial = tuple[Expr, ...]

# Coefficient arithmetic in sympy: sums, products, quotients and powers of scalars, and the
# elementary functions sympy simplifies; every other subterm (a norm, a matrix product, ...) is
# an opaque symbol that sympy carries through unchanged.
COEFFICIENTS = Policy(
    ops=frozenset({"add", "sub", "mul", "div", "neg", "pow", "abs", "sqrt", "exp", "log"}),
    arrays="opaque", other="opaque")


def to_sympy(e: Expr, table: dict | None = None) -> sympy.Expr:
    """A scalar IR expression as sympy; non-scalar subterms become opaque symbols.

    `table`, when given, collects sympy symbol -> IR expression (for `bridge.from_sympy`).
    """
    return bridge.to_sympy(e, COEFFICIENTS, table)


# Coefficients are immutable IR expressions: the analysis asks for the same few simplifications
# many times (every family re-reads the blocks), so sympy runs once per distinct coefficient.
@functools.lru_cache(maxsize=4096)
def simplify(c: Expr) -> Expr:
    """A coefficient simplified by sympy (`1 - (1 - mu)` -> `mu`); unchanged if it cannot."""
    if isinstance(c, Const | Sym):
        return c
    table: dict = {}
    s = sympy.simplify(to_sympy(c, table))
    try:
        return bridge.from_sympy(s, table)
    except Unsupported:
        return c


@functools.lru_cache(maxsize=4096)
def is_zero(c: Expr) -> bool:
    """Whether the scalar coefficient is identically zero (a sympy proof)."""
    if c == ZERO:
        return True
    if isinstance(c, Const | Sym):
        return False
    s = to_sympy(c)
    return sympy.expand(s) == 0 or sympy.simplify(s) == 0


@functools.lru_cache(maxsize=4096)
def ratio_number(a: Expr, b: Expr) -> sympy.Expr | None:
    """a / b when it is a plain number (e.g. `2 * mu` over `mu`), else None."""
    q = sympy.cancel(to_sympy(a) / to_sympy(b))
    if not q.is_number:
        q = sympy.simplify(q)
    return q if q.is_number and q.is_finite else None


def from_number(q: sympy.Expr) -> Const:
    return Const(float(q))


# ---- matrix factors ----------------------------------------------------------------------------
def transpose(e: Expr) -> Expr:
    if isinstance(e, Op) and e.op == "transpose":
        return e.args[0]
    if isinstance(e, Op) and e.op == "eye" or getattr(e, "symmetric", False):
        return e
    t = e.type
    return Op("transpose", (e,), matrix(t.dims[1], t.dims[0]) if t.kind == "matrix" else t)


def split_scalar(e: Expr) -> tuple[Expr, Expr]:
    """(c, M) with e = c * M, pulling scalar factors out of a matrix expression."""
    if isinstance(e, Op) and e.op == "mul" and e.type.kind == "matrix":
        a, b = e.args
        if a.type.kind == "scalar":
            c, m = split_scalar(b)
            return fold.mul(a, c), m
        if b.type.kind == "scalar":
            c, m = split_scalar(a)
            return fold.mul(b, c), m
    if isinstance(e, Op) and e.op == "div" and e.args[1].type.kind == "scalar" \
            and e.type.kind == "matrix":
        c, m = split_scalar(e.args[0])
        return fold.div(c, e.args[1]), m
    if isinstance(e, Op) and e.op == "neg" and e.type.kind == "matrix":
        c, m = split_scalar(e.args[0])
        return fold.neg(c), m
    if isinstance(e, Op) and e.op == "transpose":
        c, m = split_scalar(e.args[0])
        return c, transpose(m)
    if isinstance(e, Op) and e.op == "matmul" and all(a.type.kind == "matrix" for a in e.args):
        (ca, ma), (cb, mb) = split_scalar(e.args[0]), split_scalar(e.args[1])
        return fold.mul(ca, cb), Op("matmul", (ma, mb), e.type)
    return ONE, e


def flatten(e: Expr) -> Monomial:
    """The factors of a matrix product, with transposes pushed to the leaves."""
    if isinstance(e, Op) and e.op == "matmul" and all(a.type.kind == "matrix" for a in e.args):
        return flatten(e.args[0]) + flatten(e.args[1])
    if isinstance(e, Op) and e.op == "transpose" and isinstance(e.args[0], Op) \
            and e.args[0].op == "matmul" and e.args[0].type.kind == "matrix":
        a, b = e.args[0].args
        return flatten(transpose(b)) + flatten(transpose(a))
    if isinstance(e, Op) and e.op == "eye":
        return ()
    return (e,)


def mono_transpose(m: Monomial) -> Monomial:
    return tuple(transpose(f) for f in reversed(m))


def mono_psd(m: Monomial) -> bool:
    """Structurally positive semidefinite: B.T @ B, or B.T @ P @ B with P so."""
    if not m:
        return True
    if len(m) == 1:
        return _psd_factor(m[0])
    return m[0] == transpose(m[-1]) and mono_psd(m[1:-1])


def _psd_factor(f: Expr) -> bool:
    if isinstance(f, Op) and f.op == "inv":
        return mono_psd(flatten(f.args[0])) or _psd_sum(f.args[0])
    return _psd_sum(f)


def _psd_sum(f: Expr) -> bool:
    """`A.T @ A + c * I` shapes with positive numeric c (no trainables inside)."""
    if isinstance(f, Op) and f.op == "add":
        return all(_psd_sum(a) for a in f.args)
    if isinstance(f, Op) and f.op == "mul" and isinstance(f.args[0], Const):
        return f.args[0].value >= 0 and _psd_sum(f.args[1])
    flat = flatten(f)
    return len(flat) >= 2 and mono_psd(flat)


def mono_expr(m: Monomial, dim) -> Expr:
    """The product as one IR matrix expression (the identity needs its size `dim`)."""
    if not m:
        return eye(dim)
    out = m[0]  # noqa: SIM108
    for f in m[1:]:
        out = Op("matmul", (out, f), matrix(out.type.dims[0], f.type.dims[1]))
    return out


def eye(dim) -> Expr:
    return Op("eye", (dim_value(dim),), matrix(dim, dim))


# ---- abstract linear operators (diff, grad2d): factors known by their norm --------------------
LINOP = "linop"  # the role of a factor that stands for a fixed operator of the table


def linop_factor(op: str, out_type, in_type) -> Expr:
    """The factor of the table's linear operator `op` (its `Lipschitz` fact of kind "linear")
    applied to a value of `in_type`, giving `out_type`: `K`, or `sign K^T` for an adjoint."""
    fact = ops.OPS[op].lipschitz
    rows_out, rows_in = out_type.dims[0], in_type.dims[0]
    if not fact.adjoint:
        return Sym(fact.factor, matrix(rows_out, rows_in), LINOP)
    k = transpose(Sym(fact.factor, matrix(rows_in, rows_out), LINOP))
    return k if fact.sign > 0 else Op("neg", (k,), k.type)


def linop_norm(f: Expr) -> float | None:
    """||f|| bound for an abstract operator factor (or its transpose); None for a matrix."""
    if isinstance(f, Op) and f.op == "transpose":
        f = f.args[0]
    if isinstance(f, Sym) and f.role == LINOP:
        return float(ops.OPS[f.name].lipschitz.const)
    return None


def has_linop(m: Monomial) -> bool:
    """Whether the product has an abstract operator factor (it has no matrix to evaluate)."""
    return any(linop_norm(f) is not None for f in m)


# ---- the operators -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Lin:
    """sum of coef * product-of-factors; `dim` sizes the identity (the state's row dim)."""

    terms: tuple[tuple[Monomial, Expr], ...]
    dim: object = None

    @staticmethod
    def identity(dim) -> Lin:
        return Lin((((), ONE),), dim)

    def __add__(self, other: Lin) -> Lin:
        merged: dict[Monomial, Expr] = dict(self.terms)
        for m, c in other.terms:
            merged[m] = fold.add(merged[m], c) if m in merged else c
        return Lin(tuple(merged.items()), self.dim if self.dim is not None else other.dim)

    def scale(self, c: Expr) -> Lin:
        return Lin(tuple((m, fold.mul(c, k)) for m, k in self.terms), self.dim)

    def __neg__(self) -> Lin:
        return Lin(tuple((m, fold.neg(k)) for m, k in self.terms), self.dim)

    def lmul(self, a: Expr) -> Lin:
        """a @ self (a a state-free matrix)."""
        c, a = split_scalar(a)
        f = flatten(a)
        return Lin(tuple((f + m, fold.mul(c, k)) for m, k in self.terms), self.dim)

    def compose(self, other: Lin) -> Lin:
        """self @ other, both as sums of products (the identity's size from `other`)."""
        terms = tuple((m1 + m2, fold.mul(c1, c2)) for m1, c1 in self.terms
                      for m2, c2 in other.terms)
        return Lin(terms, other.dim)

    def rmul(self, a: Expr) -> Lin:
        """self @ a."""
        c, a = split_scalar(a)
        f = flatten(a)
        return Lin(tuple((m + f, fold.mul(c, k)) for m, k in self.terms), self.dim)

    def simplified(self) -> Lin:
        """Equal monomials merged, zero coefficients dropped, coefficients simplified."""
        merged = Lin((), self.dim) + self
        terms = [(m, simplify(c)) for m, c in merged.terms if not is_zero(c)]
        terms.sort(key=lambda t: (len(t[0]), [pretty(f) for f in t[0]]))  # canonical order
        return Lin(tuple(terms), self.dim)

    @property
    def identity_only(self) -> bool:
        return all(m == () for m, _ in self.terms)

    def coef(self, m: Monomial) -> Expr:
        return next((c for k, c in self.terms if k == m), ZERO)

    def expr(self) -> Expr:
        """The operator as one IR matrix expression."""
        out = None
        for m, c in sorted(self.terms, key=_identity_first_unless_negative):
            term = mono_expr(m, self.dim)
            minus = out is not None and negative(c)
            k = fold.neg(c) if minus else c
            term = term if k == ONE else Op("mul", (k, term), term.type)
            out = term if out is None else Op("sub" if minus else "add", (out, term),
                                              term.type)
        if out is None:
            return Op("mul", (ZERO, eye(self.dim)), matrix(self.dim, self.dim))
        return out

    def text(self) -> str:
        if not self.terms:
            return "0"
        if self.identity_only and len(self.terms) == 1:
            return pretty(self.terms[0][1])
        return pretty(self.expr()).replace(f"eye({self.dim})", "I")


def lin_of_matrix(e: Expr, dim) -> Lin | None:  # noqa: C901 - one case per operator
    """A state-free matrix expression written as a Lin (for `solve(H.T @ H + beta * I, ...)`)."""
    if isinstance(e, Op) and e.op in ("add", "sub") and e.type.kind == "matrix":
        a, b = (lin_of_matrix(x, dim) for x in e.args)
        if a is None or b is None:
            return None
        return a + (b if e.op == "add" else -b)
    if isinstance(e, Op) and e.op == "mul" and e.type.kind == "matrix":
        c, m = e.args if e.args[0].type.kind == "scalar" else e.args[::-1]
        inner = lin_of_matrix(m, dim) if c.type.kind == "scalar" else None
        return inner.scale(c) if inner is not None else None
    if isinstance(e, Op) and e.op == "neg":
        inner = lin_of_matrix(e.args[0], dim)
        return -inner if inner is not None else None
    if e.type.kind != "matrix":
        return None
    c, m = split_scalar(e)  # (g * H.T) @ H is g times the product H.T @ H
    return Lin(((flatten(m), c),), dim)


def cancel_inverses(lin: Lin) -> Lin:
    """`lin` with every group sum_i c_i inv(A) @ R_i that equals k inv(A) @ A replaced by k I.

    A proof, not an evaluation: Douglas-Rachford's coupling inv(I + g H^T H) + g inv(I + g H^T
    H) H^T H - I is identically zero, and must never be judged numerically (dense inverses lose
    it at large g in float32).
    """
    for lead in {m[0] for m, _ in lin.terms if m and isinstance(m[0], Op) and m[0].op == "inv"}:
        group = [(m, c) for m, c in lin.terms if m and m[0] == lead]
        rest = Lin(tuple((m[1:], c) for m, c in group), lin.dim).simplified()
        system = lin_of_matrix(lead.args[0], lin.dim)
        if system is None or not rest.terms:
            continue
        system = system.simplified()
        mono, a = system.terms[0]
        k = simplify(fold.div(rest.coef(mono), a))
        if (rest + -system.scale(k)).simplified().terms:
            continue
        others = tuple((m, c) for m, c in lin.terms if not (m and m[0] == lead))
        lin = (Lin(others, lin.dim) + Lin((((), k),), lin.dim)).simplified()
    return lin


def psd_shift(a: Expr, dim) -> Expr | None:
    """b when the state-free matrix `a` is P + b I, P a nonempty positive combination of
    structurally PSD products (ADMM's `H.T @ H + beta * I`); None otherwise."""
    lin = lin_of_matrix(a, dim)
    if lin is None:
        return None
    lin = lin.simplified()
    b = lin.coef(())
    rest = [(m, k) for m, k in lin.terms if m != ()]
    if is_zero(b) or not rest or not all(mono_psd(m) and to_sympy(k).is_number
                                         and to_sympy(k) > 0 for m, k in rest):
        return None
    return b


def _identity_first_unless_negative(term) -> int:
    """`I - mu * G` and `W2 + W1 @ H - I` read better than `-I + ...`."""
    m, c = term
    return 1 if m else (2 if negative(c) else 0)


def lin_of(a: Expr) -> Lin:
    """The state-free matrix `a` as a one-term Lin."""
    return Lin((((), ONE),)).lmul(a)


def is_scalar(t: Type) -> bool:
    return t.kind == "scalar"
