"""How large a network unfoldc builds: every limit on sizes and depths, in one place.

Larger numbers are typos or networks that cannot be allocated. The compiler refuses them in a
spec with a located error (E0404); the command-line options that set a depth (`graph --unroll`,
`check --layers`, `train --layers`) are refused with a usage error, before anything is built.
"""

from __future__ import annotations

# Integers in a spec are sizes and counts: the largest a tensor dimension can be.
MAX_INT = 2**31 - 1
# The deepest network: an unrolled network stores every layer's parameters and activations.
MAX_LAYERS = 10_000
# The most numbers one fixed-size state, parameter, trainable or net may hold (2 GiB as float64).
MAX_ELEMENTS = 2**28
# The most nodes an unrolled iteration graph may have (`unfoldc graph --unroll K`): each takes
# about 3 KiB in networkx with its edges (measured on admm_lasso), so 100000 nodes about 300 MiB.
MAX_GRAPH_NODES = 100_000
GRAPH_NODE_BYTES = 3 * 2**10


def gib(count: int, bytes_each: int = 8) -> str:
    """`count` numbers as GiB, for messages: '7.5 GiB'."""
    size = count * bytes_each / 2**30
    return f"{size:.1f} GiB" if size < 10 else f"{size:,.0f} GiB"
