"""Emit the convergence part of a generated module: the docstring section, the
`convergence_report()` method, and the report classes (torch + standard library only).

The method evaluates every derived condition (derive.py) on the current parameters, layer by
layer. Values that do not change from layer to layer (norms of given matrices, eigenvalue ranges
of Gram matrices) are computed once before the layer loop. Spectral norms and eigenvalue ranges
are exact (SVD, eigvalsh) up to size 128 and use 50 steps of power iteration from a fixed start
above that, which estimates them from below.
"""

from __future__ import annotations

from unfoldc.codegen.exprs import ExprPrinter, format_number
from unfoldc.convergence.derive import Analysis, Condition, QTol, derive
from unfoldc.convergence.linear import ONE, Lin, mono_expr, mono_transpose
from unfoldc.convergence.quantity import QBlock, QEig, QExpr, QInf, QNorm, QProd, QSum, q_symbols
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
        self.per_layer = {s.name for s in em.per_layer} | set(self.an.layer.schedule)
        self.dims_known = {b.dim for b in self.p.dims
                           if self.p.symbol(b.symbol).role == "given"}
        self.conditions = [c for c in self.an.conditions if self._evaluable(c)]

    # ---- what can be evaluated from parameters alone --------------------------------------------
    def _evaluable(self, c: Condition) -> bool:
        ok_roles = {"given", "param", "let", "train", "const"}
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
            w(f"    [{c.level}] {self.p.source_name}:{c.line} {c.kind}: {_doc(c.text())}")
        for f in self.an.facts:
            w(f"    [holds] {_doc(f)}")
        for n in self.an.notes:
            w(f"    [skipped] {_doc(n)}")
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
        w("Spectral norms above size 128 are power-iteration estimates (50 steps, fixed start).")
        w('"""')
        w("K = self.num_layers if num_layers is None else num_layers")
        w(f"{self.r} = {self.report_cls}")
        w(f"like = {self.r}.reference_tensor(self)")
        w("eps = torch.finfo(like.dtype).eps")
        w("tol = 10 * eps ** 0.5")
        w("rows = [[] for _ in self.CONVERGENCE_CONDITIONS]")
        w("with torch.no_grad():")
        w.indent()
        pr = ExprPrinter(self._name_of)
        self._prelude(w, pr)
        hoisted: dict[str, str] = {}
        self.per_layer_values: dict[str, str] = {}
        body = [self._condition_code(c, pr, hoisted) for c in self.conditions]
        for code, name in hoisted.items():
            w(f"{name} = {code}")
        for s, init in self._schedule_inits(pr):
            w(f"{s} = torch.as_tensor({init}, dtype=like.dtype, device=like.device)")
        w("for k in range(K):")
        w.indent()
        bound = [s for s in em.per_layer if any(s.name == x.name for c in self.conditions
                                                for x in _reads(c))]
        if bound:
            w(", ".join(em.n(s.name) for s in bound) + " = " +
              ", ".join(f"self.layers[k].{em.n(s.name)}" for s in bound))
        for code, name in self.per_layer_values.items():
            w(f"{name} = {code}")
        keys = [c.key for c in self.conditions]
        for i, (c, (lhs, rhs)) in enumerate(zip(self.conditions, body)):
            if c.premises:
                held = ", ".join(f"rows[{keys.index(k)}][-1][2]" for k in c.premises
                                 if k in keys)
                lhs = f"{self.r}.premised({lhs}, [{held}])"
            w(f"rows[{i}].append({self.r}.check({lhs}, \"{c.op}\", {rhs}, eps))")
        self._schedule_updates(w, pr)
        w.dedent()
        w.dedent()
        w(f"return {self.report_cls}(self.SPEC_NAME, self.CONVERGENCE_CONDITIONS, rows)")
        w.dedent()
        em.helpers |= pr.helpers

    def _table(self) -> str:
        items = []
        for c in self.conditions:
            fields = (c.key, c.kind, c.level, f"{self.p.source_name}:{c.line}", c.text(),
                      c.theorem)
            items.append("(" + ", ".join(repr(f) for f in fields) + ")")
        if not items:
            return "()"
        return "(\n        " + ",\n        ".join(items) + ",\n    )"

    def _name_of(self, sym: Sym) -> str:
        em = self.em
        if sym.role in ("given", "param"):
            return f"self.{em.n(sym.name)}"
        if sym.role == "train" and sym.name not in self.per_layer:
            return f"self.{em.n(sym.name)}"
        return em.n(sym.name)

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

    def _q(self, q, pr, hoisted) -> str:
        if isinstance(q, QExpr | QTol | QInf | QSum | QProd):
            return self._q_code(q, pr, hoisted)
        # norms: once before the loop when layer-independent, else once per layer
        table = self.per_layer_values if self._varies(q) else hoisted
        code = self._q_code(q, pr, hoisted)
        if code not in table:
            table[code] = self.em.ns.fresh(f"q{len(hoisted) + len(self.per_layer_values)}")
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
            return " + ".join(self._q(x, pr, hoisted) for x in q.parts)
        if isinstance(q, QProd):
            return " * ".join(_wrap(self._q(x, pr, hoisted)) for x in q.parts)
        if isinstance(q, QBlock):
            if len(q.rows) == 1:
                return self._q(q.rows[0][0], pr, hoisted)
            rows = ", ".join("[" + ", ".join(self._q(x, pr, hoisted) for x in row) + "]"
                             for row in q.rows)
            return f"{r}.block_norm([{rows}])"
        if isinstance(q, QEig):
            rng = self._q_hoist(f"{r}.eig_range({pr(q.lin.expr())})", q.lin, hoisted)
            return f"{rng}[{1 if q.which == 'max' else 0}]"
        if isinstance(q, QNorm):
            return self._norm_code(q.lin, pr, hoisted)
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
            rng = self._q_hoist(f"{r}.eig_range({pr(mono_expr(m, lin.dim))})",
                                Lin(((m, parts[m]),), lin.dim), hoisted)
            c0 = pr(parts.get((), QExpr(_zero()).expr))
            return f"{r}.affine_norm({c0}, {pr(parts[m])}, {rng})"
        n_in = _domain(lin)
        computed = any(not _plain(f) for m, _ in lin.terms for f in m)  # e.g. inv(...)
        if computed or n_in is None or (isinstance(n_in, str) and n_in not in self.dims_known):
            return f"{r}.opnorm({pr(lin.expr())})"
        # matrix-free: power iteration applies the factors to a vector, never multiplies them
        v = self.em.ns.fresh("v")
        param = self._name_of(Sym(v, SCALAR, "temp"))  # the name the printer gives `v`
        apply = pr(_applied(lin, v, n_in))
        back = pr(_applied(Lin(tuple((mono_transpose(m), c) for m, c in lin.terms), lin.dim),
                           v, _codomain(lin)))
        size = n_in if isinstance(n_in, int) else self.em.n(n_in)
        return (f"{r}.opnorm_op(lambda {param}: {apply}, lambda {param}: {back}, {size}, like, "
                f"lambda: {pr(lin.expr())})")

    # ---- the classes at module level ------------------------------------------------------------
    def tail(self, w) -> None:
        w()
        w()
        for line in REPORT_SOURCE.format(report=self.report_cls, cond=self.cond_cls,
                                         cls=self.em.cls).strip("\n").splitlines():
            w(line)


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


