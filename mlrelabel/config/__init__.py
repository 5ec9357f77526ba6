"""Shared config builders: every `configs/<recipe>.py` starts from `base_recipe` or `relabel_recipe`.

The schema (mlrelabel/config/schema.py: `FIELDS`) holds every field's default, check and one-line meaning.
A recipe lists the fields a user of it tunes (`BASE_FIELDS`, `RELABEL_FIELDS`, at the schema's defaults) and
sets what it decides; `schema.complete` fills in every other field before `--config.<field>=<value>`
overrides apply, so any schema field can be overridden, listed or not. `base_config` / `relabel_config` are the
completed configs. The `smoke` variant shrinks data, model and schedule so that any recipe runs end to end in
well under a minute on a 2-core CPU (the tests run the smoke variant of every config).
"""

from __future__ import annotations

import ml_collections

from mlrelabel.config import schema

# The fields every recipe lists: what users of the built-in data or their own CS570 label files tune.
BASE_FIELDS = (
    'method', 'seed',
    'data.source', 'data.num_classes', 'data.seed', 'data.image_size', 'data.num_train', 'data.num_val',
    'data.train_json', 'data.val_json', 'data.root',
    'model.name', 'model.width', 'model.dropout_rate', 'model.dtype', 'model.pretrained',
    'train.epochs', 'train.min_steps', 'train.batch_size', 'train.loss', 'train.eval_every_epochs',
    'train.augment.enabled', 'train.augment.scale', 'train.augment.flip',
    'optim.name', 'optim.learning_rate', 'optim.weight_decay', 'optim.warmup_epochs', 'optim.schedule',
    'eval.batch_size', 'eval.threshold',
    'parallel.num_devices', 'parallel.cpu_devices',
)  # fmt: skip
# The relabel loop's fields its recipes list: the default path (grid crops, 'gmm' labels, the held-out chooser).
# Alternatives (other crop kinds, 'threshold' / 'topk' labels, the uncertainty filter, the control arm, ...) are
# schema fields too: --config.relabel.<field>=<value> selects them.
RELABEL_FIELDS = (
    'relabel.confidence', 'relabel.num_samples',
    'relabel.crops.kind', 'relabel.crops.grid_scales', 'relabel.crops.overlap', 'relabel.crops.include_full_image',
    'relabel.crops.size_fraction',
    'relabel.aggregate', 'relabel.evidence', 'relabel.assign', 'relabel.gmm_min_posterior',
    'relabel.gmm_min_separation', 'relabel.positive_floor', 'relabel.keep_given', 'relabel.max_labels',
    'relabel.batch_size', 'relabel.loss', 'relabel.warm_start',
    'relabel.round0_models', 'relabel.round0_models_min_top1', 'relabel.round0_checkpoint',
    'relabel.fresh_rounds', 'relabel.fresh_min_steps',
    'relabel.extend_underfit_round0', 'relabel.epochs', 'relabel.min_steps',
    'relabel.metric', 'relabel.tolerance', 'relabel.choose_tolerance', 'relabel.round1_margin', 'relabel.patience',
    'relabel.stop_from_round',
    'relabel.stable_fraction', 'relabel.max_rounds', 'relabel.review', 'relabel.decisions',
)  # fmt: skip


def base_recipe(variant: str = '') -> ml_collections.ConfigDict:
    """Plain training on the built-in digit-scenes data: `BASE_FIELDS` at the schema's defaults."""
    c = schema.defaults(*BASE_FIELDS)
    if variant == 'smoke':
        apply_smoke(c)
    elif variant:
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    return c


def base_config(variant: str = '') -> ml_collections.ConfigDict:
    """`base_recipe` with every schema field filled in."""
    return schema.complete(base_recipe(variant))


# What the smoke variant changes: seconds-long runs on CPU.
SMOKE = {
    'train.min_steps': 0,
    'data.num_train': 256,
    'data.num_val': 128,
    'data.num_test': 0,
    'data.image_size': 32,
    'data.min_scale': 10,
    'data.max_scale': 16,
    'model.name': 'resnet_tiny',
    'model.width': 8,
    'train.epochs': 2,
    'train.batch_size': 32,
    'train.checkpoint_every_steps': 4,  # tests stop and resume at these steps ...
    'train.checkpoint_every_seconds': 0.0,  # ... however fast they come
    'train.log_every_steps': 4,
    'eval.batch_size': 64,
    'report.num_examples': 8,
}


def put(c: ml_collections.ConfigDict, field: str, value) -> None:
    """Sets dotted `field` of `c` to `value`, creating the sections it needs (a recipe lists few fields)."""
    *parents, leaf = field.split('.')
    for part in parents:
        if part not in c:
            c[part] = ml_collections.ConfigDict()
        c = c[part]
    c[leaf] = value


