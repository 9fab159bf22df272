"""Declared functions (`func`), their calls, `grad(f, v)` and `prox(c * g, v)`.

A function body is checked once, in terms of its typed parameters (symbols of role `arg`).
A call substitutes the arguments and retypes; `grad` differentiates the body symbolically
(ir/calculus.py, autograd only for the terms sympy cannot do); `prox` resolves the closed-form
proximal map (ir/prox.py). All three produce plain IR, so the passes, the convergence analysis
and the printer see explicit expressions.
"""

from __future__ import annotations

from dataclasses import dataclass

from unfoldc.ir import prox as proxlib
from unfoldc.ir.calculus import gradient
from unfoldc.ir.expr import Expr, Op, Sym, symbols
from unfoldc.ir.retype import apply, retype
from unfoldc.ir.types import Type
from unfoldc.syntax import nodes


@dataclass(frozen=True)
class Func:
    """A checked `func`: parameters (role `arg`) and body IR."""

    name: str
    params: tuple[Sym, ...]
    body: Expr
    line: int


def declare_func(ck, decl: nodes.FuncDecl) -> None:
    """Check `func f(p : T, ...) = body` and record it in `ck.funcs`."""
    params = []
    for name, type_, span in decl.params:
        if ck._check_name(name, span):
            params.append(Sym(name, Type(type_.kind, tuple(d.value for d in type_.dims)), "arg"))
    ck.func_scope = {p.name: p for p in params}
    try:
        body = ck.expr(decl.body, "func")
    finally:
        ck.func_scope = {}
    if body is None:
        return
    if body.type.kind != "scalar":
        ck.error("E0306", f"function `{decl.name}` must have a scalar value, found a "
                 f"{body.type}", decl.body.span, f"a {body.type}",
                 help="objective terms are scalars, e.g. `0.5 * sqnorm(H @ v - x)`")
        return
    ck.funcs[decl.name] = Func(decl.name, tuple(params), body, decl.span.line)


def call_func(ck, f: Func, e: nodes.Call, args: list, ctx: str) -> Expr | None:
    """Inline `f(args)`; arguments must match the parameters' shapes."""
    if len(args) != len(f.params):
        ck.error("E0303", f"`{f.name}` takes {len(f.params)} argument"
                 f"{'s' * (len(f.params) != 1)}, found {len(args)}", e.span,
                 f"{len(args)} given")
        return None
    if not _match_params(ck, f, e, args):
        return None
    size = _inlined_size(f, args)
    if size > MAX_INLINED_SIZE:
        ck.error("E0405", f"calling `{f.name}` here inlines an expression of {size} operations",
                 e.span, f"more than {MAX_INLINED_SIZE} once inlined",
                 help="calls are inlined, so nested calls multiply the work; compute a "
                 "repeated value once, with `let` or a temporary, and pass it instead")
        return None
    result = apply(f.body, dict(zip(f.params, args)))
    return _check_roles(ck, result, e, ctx)


# Function calls are inlined: `f_k(a) = f_(k-1)(a) + f_(k-1)(a)` doubles the expression at each
# level. Every later stage walks expressions as trees, so the size is bounded where it is made.
MAX_INLINED_SIZE = 10_000


def _inlined_size(f: Func, args: list) -> int:
    """The tree size of `f(args)` once inlined, computed without building it."""
    sizes: dict[int, int] = {}
    size = _tree_size(f.body, sizes)
    for p, a in zip(f.params, args):
        size += _occurrences(f.body, p, {}) * (_tree_size(a, sizes) - 1)
    return size


def _tree_size(e: Expr, memo: dict[int, int]) -> int:
    """Nodes of `e` counted as a tree (shared subexpressions once per use), in time linear in
    the number of distinct nodes; iterative, as inlined expressions may be deep."""
    return _fold_tree(e, memo, lambda node: 1)


def _occurrences(e: Expr, p: Sym, memo: dict[int, int]) -> int:
    return _fold_tree(e, memo, lambda node: int(node == p))


