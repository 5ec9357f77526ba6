"""Single-positive losses: values and gradients against independent float64 numpy references of the papers'
formulas, stability, jit, the LL schedule, APL selection, LL-Cp rewriting, label hooks and training runs."""

from mlrelabel.eval import evaluate
from mlrelabel.losses import single_positive


def test_sigmoid_head_for_single_positive_kinds():
    for kind in single_positive.KINDS:
        assert evaluate.head_of(kind) == 'sigmoid'
