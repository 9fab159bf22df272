"""Emit the convergence part of a generated module: the docstring section, the
`convergence_report()` method, and the report classes (torch + standard library only).

The method evaluates every derived condition (derive.py) on the current parameters, layer by
layer. Values that do not change from layer to layer (norms of given matrices, eigenvalue ranges
of Gram matrices) are computed once before the layer loop; norms of ADMM's resolvents follow
from that range; norms of per-layer matrices are computed for all layers at once, matrix-free,
before the loop. Norms and eigenvalue ranges are exact (SVD, eigvalsh) up to size 128 and
Rayleigh-Ritz (Krylov) estimates from a fixed start above, which estimate norms from below.
Emitted lines stay within 100 columns; repeated subexpressions get one local name per layer.
"""

from __future__ import annotations

import ast
import re
import textwrap

from unfoldc.codegen.exprs import ExprPrinter, format_number
from unfoldc.convergence.derive import Analysis, Condition, QTol, derive
from unfoldc.convergence.linear import ONE, Lin, mono_transpose
from unfoldc.convergence.quantity import (
    QBlock,
    QEig,
    QExpr,
    QInf,
    QNet,
    QNorm,
    QProd,
    QSum,
    q_symbols,
)
from unfoldc.ir.expr import Op, Sym, symbols
from unfoldc.ir.types import SCALAR

METHOD = "convergence_report"


