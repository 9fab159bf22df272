"""Emit the deep-equilibrium mode of a generated network: `fixed_point()` and `FIXED_POINT`.

The method iterates the layer map that codegen/forward.py writes (`_start`, `_layer`, `_step`,
`_output`) with `solve_fixed_point`, one of the definitions of unfoldc/runtime/fixed_point.py
that every generated module carries (copied as text, so the file imports only torch).
"""

from __future__ import annotations

from unfoldc.codegen.exprs import format_number
from unfoldc.ir.program import FixedPointMode

# The definitions of unfoldc/runtime/fixed_point.py a module carries, in dependency order.
RUNTIME = ("FixedPointWarning", "FixedPointInfo", "relative_change", "state_tuple",
           "iterate_layer_map", "solve_fixed_point", "AdjointProblem", "ImplicitAdjoint",
           "warn_not_converged")
# Names the method and its class attribute introduce (reserved in codegen/names.py).
# Its locals are names forward.py reserves already (context, states, layer, new, result).
NAMES = ("fixed_point", "last_fixed_point", "FIXED_POINT", "warnings", "max_iter", "backward",
         "warn")


class FixedPointEmitter:
    """Writes `FIXED_POINT` and `fixed_point()` of one network class (hooked from module.py)."""

    def __init__(self, em, states):
        """`states`: the Symbols of the states the layer map carries, in its order."""
        self.em, self.p = em, em.p
        self.mode = em.p.fixed_point
        self.batched = tuple(s.type.batched for s in states)

    def attribute(self, w) -> None:
        """`FIXED_POINT`: the spec's declared settings (training uses them), or None."""
        m = self.mode
        if m is None:
            w("FIXED_POINT = None  # the spec declares no fixed_point mode")
            return
        w(f'FIXED_POINT = {{"tol": {format_number(m.tol)}, "max_iter": {m.max_iter}, '
          f'"backward": "{m.backward}"}}')

    def method(self, w) -> None:
        """`fixed_point(inputs..., tol=, max_iter=, backward=)`, at the class body's depth."""
        m = self.mode or FixedPointMode()
        inputs = [self.em.n(s.name) for s in self.p.by_role("input")]
        flags = [f"tol={format_number(m.tol)}", f"max_iter={m.max_iter}",
                 f'backward="{m.backward}"', "warn=True"]
        line = f"def fixed_point({', '.join(['self'] + inputs + ['*'] + flags)}):"
        if len(line) + 4 * w.depth <= 100:
            w(line)
        else:
            w(f"def fixed_point({', '.join(['self'] + inputs)},")
            w(f"                *, {', '.join(flags)}):")
        w.indent()
        self._doc(w)
        batched = ", ".join(map(str, self.batched)) + ("," if len(self.batched) == 1 else "")
        w(f"context, states = self._start({', '.join(['self'] + inputs)})")
        w("layer = self._layer(self.num_layers - 1)  # the map: the last layer's parameters")
        w("states, result = solve_fixed_point(")
        w(f"    lambda *new: self._step(layer, context, new), states, ({batched}), tol,")
        w("    max_iter, backward)")
        w("self.last_fixed_point = result  # a FixedPointInfo")
        w("if warn and not result.converged:  # a warning, which quotes the convergence report")
        w("    warn_not_converged(result, self.convergence_report)")
        w("return self._output(context, states)")
        w.dedent()

    def _doc(self, w) -> None:
        declared = ("the spec's `fixed_point` line" if self.mode is not None
                    else "unfoldc's, the spec declares no `fixed_point` line")
        w('"""Iterate one layer map to its fixed point (deep-equilibrium mode).')
        w()
        w("The map is one layer with the last layer's parameters (shared trainables are the")
        w("network's), iterated from the initial states until the relative change of the states")
        w("is at most `tol`, at most `max_iter` times. backward: \"implicit\" (implicit")
        w("differentiation, memory of one layer), \"jfb\" (Jacobian-free backprop) or \"unroll\"")
        w("(backprop through every iteration). Returns what forward returns;")
        w("`self.last_fixed_point` (FixedPointInfo) says how many iterations ran and whether they")
        w("converged. Not converging warns (FixedPointWarning, unless warn=False) with what")
        w(f"convergence_report() says about the layer map. Defaults: {declared}.")
        w('"""')