def _codomain(lin: Lin):
    for m, _ in lin.terms:
        if m:
            return m[0].type.dims[0]
    return lin.dim


def _applied(lin: Lin, name: str, dim):
    """The IR of `lin` applied to the vector called `name` (of size `dim`)."""
    from unfoldc.ir.types import vector

    v = Sym(name, vector(dim), "temp")
    out = None
    for m, c in lin.terms:
        term = v
        for f in reversed(m):
            term = Op("matmul", (f, term), vector(f.type.dims[0]))
        if c != ONE:
            term = Op("mul", (c, term), term.type)
        out = term if out is None else Op("add", (out, term), term.type)
    return out


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

    EXACT_SIZE = 128  # exact norms up to this size, power iteration above
    POWER_STEPS = 50

    def __init__(self, name, table, rows):
        self.name = name
        self.conditions = [{cond}(*spec, results) for spec, results in zip(table, rows)]

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
        return f"<{report} {{self.name}}: ok={{self.ok}}, failing_layers={{self.failing_layers}}>"

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

    # ---- evaluation helpers used by {cls}.convergence_report --------------------------------
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
        """The fixed start of power iteration: ones plus a deterministic ripple."""
        k = torch.arange(n, dtype=like.dtype, device=like.device)
        v = 1 + 0.5 * torch.cos(1.7 * k + 0.3)
        return v / torch.linalg.vector_norm(v)

    @classmethod
    def opnorm(cls, a):
        """Spectral norm: exact up to EXACT_SIZE, power iteration on a^T a above."""
        a = a.detach()
        if max(a.shape[-2:]) <= cls.EXACT_SIZE:
            return torch.linalg.matrix_norm(a, ord=2)
        v = cls.start_vector(a.shape[-1], a)
        for _ in range(cls.POWER_STEPS):
            w = a.mT @ (a @ v)
            v = w / torch.linalg.vector_norm(w).clamp_min(torch.finfo(a.dtype).tiny)
        return torch.linalg.vector_norm(a @ v)

    @classmethod
    def opnorm_op(cls, apply, apply_t, n, like, dense):
        """Spectral norm of a linear map given by its action (exact via `dense()` when small)."""
        if n <= cls.EXACT_SIZE:
            return cls.opnorm(dense())
        v = cls.start_vector(n, like)
        for _ in range(cls.POWER_STEPS):
            w = apply_t(apply(v))
            v = w / torch.linalg.vector_norm(w).clamp_min(torch.finfo(like.dtype).tiny)
        return torch.linalg.vector_norm(apply(v))

    @classmethod
    def eig_range(cls, a):
        """(smallest, largest) eigenvalue of the symmetric matrix a."""
        a = a.detach()
        if a.shape[-1] <= cls.EXACT_SIZE:
            ev = torch.linalg.eigvalsh(a)
            return ev[0], ev[-1]
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        top = cls._dominant(a)  # the eigenvalue of largest magnitude, with its sign
        if top >= 0:
            return top - cls._dominant(top * eye - a), top
        return top, top + cls._dominant(a - top * eye)

    @classmethod
    def _dominant(cls, a):
        """Rayleigh quotient at the end of power iteration on a @ a (a symmetric)."""
        v = cls.start_vector(a.shape[-1], a)
        for _ in range(cls.POWER_STEPS):
            w = a @ (a @ v)
            v = w / torch.linalg.vector_norm(w).clamp_min(torch.finfo(a.dtype).tiny)
        return v @ (a @ v)

    @staticmethod
    def affine_norm(c0, c, rng):
        """||c0 I + c M|| for symmetric M with eigenvalues in rng = (lo, hi)."""
        lo, hi = rng
        return torch.maximum(torch.as_tensor(abs(c0 + c * lo)), torch.as_tensor(abs(c0 + c * hi)))

    @staticmethod
    def block_norm(rows):
        """Spectral norm of a small matrix of nonnegative bounds (inf when one is)."""
        m = torch.tensor([[float(x) for x in row] for row in rows], dtype=torch.float64)
        if not torch.isfinite(m).all():
            return float("inf")
        return float(torch.linalg.matrix_norm(m, ord=2))
'''
__all__ = ["ConvergenceEmitter", "METHOD", "format_number"]
