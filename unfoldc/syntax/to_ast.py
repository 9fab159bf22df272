"""Lark parse tree -> AST (syntax/nodes.py), keeping a span on every node.

An external Transformer (not passed into Lark) so that `meta` positions are available.
"""

from __future__ import annotations

from lark import Token, Transformer, v_args

from unfoldc.diagnostics import Diagnostic, UserError
from unfoldc.ir.types import dim_affine
from unfoldc.limits import MAX_INT, MAX_LAYERS
from unfoldc.source import Source, Span
from unfoldc.syntax import nodes


def _span(meta) -> Span:
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _tspan(tok: Token) -> Span:
    return Span(tok.line, tok.column, tok.end_line, tok.end_column)


def _expr_span(e) -> Span:
    return e.span


# Integers in a spec are sizes and counts. Larger ones are typos, or networks that would not fit
# in memory: refused here (E0404), before anything is allocated or a 5000-digit number parsed.


def _string_value(tok: Token) -> str:
    text = str(tok)
    quote = '"""' if text.startswith('"""') else '"'
    return text[len(quote) : -len(quote)].strip()


@v_args(inline=True, meta=True)
class ToAst(Transformer):
    """Builds nodes.Spec; raises UserError for structural mistakes the grammar allows."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    # ---- expressions ----------------------------------------------------------------------------
    def number(self, meta, tok):
        return nodes.Number(float(tok), str(tok), _tspan(tok))

    def name(self, meta, tok):
        return nodes.Name(str(tok), _tspan(tok))

    def call(self, meta, func, args):
        return nodes.Call(str(func), tuple(args or ()), _span(meta), _tspan(func))

    def args(self, meta, *items):
        return list(items)

    def _binop(op):  # noqa: N805 - a factory used while building the class
        def build(self, meta, lhs, rhs):
            return nodes.BinOp(op, lhs, rhs, _span(meta), _op_span(lhs, rhs))

        return build

    add = _binop("+")
    sub = _binop("-")
    mul = _binop("*")
    div = _binop("/")
    matmul = _binop("@")
    pow = _binop("^")

    def compare(self, meta, lhs, op, rhs):
        return nodes.BinOp(str(op), lhs, rhs, _span(meta), _tspan(op))

    def neg(self, meta, arg):
        return nodes.Neg(arg, _span(meta))

    def unary(self, meta, arg):  # unary plus
        return arg

    def transpose(self, meta, arg):
        return nodes.Transpose(arg, _span(meta))

    def index(self, meta, arg, index):
        return nodes.Index(arg, index, _span(meta))

    # ---- integers -------------------------------------------------------------------------------
    def _int(self, tok: Token, what: str, limit: int = MAX_INT) -> int:
        """`tok` as an int, or E0404 when it exceeds `limit` (checked on the digits first)."""
        text = str(tok).lstrip("0") or "0"
        if len(text) <= len(str(limit)) and int(text) <= limit:
            return int(text)
        shown = text if len(text) <= 20 else f"{text[:8]}... ({len(text)} digits)"
        raise UserError([Diagnostic(
            "E0404", f"{what} {shown} is too large", _tspan(tok), f"more than {limit}",
            help=_TOO_LARGE_HELP[what])], self.source)

    # ---- types ----------------------------------------------------------------------------------
    def _dim(self, d) -> nodes.Dim:
        if isinstance(d, nodes.Dim):  # built by dim_minus / dim_plus / dim_times
            return d
        value = self._int(d, "the size") if d.type == "INT" else str(d)
        return nodes.Dim(value, _tspan(d))

    def dim_minus(self, meta, name, k):
        return self._dim_sum(meta, name, 1, -self._int(k, "the size"))

    def dim_plus(self, meta, name, k):
        return self._dim_sum(meta, name, 1, self._int(k, "the size"))

    def dim_times(self, meta, k, name):
        return self._dim_sum(meta, name, self._int(k, "the size"), 0)

    def _dim_sum(self, meta, name, scale: int, offset: int) -> nodes.Dim:
        value = dim_affine(str(name), scale, offset) if scale > 0 else None
        if value is None:
            raise UserError([Diagnostic(
                "E0306", "a size must be positive", _span(meta), "not a positive size",
                help="write `n - 1`, `n + 1` or `2 * n` with `n` a declared dimension")],
                self.source)
        return nodes.Dim(value, _span(meta))

    def scalar_type(self, meta, _kw):
        return nodes.TypeExpr("scalar", (), _span(meta))

    def vector_type(self, meta, _kw, d):
        return nodes.TypeExpr("vector", (self._dim(d),), _span(meta))

    def matrix_type(self, meta, _kw, d1, d2):
        return nodes.TypeExpr("matrix", (self._dim(d1), self._dim(d2)), _span(meta))

    # ---- declarations ---------------------------------------------------------------------------
    def algorithm(self, meta, name, doc=None):  # `STRING?` leaves no placeholder
        return ("algorithm", str(name), _string_value(doc) if doc else "", _tspan(name))

    def _decl(self, role, meta, name, type_=None, value=None, **kw):
        return nodes.Decl(role, str(name), type_, value, _span(meta), _tspan(name), **kw)

    def given(self, meta, name, type_):
        return self._decl("given", meta, name, type_)

    def input(self, meta, name, type_):
        return self._decl("input", meta, name, type_)

    def state(self, meta, name, type_, value):
        return self._decl("state", meta, name, type_, value)

    def let(self, meta, name, value):
        return self._decl("let", meta, name, None, value)

    def param(self, meta, name, type_, value):
        return self._decl("param", meta, name, type_, value)

    def train(self, meta, name, type_, sharing, value, constraint):
        kind, period, period_span, _ = sharing
        return self._decl(
            "train", meta, name, type_, value,
            per_layer=kind != "shared", constraint=constraint, period=period,
            period_span=period_span,
        )

    def sharing(self, meta, tok, period=None):
        """(`shared` | `per_layer` | `periodic`, the period T or None, its span, the span of
        the whole sharing mode)."""
        if period is None:
            return (str(tok), None, None, _tspan(tok))
        return (str(tok), self._int(period, "the period", MAX_LAYERS), _tspan(period),
                _span(meta))

    def positive(self, meta):
        return nodes.Constraint("positive", (), _span(meta))

    def nonneg(self, meta):
        return nodes.Constraint("nonneg", (), _span(meta))

    def interval(self, meta, lo, hi):
        return nodes.Constraint("interval", (lo, hi), _span(meta))

    def output(self, meta, *names):
        return nodes.Output(tuple(nodes.Name(str(n), _tspan(n)) for n in names), _span(meta))

    def func(self, meta, name, params, body):
        return nodes.FuncDecl(str(name), tuple(params), body, _span(meta), _tspan(name))

    def func_params(self, meta, *params):
        return list(params)

    def func_param(self, meta, name, type_):
        return (str(name), type_, _tspan(name))

    def net(self, meta, name, arch, inputs, outputs, options, sharing, *flags):
        if sharing[1] is not None:
            raise UserError([Diagnostic(
                "E0309", "a learned network cannot be `periodic`", sharing[3],
                "periodic sharing", help="write `shared` or `per_layer`; `periodic T` is for "
                "`train` parameters")], self.source)
        return nodes.NetDecl(str(name), str(arch), inputs, outputs, options,
                             sharing[0] == "per_layer", tuple(flags), _span(meta), _tspan(name),
                             _tspan(arch))

    def net_dims(self, meta, *dims):
        return tuple(self._dim(d) for d in dims)

    def net_options(self, meta, *options):
        return tuple(o for o in options if o is not None)

    def net_option(self, meta, key, value):
        return (str(key), value, _span(meta))

    def net_int(self, meta, tok):
        return self._int(tok, "the size")

    def net_name(self, meta, tok):
        return str(tok)

    def net_list(self, meta, *items):
        return tuple(self._int(i, "the size") for i in items if i is not None)

    def net_flag(self, meta, tok):
        return str(tok)

    def minimize(self, meta, value):
        return nodes.Minimize(value, _span(meta))

    def _condition(self, kind: str, meta, comp) -> nodes.Condition:
        """`require`/`assume` state one comparison; anything else is refused here (E0102)."""
        if not (isinstance(comp, nodes.BinOp) and comp.op in nodes.COMPARISONS):
            raise UserError([Diagnostic(
                "E0102", f"`{kind}` needs a comparison", _expr_span(comp), "not a comparison",
                help=f"write `{kind} LHS <= RHS` (or `<`, `>`, `>=`, `==`), e.g. "
                f"`{kind} opnorm(W) < 1`")], self.source)
        return nodes.Condition(kind, comp.op, comp.lhs, comp.rhs, _span(meta))

    def require(self, meta, comp):
        return self._condition("require", meta, comp)

    def assume(self, meta, comp):
        return self._condition("assume", meta, comp)

    # ---- body -----------------------------------------------------------------------------------
    def update(self, meta, target, value):
        return nodes.Stmt("update", str(target), value, _span(meta), _tspan(target))

    def assign(self, meta, target, value):
        return nodes.Stmt("assign", str(target), value, _span(meta), _tspan(target))

    def layers(self, meta, count, *stmts):
        value = self._int(count, "the layer count", MAX_LAYERS)
        return ("layers", value, _tspan(count), tuple(stmts))

    def start(self, meta, algorithm, *items):
        _, name, doc, name_span = algorithm
        layers = next(i for i in items if isinstance(i, tuple) and i[0] == "layers")
        _, count, count_span, body = layers
        if count <= 0:
            raise UserError(
                [Diagnostic("E0401", f"the layer count must be positive, found {count}",
                            count_span, label="not a positive number of layers",
                            help="write the default depth, e.g. `layers 16:`")],
                self.source,
            )
        decls = tuple(i for i in items if isinstance(i, nodes.Decl))
        outputs = tuple(i for i in items if isinstance(i, nodes.Output))
        conditions = tuple(i for i in items if isinstance(i, nodes.Condition))
        funcs = tuple(i for i in items if isinstance(i, nodes.FuncDecl))
        nets = tuple(i for i in items if isinstance(i, nodes.NetDecl))
        objective = next((i for i in items if isinstance(i, nodes.Minimize)), None)
        return nodes.Spec(name, doc, name_span, decls, outputs, body, count, count_span,
                          conditions, funcs, nets, objective)


_TOO_LARGE_HELP = {
    "the size": f"sizes above {MAX_INT} do not fit in memory; check the number",
    "the layer count": f"unfoldc builds at most {MAX_LAYERS} layers: every layer keeps its "
                       "parameters and, for training, its activations",
    "the period": f"a period is at most the largest layer count, {MAX_LAYERS}",
}


def _op_span(lhs, rhs) -> Span:
    """The span between two operands: where the operator (and the caret) sits."""
    a, b = _expr_span(lhs), _expr_span(rhs)
    return Span(a.end_line, a.end_col, b.line, b.col) if a.end_line == b.line else b