class ConvergenceEmitter:
    """Writes the convergence section of one generated module (hooked from codegen/module.py)."""

    def __init__(self, em):
        self.em, self.p = em, em.p
        try:
            self.an: Analysis = derive(em.p)
        except Exception as exc:  # noqa: BLE001 - an optional analysis must not block compiling
            from unfoldc.convergence.analyze import Layer

            self.an = Analysis(em.p, Layer(em.p, [], {}, {}))
            self.an.notes.append(f"convergence analysis failed ({type(exc).__name__}: {exc}); "
                                 "please report it with the spec")
        self.report_cls = em.ns.fresh("ConvergenceReport")
        self.r = em.ns.fresh("report")  # local alias of the report class in the method
        self.cond_cls = em.ns.fresh("ConvergenceCondition")
        self.per_layer = ({s.name for s in em.per_layer + em.layer_nets}
                          | set(self.an.layer.schedule))
        self.dims_known = {b.dim for b in self.p.dims
                           if self.p.symbol(b.symbol).role == "given"}
        self.conditions = [c for c in self.an.conditions if self._evaluable(c)]

    # ---- what can be evaluated from parameters alone --------------------------------------------
    def _evaluable(self, c: Condition) -> bool:
        ok_roles = {"given", "param", "let", "train", "const", "net"}
        for s in _reads(c):
            if s.role == "dim" and s.name not in self.dims_known:
                self._skip(c, f"its size `{s.name}` is only known from the inputs")
                return False
            if s.role == "state" and s.name in self.an.layer.schedule:
                continue
            if s.role not in ok_roles | {"dim"} or (s.role == "let" and not self._setup(s.name)):
                self._skip(c, f"it reads `{s.name}` ({s.role}), which depends on the input")
                return False
        return True

    def _skip(self, c: Condition, why: str) -> None:
        self.an.notes.append(f"{self.p.source_name}:{c.line} {c.kind} {c.text()}: not "
                             f"evaluated: {why}")

    def _setup(self, name: str) -> bool:
        return any(a.target == name for a in self.p.setup)

    # ---- docstring -----------------------------------------------------------------------------
    def doc(self, w) -> None:
        """Lines appended to the network's class docstring."""
        w()
        w(f"Convergence conditions (evaluated by `{METHOD}()`):")
        for c in self.conditions:
            _doc_line(w, f"[{c.level}] {self.p.source_name}:{c.line} {c.kind}: {_doc(c.text())}")
        for f in self.an.facts:
            _doc_line(w, f"[holds] {_doc(f)}")
        for n in self.an.notes:
            _doc_line(w, f"[skipped] {_doc(n)}")
        if not self.conditions and not self.an.facts and not self.an.notes:
            w("    none derived")

    # ---- the method -----------------------------------------------------------------------------
    def method(self, w) -> None:
        em = self.em
        w()
        w(f"CONVERGENCE_CONDITIONS = {self._table()}")
        w()
        w(f"def {METHOD}(self, num_layers=None):")
        w.indent()
        w('"""Evaluate the convergence conditions on the current parameters, per layer.')
        w()
        w(f"Returns a {self.report_cls}: `.ok` (every required condition holds on every layer),")
        w("`.failing_layers`, `.values` (condition -> per-layer values), `str(report)` a table.")
        w("Norms and eigenvalues above size 128 are Krylov estimates from below (see")
        w(f"{self.report_cls}.ritz_values); per-layer norms are computed for all layers at once.")
        w('"""')
        w("K = self.num_layers if num_layers is None else num_layers")
        w(f"{self.r} = {self.report_cls}")
        w(f"like = {self.r}.reference_tensor(self)")
        w("eps = torch.finfo(like.dtype).eps")
        if any(_uses_tol(q) for c in self.conditions for q in (c.lhs, c.rhs)):
            w("tol = 10 * eps ** 0.5")
        w("rows = [[] for _ in self.CONVERGENCE_CONDITIONS]")
        w("with torch.no_grad():")
        w.indent()
        pr = ExprPrinter(self._name_of)
        self.pr_layers = ExprPrinter(self._stacked_name_of)  # per-layer values stacked
        self.loop_reads: set[str] = set()  # per-layer symbols read inside the layer loop
        self.layer = self.em.ns.fresh("layer")
        self._prelude(w, pr)
        hoisted: dict[str, str] = {}
        self.stacks: dict[str, str] = {}  # per-layer symbol -> its stack over the layers
        self.stacked: dict[str, str] = {}  # code -> name, evaluated for all layers at once
        self.per_layer_values: dict[str, str] = {}
        body = [self._condition_code(c, pr, hoisted) for c in self.conditions]
        for code, name in hoisted.items():
            _assign(w, name, code)
        for sym, stack in self.stacks.items():
            w(f"{stack} = torch.stack([{self.layer}.{self.em.n(sym)} "
              f"for {self.layer} in self.layers[:K]])")
        for code, name in self.stacked.items():
            _assign(w, name, code)
        for s, init in self._schedule_inits(pr):
            w(f"{s} = torch.as_tensor({init}, dtype=like.dtype, device=like.device)")
        w("for k in range(K):")
        w.indent()
        bound = [s for s in em.per_layer + em.layer_nets if s.name in self.loop_reads]
        if bound:
            w(f"{self.layer} = self.layers[k]")
            for s in bound:
                w(f"{em.n(s.name)} = {self.layer}.{em.n(s.name)}")
        for code, name in self.per_layer_values.items():
            _assign(w, name, code)
        for i, (c, (lhs, rhs)) in enumerate(zip(self.conditions, body)):
            lhs = self._premised(w, c, lhs)
            w(f"rows[{i}].append({self.r}.check({lhs}, \"{c.op}\", {rhs}, eps))")
        self._schedule_updates(w, pr)
        w.dedent()
        w.dedent()
        w(f"return {self.report_cls}(self.SPEC_NAME, self.CONVERGENCE_CONDITIONS, rows)")
        w.dedent()
        em.helpers |= pr.helpers | self.pr_layers.helpers

    def _premised(self, w, c: Condition, lhs: str) -> str:
        """A bound valid only where its premises (this layer's thresholds, checked above) hold."""
        if not c.premises:
            return lhs
        keys = [x.key for x in self.conditions]
        held = ", ".join(f"rows[{keys.index(k)}][-1][2]" for k in c.premises if k in keys)
        name = self.em.ns.fresh("bound")
        _assign(w, name, f"{self.r}.premised({lhs}, [{held}])")
        return name

    def _table(self) -> str:
        if not self.conditions:
            return "()"
        lines = ["("]
        for c in self.conditions:
            head = (c.key, c.kind, c.level, f"{self.p.source_name}:{c.line}")
            lines += ["        (", "            " + ", ".join(repr(f) for f in head) + ","]
            for text in (c.text(), c.theorem):
                lines += [f"            {chunk}" for chunk in _string_lines(text, 84)]
                lines[-1] += ","
            lines.append("        ),")
        return "\n".join(lines + ["    )"])

    def _name_of(self, sym: Sym) -> str:
        em = self.em
        if sym.name in self.per_layer:
            self.loop_reads.add(sym.name)
        if sym.role in ("given", "param"):
            return f"self.{em.n(sym.name)}"
        if sym.role in ("train", "net") and sym.name not in self.per_layer:
            return f"self.{em.n(sym.name)}"
        return em.n(sym.name)

    def _stacked_name_of(self, sym: Sym) -> str:
        """Per-layer trainables as their stack over the layers (leading dimension K)."""
        if sym.role == "train" and sym.name in self.per_layer:
            if sym.name not in self.stacks:
                self.stacks[sym.name] = self.em.ns.fresh(f"{self.em.n(sym.name)}_layers")
            return self.stacks[sym.name]
        return self._name_of(sym)

    def _prelude(self, w, pr: ExprPrinter) -> None:
        """Dimensions and the setup lets the conditions read, in setup order."""
        reads = {s for c in self.conditions for s in _reads(c)}
        need = {s.name for s in reads if s.role == "let"}
        lets = []
        for a in reversed(self.p.setup):
            if a.target in need:
                lets.append(a)
                need |= {s.name for s in symbols(a.value) if s.role == "let"}
                reads |= symbols(a.value)
        dims = {s.name for s in reads if s.role == "dim"}
        dims |= {d for s in reads if s.role in ("given", "train") for d in s.type.dims}
        dims |= {d for c in self.conditions for lin in _lins(c) for d in [lin.dim]}
        self.em._bind_dims(w, {d for d in dims if isinstance(d, str)} & self.dims_known,
                           ("given",), "self.")
        for a in reversed(lets):
            w(f"{self.em.n(a.target)} = {pr(a.value)}")

    def _schedule_inits(self, pr):
        inits = {a.target: a.value for a in self.p.prologue if a.kind == "init"}
        return [(self.em.n(s), pr(inits[s])) for s in self.an.layer.schedule]

    def _schedule_updates(self, w, pr) -> None:
        sched = self.an.layer.schedule
        if sched:
            names = ", ".join(self.em.n(s) for s in sched)
            w(f"{names} = {', '.join(pr(v) for v in sched.values())}")

    # ---- quantities -> code ---------------------------------------------------------------------
    def _condition_code(self, c: Condition, pr, hoisted) -> tuple[str, str]:
        return self._q(c.lhs, pr, hoisted), self._q(c.rhs, pr, hoisted)

    def _q(self, q, pr, hoisted, inner=False) -> str:
        if isinstance(q, QExpr) and inner and isinstance(q.expr, Op) and q.expr.op != "neg":
            return self._named(self._q_code(q, pr, hoisted), self._varies(q), hoisted)
        if isinstance(q, QExpr | QTol | QInf | QSum | QProd):
            return self._q_code(q, pr, hoisted)
        # norms: once before the loop when layer-independent, else once per layer
        return self._named(self._q_code(q, pr, hoisted), self._varies(q), hoisted)

    def _named(self, code: str, varies: bool, hoisted) -> str:
        """A local name for `code`, assigned once per layer (or once, when layer-invariant)."""
        if code.isidentifier() or code.endswith("[k]") and code[:-3].isidentifier():
            return code
        table = self.per_layer_values if varies else hoisted
        if code not in table:
            n = len(hoisted) + len(self.stacked) + len(self.per_layer_values)
            table[code] = self.em.ns.fresh(f"q{n}")
        return table[code]

    def _varies(self, q) -> bool:
        return any(s.name in self.per_layer for s in q_symbols(q))

    def _q_code(self, q, pr, hoisted) -> str:  # noqa: C901 - one case per quantity kind
        r = self.r
        if isinstance(q, QExpr):
            return pr(q.expr)
        if isinstance(q, QTol):
            return "tol"
        if isinstance(q, QInf):
            return 'float("inf")'
        if isinstance(q, QSum):
            return " + ".join(self._q(x, pr, hoisted, True) for x in q.parts)
        if isinstance(q, QProd):
            return " * ".join(_wrap(self._q(x, pr, hoisted, True)) for x in q.parts)
        if isinstance(q, QBlock):
            if len(q.rows) == 1:
                return self._q(q.rows[0][0], pr, hoisted)
            rows = ", ".join("[" + ", ".join(self._q(x, pr, hoisted, True) for x in row) + "]"
                             for row in q.rows)
            return f"{r}.block_norm([{rows}])"
        if isinstance(q, QEig):
            rng = self._q_hoist(self._range_code(q.lin, pr), q.lin, hoisted)
            return f"{rng}[{1 if q.which == 'max' else 0}]"
        if isinstance(q, QNorm):
            return self._norm_code(q.lin, pr, hoisted)
        if isinstance(q, QNet):
            return f"{r}.net_lipschitz({self._name_of(q.net)}, {q.arg}, {format_number(q.act)})"
        raise TypeError(f"cannot emit quantity {type(q).__name__}")

    def _q_hoist(self, code: str, lin: Lin, hoisted) -> str:
        if any(s.name in self.per_layer for m, c in lin.terms for e in m for s in symbols(e)):
            return code
        if code not in hoisted:
            hoisted[code] = self.em.ns.fresh(f"q{len(hoisted)}")
        return hoisted[code]

    def _norm_code(self, lin: Lin, pr, hoisted) -> str:
        r = self.r
        if lin.identity_only:
            total = None
            for _, c in lin.terms:
                total = c if total is None else Op("add", (total, c), SCALAR)
            return f"abs({pr(total)})"
        parts = dict(lin.terms)
        mono = [m for m in parts if m != ()]
        if len(mono) == 1 and mono[0] == mono_transpose(mono[0]):
            # ||c0 I + c M|| for symmetric M: max over M's eigenvalue range (computed once).
            m = mono[0]
            rng = self._q_hoist(self._range_code(Lin(((m, ONE),), lin.dim), pr),
                                Lin(((m, parts[m]),), lin.dim), hoisted)
            c0 = pr(parts.get((), QExpr(_zero()).expr))
            return f"{r}.affine_norm({c0}, {pr(parts[m])}, {rng})"
        res = _resolvent(lin)
        if res is not None:
            # ||c0 I + c inv(G + shift I)|| for symmetric G: from G's eigenvalue range (once).
            c0, c, g, shift = res
            rng = self._q_hoist(self._range_code(Lin(((g, ONE),), lin.dim), pr),
                                Lin(((g, ONE),), lin.dim), hoisted)
            return f"{r}.resolvent_norm({pr(c0)}, {pr(c)}, {pr(shift)}, {rng})"
        n_in = _domain(lin)
        plain = all(_plain(f) for m, _ in lin.terms for f in m)
        reads = {s.name for m, c in lin.terms for e in (c, *m) for s in symbols(e)}
        batchable = not reads & set(self.an.layer.schedule)
        if not plain or not batchable or n_in is None or (isinstance(n_in, str)
                                                          and n_in not in self.dims_known):
            return f"{r}.opnorm({pr(lin.expr())})"
        # matrix-free, every layer at once: products of the factors are never formed
        size = n_in if isinstance(n_in, int) else self.em.n(n_in)
        code = f"{r}.opnorm_terms({self._terms(lin)}, {size}, like)"
        if not reads & self.per_layer:
            return self._named(code, False, hoisted)
        if code not in self.stacked:
            n = len(hoisted) + len(self.stacked) + len(self.per_layer_values)
            self.stacked[code] = self.em.ns.fresh(f"q{n}")
        return f"{self.stacked[code]}[k]"

    def _range_code(self, lin: Lin, pr) -> str:
        """The eigenvalue range of a symmetric operator; B.T @ B from B alone (matrix-free)."""
        if len(lin.terms) == 1 and lin.terms[0][1] == ONE:
            m = lin.terms[0][0]
            if len(m) == 2 and isinstance(m[1], Sym) and m[0] == mono_transpose(m[1:])[0]:
                return f"{self.r}.gram_range({pr(m[1])})"
        return f"{self.r}.eig_range({pr(lin.expr())})"

    def _terms(self, lin: Lin) -> str:
        """`[(c, F1, ..., Fr), ...]`: the operator as sum of c * F1 @ ... @ Fr (stacked)."""
        pr = self.pr_layers
        items = [", ".join([pr(c)] + [pr(f) for f in m]) + ("," if not m else "")
                 for m, c in lin.terms]
        return "[" + ", ".join(f"({x})" for x in items) + "]"

    # ---- the classes at module level ------------------------------------------------------------
    def tail(self, w) -> None:
        w()
        w()
        source = REPORT_SOURCE.format(report=self.report_cls, cond=self.cond_cls,
                                      cls=self.em.cls).strip("\n")
        # Only the evaluation helpers this module's report calls (and what they call) are
        # written: a module without nets or ADMM-type operators carries no code for them.
        emitted = "\n".join(w.lines)
        used = {name for alias in (self.r, self.report_cls)
                for name in re.findall(rf"\b{alias}\.(\w+)", emitted)}
        for line in prune_helpers(source, self.report_cls, used).splitlines():
            w(line)


