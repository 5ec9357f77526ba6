"""ImageNet evaluation sets and their protocols, as pure functions of arrays plus TFDS loaders.

- ReaL (Beyer et al. 2020, "Are we done with ImageNet?"): accuracy of the top-1 prediction against the
  ReaL set, images with an empty set excluded, and sample-F1 of the predicted set `argmax ∪ {p > t}`.
- `imagenet2012_multilabel` (Shankar et al. 2020, "Evaluating Machine Accuracy on ImageNet"): the 20,000
  re-annotated validation images; problematic images are skipped, a top-1 prediction is right if it is in
  correct ∪ unclear, and accuracy is computed per original class and averaged over classes.
- ImageNet-V2 (Recht et al. 2019): plain top-1 / top-5 on its 10,000 images.

Class indices are sorted-WNID order (TFDS's order) throughout.
"""

from __future__ import annotations

import os

import numpy as np

from mlrelabel.data.imagenet_readers import TfdsImages
from mlrelabel.data.imagenet_tfds import tfds_metadata
from mlrelabel.data.label_table import LabelTable
from mlrelabel.eval import metrics

__all__ = [
    'real_metrics',
    'multilabel_accuracy',
    'topk_metrics',
    'load_multilabel',
    'load_imagenet_v2',
    'load_real',
    'evaluate_sets',
]


def real_metrics(probs, real, threshold: float = 0.5) -> dict:
    """`{'real_accuracy', 'real_f1', 'real_precision', 'real_recall'}` of `probs [N, C]` against ReaL sets
    (N lists or a LabelTable). Accuracy excludes empty sets; the set metrics also score only non-empty
    sets (an empty ReaL set means the raters found no valid label, so there is nothing to match)."""
    probs = np.asarray(probs)
    table = real if isinstance(real, LabelTable) else LabelTable.from_lists(real, probs.shape[1])
    keep = table.num_labels() > 0
    sets = metrics.sample_set_metrics(metrics.predicted_sets(probs, threshold), table, mask=keep)
    out = {'real_accuracy': metrics.real_accuracy(probs.argmax(-1), table)}
    out.update({f'real_{k}': v for k, v in sets.items() if k in ('f1', 'precision', 'recall')})
    return out


def multilabel_accuracy(top1, original, correct, unclear, problematic) -> dict:
    """The `imagenet2012_multilabel` protocol (Shankar et al. 2020).

    Args:
      top1: `[N]` predicted class (or `[N, C]` scores, arg-maxed).
      original: `[N]` original ImageNet label of each image.
      correct, unclear: N lists of class indices (or LabelTables) from the re-annotation.
      problematic: `[N]` bool, images the annotators flagged; they are skipped.
    Returns:
      `{'multilabel_accuracy'`: mean over original classes of the per-class fraction of kept images whose
      top-1 is in correct ∪ unclear, `'multilabel_accuracy_images'`: the same over images,
      `'multilabel_images'`: kept image count}.
    """
    top1 = np.asarray(top1)
    top1 = top1.argmax(-1) if top1.ndim == 2 else top1.astype(np.int64)
    original = np.asarray(original, np.int64)
    problematic = np.asarray(problematic, bool)
    correct = correct.to_lists() if isinstance(correct, LabelTable) else correct
    unclear = unclear.to_lists() if isinstance(unclear, LabelTable) else unclear
    n = top1.shape[0]
    for name, x in (
        ('original', original),
        ('problematic', problematic),
        ('correct', correct),
        ('unclear', unclear),
    ):
        if len(x) != n:
            raise ValueError(f'multilabel_accuracy: {name} has {len(x)} rows, top1 has {n}')
    keep = ~problematic
    if not keep.any():
        raise ValueError('multilabel_accuracy: every image is problematic; nothing to score')
    hit = np.asarray([int(p) in set(c) | set(u) for p, c, u in zip(top1, correct, unclear)], bool)
    classes = np.unique(original[keep])
    per_class = [hit[keep & (original == c)].mean() for c in classes]
    return {
        'multilabel_accuracy': float(np.mean(per_class)),
        'multilabel_accuracy_images': float(hit[keep].mean()),
        'multilabel_images': int(keep.sum()),
    }


def topk_metrics(scores, labels, prefix: str = 'v2_') -> dict:
    """`{prefix+'top1', prefix+'top5'}` of `scores [N, C]` against `labels [N]` (ImageNet-V2 protocol)."""
    scores = np.asarray(scores)
    out = {f'{prefix}top1': metrics.topk_accuracy(scores, labels, 1)}
    if scores.shape[1] >= 5:
        out[f'{prefix}top5'] = metrics.topk_accuracy(scores, labels, 5)
    return out


def _cache(cache_dir, name, split):
    return os.path.join(cache_dir, f'tfds_{name}_{split}_meta.npz') if cache_dir else None


def load_multilabel(image_size: int, data_dir: str | None = None, cache_dir: str | None = None):
    """`(images, arrays)`: a lazy reader over TFDS `imagenet2012_multilabel` validation and its
    `original_label`, `correct_multi_labels`, `unclear_multi_labels`, `is_problematic`."""
    name = 'imagenet2012_multilabel'
    fields = ('original_label', 'correct_multi_labels', 'unclear_multi_labels', 'is_problematic')
    meta = tfds_metadata(name, 'validation', data_dir, fields, _cache(cache_dir, name, 'validation'))
    return TfdsImages(name, 'validation', data_dir, image_size), meta


def load_imagenet_v2(
    image_size: int, data_dir: str | None = None, cache_dir: str | None = None, name: str = 'imagenet_v2'
):
    """`(images, labels [N])` of TFDS `imagenet_v2` (default config: matched-frequency) split `test`."""
    meta = tfds_metadata(name, 'test', data_dir, ('label',), _cache(cache_dir, name, 'test'))
    return TfdsImages(name, 'test', data_dir, image_size), np.asarray(meta['label'], np.int64)


def load_real(image_size: int, data_dir: str | None = None, cache_dir: str | None = None):
    """`(images, real_sets)` of TFDS `imagenet2012_real` validation (N lists of class indices)."""
    name = 'imagenet2012_real'
    meta = tfds_metadata(name, 'validation', data_dir, ('real_label',), _cache(cache_dir, name, 'validation'))
    return TfdsImages(name, 'validation', data_dir, image_size), meta['real_label']


def evaluate_sets(
    predict_fn,
    image_size: int,
    sets=('real', 'multilabel', 'v2'),
    data_dir: str | None = None,
    cache_dir: str | None = None,
    threshold: float = 0.5,
) -> dict:
    """Every protocol above for `predict_fn(images_reader, n) -> probs [n, C]` (e.g. `loop.predict` then
    `evaluate.probabilities`) on the named TFDS sets; one flat dict of metrics."""
    out = {}
    if 'real' in sets:
        images, real = load_real(image_size, data_dir, cache_dir)
        out.update(real_metrics(predict_fn(images, len(images)), real, threshold))
    if 'multilabel' in sets:
        images, m = load_multilabel(image_size, data_dir, cache_dir)
        probs = predict_fn(images, len(images))
        out.update(
            multilabel_accuracy(
                probs,
                m['original_label'],
                m['correct_multi_labels'],
                m['unclear_multi_labels'],
                m['is_problematic'],
            )
        )
    if 'v2' in sets:
        images, labels = load_imagenet_v2(image_size, data_dir, cache_dir)
        out.update(topk_metrics(predict_fn(images, len(images)), labels))
    return out
