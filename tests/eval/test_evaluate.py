"""Evaluation (`mlrelabel.eval.evaluate`): single-positive kinds are scored with a sigmoid head."""

from mlrelabel.eval import evaluate
from mlrelabel.losses import single_positive


def test_sigmoid_head_for_single_positive_kinds():
    for kind in single_positive.KINDS:
        assert evaluate.head_of(kind) == 'sigmoid'
