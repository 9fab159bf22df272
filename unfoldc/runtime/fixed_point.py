"""The runtime of a generated network's `fixed_point()`: real, linted, unit-tested Python.

Deep-equilibrium mode iterates one layer map `T` until the relative change of the states is
below `tol`, and differentiates the fixed point z* = T(z*) in one of three ways:
- "implicit": z* is found without a graph, then one application z = T(z*) links it to the
  parameters; the gradient v arriving at z is replaced by the solution g of the adjoint
  equation g = v + J^T g (J = dT/dz at z*), solved by the same fixed-point iteration with
  vector-Jacobian products, never a dense Jacobian (torchdeq's implicit backward). Then
  g^T dT/dtheta is the implicit-function-theorem gradient of the fixed point.
- "jfb": Jacobian-free backprop (Fung et al., AAAI 2022): the same single application, with
  the plain gradient v (the adjoint solve's first term only).
- "unroll": every iteration keeps its graph (memory grows with the iteration count): the
  reference the other two are compared with.

The code generator copies this file's classes and functions into a module whose spec asks for
the mode (codegen/fixed_point.py), so the generated file still imports only torch and the
standard library. Nothing here imports unfoldc.
"""

from __future__ import annotations

import warnings

import torch


class FixedPointWarning(RuntimeWarning):
    """`fixed_point()` stopped at `max_iter` before the relative change fell below `tol`."""


class FixedPointInfo:
    """What the last `fixed_point()` call did (`model.last_fixed_point`).

    `iterations`: applications of the layer map in the forward pass (for "implicit" and "jfb",
    the solve plus the one application that carries the gradient); `residual`: the last
    relative change max_b ||z_k - z_(k-1)|| / ||z_k|| over the samples b; `converged`:
    residual <= tol. The `adjoint_*` fields describe the implicit backward's solve once a
    backward pass has run (None before).
    """

    def __init__(self, backward, tol, max_iter):
        self.backward, self.tol, self.max_iter = backward, tol, max_iter
        self.iterations, self.residual, self.converged = 0, float("inf"), False
        self.adjoint_iterations = self.adjoint_residual = self.adjoint_converged = None

    def __repr__(self):
        text = (f"FixedPointInfo(backward={self.backward!r}, iterations={self.iterations}, "
                f"converged={self.converged}, residual={self.residual:.3g}")
        if self.adjoint_iterations is not None:
            text += (f", adjoint_iterations={self.adjoint_iterations}, "
                     f"adjoint_converged={self.adjoint_converged}")
        return text + ")"


def relative_change(new, old, batched):
    """max over samples of ||new - old|| / ||new||, all states together.

    `batched[i]` says whether state i has a leading batch dimension; an unbatched state counts
    for every sample. A sample whose states are exactly zero has change 0 when nothing moved.
    """
    diff = norm = 0.0
    for a, b, per_sample in zip(new, old, batched):
        a, b = a.detach(), b.detach()
        axes = tuple(range(1, a.dim())) if per_sample else tuple(range(a.dim()))
        diff = diff + (a - b).square().sum(dim=axes)
        norm = norm + a.square().sum(dim=axes)
    norm = torch.as_tensor(norm).sqrt()
    ratio = torch.as_tensor(diff).sqrt() / norm.clamp_min(torch.finfo(norm.dtype).tiny)
    return float(ratio.max()) if ratio.numel() else 0.0


def state_tuple(value):
    """`value` if a tuple, else the 1-tuple of it: a layer map may return one state bare."""
    return value if isinstance(value, tuple) else (value,)


def iterate_layer_map(step, states, batched, tol, max_iter):
    """Apply `step` to the tuple `states` until the relative change is <= tol (at most
    `max_iter` times): (states, iterations, last relative change)."""
    residual = float("inf")
    for k in range(1, max_iter + 1):
        new = state_tuple(step(*states))
        residual = relative_change(new, states, batched)
        states = new
        if residual <= tol:
            return states, k, residual
    return states, max_iter, residual


