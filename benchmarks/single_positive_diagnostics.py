"""Where a single-label model loses whole-image mAP on the digit scenes: one JSON line per finished run.

  python benchmarks/single_positive_diagnostics.py runs/compare/an_ls/seed_0 runs/compare/full/seed_0

For each run (a finished supervised run on the built-in scenes, e.g. a `mlrelabel.compare` entry's folder):
- `ap_given_class` / `ap_other_classes`: val mAP with the positives of each class split into the images *given*
  that class (their visible label) and the images holding it beside another visible label (each against all
  images without the class); `share_other_positives`: the share of true (image, class) pairs of the second kind.
- `pool_avg` / `pool_max` / `pool_lse<r>`: val mAP of the run's dense class maps (`[N, h, w, C]`, the classifier
  at every location) pooled over the locations by the mean (= the model's own logits), the maximum, or
  (1/r)·log mean exp(r·s): would a model that ranks small objects low do better with class-wise pooling at test
  time (WILDCAT, Durand et al. 2017)?
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np
from sklearn.metrics import average_precision_score


def diagnose(workdir: str) -> dict:
    from mlrelabel.eval import metrics
    from mlrelabel.methods import common
    from mlrelabel.run import load_run
    from mlrelabel.train.inference import prepare_images
    from mlrelabel.train.step import make_predict_step

    run = load_run(workdir)
    val = common.load_datasets(run.config.copy_and_resolve_references(), run.workdir)['val']
    rows = np.arange(len(val))
    truth, given = val.truth.dense(rows), val.labels.dense(rows)
    images = prepare_images(val.images[rows], run.image_size)
    mean, std = tuple(run.manifest['mean']), tuple(run.manifest['std'])
    dense = jax.jit(make_predict_step(run._build_model(), mean=mean, std=std, dense=True))
    variables = run.variables()
    maps = np.concatenate(
        [np.asarray(dense(variables, images[s : s + 250])) for s in range(0, len(images), 250)]
    )
    pooled = maps.reshape(len(maps), -1, maps.shape[-1])  # [N, h*w, C]
    scores = pooled.mean(axis=1)
    out = {'run': workdir, 'map_shape': list(maps.shape[1:3])}
    for kind, positives in (('given_class', given == 1), ('other_classes', (truth == 1) & (given == 0))):
        aps = []
        for c in range(truth.shape[1]):
            keep = (truth[:, c] == 0) | positives[:, c]
            aps.append(average_precision_score(positives[keep, c], scores[keep, c]))
        out[f'ap_{kind}'] = round(float(np.mean(aps)), 4)
    out['share_other_positives'] = round(float(((truth == 1) & (given == 0)).sum() / truth.sum()), 3)
    out['pool_avg'] = round(float(metrics.mean_average_precision(scores, truth)), 4)
    out['pool_max'] = round(float(metrics.mean_average_precision(pooled.max(axis=1), truth)), 4)
    for r in (1, 3, 10):
        lse = (jax.nn.logsumexp(r * pooled, axis=1) - np.log(pooled.shape[1])) / r
        out[f'pool_lse{r}'] = round(float(metrics.mean_average_precision(np.asarray(lse), truth)), 4)
    return out


if __name__ == '__main__':
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for path in sys.argv[1:]:
        print(json.dumps(diagnose(path)), flush=True)