HELPERS_MARK = "# ---- evaluation helpers"


def prune_helpers(source: str, report_cls: str, used: set[str]) -> str:
    """`source` without the report class's evaluation helpers that `used` does not reach.

    Helpers are the methods after HELPERS_MARK; one reaches another through `cls.name`.
    """
    tree = ast.parse(source)
    report = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == report_cls)
    lines = source.splitlines()
    mark = next(i for i, line in enumerate(lines) if HELPERS_MARK in line) + 1
    helpers = {n.name: n for n in report.body
               if isinstance(n, ast.FunctionDef) and n.lineno > mark}
    calls = {name: {a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute)
                    and isinstance(a.value, ast.Name) and a.value.id == "cls"}
             for name, node in helpers.items()}
    keep, todo = set(), [name for name in used if name in helpers]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(c for c in calls[name] if c in helpers)
    drop = set()
    for name, node in helpers.items():
        if name not in keep:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            drop.update(range(first - 2, node.end_lineno))  # with the blank line above
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


def _resolvent(lin: Lin):
    """(c0, c, G, shift) when lin = c0 I + c inv(G + shift I) with G a symmetric product."""
    from unfoldc.convergence.linear import lin_of_matrix

    parts = dict(lin.terms)
    mono = [m for m in parts if m != ()]
    if len(mono) != 1 or len(mono[0]) != 1 or not isinstance(mono[0][0], Op) \
            or mono[0][0].op != "inv":
        return None
    inner = lin_of_matrix(mono[0][0].args[0], lin.dim)
    if inner is None:
        return None
    inner = inner.simplified()
    g = [m for m, _ in inner.terms if m != ()]
    if len(g) != 1 or g[0] != mono_transpose(g[0]) or inner.coef(g[0]) != ONE:
        return None
    return parts.get((), _zero()), parts[mono[0]], g[0], inner.coef(())


