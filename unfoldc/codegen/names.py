"""Unique, non-shadowing Python identifiers for everything the generated file names."""

from __future__ import annotations

import ast
import builtins
import keyword
import re

from unfoldc.codegen.helpers import HELPERS

# Names the generated file itself uses; spec names are renamed around them. Every identifier of
# the network and layer classes is either one of these or allocated by a Namespace (checked for
# every example by tests/test_spec_errors.py::test_every_generated_identifier_is_reserved).
GENERATED = {
    # module level
    "torch", "nn", "NamedTuple", "annotations", "copy", "precision",
    # locals and arguments of __init__, forward, step, objective and convergence_report
    "self", "like", "B", "K", "k", "layer", "history", "num_layers", "all_layers", "result",
    "step", "checkpoint", "dtype", "device", "seed", "generator", "eps", "tol", "rows",
    # ... of the layer-map methods (forward.py) and the runtime they carry (runtime/classical.py)
    "context", "states", "shared", "new", "guard", "classical", "safeguard", "safeguard_delta",
    "safeguard_theta", "Safeguard", "frozen",
    # class attributes and methods of the network class
    "layers", "Output", "SPEC_NAME", "SPEC_SHA256", "GIVENS", "INPUTS", "STATES", "PARAMS",
    "OUTPUTS", "TRAINABLES", "DEFAULT_LAYERS", "CONVERGENCE_CONDITIONS", "CONVERGENCE_CERTIFICATES",
    "CONVERGENCE_UNCOVERED", "objective", "classical_step", "last_safeguard",
    "convergence_report",
}


def _helper_globals() -> set[str]:
    """The functions, classes and constants the helper sources define (`MLP`, `ACTIVATIONS`)."""
    names = set()
    for source in HELPERS.values():
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


HELPER_GLOBALS = frozenset(_helper_globals())
# Public attributes of torch.nn.Module (as of torch 2.x), written out so that compiling never
# imports torch; tests/test_names.py checks the list against the installed torch. Private
# attributes cannot clash: spec names starting with `_` are renamed (see Namespace.fresh).
_MODULE_ATTRS = {
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children",
    "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu",
    "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad",
}


class Namespace:
    """Maps requested names to unique identifiers: spec names kept whenever possible.

    A name that is a Python keyword or builtin, a name the generated code uses, or an
    `nn.Module` attribute gets a trailing underscore (then a number) instead.
    """

    def __init__(self, reserved: set[str] = frozenset()):
        # Helper functions (`fill`, `interval`, ...) are module globals: never shadow them.
        self._taken: set[str] = (set(GENERATED) | set(HELPERS) | HELPER_GLOBALS | set(reserved)
                                 | _MODULE_ATTRS)
        self._given: dict[str, str] = {}

    @property
    def taken(self) -> frozenset[str]:
        """Every identifier reserved or handed out so far."""
        return frozenset(self._taken)

    def name(self, wanted: str) -> str:
        """The identifier for `wanted`; the same one every time it is asked for."""
        if wanted not in self._given:
            self._given[wanted] = self.fresh(wanted)
        return self._given[wanted]

    def fresh(self, base: str) -> str:
        """A new identifier starting with `base`, never handed out before."""
        base = re.sub(r"\W", "_", base) or "v"
        if base[0].isdigit() or base[0] == "_":  # `_x` could shadow nn.Module internals
            base = "v" + base
        candidate = base
        if _clashes(candidate) or candidate in self._taken:
            candidate = base + "_"
        k = 1
        while candidate in self._taken:
            candidate, k = f"{base}_{k}", k + 1
        self._taken.add(candidate)
        return candidate


def _clashes(name: str) -> bool:
    return keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name)
