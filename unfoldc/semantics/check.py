"""Semantic checks: names, roles, shapes; AST -> checked IR pieces (`Checked`).

Every user error is found here: each is collected (with its span) and reported together, sorted
by position; an expression with an error becomes `None` so that one mistake does not cascade into
many. Expressions are built as math IR (ir/expr.py) typed by shape; inputs are per sample
(batched), and everything else is typed unbatched here: which states carry a batch dimension is
decided once, by lowering (lower.py, batching.py), which also resolves inferred dimensions and
assembles the Program. Data flows one way: this module knows nothing of lowering.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from unfoldc import ops
from unfoldc.diagnostics import Diagnostic, UserError, sort_diagnostics
from unfoldc.ir.expr import Const, Expr, Op, Sym, walk
from unfoldc.ir.program import Assign, Constraint, FixedPointMode, Symbol
from unfoldc.ir.program import Condition as IRCondition
from unfoldc.ir.types import SCALAR, DimSum, DimTable, Type, dim_names, is_fresh
from unfoldc.limits import MAX_ELEMENTS, gib
from unfoldc.semantics.constants import NoValue, check_literal, fold_checked
from unfoldc.semantics.fixed_point import check_fixed_point
from unfoldc.semantics.funcs import Func, call_func, call_grad, call_prox, declare_func
from unfoldc.semantics.nets import call_net, declare_net
from unfoldc.semantics.roles import ALLOWED, LAYER_CONTEXTS, describe_context, per_call_lets
from unfoldc.semantics.usage import unused_values
from unfoldc.source import Source, Span
from unfoldc.syntax import nodes
from unfoldc.syntax.grammar import keywords

LAYER = "layer"  # the layer index: a built-in name, 0 in the first layer
# Built-ins that are not in the operator table: they take functions, not values.
SPECIAL_CALLS = ("grad", "prox")


@dataclass(frozen=True)
class Checked:
    """A spec that checked without errors, as IR pieces for lowering (lower.py).

    Types are as checked: dimensions may still be fresh (`?k`, bound in `dims`), and only inputs
    (and what reads them) are batched.
    """

    spec: nodes.Spec
    source: Source
    symbols: tuple[Symbol, ...]  # in declaration order
    body: tuple[Assign, ...]  # updates and temporaries, in order
    outputs: tuple[str, ...]
    conditions: tuple[IRCondition, ...]
    objective: Expr | None
    fixed_point: FixedPointMode | None
    functions: tuple[Func, ...]
    notes: tuple[str, ...]  # facts about the compilation worth a comment in the output
    dims: DimTable  # what each fresh dimension was unified with
    warnings: tuple[Diagnostic, ...]  # sorted by position


class Checker:
    """Walks one spec; `run()` returns what it checked, or None after errors (in `diags`)."""

    def __init__(self, spec: nodes.Spec, source: Source):
        self.spec, self.source = spec, source
        self.diags: list[Diagnostic] = []
        self.dims = DimTable()
        self.fresh_spans: dict[str, Span] = {}
        self.decls: dict[str, nodes.Decl] = {}
        self.symbols: dict[str, Symbol] = {}  # defined so far (declaration order)
        self.dim_names: set[str] = set()
        self.funcs: dict = {}  # name -> semantics.funcs.Func
        self.func_scope: dict[str, Sym] = {}  # parameters of the function being checked
        self.notes: list[str] = []  # facts about the compilation worth a comment in the output
        self.layer_copies = spec.num_layers  # layers that read `v[layer]` in the current context

    # ---- entry ----------------------------------------------------------------------------------
    def run(self) -> Checked | None:
        """Check everything; None when an error was found."""
        self._collect_dims()
        items = self.spec.decls + self.spec.funcs + self.spec.nets
        for item in sorted(items, key=lambda d: (d.span.line, d.span.col)):
            if isinstance(item, nodes.FuncDecl):
                if self._claim(item.name, item.name_span, item):
                    declare_func(self, item)
            elif isinstance(item, nodes.NetDecl):
                if self._claim(item.name, item.name_span, item):
                    sym = declare_net(self, item)
                    if sym is not None:
                        self.symbols[item.name] = sym
            else:
                self._declare(item)
        body = self._check_body()
        outputs = self._check_outputs()
        conditions = self._check_conditions()
        objective = self._check_objective()
        fixed_point = check_fixed_point(self, self.spec.fixed_points)
        self._check_sizes()
        self._check_allocations()
        if any(d.is_error for d in self.diags):
            return None
        return Checked(self.spec, self.source, tuple(self.symbols.values()), tuple(body),
                       tuple(outputs), conditions, objective, fixed_point,
                       tuple(self.funcs.values()), tuple(self.notes), self.dims,
                       tuple(sort_diagnostics(self.diags + unused_values(self.spec))))

    def error(self, code: str, message: str, span: Span, label: str = "", help: str = "",
              notes: tuple[str, ...] = ()) -> None:
        self.diags.append(Diagnostic(code, message, span, label, notes, help))

    # ---- declarations ---------------------------------------------------------------------------
    def _collect_dims(self) -> None:
        for decl in self.spec.decls:
            if decl.type is not None:
                self.dim_names |= {n for d in decl.type.dims for n in dim_names(d.value)}
        for net in self.spec.nets:
            self.dim_names |= {d.value for d in net.inputs + net.outputs
                               if isinstance(d.value, str)}

    def _check_name(self, name: str, span: Span) -> bool:
        why = _reserved(name)
        if why:
            self.error("E0206", f"`{name}` is {why} and cannot name a symbol", span,
                       "reserved", help=f"choose another name, e.g. `{name}_`")
            return False
        return True

    def _claim(self, name: str, span: Span, item) -> bool:
        """Reserve `name` for a declaration; False (after reporting) if it cannot have it."""
        if not self._check_name(name, span):
            return False
        if name in self.decls or name in self.dim_names:
            self._redeclared(item)
            return False
        self.decls[name] = item
        return True

    def _declare(self, decl: nodes.Decl) -> None:
        if not self._claim(decl.name, decl.name_span, decl):
            return
        declared = self._type(decl.type) if decl.type is not None else None
        init = None
        if decl.period is not None and decl.period < 1:
            self.error("E0406", f"the period of `{decl.name}` must be at least 1, found "
                       f"{decl.period}", decl.period_span, "no copy to use",
                       help="`periodic T` keeps T copies and layer k uses copy k mod T; write "
                       "`periodic 1` or `shared` for one value")
        if decl.value is not None:
            ctx = "train_layer" if decl.role == "train" and decl.per_layer else decl.role
            self.layer_copies = self.spec.num_layers if decl.period is None else \
                min(max(decl.period, 1), self.spec.num_layers)
            init = self.expr(decl.value, ctx)
            self.layer_copies = self.spec.num_layers
            if decl.role == "let" and init is not None:
                declared = init.type
            elif init is not None and declared is not None:
                init = self._fit_init(decl, init, declared)
        if declared is None:
            return
        if decl.role == "input":  # per sample; whether states are too is decided by lowering
            declared = declared.with_batched(True)
        constraint = self._constraint(decl) if decl.constraint else None
        line = decl.span.line
        self.symbols[decl.name] = Symbol(decl.name, decl.role, declared, line, decl.name_span,
                                         decl.per_layer, init, constraint, period=decl.period)

    def _redeclared(self, decl: nodes.Decl) -> None:
        first = self.decls.get(decl.name)
        where = f"{self.source.name}:{first.name_span.line}:{first.name_span.col}" if first \
            else "a dimension of a declared type"
        self.error("E0202", f"`{decl.name}` is declared twice", decl.name_span,
                   "declared again here", notes=(f"first declared at {where}",),
                   help="rename one of them")

    def _type(self, t: nodes.TypeExpr) -> Type:
        return Type(t.kind, tuple(d.value for d in t.dims))

    def _fit_init(self, decl: nodes.Decl, init: Expr, declared: Type) -> Expr | None:
        """Initial values must have the declared shape; a scalar fills the whole shape."""
        if init.type.kind == "scalar" and declared.kind != "scalar":
            return init
        same = init.type.kind == declared.kind and all(
            self.dims.unify(a, b) for a, b in zip(init.type.dims, declared.dims))
        if not same:
            self.error("E0305", f"the initial value of `{decl.name}` is a "
                       f"{self.dims.resolve(init.type)}, but `{decl.name}` is declared "
                       f"{declared}", decl.value.span, f"a {self.dims.resolve(init.type)}",
                       help="make the initial value match the declared type (a scalar fills it)")
            return None
        return init

    def _constraint(self, decl: nodes.Decl) -> Constraint | None:
        c = decl.constraint
        bounds = tuple(self.expr(b, "bound") for b in c.bounds)
        for b, node in zip(bounds, c.bounds):
            if b is not None and b.type.kind != "scalar":
                self.error("E0306", "interval bounds must be scalars", node.span,
                           f"a {b.type}")
        if decl.role != "train":
            self.error("E0207", f"only trainable parameters take a constraint, `{decl.name}` is "
                       f"a {decl.role}", c.span, help="declare it with `train` or drop this")
        return Constraint(c.kind, tuple(b for b in bounds if b is not None))

    # ---- the layer body -------------------------------------------------------------------------
    def _check_body(self) -> list[Assign]:
        body: list[Assign] = []
        temps: dict[str, Sym] = {}
        assigned_later = {s.target for s in self.spec.body}
        self.body_temps, self.assigned_later = temps, assigned_later
        for stmt in self.spec.body:
            value = self.expr(stmt.value, "body")
            kind = self._check_target(stmt)
            if kind == "temp" and value is None:
                temps[stmt.target] = None  # its error is reported; later uses stay quiet
            if value is None or kind is None:
                continue
            if kind == "update":
                value = self._fit_update(stmt, value)
            else:
                temps[stmt.target] = Sym(stmt.target, value.type, "temp")
            if value is not None:
                body.append(Assign(stmt.target, value, kind, stmt.span.line))
        for name, sym in self.symbols.items():
            if sym.role == "state" and name not in self.assigned_later:
                self.diags.append(Diagnostic(
                    "W0001", f"state `{name}` is never updated", sym.span, "declared here",
                    help=f"update it in the layer body with `{name} <- ...`, or make it a `let`"))
        return body

    def _check_target(self, stmt: nodes.Stmt) -> str | None:
        sym = self.symbols.get(stmt.target)
        decl = self.decls.get(stmt.target)
        if stmt.kind == "update":
            if sym is not None and sym.role == "state":
                return "update"
            if decl is not None:
                role = _role_of(decl)
                self.error("E0203", f"cannot update `{stmt.target}`: it is {_a(role)}, not a "
                           "state", stmt.target_span, _a(role),
                           help=f"declare `state {stmt.target} : ... = ...` to iterate on it")
            else:
                states = sorted(n for n, s in self.symbols.items() if s.role == "state")
                close = difflib.get_close_matches(stmt.target, states, n=1, cutoff=0.6)
                self.error("E0204", f"`{stmt.target}` is not a declared state", stmt.target_span,
                           "undeclared", help=f"did you mean `{close[0]}`?" if close else
                           f"declare it with `state {stmt.target} : TYPE = INIT`, or write `=` "
                           "for a temporary")
            return None
        if decl is not None:
            role = _role_of(decl)
            verb = "update it with `<-`" if role == "state" else "it is fixed"
            self.error("E0203", f"cannot assign to `{stmt.target}`, {_a(role)}: {verb}",
                       stmt.target_span, _a(role),
                       help=f"use `{stmt.target} <- ...`" if role == "state"
                       else "assign to a new temporary name instead")
            return None
        if not self._check_name(stmt.target, stmt.target_span):
            return None
        if stmt.target in self.dim_names:
            self.error("E0202", f"`{stmt.target}` is already a dimension", stmt.target_span,
                       "declared again here", notes=(f"`{stmt.target}` sizes a declared type",),
                       help="give the temporary another name")
            return None
        return "temp"

    def _fit_update(self, stmt: nodes.Stmt, value: Expr) -> Expr | None:
        state = self.symbols[stmt.target]
        if value.type.kind == "scalar" and state.type.kind != "scalar":
            return value
        if value.type.kind != state.type.kind or not all(
                self.dims.unify(a, b) for a, b in zip(value.type.dims, state.type.dims)):
            self.error("E0302", f"`{stmt.target}` is a {state.type} but its new value is a "
                       f"{self.dims.resolve(value.type)}", stmt.value.span,
                       f"a {self.dims.resolve(value.type)}",
                       help="the update must keep the state's shape")
            return None
        return value

    def _check_conditions(self) -> tuple[IRCondition, ...]:
        found = []
        for c in self.spec.conditions:
            lhs, rhs = self.expr(c.lhs, "condition"), self.expr(c.rhs, "condition")
            if lhs is None or rhs is None:
                continue
            for side, node in ((lhs, c.lhs), (rhs, c.rhs)):
                if side.type.kind != "scalar":
                    self.error("E0306", f"conditions compare scalars, found a {side.type}",
                               node.span, f"a {side.type}",
                               help="compare a norm or an entry, e.g. `opnorm(W) < 1`")
            # the condition as written, without its keyword (the report prints the kind)
            line = self.source.line_text(c.span.line)[c.span.col - 1:].split("#")[0]
            text = line.strip().removeprefix(c.kind).strip()
            found.append(IRCondition(c.kind, c.op, lhs, rhs, c.span.line, text))
        return tuple(found)

    # ---- outputs and sizes ----------------------------------------------------------------------
    def _check_outputs(self) -> list[str]:
        if not self.spec.outputs:
            self.error("E0402", "the spec has no output", self.source.end_position(),
                       "expected `output NAME`",
                       help="add `output NAME` after the layer body, naming a state")
            return []
        names: list[str] = []
        for out in self.spec.outputs:
            for n in out.names:
                sym = self.symbols.get(n.id)
                if sym is None and n.id in self.body_temps:
                    self.error("E0306", f"`{n.id}` is a temporary of the layer body; outputs "
                               "are states or lets", n.span, "a temporary",
                               help=f"to output it, declare `state {n.id} : TYPE = INIT` and "
                               f"update it with `{n.id} <- ...` instead of `{n.id} = ...`")
                elif sym is None:
                    self._unknown(n.id, n.span, "output")
                elif sym.role not in ("state", "let"):
                    self.error("E0306", f"`{n.id}` is {_a(sym.role)}; outputs are states or "
                               "lets", n.span, _a(sym.role))
                elif n.id in names:
                    self.error("E0202", f"`{n.id}` is output twice", n.span, "again here")
                else:
                    names.append(n.id)
        return names

    def _check_allocations(self) -> None:
        """Refuse tensors and nets of fixed size that the network cannot allocate (E0404)."""
        for s in self.symbols.values():
            if s.role == "net":
                self._check_net_size(s)
            if s.role not in ("state", "param", "train") or s.net is not None:
                continue
            dims = self.dims.resolve(s.type).dims
            if not all(isinstance(d, int) for d in dims):
                continue
            count = math.prod(dims) * s.copies(self.spec.num_layers)
            if count > MAX_ELEMENTS:
                per = " per sample" if s.role == "state" else ""
                self.error("E0404", f"`{s.name}` would hold {count} numbers{per} "
                           f"({gib(count)} as float64)", s.span,
                           f"more than {MAX_ELEMENTS} numbers",
                           help="check the sizes; a network this large cannot be allocated")

    def _check_net_size(self, s: Symbol) -> None:
        """A net's weights, counted with every size not known yet as 1 (so at least this many)."""
        def size(d) -> int:
            found = self.dims.find(d)
            return found if isinstance(found, int) else 1

        count = s.net.parameter_count(size) * (self.spec.num_layers if s.per_layer else 1)
        if count > MAX_ELEMENTS:
            least = "" if s.net.arch != "mlp" or all(
                isinstance(self.dims.find(d), int) for d in s.net.inputs + s.net.outputs
            ) else "at least "
            self.error("E0404", f"net `{s.name}` would hold {least}{count} parameters "
                       f"({gib(count)} as float64)", s.span, f"more than {MAX_ELEMENTS} numbers",
                       help="check the widths, channels, kernel and depth; a net this large "
                       "cannot be allocated")

    def _check_sizes(self) -> None:
        for d, span in sorted(self.fresh_spans.items()):
            if is_fresh(self.dims.find(d)):
                self.error("E0307", "cannot infer the size of this identity or zero matrix",
                           span, "size unknown", help="write `eye(n)` with a declared dimension")
        bound = {d for s in self.symbols.values() if s.role in ("given", "input")
                 for d in s.type.dims}
        # Parameters and nets are built in the constructor: only givens' sizes are known there.
        built = {d for s in self.symbols.values() if s.role == "given" for d in s.type.dims}
        for s in self.symbols.values():
            dims = s.net.inputs + s.net.outputs if s.net else s.type.dims
            # once per name: `mlp[n -> n]` has `n` twice; `n - 1` needs `n` set
            dims = [d.name if isinstance(d, DimSum) else d for d in dims]
            for d in dict.fromkeys(dims):
                if isinstance(d, str) and d not in bound and not is_fresh(d):
                    self.error("E0307", f"dimension `{d}` of `{s.name}` is never set",
                               s.span, f"`{d}` unknown", help=f"`{d}` must appear in the type "
                               "of a `given` or `input`, which sets it at run time")
                elif isinstance(d, str) and s.role in ("train", "param", "net") \
                        and d not in built and not is_fresh(d):
                    self.error("E0307", f"dimension `{d}` of `{s.name}` is only known when the "
                               "network is called, but it is built with the network", s.span,
                               f"`{d}` unknown at construction", help=f"give `{d}` a fixed "
                               f"size: a `given` with dimension `{d}`, or a number")

    # ---- expressions ----------------------------------------------------------------------------
    def expr(self, e: nodes.Expr, ctx: str) -> Expr | None:
        """Convert and type-check `e` in context `ctx` (a role, `body` or `bound`)."""
        match e:
            case nodes.Number():
                return self._number(e)
            case nodes.Name():
                return self._name(e, ctx)
            case nodes.Neg():
                return self._apply("neg", [self.expr(e.arg, ctx)], e, [e.arg])
            case nodes.Transpose():
                return self._apply("transpose", [self.expr(e.arg, ctx)], e, [e.arg])
            case nodes.Index():
                return self._index(e, ctx)
            case nodes.BinOp():
                args = [self.expr(e.lhs, ctx), self.expr(e.rhs, ctx)]
                if e.op not in ops.BINARY:  # `==`: floats are rarely exactly equal
                    self.error("E0304", f"`{e.op}` compares only in `require` and `assume`",
                               e.op_span, "not an operator of expressions",
                               help="a mask is written with `<`, `<=`, `>` or `>=`, e.g. "
                               "`abs(a - b) <= tol`")
                    return None
                return self._apply(ops.BINARY[e.op], args, e, [e.lhs, e.rhs])
            case nodes.Call():
                return self._call(e, ctx)
        raise TypeError(f"no conversion for AST node {type(e).__name__}")

    def _number(self, e: nodes.Number) -> Expr | None:
        problem = check_literal(e.value, e.text)
        if problem is not None:
            self._no_value(problem, e.span)
            return None
        return Const(e.value)

    def _no_value(self, problem: NoValue, span: Span) -> None:
        self.error("E0310", problem.message, span, problem.label, problem.help)

    def _text(self, span: Span) -> str:
        """The source text of `span` (its first line when it spans several)."""
        line = self.source.line_text(span.line)
        end = span.end_col if span.end_line == span.line else len(line) + 1
        return line[span.col - 1 : end - 1]

    def _check_objective(self) -> Expr | None:
        m = self.spec.objective
        if m is None:
            return None
        value = self.expr(m.value, "objective")
        if value is not None and value.type.kind != "scalar":
            self.error("E0306", f"the objective must be a scalar, found a {value.type}",
                       m.value.span, f"a {value.type}")
            return None
        return value

    def _name(self, e: nodes.Name, ctx: str) -> Expr | None:
        if e.id in self.func_scope:
            return self.func_scope[e.id]
        if e.id in self.funcs or isinstance(self.symbols.get(e.id), Symbol) and \
                self.symbols[e.id].role == "net":
            self.error("E0306", f"`{e.id}` is a function, not a value", e.span,
                       "call it with arguments", help=f"write `{e.id}(...)`")
            return None
        if e.id == "I":
            return self._apply("eye", [], e, [])
        if e.id == LAYER:
            return self._layer_index(e, ctx)
        if e.id in ops.CONSTANTS:
            return Const(ops.CONSTANTS[e.id])
        if ctx == "body" and e.id in self.body_temps:
            return self.body_temps[e.id]
        sym = self.symbols.get(e.id)
        if sym is None:
            if e.id in self.dim_names:
                return Sym(e.id, SCALAR, "dim")
            return self._undefined(e, ctx)
        if not self._allowed(sym, ctx):
            self.error("E0207", f"{describe_context(ctx)} cannot use `{e.id}`, "
                       f"a {'per-layer ' if sym.per_layer else ''}{sym.role}", e.span,
                       f"a {sym.role}", help=_dependency_help(sym, ctx))
            return None
        return Sym(sym.name, sym.type, sym.role, sym.per_layer)

    def _layer_index(self, e: nodes.Name, ctx: str) -> Expr | None:
        """`layer`: the 0-based index of the current layer (a number, like a dimension)."""
        if ctx not in LAYER_CONTEXTS:
            self.error("E0207", f"{describe_context(ctx)} cannot use `layer`, the layer index",
                       e.span, "the layer index", help=_layer_help(ctx))
            return None
        return Sym(LAYER, SCALAR, "layer", per_layer=True)

    def _index(self, e: nodes.Index, ctx: str) -> Expr | None:
        """`v[layer]`: entry k of a vector known at construction, in layer k (E0306, E0207,
        E0406 for another index, a varying vector, a vector of fixed size that is too short)."""
        if not (isinstance(e.index, nodes.Name) and e.index.id == LAYER):
            self.error("E0306", "a vector can only be indexed by the layer index `layer`",
                       e.index.span, "not `layer`", help="`v[layer]` is entry k of `v` in "
                       "layer k; otherwise specs work on whole vectors and matrices: use "
                       "operators such as `dot`, `sum` or `@`")
            return None
        v, k = self.expr(e.arg, ctx), self.expr(e.index, ctx)
        if v is None or k is None:
            return None
        if v.type.kind != "vector":
            self.error("E0306", f"only vectors can be indexed by `layer`, this is a "
                       f"{self.dims.resolve(v.type)}", e.arg.span,
                       f"a {self.dims.resolve(v.type)}", help="index a vector of per-layer "
                       "values, e.g. `given steps : vector[K]` and `steps[layer]`")
            return None
        varying = sorted({s.name for s in walk(v) if isinstance(s, Sym) and not (
            s.role in ("given", "param", "dim") or (s.role == "let" and self._setup_let(s.name)))})
        if varying:
            self.error("E0207", f"`layer` can only index a vector known at construction; this "
                       f"one reads `{varying[0]}`", e.arg.span, "not known at construction",
                       help="index a given, a param or a `let` of those (a schedule)")
            return None
        size = self.dims.find(v.type.dims[0])
        if isinstance(size, int) and size < self.layer_copies:
            self.error("E0406", f"`{self._text(e.arg.span)}` has {size} entries but "
                       f"`{self._text(e.span)}` is read by {self.layer_copies} layers",
                       e.span, f"layers {size}..{self.layer_copies - 1} have no entry",
                       help=f"give at least {self.layer_copies} entries, or build fewer layers")
            return None
        return Op("index", (v, k), SCALAR)

    def _setup_let(self, name: str) -> bool:
        sym = self.symbols.get(name)
        return sym is not None and sym.init is not None \
            and name not in per_call_lets(self.symbols.values())

    def _allowed(self, sym: Symbol, ctx: str) -> bool:
        role = "train_per_layer" if sym.per_layer else sym.role
        return role in ALLOWED[ctx]

    def _undefined(self, e: nodes.Name, ctx: str) -> None:
        later = {d.name: d for d in self.spec.decls if d.name not in self.decls}
        if e.id in later:  # declared, but further down the file
            d = later[e.id]
            self.error("E0205", f"`{e.id}` is used before it is defined", e.span,
                       "not defined yet", notes=(f"`{e.id}` is defined at {self.source.name}:"
                                                 f"{d.name_span.line}:{d.name_span.col}",),
                       help=f"move the declaration of `{e.id}` above this line")
        elif ctx == "body" and e.id in self.assigned_later:
            self.error("E0205", f"temporary `{e.id}` is used before it is assigned", e.span,
                       "not assigned yet", help="assign temporaries before the statements "
                       "that read them")
        elif e.id in self.decls and _contains(self.decls[e.id].span, e.span):
            self.error("E0205", f"`{e.id}` is used in its own definition", e.span,
                       "not defined yet", help="a value cannot be defined in terms of itself; "
                       "to iterate on it, make it a `state` and update it in the layer body")
        elif e.id in self.decls:
            return None  # its own declaration already failed and was reported
        else:
            self._unknown(e.id, e.span, "name")
        return None

    def _unknown(self, name: str, span: Span, what: str) -> None:
        known = set(self.decls) | set(getattr(self, "body_temps", {})) | self.dim_names
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        self.error("E0201", f"unknown identifier `{name}`", span, "not declared",
                   help=f"did you mean `{close[0]}`?" if close else
                   "declare it with `given`, `input`, `state`, `let`, `param` or `train`")

    def _call(self, e: nodes.Call, ctx: str) -> Expr | None:
        if e.func == "grad":
            return call_grad(self, e, ctx)
        if e.func == "prox":
            return call_prox(self, e, ctx)
        args = [self.expr(a, ctx) for a in e.args]
        if e.func in self.funcs:
            return call_func(self, self.funcs[e.func], e, args, ctx) \
                if all(a is not None for a in args) else None
        net = self.symbols.get(e.func)
        if net is not None and net.role == "net":
            if not self._allowed(net, ctx):
                self.error("E0207", f"{describe_context(ctx)} cannot use the learned network "
                           f"`{e.func}`", e.func_span, "a net",
                           help="learned networks are applied in the layer body")
                return None
            return call_net(self, net, e, args) if all(a is not None for a in args) else None
        opdef = ops.FUNCTIONS.get(e.func)
        if self._recursive_call(e):
            return None
        if e.func in self.decls and e.func not in self.symbols and e.func not in self.funcs:
            return None  # a function or net whose declaration failed (already reported)
        if opdef is None or e.func == "I":
            self.error("E0304", f"unknown operator `{e.func}`", e.func_span, "no such operator",
                       help=self._operator_help(e))
            return None
        lo, hi = opdef.arity
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            self.error("E0303", f"`{e.func}` takes {want} argument{'s' * (hi != 1)}, "
                       f"found {len(args)}", e.span, f"{len(args)} given",
                       help=f"{e.func}: {opdef.doc}")
            return None
        return self._apply(opdef.name, args, e, list(e.args))

    def _recursive_call(self, e: nodes.Call) -> bool:
        """Report a function calling itself, or one declared below it (calls are inlined, so
        a cycle of calls has no end); True when reported."""
        later = {f.name: f for f in self.spec.funcs if f.name not in self.decls}
        if e.func in self.decls and _contains(self.decls[e.func].span, e.span):
            self.error("E0205", f"function `{e.func}` calls itself", e.func_span,
                       "a recursive call", help="calls are inlined where they are written, so "
                       "a function cannot call itself; write the iteration as a `state`")
            return True
        if e.func in later:
            d = later[e.func]
            self.error("E0205", f"function `{e.func}` is called before it is defined",
                       e.func_span, "not defined yet",
                       notes=(f"`{e.func}` is defined at {self.source.name}:"
                              f"{d.name_span.line}:{d.name_span.col}",),
                       help=f"declare `{e.func}` above its first use (functions cannot call "
                       "each other in a cycle)")
            return True
        return False

    def _operator_help(self, e: nodes.Call) -> str:
        if e.func == "I":
            return "`I` is the identity with an inferred size; write `eye(n)` to give the size"
        if e.func in self.decls or e.func in self.dim_names:
            what = _role_of(self.decls[e.func]) if e.func in self.decls else "dimension"
            return f"`{e.func}` is {_a(what)}, not a function; write `{e.func} * (...)` or " \
                f"`{e.func} @ (...)` for a product"
        names = sorted(set(ops.FUNCTIONS) - {"I"} | set(SPECIAL_CALLS) | set(self.funcs))
        close = difflib.get_close_matches(e.func, names, n=1, cutoff=0.6)
        return f"did you mean `{close[0]}`?" if close else \
            "see docs/language.md for the operator library"

    def _apply(self, op: str, args: list, node, arg_nodes: list) -> Expr | None:
        if any(a is None for a in args):
            return None
        try:
            out = ops.OPS[op].shape(self.dims, args)
        except ops.ShapeError as err:
            span = arg_nodes[err.arg].span if err.arg is not None else node.span
            self.error(err.code, err.message, span, err.label, err.help,
                       notes=self._declared_notes(args))
            return None
        if op == "eye" and not args:
            self.fresh_spans[out.dims[0]] = node.span
        batched = any(a.type.batched for a in args)
        folded = fold_checked(op, args, self._text(node.span))
        if isinstance(folded, NoValue):
            self._no_value(folded, node.span)
            return None
        return folded if folded is not None else Op(op, tuple(args), out.with_batched(batched))

    def _declared_notes(self, args: list) -> tuple[str, ...]:
        notes = []
        for a in args:
            if isinstance(a, Sym) and a.name in self.decls and a.type.kind != "scalar":
                d = self.decls[a.name]
                notes.append(f"`{a.name}` is a {self.dims.resolve(a.type)}, declared at "
                             f"{self.source.name}:{d.name_span.line}:{d.name_span.col}")
        return tuple(notes)

