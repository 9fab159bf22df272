"""Print the operator table of docs/language.md from the compiler's own table (unfoldc/ops.py).

Besides spelling, arity and meaning, each row shows the facts the convergence analysis reads:
what it assumes about the first argument `a` ("analysis in `a`": an exact rule, a proximal map,
a Lipschitz constant, or nothing: not analyzed), the conditions on the other arguments
(`b`, `c`) under which that holds, and, for a function a spec may take the prox of, the
operator its prox is.

    python docs/gen_ops_table.py            # print the markdown table
    python docs/gen_ops_table.py --write    # replace the table in docs/language.md

The table sits between the markers `<!-- ops-table:begin -->` and `<!-- ops-table:end -->`;
tests/test_docs.py fails when it is out of date, so a new operator in ops.py shows up here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unfoldc.ops import FUNCTIONS, OPS, OpDef  # noqa: E402

DOC = ROOT / "docs" / "language.md"
BEGIN, END = "<!-- ops-table:begin -->", "<!-- ops-table:end -->"
_ARGS = "abc"


def usage(d: OpDef) -> str:
    """How a spec writes the operator, with placeholder operands (`[ ]` marks optional ones)."""
    lo, hi = d.arity
    if d.spelling == "[]":
        return "`a[b]`"
    if d.spelling.startswith("."):
        return f"`a{d.spelling}`"
    if d.infix and hi == 1:
        return f"`{d.spelling}a`"
    if d.infix:
        return f"`a {d.spelling} b`"
    required = ", ".join(_ARGS[:lo])
    optional = "".join(f"[, {x}]" if i else f"[{x}]" for i, x in enumerate(_ARGS[lo:hi], lo))
    return f"`{d.spelling}({required}{optional})`"


def aliases(d: OpDef) -> str:
    """Other names a spec may use for the operator (`transpose(A)`, `I`)."""
    names = [name for name, other in FUNCTIONS.items() if other is d and name != d.spelling]
    return ", ".join(f"`{n}`" for n in sorted(names))


def lipschitz(d: OpDef) -> str:
    """What the convergence analysis assumes about `a` (the table's `lipschitz` fact)."""
    lip = d.lipschitz
    if lip.kind == "exact":
        return "exact rule"
    if lip.kind == "prox":
        return f"prox of {lip.prox_of}"
    if lip.kind == "lipschitz":
        return f"{lip.const:g}-Lipschitz (not a prox)"
    if lip.kind == "minmax":
        return "1-Lipschitz, other operand state-free"
    if lip.kind == "linear":
        what = f"{'-' if lip.sign < 0 else ''}{lip.factor}^T" if lip.adjoint else "linear"
        square = round(lip.const**2, 9)
        if square.is_integer() and not float(lip.const).is_integer():  # sqrt(8): norm^2 <= 8
            return f"{what}, norm^2 <= {square:g}"
        return f"{what}, norm <= {lip.const:g}"
    return f"not analyzed: {lip.why}" if lip.why else ""


def conditions(d: OpDef) -> str:
    """The conditions the operator puts on its further arguments."""
    return ", ".join(f"`{c.text()}`" for c in d.conditions or ())


def prox(d: OpDef) -> str:
    """For a function a spec may take the prox of: the operator that prox is."""
    if d.prox is None:
        return ""
    return "`v / (1 + 2 t)`" if d.prox.op is None else f"`{d.prox.op}`"


def table() -> str:
    """The markdown table: a row per operator of `unfoldc.ops.OPS` a spec can write, in order."""
    rows = ["| operator | arguments | elementwise | also written | meaning | "
            "analysis in `a` | conditions | prox |",
            "|---|---|---|---|---|---|---|---|"]
    for d in OPS.values():
        if getattr(d, "internal", False) or d.spelling.startswith("<"):
            continue  # produced by the compiler (sub-network calls, autograd), not written
        lo, hi = d.arity
        arity = str(lo) if lo == hi else f"{lo}-{hi}"
        elementwise = "yes" if d.elementwise else ""
        cells = [usage(d), arity, elementwise, aliases(d), d.doc, lipschitz(d), conditions(d),
                 prox(d)]
        rows.append("| " + " | ".join(c.replace("|", "&#124;") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def replace_table(text: str, new: str) -> str:
    """`text` with the block between the markers replaced by `new`."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{new}{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    """Print the table, or write it into docs/language.md with --write."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.name} in place")
    args = parser.parse_args(argv)
    if args.write:
        DOC.write_text(replace_table(DOC.read_text(encoding="utf-8"), table()), encoding="utf-8")
    else:
        sys.stdout.write(table())


if __name__ == "__main__":
    main()
