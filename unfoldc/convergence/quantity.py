"""Scalar quantities that conditions compare: IR scalars, operator norms, sums and products.

    Q := QExpr(scalar IR expr) | QNorm(Lin) | QEig(Lin, which) | QSum(Q, ...) | QProd(Q, ...)
       | QAbs(Q) | QNet(net, arg) | QInf

They are evaluated by the generated `convergence_report()` (see emit.py) on the network's
current parameters; `text` gives the readable symbolic form printed in docstrings and by
`unfoldc check`.
"""

from __future__ import annotations

from dataclasses import dataclass

from unfoldc.convergence.linear import Lin
from unfoldc.ir import fold
from unfoldc.ir.expr import Const, Expr, Sym, symbols
from unfoldc.ir.pretty import pretty


@dataclass(frozen=True)
class QExpr:
    expr: Expr

    def text(self) -> str:
        return pretty(self.expr)


@dataclass(frozen=True)
class QNorm:
    """Spectral norm of a linear operator (|c| when it is c * I)."""

    lin: Lin

    def text(self) -> str:
        if self.lin.identity_only and len(self.lin.terms) <= 1:
            return f"|{self.lin.text()}|"
        return f"||{self.lin.text()}||"


@dataclass(frozen=True)
class QEig:
    """Largest (`max`) or smallest (`min`) eigenvalue of a symmetric operator."""

    lin: Lin
    which: str

    def text(self) -> str:
        return f"lambda_{self.which}({self.lin.text()})"


@dataclass(frozen=True)
class QBlock:
    """Spectral norm of a square matrix of nonnegative scalar bounds (the block bound)."""

    rows: tuple[tuple[object, ...], ...]
    names: tuple[str, ...] = ()  # the states, in row order

    def text(self) -> str:
        """One short line: the single bound, or the block norm named by its states (the
        entries, nested norms of every block, are in `entries()`)."""
        if len(self.rows) == 1:
            return self.rows[0][0].text()
        if self.names:
            return f"blocknorm({', '.join(self.names)})"
        return f"||[{self.entries()}]||"

    def entries(self) -> str:
        return "; ".join(", ".join(q.text() for q in r) for r in self.rows)


@dataclass(frozen=True)
class QSum:
    parts: tuple[object, ...]

    def text(self) -> str:
        return " + ".join(p.text() for p in self.parts)


@dataclass(frozen=True)
class QProd:
    parts: tuple[object, ...]

    def text(self) -> str:
        return " * ".join(_paren(p) for p in self.parts)


@dataclass(frozen=True)
class QNet:
    """Lipschitz bound of a learned sub-network w.r.t. its argument `arg` (0-based): the product
    of its layers' weight norms times the activation's constant `act` per hidden layer, plus 1
    for the first argument of a residual net (evaluated from the live weights)."""

    net: Sym
    arg: int
    act: float
    nargs: int = 1

    def text(self) -> str:
        which = f", arg {self.arg + 1}" if self.nargs > 1 else ""
        return f"Lip({self.net.name}{which})"


@dataclass(frozen=True)
class QInf:
    reason: str

    def text(self) -> str:
        return f"inf ({self.reason})"


@dataclass(frozen=True)
class QSpectral:
    """Spectral radius of a linear layer whose blocks are c0 I + c1 G (G symmetric): the
    largest over G's eigenvalues lambda of rho(C0 + C1 lambda), C0, C1 the k x k coefficient
    matrices. `coef[i, j] = (c0, c1)` over `states`; `in_range`: the offset lies in range(G),
    so on null(G) one eigenvalue 1 is allowed (the component there stays put)."""

    coef: tuple
    gram: tuple
    states: tuple[str, ...]
    in_range: bool

    def __init__(self, coef, gram, states, in_range):
        object.__setattr__(self, "coef", tuple(sorted(coef.items())))
        object.__setattr__(self, "gram", gram)
        object.__setattr__(self, "states", tuple(states))
        object.__setattr__(self, "in_range", in_range)

    def matrices(self):
        """(C0, C1) as nested lists of IR scalars, rows and columns in `states` order."""
        table = dict(self.coef)
        return ([[table[i, j][0] for j in self.states] for i in self.states],
                [[table[i, j][1] for j in self.states] for i in self.states])

    def text(self) -> str:
        g = " @ ".join(pretty(f) for f in self.gram) if self.gram else "0"
        c0, c1 = self.matrices()
        rows = "; ".join(", ".join(_entry(a, b) for a, b in zip(r0, r1))
                         for r0, r1 in zip(c0, c1))
        return f"rho([{rows}]) over lambda in eig({g})"


def _entry(c0, c1) -> str:
    zero = Const(0.0)
    if c1 == zero:
        return pretty(c0)
    sign, mag = "+", c1
    if fold.negative(c1):
        sign, mag = "-", fold.neg(c1)
    text = pretty(mag)
    lam = "lambda" if mag == Const(1.0) else (
        f"{text} lambda" if isinstance(mag, Sym | Const) else f"({text}) lambda")
    if c0 == zero:
        return lam if sign == "+" else f"-{lam}"
    return f"{pretty(c0)} {sign} {lam}"


Q = QExpr | QNorm | QEig | QBlock | QSum | QProd | QNet | QInf | QSpectral
ZERO_Q, ONE_Q = QExpr(Const(0.0)), QExpr(Const(1.0))


def _paren(q) -> str:
    loose = isinstance(q, QSum) or (isinstance(q, QExpr) and getattr(q.expr, "op", "") in (
        "add", "sub"))
    return f"({q.text()})" if loose else q.text()


def q_add(a, b):
    if a == ZERO_Q:
        return b
    if b == ZERO_Q:
        return a
    if isinstance(a, QInf) or isinstance(b, QInf):
        return a if isinstance(a, QInf) else b
    return QSum(_parts(a, QSum) + _parts(b, QSum))


def q_mul(a, b):
    if ZERO_Q in (a, b):
        return ZERO_Q
    if a == ONE_Q:
        return b
    if b == ONE_Q:
        return a
    if isinstance(a, QInf) or isinstance(b, QInf):
        return a if isinstance(a, QInf) else b
    return QProd(_parts(a, QProd) + _parts(b, QProd))


def _parts(q, cls) -> tuple:
    return q.parts if isinstance(q, cls) else (q,)


def q_norm(lin: Lin):
    """||lin||, as |c| for c * I (a plain number when c is one)."""
    if not lin.terms:
        return ZERO_Q
    if lin.identity_only and len(lin.terms) == 1:
        c = lin.terms[0][1]
        return QExpr(Const(abs(c.value))) if isinstance(c, Const) else QNorm(lin)
    return QNorm(lin)


def q_symbols(q) -> set[Sym]:
    """Every IR symbol a quantity reads."""
    if isinstance(q, QExpr):
        return symbols(q.expr)
    if isinstance(q, QNorm | QEig):
        return {s for m, c in q.lin.terms for e in (c, *m) for s in symbols(e)}
    if isinstance(q, QBlock):
        return {s for r in q.rows for x in r for s in q_symbols(x)}
    if isinstance(q, QSum | QProd):
        return {s for p in q.parts for s in q_symbols(p)}
    if isinstance(q, QNet):
        return {q.net}
    if isinstance(q, QSpectral):
        return ({s for _, (a, b) in q.coef for e in (a, b) for s in symbols(e)}
                | {s for f in q.gram or () for s in symbols(f)})
    return set()
