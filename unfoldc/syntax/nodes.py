"""The abstract syntax tree of a .unf spec: frozen dataclasses, each with its source span.

    Spec      := Algorithm, [Decl], Layers
    Decl      := Given | Input | State | Let | Param | Train | Output
    Stmt      := Update (`s <- e`) | Assign (`t = e`)
    Expr      := Number | Name | Call(func, args) | BinOp(op, lhs, rhs) | Neg | Transpose
    TypeExpr  := kind in {scalar, vector, matrix} with dims (names or ints)
"""

from __future__ import annotations

from dataclasses import dataclass

from unfoldc.ir.types import DimSum
from unfoldc.source import Span


@dataclass(frozen=True)
class Number:
    value: float
    text: str
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    span: Span
    func_span: Span


COMPARISONS = ("<", "<=", ">", ">=", "==")  # `==` only in `require` / `assume`


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / @ ^, or a comparison (COMPARISONS)
    lhs: Expr
    rhs: Expr
    span: Span
    op_span: Span


@dataclass(frozen=True)
class Neg:
    arg: Expr
    span: Span


@dataclass(frozen=True)
class Transpose:
    arg: Expr
    span: Span


@dataclass(frozen=True)
class Index:
    """`v[i]`: an entry of a vector (the checker admits the layer index `layer` only)."""

    arg: Expr
    index: Expr
    span: Span


Expr = Number | Name | Call | BinOp | Neg | Transpose | Index


@dataclass(frozen=True)
class Dim:
    """A dimension of a declared type: a symbolic name, an integer size, or a size computed
    from a name (`n - 1`: a `DimSum`)."""

    value: str | int | DimSum
    span: Span


@dataclass(frozen=True)
class TypeExpr:
    kind: str  # scalar | vector | matrix
    dims: tuple[Dim, ...]
    span: Span

    def __str__(self) -> str:
        if not self.dims:
            return self.kind
        return f"{self.kind}[{', '.join(str(d.value) for d in self.dims)}]"


@dataclass(frozen=True)
class Constraint:
    kind: str  # positive | nonneg | interval
    bounds: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Decl:
    """A symbol declaration; `role` is the keyword that introduced it."""

    role: str  # given | input | state | let | param | train
    name: str
    type: TypeExpr | None
    value: Expr | None
    span: Span
    name_span: Span
    per_layer: bool = False
    constraint: Constraint | None = None
    period: int | None = None  # `periodic T`: T copies (per_layer is then True as well)
    period_span: Span | None = None


@dataclass(frozen=True)
class FuncDecl:
    """`func f(a : T, ...) = body`."""

    name: str
    params: tuple[tuple[str, TypeExpr, Span], ...]
    body: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True)
class NetDecl:
    """`net psi : arch(in dims -> out dims, key = value, ...) sharing flags`."""

    name: str
    arch: str
    inputs: tuple[Dim, ...]
    outputs: tuple[Dim, ...]
    options: tuple[tuple[str, object, Span], ...]
    per_layer: bool
    flags: tuple[str, ...]
    span: Span
    name_span: Span
    arch_span: Span


@dataclass(frozen=True)
class Minimize:
    value: Expr
    span: Span


@dataclass(frozen=True)
class Condition:
    """`require lhs OP rhs` or `assume lhs OP rhs`."""

    kind: str  # require | assume
    op: str  # < <= > >= ==
    lhs: Expr
    rhs: Expr
    span: Span


@dataclass(frozen=True)
class Output:
    names: tuple[Name, ...]
    span: Span


@dataclass(frozen=True)
class Stmt:
    kind: str  # update | assign
    target: str
    value: Expr
    span: Span
    target_span: Span


@dataclass(frozen=True)
class Spec:
    name: str
    doc: str
    name_span: Span
    decls: tuple[Decl, ...]
    outputs: tuple[Output, ...]
    body: tuple[Stmt, ...]
    num_layers: int
    layers_span: Span
    conditions: tuple[Condition, ...] = ()
    funcs: tuple[FuncDecl, ...] = ()
    nets: tuple[NetDecl, ...] = ()
    objective: Minimize | None = None
