"""The relabel run's planned phases, for its progress line (`mlrelabel.progress`): round 0's training, then per
round the scoring of crops, the assignment of labels, the training and the evaluation, and the end of the run.

Their units are forward passes of one image, the same measure for every kind so that a kind not measured yet
gets an estimate from the others: a training step is `TRAIN_PASSES` passes of each image of its batch, scoring is
one pass per crop (and per sample where each sample is its own pass) per model, evaluation and assignment one per
image. Once a kind has been measured its own rate replaces that guess. The plan assumes every round up to
`relabel.max_rounds` runs: a run that stops early drops the rest (`RunProgress.begin`).
"""

from __future__ import annotations

from mlrelabel.ops.boxes import grid_boxes
from mlrelabel.progress import Phase
from mlrelabel.relabel.round_models import round_epochs

TRAIN_PASSES = 3  # a training step's forward and backward pass cost about three forward passes
SAMPLED_INPUTS = (
    'mc_dropout_full',
    'mc_perturbation',
)  # confidences that pass each sample through the network


def crops_per_image(rc) -> int:
    """The crops each image is scored on (`relabel.crops`)."""
    c = rc.crops
    if c.kind == 'grid':
        count = len(grid_boxes(tuple(c.grid_scales), float(c.overlap)))
    elif c.kind == 'full':
        count = 1
    else:
        count = int(c.num_crops)
    return count + int(bool(c.include_full_image) and c.kind != 'full')


def planned(ctx) -> list[Phase]:
    """The phases of the run of `ctx` (a `method.RelabelRun`) after its set-up, in order."""
    config, rc = ctx.config, ctx.config.relabel
    num_train, num_val = len(ctx.train), len(ctx.val)
    batch = int(config.train.batch_size)
    step = TRAIN_PASSES * batch * max(num_train // batch, 1)  # an epoch's passes
    models = 1 if rc.round0_checkpoint or rc.max_rounds < 1 else max(int(rc.round0_models), 1)
    if rc.round0_checkpoint:
        phases = [Phase('train', num_val, round=0)]  # taken, not trained: validated only
    else:
        phases = [Phase('train', step * int(config.train.epochs) * models, round=0, bars=True)]
    phases.append(Phase('eval', num_val, round=0))
    samples = int(rc.num_samples) if rc.confidence in SAMPLED_INPUTS else 1
    per_image = crops_per_image(rc) * samples
    for k in range(1, int(rc.max_rounds) + 1):
        scorers = models if k == 1 else 1
        arms = 2 if k == 1 and rc.control else 1
        phases += [
            Phase('score', (num_train + num_val) * per_image * scorers, round=k, bars=True),
            Phase('assign', num_train + num_val, round=k),
            Phase('train', step * round_epochs(config, k) * arms, round=k, bars=True),
            Phase('eval', num_val, round=k),
        ]
    phases.append(Phase('finish', num_train if rc.review else num_val))
    return phases
