"""`soft_ss` selects its support as the LISTA-CPSS / ALISTA reference code does.

The reference (`utils/tf.py: shrink_ss` in VITA-Group/ALISTA) takes the level with
`tf.contrib.distributions.percentile(|v|, 100 - p)`, whose default interpolation is "nearest":
with the magnitudes sorted in decreasing order, the entry at index `round((n - 1) * p / 100)`
(tf.round: half to even). A linear quantile differs from it by one entry whenever q (n - 1) is not
an integer, which changes LISTA-CPSS's output (issue 12, construct 9).
"""

import numpy as np
import pytest
import torch

import unfoldc
from tests.reference_loops import soft_ss as numpy_soft_ss
from unfoldc.codegen.helpers import HELPERS
from unfoldc.opsemantics import soft_ss as interpreted_soft_ss

F64 = torch.float64


def _helper():
    scope = {"torch": torch}
    exec(HELPERS["soft_ss"], scope)  # the generated module's own helper, as it is emitted
    return scope["soft_ss"]


def _reference_count(n: int, q: float) -> int:
    """How many entries of distinct magnitudes (all above t) the reference keeps."""
    return int(np.round((n - 1) * q))


@pytest.mark.parametrize("n, q", [(100, 0.13), (100, 0.012), (9, 0.25), (9, 0.3), (5, 0.125),
                                  (100, 0.0), (7, 1.0), (3, 0.5)])
def test_kept_entries_follow_the_nearest_rank(n, q):
    v = torch.randn(4, n, dtype=F64, generator=torch.Generator().manual_seed(n))
    out = _helper()(v, 1e-6, q)
    kept = (out == v) & (v != 0)
    assert kept.sum(-1).tolist() == [_reference_count(n, q)] * 4
    # the kept entries are the largest magnitudes
    for row, mask in zip(v.abs(), kept):
        if mask.any():
            assert row[mask].min() > row[~mask].max()


def test_differs_from_the_linear_quantile_where_the_issue_says():
    """q (n - 1) = 2.376 for n = 100, q = 0.024 (LISTA-CPSS's second layer): the reference keeps 2
    entries, a linear quantile 3 (ceil instead of round)."""
    v = torch.randn(1, 100, dtype=F64, generator=torch.Generator().manual_seed(0))
    linear = torch.quantile(v.abs(), 1 - 0.024, dim=-1, keepdim=True)
    assert int((v.abs() > linear).sum()) == 3
    assert int((_helper()(v, 1e-6, 0.024) == v).sum()) == 2


def test_ties_to_even_like_tf_round():
    # (n - 1) q = 2.5: tf.round gives 2 (half to even), so two entries pass, not three
    v = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]], dtype=F64)
    assert int((_helper()(v, 1e-6, 0.5) == v).sum()) == 2


@pytest.mark.parametrize("q", [0.0, 0.05, 0.13, 0.5, 1.0])
def test_module_interpreter_and_numpy_agree(q):
    g = torch.Generator().manual_seed(7)
    v = torch.randn(5, 37, dtype=F64, generator=g)
    t = 0.3
    batched = _helper()(v, t, q)
    rows = torch.stack([interpreted_soft_ss(row, t, q) for row in v])
    torch.testing.assert_close(batched, rows, rtol=0, atol=0)
    torch.testing.assert_close(batched, numpy_soft_ss(v, t, q), rtol=0, atol=0)


def test_per_sample_fraction():
    """q may be one value per sample (a batched state): each row uses its own rank."""
    v = torch.randn(3, 20, dtype=F64, generator=torch.Generator().manual_seed(2))
    q = torch.tensor([0.0, 0.2, 0.5], dtype=F64)
    out = _helper()(v, 1e-6, q)
    for k in range(3):
        torch.testing.assert_close(out[k], _helper()(v[k:k + 1], 1e-6, float(q[k]))[0])


def test_lista_cpss_on_a_50_by_100_instance_matches_the_reference_loop():
    from tests.reference_loops import lista_cpss
    g = torch.Generator().manual_seed(5)
    H = torch.randn(50, 100, dtype=F64, generator=g) / 50 ** 0.5
    x = torch.randn(4, 50, dtype=F64, generator=g)
    model = unfoldc.load("examples/lista_cpss.unf")(H=H, num_layers=16)
    torch.testing.assert_close(model(x), lista_cpss(H, x, 16), rtol=1e-12, atol=1e-12)
