"""Types of IR values: scalar, vector[n], matrix[m, n], batched or not, with dimension unification.

Declared dimension names (`m`, `n`) and integer sizes are rigid: two different ones never unify.
Fresh dimensions (`?1`, created for `I` or `zeros` without sizes) are flexible and get bound to
whatever they are unified with, through a union-find `DimTable`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DimSum:
    """A dimension computed from a declared one, `scale * name + offset`: `n - 1` (the length
    of `diff(v)` for v a vector[n]), `2 * m` (`grad2d` stacks two m x n images). Rigid like
    the name it is built on; made by `dim_affine`, which keeps plain names and integers plain."""

    name: str
    offset: int = 0
    scale: int = 1

    def __str__(self) -> str:
        text = self.name if self.scale == 1 else f"{self.scale} * {self.name}"
        if self.offset:
            text += f" {'+' if self.offset > 0 else '-'} {abs(self.offset)}"
        return text

    def size(self, sizes) -> int:
        """The value, given `sizes(name)` of the name it is built on."""
        return self.scale * sizes(self.name) + self.offset


Dim = str | int | DimSum


def dim_affine(d: Dim, scale: int = 1, offset: int = 0) -> Dim | None:
    """`scale * d + offset`, as an int, a name or a `DimSum`; None when `d` is fresh (`?k`, not
    known yet) or the result is not a positive size."""
    if isinstance(d, int):
        out = scale * d + offset
        return out if out > 0 else None
    if isinstance(d, DimSum):
        scale, offset = scale * d.scale, scale * d.offset + offset
        d = d.name
    if is_fresh(d):
        return None
    return d if (scale, offset) == (1, 0) else DimSum(d, offset, scale)


def dim_names(d: Dim) -> set[str]:
    """The declared dimension names `d` is built on."""
    if isinstance(d, DimSum):
        return {d.name}
    return {d} if isinstance(d, str) and not is_fresh(d) else set()


@dataclass(frozen=True)
class Type:
    """The shape kind, its dimensions and whether a leading batch dimension is present."""

    kind: str  # scalar | vector | matrix
    dims: tuple[Dim, ...] = ()
    batched: bool = False

    @property
    def rank(self) -> int:
        """Rank without the batch dimension: 0, 1 or 2."""
        return len(self.dims)

    @property
    def torch_rank(self) -> int:
        """Rank of the tensor that holds the value at run time."""
        return self.rank + int(self.batched)

    def with_batched(self, batched: bool) -> Type:
        """The same shape, batched or not."""
        return replace(self, batched=batched)

    def __str__(self) -> str:
        if self.kind == "scalar":
            return "scalar"
        return f"{self.kind}[{', '.join(map(str, self.dims))}]"


SCALAR = Type("scalar")


def vector(n: Dim, batched: bool = False) -> Type:
    """A vector of `n` entries."""
    return Type("vector", (n,), batched)


def matrix(m: Dim, n: Dim, batched: bool = False) -> Type:
    """An `m` x `n` matrix."""
    return Type("matrix", (m, n), batched)


def is_fresh(d: Dim) -> bool:
    """Fresh dimensions are created by inference and spelled `?k`."""
    return isinstance(d, str) and d.startswith("?")


class DimTable:
    """Union-find over dimensions; rigid dimensions are never merged with each other."""

    def __init__(self) -> None:
        self._parent: dict[Dim, Dim] = {}
        self._count = 0

    def fresh(self) -> str:
        """A new flexible dimension."""
        self._count += 1
        return f"?{self._count}"

    def find(self, d: Dim) -> Dim:
        """The representative of `d` (a rigid dimension whenever one is known)."""
        while d in self._parent:
            d = self._parent[d]
        return d

    def unify(self, a: Dim, b: Dim) -> bool:
        """Make `a` and `b` equal if allowed; False when two different rigid dims meet."""
        a, b = self.find(a), self.find(b)
        if a == b:
            return True
        if is_fresh(a):
            self._parent[a] = b
            return True
        if is_fresh(b):
            self._parent[b] = a
            return True
        return False

    def resolve(self, t: Type) -> Type:
        """`t` with every dimension replaced by its representative."""
        return replace(t, dims=tuple(self.find(d) for d in t.dims))
