"""The runtime of a generated network's `convergence_report()`: real, linted, unit-tested Python.

The code generator copies these two classes into every generated module (with
`inspect.getsource`, keeping only the evaluation helpers the module's report calls), so a
generated file still imports only torch. Nothing here imports unfoldc.
"""

from __future__ import annotations

import torch


class ConvergenceCondition:
    """One convergence condition of an unfolded network, evaluated on every layer."""

    def __init__(self, key, kind, level, origin, text, theorem, results):
        self.key, self.kind, self.level, self.origin = key, kind, level, origin
        self.text, self.theorem = text, theorem
        self.lhs = [r[0] for r in results]
        self.rhs = [r[1] for r in results]
        # True, False, or None: within rounding of the bound of a strict comparison, where
        # neither holding nor failing is proved (it certifies nothing and violates nothing).
        self.holds = [r[2] for r in results]

    @property
    def failing_layers(self):
        """Indices of the layers where the condition is proved not to hold."""
        return [k for k, h in enumerate(self.holds) if h is False]

    @property
    def proved(self):
        """The condition is proved to hold on every layer."""
        return all(h is True for h in self.holds)

    def __repr__(self):
        return f"ConvergenceCondition({self.key!r}, {self.text!r}, failing={self.failing_layers})"


class ConvergenceReport:
    """The convergence conditions of an unfolded network evaluated on its current parameters.

    `verdict`: "certified" (a theorem that covers the updates has all its conditions on every
    layer, or the whole network contracts), "violated" (a required condition fails:
    `failing_layers`) or "uncertified" (no theorem covers the updates, or a sufficient condition
    fails: `reasons`); `ok` is `verdict == "certified"`. `network_bound`: an upper bound on the
    Lipschitz constant of the K-layer map (inf when none is derived); `layer_bounds`: per layer.
    `values`: condition key -> per-layer value of its left-hand side; `conditions`: the
    ConvergenceCondition objects; `str(report)`: a table with layers numbered from 1.
    """

    # Exact norms and eigenvalues (dense, float64) up to this size. Above, Krylov (Lanczos)
    # estimates from below: they can show a violation but never certify (see `estimated`).
    EXACT_SIZE = 1024
    NETWORK_MARGIN = 1e-9  # a network bound certifies when below 1 - this (rounding of norms)
    KRYLOV_STEPS = 10  # products with the operator per estimate of every layer (ritz_values)
    KRYLOV_STEPS_ONCE = 30  # for values computed once per report (given matrices)
    CACHE_BYTES = 8 << 20  # stacked per-layer matrices are processed in chunks of this size
    SCHEDULE_KINDS = ("step", "momentum_step", "spectral")  # waived by a shared fixed point

    def __init__(self, name, table, rows, certificates=(), uncovered=(), chain_bound=None,
                 shared_fixed_point=False):
        self.name = name
        self.conditions = [ConvergenceCondition(*spec, results)
                           for spec, results in zip(table, rows)]
        self.certificates = certificates
        self.uncovered = list(uncovered)
        self.chain_bound = chain_bound
        self.shared_fixed_point = shared_fixed_point
        # Whether a norm or eigenvalue above EXACT_SIZE was estimated (set by ritz_values since
        # reference_tensor started this evaluation): then nothing is certified.
        self.estimated = ConvergenceReport._estimated

    @property
    def ok(self):
        return self.verdict == "certified"

    @property
    def failing_layers(self):
        """Sorted layer indices (0-based) where a required condition fails."""
        return sorted({k for c in self.conditions if c.level == "require"
                       for k in c.failing_layers})

    @property
    def values(self):
        return {c.key: list(c.lhs) for c in self.conditions}

    @property
    def layer_bounds(self):
        """Per-layer Lipschitz bounds of the layer map (inf where none is derived)."""
        bounds = [c for c in self.conditions if c.kind == "lipschitz"]
        if not bounds:
            return [float("inf")] * self._layers()
        return list(bounds[0].lhs)

    @property
    def lipschitz_product(self):
        """Product over layers of the layer Lipschitz bounds (None without a bound)."""
        if not any(c.kind == "lipschitz" for c in self.conditions):
            return None
        out = 1.0
        for v in self.layer_bounds:
            out *= v
        return out

    @property
    def network_bound(self):
        """Upper bound on the Lipschitz constant of the whole K-layer map (states in, states
        out): the smaller of the product of layer bounds and, for linear layers, the norm of
        their composed linear part."""
        out = self.lipschitz_product
        out = float("inf") if out is None else out
        if self.chain_bound is not None:
            out = min(out, float(self.chain_bound))
        return out

    @property
    def network_certified(self):
        """The K-layer map is proved a contraction: network_bound < 1 beyond rounding, and
        every norm in it computed exactly."""
        return self.network_bound < 1 - self.NETWORK_MARGIN and not self.estimated

    @property
    def certificate(self):
        """(name, origin, theorem) of the theorem that certifies this network, or None."""
        if self.network_certified:
            what = ("toward the fixed point every layer shares: ||s_K - s*|| <= "
                    f"{self.network_bound:.4g} ||s_0 - s*||" if self.shared_fixed_point else
                    "iterating the network converges to its unique fixed point")
            return ("network contraction", "",
                    f"the K-layer map has Lipschitz bound {self.network_bound:.4g} < 1 "
                    f"(Banach): {what}")
        if self._required_failing() or self.estimated:
            return None
        by_key = {c.key: c for c in self.conditions}
        for name, origin, theorem, keys in self.certificates:
            if all(k in by_key and by_key[k].proved for k in keys):
                return (name, origin, theorem)
        return None

    @property
    def verdict(self):
        if self.certificate is not None:
            return "certified"
        return "violated" if self._required_failing() else "uncertified"

    @property
    def reasons(self):
        """Why the report is not certified (empty when it is)."""
        if self.certificate is not None:
            return []
        out = [f"{c.origin} {c.kind} {c.text} fails on layers "
               f"{self._numbers(c.failing_layers)}" for c in self._required_failing()]
        if self.estimated:
            out.append(f"a norm or eigenvalue of a matrix larger than EXACT_SIZE = "
                       f"{self.EXACT_SIZE} was estimated from below (Krylov): it can show a "
                       "violation but not certify; raise ConvergenceReport.EXACT_SIZE for "
                       "exact values")
        by_key = {c.key: c for c in self.conditions}
        for name, origin, _, keys in self.certificates:
            bad = [by_key[k] for k in keys if k in by_key and not by_key[k].proved]
            if bad and name != "contraction":
                out.append(f"{name} ({origin}) does not certify: " + "; ".join(
                    f"{c.text} {self._unproved(c)}" for c in bad))
        if not self.certificates:
            out.append("no theorem covers these updates")
        elif any(name == "contraction" for name, *_ in self.certificates):
            out.append(f"network bound {self.network_bound:.4g} is not < 1")
        return out + self.uncovered

    def _unproved(self, c):
        """Where a condition is not proved: failing layers, then layers within rounding."""
        edge = [k for k, h in enumerate(c.holds) if h is None]
        parts = [f"fails on layers {self._numbers(c.failing_layers)}"] if c.failing_layers \
            else []
        if edge:
            parts.append(f"is within rounding of its bound on layers {self._numbers(edge)}")
        return " and ".join(parts)

    def _required_failing(self):
        waive = self.shared_fixed_point and self.network_certified
        return [c for c in self.conditions if c.level == "require" and c.failing_layers
                and not (waive and c.kind in self.SCHEDULE_KINDS)]

    @staticmethod
    def _numbers(indices, most=6):
        """Layer indices as the 1-based numbers training prints, runs joined: 1-3, 7 (at most
        `most` runs: a periodic schedule over 1200 layers stays one short line)."""
        runs = []
        for k in indices:
            if runs and k == runs[-1][1] + 1:
                runs[-1][1] = k
            else:
                runs.append([k, k])
        text = [str(a + 1) if a == b else f"{a + 1}-{b + 1}" for a, b in runs]
        if len(text) > most:
            text = text[:most - 1] + [f"... {text[-1]} ({len(indices)} layers in all)"]
        return ", ".join(text)

    def __str__(self):
        cert = self.certificate
        if cert is not None:
            status = f"certified by {cert[0]}"
        elif self._required_failing():
            status = f"violated on layers {self._numbers(self.failing_layers)}"
        else:
            status = "uncertified"
        lines = [f"{self.name} convergence report ({self._layers()} layers): {status}"]
        head = ("level", "origin", "condition", "layers", "value", "bound", "")
        table = [head]
        for c in self.conditions:
            for first, last in self._runs(c):
                mark = {True: "ok", None: "edge"}.get(
                    c.holds[first], "FAIL" if c.level == "require" else "no")
                span = str(first + 1) if first == last else f"{first + 1}-{last + 1}"
                text = c.text if len(c.text) <= 60 else c.text[:57] + "..."
                table.append((c.level, c.origin, text, span, self._span(c.lhs, first, last),
                              self._span(c.rhs, first, last), mark))
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        for r in table:
            lines.append("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
        lines.append(f"network bound: {self.network_bound:.4g}"
                     + (" (every layer shares the fixed point)" if self.shared_fixed_point
                        else ""))
        if cert is not None:
            lines.append(f"certificate: {cert[2]}")
        lines += [f"why not certified: {r}" for r in self.reasons]
        return "\n".join(lines)

    def __repr__(self):
        return (f"<ConvergenceReport {self.name}: verdict={self.verdict}, "
                f"failing_layers={self.failing_layers}>")

    def _layers(self):
        return max((len(c.holds) for c in self.conditions), default=0)

    @staticmethod
    def _runs(c):
        """Runs of consecutive layers with the same verdict."""
        runs, start = [], 0
        for k in range(1, len(c.holds) + 1):
            if k == len(c.holds) or c.holds[k] != c.holds[start]:
                runs.append((start, k - 1))
                start = k
        return runs

    @staticmethod
    def _span(values, first, last):
        """`v` when a run shows one value, else `lo..hi` (4 significant digits)."""
        lo, hi = min(values[first:last + 1]), max(values[first:last + 1])
        lo, hi = f"{lo:.4g}", f"{hi:.4g}"
        return lo if lo == hi else f"{lo}..{hi}"

    # ---- evaluation helpers used by convergence_report() ----
    _estimated = False  # see `estimated`; reset by reference_tensor, set by ritz_values

    @classmethod
    def reference_tensor(cls, module):
        """A tensor with the module's dtype and device. Called first by every evaluation: it
        starts a new one (no estimate made yet)."""
        ConvergenceReport._estimated = False
        for t in module.buffers():
            return t
        for t in module.parameters():
            return t
        return torch.empty(())

    @staticmethod
    def check(lhs, op, rhs, eps, refutes=True):
        """(lhs, rhs, holds) at the worst entry. Within 64 eps (relative) of the bound, rounding
        decides nothing: a non-strict comparison holds there, a strict one is None (neither
        proved nor refuted). `refutes=False`: a side is a bound (a norm bounded by the triangle
        inequality or a table's constant), so a failure proves nothing either (None)."""
        # float64 from the start: torch.as_tensor(a Python float) would round it to float32
        lhs = torch.as_tensor(lhs, dtype=torch.float64).detach().cpu().reshape(-1)
        rhs = torch.as_tensor(rhs, dtype=torch.float64).detach().cpu().reshape(-1)
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
        # a strict bound: rounding relative to the numbers compared (mu > 0 at mu = 1e-7 holds)
        edge = 64 * eps * max(abs(float(lhs[i])), abs(float(rhs[i])))
        if op in ("<", ">") and abs(float(margin[i])) <= edge:
            return float(lhs[i]), float(rhs[i]), None
        holds = float(margin[i]) > 0 if op in ("<", ">") else float(margin[i]) >= -slack
        return float(lhs[i]), float(rhs[i]), bool(holds) if holds or refutes else None

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
        ConvergenceReport._estimated = True  # from below: never a certificate
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

    @classmethod
    def gram_spectrum(cls, b):
        """Eigenvalues of b.mT @ b: exact up to EXACT_SIZE; above, a grid over the Ritz range
        (an estimate; 0 included when b is wide)."""
        b = b.detach().double()
        n = b.shape[-1]
        if n <= cls.EXACT_SIZE:
            return torch.linalg.eigvalsh(b.mT @ b)
        lo, hi = cls.gram_range(b)
        return torch.linspace(float(lo), float(hi), 257, dtype=torch.float64)

    @classmethod
    def eig_spectrum(cls, a):
        """Eigenvalues of the symmetric matrix a (a grid over the Ritz range above EXACT_SIZE)."""
        a = a.detach().double()
        if a.shape[-1] <= cls.EXACT_SIZE:
            return torch.linalg.eigvalsh(a)
        lo, hi = cls.eig_range(a)
        return torch.linspace(float(lo), float(hi), 257, dtype=torch.float64)

    @staticmethod
    def layer_matrices(c0, c1, lams):
        """M(lambda) = C0 + C1 lambda for every eigenvalue lambda: shape (E, k, k), float64."""
        def mat(c):
            return torch.tensor([[float(x) for x in row] for row in c], dtype=torch.float64)
        lams = torch.as_tensor(lams, dtype=torch.float64).reshape(-1, 1, 1)
        return mat(c0) + mat(c1) * lams

    @classmethod
    def spectral_radius(cls, c0, c1, lams, in_range):
        """max over lambda of the spectral radius of C0 + C1 lambda. With `in_range` the
        offset lies in range(G): on null(G) (lambda ~ 0) one eigenvalue equal to 1 is allowed,
        since the component there never moves."""
        moduli = torch.linalg.eigvals(cls.layer_matrices(c0, c1, lams)).abs()
        lams = torch.as_tensor(lams, dtype=torch.float64).reshape(-1)
        if in_range:
            null = lams.abs() <= 1e-10 * max(1.0, float(lams.abs().max()))
            gap = (moduli - 1).abs()
            at_one = gap == gap.min(dim=-1, keepdim=True).values
            first = at_one & (at_one.cumsum(-1) == 1) & (gap <= 1e-9)
            moduli = torch.where(null[:, None] & first, 0.0, moduli)
        return float(moduli.max())

    @classmethod
    def chain_step(cls, chain, c0, c1, lams):
        """The composed linear part after one more layer (per eigenvalue)."""
        m = cls.layer_matrices(c0, c1, lams)
        return m if chain is None else m @ chain

    @staticmethod
    def chain_norm(chain):
        """Norm of the composed linear part: the largest over eigenvalues (the blocks commute
        with G, so the composed operator is unitarily a direct sum of the small matrices)."""
        if chain is None or not torch.isfinite(chain).all():  # overflowed: no finite bound
            return float("inf")
        return float(torch.linalg.matrix_norm(chain, ord=2).max())

    @staticmethod
    def block_norm(rows):
        """Spectral norm of a small matrix of nonnegative bounds (inf when one is)."""
        m = torch.tensor([[float(x) for x in row] for row in rows], dtype=torch.float64)
        if not torch.isfinite(m).all():
            return float("inf")
        return float(torch.linalg.matrix_norm(m, ord=2))