def _fold_tree(e: Expr, memo: dict[int, int], leaf) -> int:
    """Sum of `leaf(node)` over every node of `e` seen as a tree, memoized on node identity."""
    stack = [(e, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in memo:
            continue
        args = node.args if isinstance(node, Op) else ()
        if ready or not args:
            memo[id(node)] = leaf(node) + sum(memo[id(a)] for a in args)
        else:
            stack.append((node, True))
            stack.extend((a, False) for a in args)
    return memo[id(e)]


def _match_params(ck, f: Func, e: nodes.Call, args: list) -> bool:
    ok = True
    for p, a, node in zip(f.params, args, e.args):
        same = a.type.kind == p.type.kind and all(
            ck.dims.unify(x, y) for x, y in zip(a.type.dims, p.type.dims))
        if not same:
            ck.error("E0302", f"argument `{p.name}` of `{f.name}` is a {p.type}, found a "
                     f"{ck.dims.resolve(a.type)}", node.span, f"a {ck.dims.resolve(a.type)}")
            ok = False
    return ok


def _check_roles(ck, result: Expr, e: nodes.Call, ctx: str) -> Expr | None:
    """A function may read per-layer trainables: then it can only be used in the body."""
    from unfoldc.semantics.roles import ALLOWED, describe_context

    for s in symbols(result):
        role = "train_per_layer" if s.per_layer else s.role
        if role not in ALLOWED[ctx] and s.role != "arg":
            ck.error("E0207", f"{describe_context(ctx)} cannot call `{e.func}`: it reads "
                     f"`{s.name}`, a {'per-layer ' if s.per_layer else ''}"
                     f"{'trainable' if s.role == 'train' else s.role}", e.span,
                     "not available here", help="call it inside the layer body")
            return None
    return result


def _func_arg(ck, node, what: str):
    if isinstance(node, nodes.Name) and node.id in ck.funcs:
        return ck.funcs[node.id]
    ck.error("E0306", f"the first argument of `{what}` must name a declared `func`",
             node.span, "not a declared function",
             help=f"declare it first, e.g. `func f(v : vector[n]) = ...`, then `{what}(f, s)`")
    return None


def call_grad(ck, e: nodes.Call, ctx: str) -> Expr | None:
    """`grad(f, v)`: the symbolic gradient of f at v (autograd for underivable terms)."""
    if len(e.args) != 2:
        ck.error("E0303", f"`grad` takes 2 arguments, found {len(e.args)}", e.span,
                 help="write `grad(f, s)`: the gradient of function f at s")
        return None
    f = _func_arg(ck, e.args[0], "grad")
    v = ck.expr(e.args[1], ctx)
    if f is None or v is None:
        return None
    if len(f.params) != 1:
        ck.error("E0303", f"`grad` needs a function of one argument; `{f.name}` takes "
                 f"{len(f.params)}", e.args[0].span)
        return None
    if not _match_params(ck, f, e, [v]) or _check_roles(ck, f.body, e, ctx) is None:
        return None
    (p,) = f.params
    g = gradient(f.body, p)
    parts = []
    if g.derived is not None:
        parts.append(apply(g.derived, {p: v}))
    for term in g.fallback:
        ck.notes.append(f"grad({f.name}, ...) at line {e.span.line}: sympy cannot "
                        f"differentiate a term; it is computed by autograd")
        parts.append(retype(Op("autograd", (p, term, v), v.type)))
    if not parts:
        return apply(Op("mul", (_zero(), p), p.type), {p: v})
    out = parts[0]
    for extra in parts[1:]:
        out = retype(Op("add", (out, extra), out.type))
    return out


def _zero():
    from unfoldc.ir.expr import Const

    return Const(0.0)


def call_prox(ck, e: nodes.Call, ctx: str) -> Expr | None:
    """`prox(c * g, v)`: the closed-form proximal map of c times function g at v."""
    if len(e.args) != 2:
        ck.error("E0303", f"`prox` takes 2 arguments, found {len(e.args)}", e.span,
                 help="write `prox(mu * g, v)`")
        return None
    scaled = e.args[0]
    coef_node, g_node = None, scaled
    if isinstance(scaled, nodes.BinOp) and scaled.op == "*":
        if isinstance(scaled.rhs, nodes.Name) and scaled.rhs.id in ck.funcs:
            coef_node, g_node = scaled.lhs, scaled.rhs
        elif isinstance(scaled.lhs, nodes.Name) and scaled.lhs.id in ck.funcs:
            coef_node, g_node = scaled.rhs, scaled.lhs
    g = _func_arg(ck, g_node, "prox")
    coef = ck.expr(coef_node, ctx) if coef_node is not None else _one()
    v = ck.expr(e.args[1], ctx)
    if g is None or coef is None or v is None:
        return None
    if coef.type.kind != "scalar":
        ck.error("E0306", "the weight in `prox(c * g, v)` must be a scalar", coef_node.span,
                 f"a {coef.type}")
        return None
    if len(g.params) != 1 or not _match_params(ck, g, e, [v]):
        return None
    if _check_roles(ck, g.body, e, ctx) is None:
        return None
    (p,) = g.params
    try:
        return retype(proxlib.resolve_prox(coef, g.body, p, v))
    except proxlib.ProxError as err:
        ck.error("E0308", f"no closed-form proximal map for `{g.name}`: {err}", e.span,
                 "unsupported prox", help="supported: " + "; ".join(proxlib.SUPPORTED))
        return None


def _one():
    from unfoldc.ir.expr import Const

    return Const(1.0)
