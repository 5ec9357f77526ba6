"""The ImageNet evaluation protocols (`mlrelabel.eval.imagenet_eval`) by hand: top-k, ReaL and multi-label
accuracy."""

import numpy as np
import pytest


def test_imagenet_eval_protocols_by_hand():
    from mlrelabel.eval import imagenet_eval

    # multilabel: image 2 problematic (skipped); class 0 images: hit (correct), hit (unclear); class 1: miss.
    top1 = np.array([5, 6, 0, 2])
    out = imagenet_eval.multilabel_accuracy(
        top1,
        original=[0, 0, 0, 1],
        correct=[[5], [1], [0], [1]],
        unclear=[[], [6], [], []],
        problematic=[False, False, True, False],
    )
    assert out == {'multilabel_accuracy': 0.5, 'multilabel_accuracy_images': 2 / 3, 'multilabel_images': 3}
    scores = np.eye(6)[[0, 1, 2, 3]] + np.linspace(0, 0.1, 6)
    v2 = imagenet_eval.topk_metrics(scores, [0, 1, 5, 4])
    assert v2['v2_top1'] == 0.5 and v2['v2_top5'] == 1.0
    probs = np.array([[0.9, 0.6, 0.0], [0.1, 0.8, 0.0], [0.7, 0.2, 0.1]])
    real = imagenet_eval.real_metrics(probs, [[0, 1], [0], []])
    assert real['real_accuracy'] == 0.5  # row 2 (empty) excluded
    assert real['real_f1'] == pytest.approx(0.5)  # F1 1 and 0