def apply_smoke(c: ml_collections.ConfigDict) -> None:
    """Shrinks a config in place so the run ends in seconds on CPU (`SMOKE`)."""
    for field, value in SMOKE.items():
        put(c, field, value)


def apply_imagenet_smoke(c: ml_collections.ConfigDict) -> None:
    """The `:smoke` variant of an ImageNet recipe, in place: a generated ImageNet-layout folder, small batches,
    a 3x3 stem."""
    apply_smoke(c)
    c.data.source = 'folder'
    c.data.synthetic = True
    c.data.num_classes = 0  # as many as the folder has
    c.model.small_stem = True
    c.model.stem_stride = 2
    c.model.dtype = 'float32'
    c.train.batch_size = 8
    c.eval.batch_size = 8
    c.optim.warmup_epochs = 0.0


def apply_imagenet_relabel_smoke(c: ml_collections.ConfigDict) -> None:
    """The `:smoke` variant of an ImageNet relabel recipe, in place: `apply_imagenet_smoke` and one short
    relabel round."""
    apply_imagenet_smoke(c)
    r = c.relabel
    r.num_samples = 4
    r.crops.num_crops = 4
    r.batch_size = 8
    r.save_every_batches = 2
    r.max_rounds = 1
    r.epochs = 1


def imagenet_data(c) -> None:
    """The ImageNet data fields (sources 'tfds' | 'folder' | 'json'), in place."""
    d = c.data
    d.source = 'tfds'
    d.num_classes = 1000
    d.image_size = 224
    d.num_train = 0  # > 0: train on a seeded subset of that many images
    d.num_val = 0
    d.mean = (0.485, 0.456, 0.406)
    d.std = (0.229, 0.224, 0.225)


def resnet50_imagenet(c) -> None:
    """ResNet-50 at 224 px on ImageNet with the standard large-batch SGD recipe, in place (Goyal et al. 2017,
    "Accurate, Large Minibatch SGD": Nesterov momentum, lr 0.1 per 256 images, 5 warm-up epochs, cosine,
    weight decay 1e-4, bf16 compute). Recipes override what differs (epochs, batch, loss, schedule)."""
    imagenet_data(c)
    m = c.model
    m.name = 'resnet50'
    m.width = 64
    m.small_stem = False
    m.stem_stride = 0
    m.dtype = 'bfloat16'
    t = c.train
    t.epochs = 90
    t.batch_size = 1024
    t.augment.scale = (0.08, 1.0)
    t.augment.flip = True
    t.checkpoint_every_steps = 1000
    t.log_every_steps = 100
    o = c.optim
    o.name = 'sgd'
    o.learning_rate = 0.1
    o.lr_base_batch = 256
    o.weight_decay = 1e-4
    o.warmup_epochs = 5.0
    c.eval.batch_size = 1024


def relabel_recipe(variant: str = '', confidence: str = 'mc_dropout') -> ml_collections.ConfigDict:
    """The Crop → Confidence → Label loop (CS570 multi-labeling ImageNet) on the built-in digit scenes."""
    c = base_recipe('')
    c.update(schema.defaults(*RELABEL_FIELDS))
    c.method = 'relabel'
    c.model.dropout_rate = 0.1  # every confidence shares the model; MC dropout needs some
    c.train.epochs = 20  # round 0; later rounds warm-start for relabel.epochs
    # round 0's steps on small data (benchmarks/history/label-quality.md: A round 0 twice as long)
    c.train.min_steps = 2400
    c.train.eval_every_epochs = 0  # validation once per round, at its end (BENCHMARKS.md: Config defaults)
    c.train.augment.scale = ()  # by the data: photos train on crops as small as the scored windows
    r = c.relabel
    r.confidence = confidence
    if confidence == 'naive':
        r.num_samples = 1  # one deterministic pass per crop
    if confidence == 'mc_perturbation':
        r.update(schema.defaults('relabel.perturbation').relabel)  # the perturbations this recipe samples

    if variant == 'smoke':
        apply_smoke(c)
        r.extend_underfit_round0 = False  # 2 smoke epochs are under-trained by design
        r.max_rounds = 1
        r.train_last_round = True  # every round's model exists: the tests predict with round 1's
        r.epochs = 1
        r.min_steps = 0
        r.fresh_min_steps = 0
        r.round0_models = 2  # the path of several round-0 models, at less cost
        r.round0_models_min_top1 = 0.0  # whatever 2 smoke epochs learn
        r.num_samples = min(r.num_samples, 4)
        r.crops.num_crops = 4
        r.crops.grid_scales = (1.0, 0.6)
        r.crops.overlap = 0.5  # 10 windows: the tests' relabel passes stay short
        r.batch_size = 32
        r.save_every_batches = 2
    elif variant:
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    return c


def relabel_config(variant: str = '', confidence: str = 'mc_dropout') -> ml_collections.ConfigDict:
    """`relabel_recipe` with every schema field filled in."""
    return schema.complete(relabel_recipe(variant, confidence))