def solve_fixed_point(step, states, batched, tol, max_iter, backward):
    """The fixed point of `step` from `states`, differentiated as `backward` says.

    Args:
        step: the layer map, a function of the states returning their new values (a tuple
            when there are several); it reads the parameters and inputs it needs itself.
        states: tuple of initial state tensors.
        batched: tuple of bools, whether each state has a leading batch dimension.
        tol: stop when the relative change of the states is at most tol.
        max_iter: the most applications of `step` (forward, and the adjoint's own solve).
        backward: "implicit" (the adjoint equation solved by AdjointProblem), "jfb" (the
            gradient of one last application only) or "unroll" (through every iteration).

    Returns:
        (states at the fixed point, FixedPointInfo).
    """
    if backward not in ("implicit", "jfb", "unroll"):
        raise ValueError(f"backward must be 'implicit', 'jfb' or 'unroll', got {backward!r}")
    if not tol > 0 or int(max_iter) < 1:
        raise ValueError(f"fixed_point needs tol > 0 and max_iter >= 1, got tol={tol!r}, "
                         f"max_iter={max_iter!r}")
    info = FixedPointInfo(backward, tol, int(max_iter))
    if backward == "unroll":
        states, info.iterations, info.residual = iterate_layer_map(
            step, states, batched, tol, info.max_iter)
        info.converged = info.residual <= tol
        return states, info
    with torch.no_grad():
        states, count, info.residual = iterate_layer_map(
            step, states, batched, tol, info.max_iter)
    info.converged, info.iterations = info.residual <= tol, count + 1
    states = tuple(t.detach() for t in states)
    out = state_tuple(step(*states))  # the one application that carries the gradient
    if backward == "jfb" or not torch.is_grad_enabled():
        return out, info
    return ImplicitAdjoint.apply(AdjointProblem(step, states, batched, info), *out), info


class AdjointProblem:
    """What the implicit backward needs: the layer map, its fixed point, the stopping rule."""

    def __init__(self, step, states, batched, info):
        self.step, self.states, self.batched, self.info = step, states, batched, info

    def solve(self, grads):
        """g = v + J^T g by fixed-point iteration, v = `grads`, J = dT/dz at the fixed point."""
        info = self.info
        with torch.enable_grad():
            z = tuple(t.detach().requires_grad_() for t in self.states)
            fz = state_tuple(self.step(*z))
        linked = [i for i, f in enumerate(fz) if f.requires_grad]
        g, residual, count = tuple(grads), 0.0, 0
        while linked and count < info.max_iter:
            count += 1
            vjp = torch.autograd.grad([fz[i] for i in linked], z, [g[i] for i in linked],
                                      retain_graph=True, allow_unused=True)
            new = tuple(v if j is None else v + j for v, j in zip(grads, vjp))
            residual = relative_change(new, g, self.batched)
            g = new
            if residual <= info.tol:
                break
        info.adjoint_iterations, info.adjoint_residual = count, residual
        info.adjoint_converged = residual <= info.tol
        if not info.adjoint_converged:
            warnings.warn(f"fixed_point: the implicit backward's adjoint solve stopped at "
                          f"max_iter={info.max_iter} with relative change {residual:.3g} > "
                          f"tol={info.tol:g}: the gradient is inexact (see "
                          "convergence_report() for the layer map's certificate)",
                          FixedPointWarning, stacklevel=2)
        return g


class ImplicitAdjoint(torch.autograd.Function):
    """Identity in the forward pass; in the backward pass the incoming gradient v becomes the
    solution g of the adjoint equation g = v + J^T g (AdjointProblem.solve)."""

    @staticmethod
    def forward(ctx, problem, *states):
        ctx.problem = problem
        return tuple(t.clone() for t in states)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        return (None, *ctx.problem.solve(grads))


def warn_not_converged(info, report):
    """Warn (FixedPointWarning) that the forward solve stopped at max_iter, quoting what the
    convergence report says about iterating the layer map (`report` is a callable that
    evaluates it, run only now: a converging call pays nothing)."""
    try:
        verdict = report().fixed_point_text()
    except Exception as exc:  # noqa: BLE001 - the warning must not fail on a report failure
        verdict = f"the convergence report could not be evaluated ({type(exc).__name__}: {exc})"
    warnings.warn(f"fixed_point did not converge: relative change {info.residual:.3g} > "
                  f"tol={info.tol:g} after max_iter={info.max_iter} iterations; {verdict}. "
                  "Raise max_iter or tol, or see model.convergence_report()",
                  FixedPointWarning, stacklevel=3)