def _contains(outer: Span, inner: Span) -> bool:
    return (outer.line, outer.col) <= (inner.line, inner.col) and \
        (inner.end_line, inner.end_col) <= (outer.end_line, outer.end_col)


def _role_of(decl) -> str:
    """The declaring keyword of a declaration, function or network."""
    if isinstance(decl, nodes.NetDecl):
        return "net"
    if isinstance(decl, nodes.FuncDecl):
        return "func"
    return decl.role


def _a(role: str) -> str:
    """`a state`, `an input`: the role with its article, for messages."""
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def _reserved(name: str) -> str:
    if name in keywords():
        return "a keyword of the language"
    if name in ops.FUNCTIONS or name == "I" or name in SPECIAL_CALLS:
        return "a built-in operator"
    if name == LAYER:
        return "the layer index"
    if name in ops.CONSTANTS:
        return "a built-in constant"
    return ""


def _layer_help(ctx: str) -> str:
    if ctx == "train":
        return "only `per_layer` and `periodic T` trainables have one initial value per layer; " \
            "declare it `per_layer` to start layer k from a value of k"
    return "`layer` has a value in the layer body, in the initial value of a per-layer " \
        "trainable and in `require` / `assume` conditions"


def _dependency_help(sym: Symbol, ctx: str) -> str:
    if ctx in ("train", "train_layer"):
        return "initial values of trainables may use givens, fixed params, lets and numbers"
    if ctx in ("let", "state") and sym.per_layer:
        return "per-layer values exist only inside the layer body: compute this there"
    if ctx == "param":
        return "fixed parameters are set at construction: use numbers, givens and lets"
    return "see docs/language.md, section Roles"


def check(spec: nodes.Spec, source: Source) -> Checked:
    """Check `spec` once; return what lowering needs (warnings included), or raise UserError
    with every error."""
    checker = Checker(spec, source)
    checked = checker.run()
    if checked is None:
        raise UserError(sort_diagnostics(checker.diags), source)
    return checked