def _uses_tol(q) -> bool:
    """Whether a quantity reads the coupling tolerance (the report defines `tol` only then)."""
    if isinstance(q, QTol):
        return True
    if isinstance(q, QSum | QProd):
        return any(_uses_tol(p) for p in q.parts)
    if isinstance(q, QBlock):
        return any(_uses_tol(x) for row in q.rows for x in row)
    return False


def _assign(w, name: str, code: str) -> None:
    """`name = code`, with a call's arguments one per line when it would pass 100 columns."""
    line = f"{name} = {code}"
    if len(line) + 4 * w.depth <= 100 or not code.endswith(")") or "(" not in code:
        w(line)
        return
    head, args = code.split("(", 1)
    w(f"{name} = {head}(")
    w.indent()
    for arg in _split_top(args[:-1]):
        w(f"{arg},")
    w.dedent()
    w(")")


def _split_top(text: str) -> list[str]:
    """Comma-separated parts of `text` at bracket depth 0."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()]


def _string_lines(text: str, width: int) -> list[str]:
    """repr(text) split at spaces into adjacent literals of at most `width` columns."""
    chunks, cur = [], ""
    for word in text.split(" "):
        piece = word if not cur else " " + word
        if cur and len(repr(cur + piece)) > width:
            chunks.append(cur + " ")
            cur = word
        else:
            cur += piece
    return [repr(c) for c in chunks + [cur]]


def _plain(f) -> bool:
    """A stored matrix (or its transpose): cheap to apply inside power iteration."""
    return isinstance(f, Sym) or (isinstance(f, Op) and f.op == "transpose"
                                  and isinstance(f.args[0], Sym))


def _domain(lin: Lin):
    """The size of the vectors the operator acts on."""
    for m, _ in lin.terms:
        if m:
            t = m[-1].type
            return t.dims[1] if t.kind == "matrix" else None
    return lin.dim


def _wrap(code: str) -> str:
    return f"({code})" if " + " in code or " - " in code else code


def _zero():
    from unfoldc.ir.expr import Const

    return Const(0.0)


def _reads(c: Condition) -> set[Sym]:
    return q_symbols(c.lhs) | q_symbols(c.rhs)


def _lins(c: Condition):
    out = []

    def visit(q):
        if isinstance(q, QNorm | QEig):
            out.append(q.lin)
        for p in getattr(q, "parts", ()):
            visit(p)
        for row in getattr(q, "rows", ()):
            for x in row:
                visit(x)
    visit(c.lhs)
    visit(c.rhs)
    return out


def _doc_line(w, text: str) -> None:
    """One docstring entry, wrapped at 100 columns (continuations indented)."""
    lines = textwrap.wrap(text, 100 - 4 * w.depth - 4, subsequent_indent="    ",
                          break_long_words=False, break_on_hyphens=False)
    for line in lines:
        w(f"    {line}")


def _doc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', "'''")


REPORT_SOURCE = '''
class {cond}:
    """One convergence condition of a {cls} network, evaluated on every layer."""

    def __init__(self, key, kind, level, origin, text, theorem, results):
        self.key, self.kind, self.level, self.origin = key, kind, level, origin
        self.text, self.theorem = text, theorem
        self.lhs = [r[0] for r in results]
        self.rhs = [r[1] for r in results]
        self.holds = [r[2] for r in results]

    @property
    def failing_layers(self):
        """Indices of the layers where the condition does not hold."""
        return [k for k, h in enumerate(self.holds) if not h]

    def __repr__(self):
        return f"{cond}({{self.key!r}}, {{self.text!r}}, failing={{self.failing_layers}})"


class {report}:
    """The convergence conditions of a {cls} network evaluated on its current parameters.

    `ok`: every required condition holds on every layer; `failing_layers`: sorted layer
    indices where a required condition fails; `values`: condition key -> per-layer value of
    its left-hand side; `conditions`: the {cond} objects; `str(report)`: a table.
    Conditions of level "info" (Lipschitz bounds, the 1/L descent step) never fail a report.
    """

    EXACT_SIZE = 128  # exact norms up to this size, Krylov (Lanczos) estimates above
    KRYLOV_STEPS = 10  # products with the operator per estimate of every layer (ritz_values)
    KRYLOV_STEPS_ONCE = 30  # for values computed once per report (given matrices)
    CACHE_BYTES = 8 << 20  # stacked per-layer matrices are processed in chunks of this size

    def __init__(self, name, table, rows):
        self.name = name
        self.conditions = [{cond}(*spec, results)
                           for spec, results in zip(table, rows)]

    @property
    def ok(self):
        return not self.failing_layers

    @property
    def failing_layers(self):
        return sorted({{k for c in self.conditions if c.level == "require"
                       for k in c.failing_layers}})

    @property
    def values(self):
        return {{c.key: list(c.lhs) for c in self.conditions}}

    @property
    def lipschitz_product(self):
        """Product over layers of the layer Lipschitz bounds (None without a bound)."""
        bounds = [c for c in self.conditions if c.kind == "lipschitz"]
        if not bounds:
            return None
        out = 1.0
        for v in bounds[0].lhs:
            out *= v
        return out

    def __str__(self):
        status = "ok" if self.ok else f"FAILING on layers {{self.failing_layers}}"
        lines = [f"{{self.name}} convergence report ({{self._layers()}} layers): {{status}}"]
        head = ("level", "origin", "condition", "layers", "value", "bound", "")
        table = [head]
        for c in self.conditions:
            for first, last in self._runs(c):
                mark = "ok" if c.holds[first] else ("FAIL" if c.level == "require" else "no")
                span = str(first) if first == last else f"{{first}}-{{last}}"
                text = c.text if len(c.text) <= 60 else c.text[:57] + "..."
                table.append((c.level, c.origin, text, span, f"{{c.lhs[first]:.4g}}",
                              f"{{c.rhs[first]:.4g}}", mark))
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        for r in table:
            lines.append("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
        product = self.lipschitz_product
        if product is not None:
            verdict = "a contraction certificate" if product < 1 else "no contraction certificate"
            lines.append(f"product of layer Lipschitz bounds: {{product:.4g}} ({{verdict}})")
        return "\\n".join(lines)

    def __repr__(self):
        return (f"<{report} {{self.name}}: ok={{self.ok}}, "
                f"failing_layers={{self.failing_layers}}>")

    def _layers(self):
        return max((len(c.holds) for c in self.conditions), default=0)

    @staticmethod
    def _runs(c):
        """Runs of consecutive layers showing the same value, bound and verdict."""
        runs, start = [], 0
        for k in range(1, len(c.holds) + 1):
            if k == len(c.holds) or (f"{{c.lhs[k]:.4g}}", f"{{c.rhs[k]:.4g}}", c.holds[k]) != (
                    f"{{c.lhs[start]:.4g}}", f"{{c.rhs[start]:.4g}}", c.holds[start]):
                runs.append((start, k - 1))
                start = k
        return runs

    # ---- evaluation helpers used by {cls}.convergence_report ----
    @staticmethod
    def reference_tensor(module):
        """A tensor with the module's dtype and device."""
        for t in module.buffers():
            return t
        for t in module.parameters():
            return t
        return torch.empty(())

    @staticmethod
    def check(lhs, op, rhs, eps):
        """(lhs, rhs, holds) at the worst entry; non-strict comparisons allow 64 eps."""
        lhs = torch.as_tensor(lhs).detach().double().cpu().reshape(-1)
        rhs = torch.as_tensor(rhs).detach().double().cpu().reshape(-1)
        lhs, rhs = torch.broadcast_tensors(lhs, rhs)
        if op in ("<", "<="):
            margin = rhs - lhs
        elif op in (">", ">="):
            margin = lhs - rhs
        else:
            margin = -(lhs - rhs).abs()
        margin = torch.nan_to_num(margin, nan=-float("inf"))
        i = int(torch.argmin(margin))
        slack = 64 * eps * max(1.0, abs(float(lhs[i])), abs(float(rhs[i])))
        holds = float(margin[i]) > 0 if op in ("<", ">") else float(margin[i]) >= -slack
        return float(lhs[i]), float(rhs[i]), bool(holds)

    @staticmethod
    def premised(value, premises):
        """A bound that is only valid when its premises hold (else infinity)."""
        return value if all(premises) else float("inf")

    @classmethod
    def start_vector(cls, n, like):
        """The fixed start of the Krylov iteration: ones plus a deterministic ripple (a row)."""
        k = torch.arange(n, dtype=like.dtype, device=like.device)
        v = 1 + 0.5 * torch.cos(1.7 * k + 0.3)
        return (v / torch.linalg.vector_norm(v)).reshape(1, n)

    @staticmethod
    def apply_terms(terms, v, transposed=False):
        """Rows v mapped by A = sum of c * F1 @ ... @ Fr (A^T when `transposed`).

        Each term is (c, F1, ..., Fr); (c,) is c * I. Factors and coefficients may carry a
        leading layer dimension (stacked per-layer values): the result then has one row per layer.
        Vectors are rows, so A v is computed as v @ Fr.mT @ ... @ F1.mT (fast batched products).
        """
        out = 0
        for c, *factors in terms:
            w = v
            for f in (factors if transposed else reversed(factors)):
                w = w @ (f if transposed else f.mT)
            out = out + torch.as_tensor(c, dtype=v.dtype, device=v.device)[..., None, None] * w
        return out

    @classmethod
    def dense(cls, terms, n, like):
        """The matrix sum of c * F1 @ ... @ Fr (with an n x n identity for (c,))."""
        out = 0
        for c, *factors in terms:
            m = factors[0] if factors else torch.eye(n, dtype=like.dtype, device=like.device)
            for f in factors[1:]:
                m = m @ f
            c = torch.as_tensor(c, dtype=like.dtype, device=like.device)[..., None, None]
            out = out + c * m
        return out

    @classmethod
    def ritz_values(cls, op, v, steps):
        """Ritz values of the symmetric operator `op` (on rows) on the Krylov space of v.

        Rayleigh-Ritz on an orthonormal basis of span(v, Mv, ..., M^(s-1) v), s = steps
        (Lanczos with full reorthogonalization): every Ritz value lies in [lambda_min,
        lambda_max], so the largest underestimates lambda_max and the smallest overestimates
        lambda_min, never by more than power iteration with as many products does.
        """
        tiny, eps = torch.finfo(v.dtype).tiny, torch.finfo(v.dtype).eps
        q = mq = None  # the basis and its image, one row per step
        for j in range(steps):
            v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(tiny)
            w = op(v)
            if q is None:
                batch = torch.broadcast_shapes(v.shape, w.shape)[:-2]
                q = v.new_zeros(batch + (steps, v.shape[-1]))
                mq = torch.zeros_like(q)
            q[..., j, :] = v[..., 0, :]
            mq[..., j, :] = w[..., 0, :]
            size = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
            for _ in range(2):  # orthogonalizing twice keeps the basis orthonormal
                w = w - (w @ q[..., :j + 1, :].mT) @ q[..., :j + 1, :]
            # what is left at rounding level means the Krylov space is invariant: stop there
            v = torch.where(torch.linalg.vector_norm(w, dim=-1, keepdim=True) > 1e3 * eps * size,
                            w, 0)
        t = q @ mq.mT
        t = (t + t.mT) / 2
        # An invariant Krylov space ends in zero rows: give them a Rayleigh quotient (t[0, 0]).
        alive = torch.linalg.vector_norm(q, dim=-1) > 0.5
        t = torch.where(alive[..., :, None] & alive[..., None, :], t, 0)
        t = t + torch.diag_embed(torch.where(alive, 0, t[..., :1, 0]))
        return torch.linalg.eigvalsh(t)

    @classmethod
    def opnorm_terms(cls, terms, n, like):
        """Spectral norm of A = sum of c * F1 @ ... @ Fr acting on size-n vectors, per layer.

        Exact (dense SVD) when both sides of A are at most EXACT_SIZE; above, the square root
        of the largest Ritz value of A^T A, matrix-free (never forms products of the factors).
        """
        rows = next((f.shape[-2] for _, *fs in terms for f in fs[:1]), n)
        if max(n, rows) <= cls.EXACT_SIZE:
            return torch.linalg.matrix_norm(cls.dense(terms, n, like), ord=2)
        stacked = [f for _, *fs in terms for f in fs if f.dim() > 2]
        per_layer = sum(f[0].numel() * f.element_size() for f in stacked)
        step = max(1, cls.CACHE_BYTES // max(per_layer, 1))
        if stacked and step < len(stacked[0]):  # a few layers at a time stay in cache
            return torch.cat([cls.opnorm_terms(cls._layer_slice(terms, i, i + step), n, like)
                              for i in range(0, len(stacked[0]), step)])
        steps = cls.KRYLOV_STEPS if stacked else cls.KRYLOV_STEPS_ONCE
        ritz = cls.ritz_values(lambda u: cls.apply_terms(terms, cls.apply_terms(terms, u), True),
                               cls.start_vector(n, like), steps)
        return ritz[..., -1].clamp_min(0).sqrt()

    @staticmethod
    def _layer_slice(terms, start, stop):
        """The terms restricted to layers start..stop-1 of their stacked values."""
        def cut(x, rank):
            return x[start:stop] if torch.is_tensor(x) and x.dim() > rank else x
        return [(cut(c, 0), *(cut(f, 2) for f in fs)) for c, *fs in terms]

    @classmethod
    def opnorm(cls, a):
        """Spectral norm of a (stacked) matrix: exact up to EXACT_SIZE, Krylov estimate above."""
        a = a.detach()
        return cls.opnorm_terms([(1, a)], a.shape[-1], a)

    @classmethod
    def eig_range(cls, a):
        """(smallest, largest) eigenvalue of the symmetric matrix a (Ritz values above size
        EXACT_SIZE: the range they give lies inside the true one)."""
        a = a.detach()
        if a.shape[-1] <= cls.EXACT_SIZE:
            ev = torch.linalg.eigvalsh(a)
        else:
            ev = cls.ritz_values(lambda u: u @ a, cls.start_vector(a.shape[-1], a),
                                 cls.KRYLOV_STEPS_ONCE)
        return ev[..., 0], ev[..., -1]

    @classmethod
    def gram_range(cls, b):
        """(smallest, largest) eigenvalue of b.mT @ b without forming it: 0 is the smallest
        when b has fewer rows than columns; else as eig_range."""
        b = b.detach()
        n = b.shape[-1]
        if n <= cls.EXACT_SIZE or b.shape[-2] >= n:
            return cls.eig_range(b.mT @ b)
        hi = cls.ritz_values(lambda u: (u @ b.mT) @ b, cls.start_vector(n, b),
                             cls.KRYLOV_STEPS_ONCE)[..., -1]
        return torch.zeros_like(hi), hi

    @staticmethod
    def affine_norm(c0, c, rng):
        """||c0 I + c M|| for symmetric M with eigenvalues in rng = (lo, hi)."""
        lo, hi = rng
        return torch.maximum(torch.as_tensor(abs(c0 + c * lo)), torch.as_tensor(abs(c0 + c * hi)))

    @staticmethod
    def resolvent_norm(c0, c, shift, rng):
        """||c0 I + c inv(M + shift I)|| for symmetric M with eigenvalues in rng = (lo, hi).

        The eigenvalues c0 + c / (lambda + shift) are monotone in lambda between poles, so the
        norm is the larger end value; infinite when M + shift I may be singular on the range.
        """
        lo, hi = rng
        lo, hi = torch.as_tensor(lo + shift), torch.as_tensor(hi + shift)
        if not bool(lo * hi > 0):
            return torch.as_tensor(float("inf"))
        return torch.maximum(abs(c0 + c / lo), abs(c0 + c / hi))

    @classmethod
    def net_lipschitz(cls, net, arg, act):
        """Lipschitz bound of a generated MLP or ConvNet w.r.t. its argument `arg`: the product
        over its layers of the weights' spectral norms (the first layer's restricted to the
        argument's channel for a ConvNet; its whole matrix for an MLP, an upper bound) times
        `act` (the activation's constant) per hidden layer, plus 1 for the first argument of a
        residual net. A convolution's norm is bounded by sqrt(taps) times the norm of its
        weight as a (C_out, C_in * taps) matrix (zero padding drops terms). Exact norms up to
        EXACT_SIZE; above, Krylov estimates from below (then the bound may be too small)."""
        layers = list(net.linears) if hasattr(net, "linears") else list(net.convs)
        out = torch.ones((), dtype=torch.float64)
        for i, layer in enumerate(layers):
            w = layer.weight.detach()
            if w.dim() > 2:  # a convolution: (C_out, C_in, *kernel)
                w = w[:, arg:arg + 1] if i == 0 else w
                taps = w[0, 0].numel()
                w = w.reshape(w.shape[0], -1)
                out = out * taps ** 0.5 * cls.opnorm(w).double().cpu()
            else:
                out = out * cls.opnorm(w).double().cpu()
        out = out * act ** (len(layers) - 1)
        return out + 1 if arg == 0 and net.residual else out

    @staticmethod
    def block_norm(rows):
        """Spectral norm of a small matrix of nonnegative bounds (inf when one is)."""
        m = torch.tensor([[float(x) for x in row] for row in rows], dtype=torch.float64)
        if not torch.isfinite(m).all():
            return float("inf")
        return float(torch.linalg.matrix_norm(m, ord=2))
'''
__all__ = ["ConvergenceEmitter", "METHOD", "format_number"]
