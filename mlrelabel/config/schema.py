"""The config schema: every field's default, its check and what it does (`FIELDS`), in one place.

One line per field. `complete(config)` fills in the fields a recipe does not set; `migrate(saved)` brings a
run's saved config.json of an earlier version up to date; `SCHEMA` (field → `Check`) is what validation reads. A
method section's fields (`METHOD_SECTIONS`) exist only where a config has that section. Enumerations are
literals here (no JAX import: `main` validates before anything heavy); tests/validation/test_validation.py
keeps them equal to their sources (losses.LOSSES, models.MODEL_NAMES, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from typing import Any, Callable

__all__ = [
    'ADDED_FIELDS',
    'Check',
    'FIELDS',
    'Field',
    'MISSING',
    'SCHEMA',
    'complete',
    'defaults',
    'get',
    'migrate',
]


# ------------------------------------------------------------------------------------------ checks
@dataclasses.dataclass(frozen=True)
class Check:
    """`test(value) -> bool` and what is allowed, in words ("one of 'a', 'b'", "an integer >= 1")."""

    test: Callable[[Any], bool]
    allowed: str
    choices: tuple = ()  # for "did you mean"
    wrong_part: Callable[[Any], str] = str  # the part of a wrong value to match against `choices`

    def problem(self, field: str, value: Any) -> str | None:
        try:
            ok = bool(self.test(value))
        except (TypeError, ValueError):
            ok = False
        if ok:
            return None
        text = f'config.{field}={value!r}: expected {self.allowed}'
        try:
            part = self.wrong_part(value)
        except (TypeError, ValueError, AttributeError):
            part = str(value)
        close = difflib.get_close_matches(part, [str(c) for c in self.choices], n=1, cutoff=0.5)
        return text + (f" (did you mean '{close[0]}'?)" if close else '')


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bounds(lo, hi, lo_open, hi_open) -> tuple[Callable[[float], bool], str]:
    def inside(v):
        return (lo is None or (v > lo if lo_open else v >= lo)) and (
            hi is None or (v < hi if hi_open else v <= hi)
        )

    if lo is not None and hi is not None:
        words = f'in {"(" if lo_open else "["}{lo:g}, {hi:g}{")" if hi_open else "]"}'
    elif lo is not None:
        words = f'{">" if lo_open else ">="} {lo:g}'
    elif hi is not None:
        words = f'{"<" if hi_open else "<="} {hi:g}'
    else:
        words = ''
    return inside, words


def one_of(*choices: str) -> Check:
    return Check(lambda v: v in choices, 'one of ' + ', '.join(repr(c) for c in choices), choices)


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    inside, words = _bounds(lo, hi, False, False)
    return Check(lambda v: _is_int(v) and inside(v), f'an integer {words}'.strip())


def number(lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    inside, words = _bounds(lo, hi, lo_open, hi_open)
    return Check(lambda v: _is_number(v) and inside(v), f'a number {words}'.strip())


def boolean() -> Check:
    return Check(lambda v: isinstance(v, bool), 'True or False')


def text() -> Check:
    return Check(lambda v: isinstance(v, str), 'a string')


def pair(lo=None, hi=None, *, lo_open: bool = False) -> Check:
    """A `(low, high)` pair of numbers with low <= high, both within the bounds."""
    inside, words = _bounds(lo, hi, lo_open, False)

    def test(v):
        return len(v) == 2 and all(_is_number(x) and inside(x) for x in v) and v[0] <= v[1]

    return Check(test, f'a pair (low, high) with low <= high, each {words}'.strip())


def numbers(length: int | None = None, lo=None, hi=None, *, lo_open: bool = False) -> Check:
    """A sequence of numbers (of `length` when given, else non-empty), each within the bounds."""
    inside, words = _bounds(lo, hi, lo_open, False)

    def test(v):
        n = len(v)
        return (
            not isinstance(v, str)
            and n > 0
            and n == (length or n)
            and all(_is_number(x) and inside(x) for x in v)
        )

    size = f'{length} numbers' if length else 'a non-empty sequence of numbers'
    return Check(test, f'{size}, each {words}' if words else size)


def empty_or(check: Check) -> Check:
    """An empty value (= filled in from the data, mlrelabel/data/inspect.py) or what `check` allows."""
    return Check(lambda v: len(v) == 0 or check.test(v), f'() (measured from the data) or {check.allowed}')


def names_in(*choices: str) -> Check:
    """A comma-separated subset of `choices` ('' = none)."""

    def unknown(v):
        return [s.strip() for s in v.split(',') if s.strip() and s.strip() not in choices]

    return Check(
        lambda v: isinstance(v, str) and not unknown(v),
        f"a comma-separated subset of {', '.join(choices)} (or '')",
        choices,
        lambda v: unknown(v)[0],
    )


def matches(pattern: str, allowed: str, examples: tuple = ()) -> Check:
    return Check(lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None, allowed, examples)


def _is_url(v: str) -> bool:
    return '://' in v


def existing(kind: str = 'path', pre: str = '') -> Check:
    """'' or an existing `file`, `dir` or `path` (URLs such as gs://... are not checked), or a name "
    "`<pre>...`."""
    exists = {'file': os.path.isfile, 'dir': os.path.isdir, 'path': os.path.exists}[kind]
    noun = {'file': 'file', 'dir': 'folder', 'path': 'file or folder'}[kind]
    return Check(
        lambda v: isinstance(v, str) and (not v or _is_url(v) or exists(v) or (pre and v.startswith(pre))),
        f"an existing {noun}{pre and f', {pre}<name>'} (or '')",
    )


# ------------------------------------------------------------------------------------------ schema
AGGREGATE = matches(
    r'max|mean|top[1-9][0-9]*',
    "'max', 'mean' or 'top<k>' (the mean of the k best crops, e.g. 'top3')",
    ('max', 'mean', 'top3'),
)
FORMAT_SOURCES = ('annotation_folder', 'attribute_csv', 'partial_json')
DATA_SOURCES = ('digit_scenes', 'json', 'folder', 'tfds') + FORMAT_SOURCES
MODEL_NAMES = (
    'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnet_tiny', 'resnet_small',
    'vgg16', 'vgg16_bn', 'inception_v3', 'efficientnet_b0',
)  # fmt: skip
LOSSES = ('softmax_ce', 'sigmoid_bce', 'soft_ce')
SINGLE_POSITIVE_LOSSES = ('an', 'an_ls', 'wan', 'epr', 'em', 'em_apl', 'll_r', 'll_ct', 'll_cp')
LABEL_REWRITING_LOSSES = ('em_apl', 'll_cp')  # single-positive kinds that rewrite their stored labels
IMAGENET_SETS = ('real', 'multilabel', 'v2')
CONFIDENCES = ('naive', 'mc_dropout', 'mc_dropout_full', 'mc_perturbation')
CROP_KINDS = ('random', 'fixed', 'grid', 'full', 'proposals')
ASSIGN_METHODS = ('gmm', 'threshold', 'topk', 'calibrated')
TRUTH_FREE_METRICS = (
    'val_top1', 'val_top5', 'val_given_map', 'heldout_pu_score', 'heldout_given_recall', 'heldout_mixture_f1',
)  # fmt: skip
UNCERTAINTIES = ('std', 'mutual_information', 'entropy')
PARTIAL_MODES = ('negative', 'ignore', 'ignore_normalize_classes', 'selective')
MILE_SCHEMAS = ('softmax', 'sigmoid', 'mile')
FRACTION = number(0, 1)
NONNEGATIVE = number(0)
POSITIVE = number(0, lo_open=True)


@dataclasses.dataclass(frozen=True)
class Field:
    """A config field's default, its `Check` and, in one line, what it does (docs/config.md shows them)."""

    default: Any
    check: Check
    doc: str


F = Field

# Every config field: its default, its check and, in one line, what it does. A recipe (configs/*.py) sets only
# what it decides; `complete` fills in the rest from here, before --config.x=y overrides apply. docs/config.md is
# generated from this table: `python -m mlrelabel.config.reference --write` after a change.
FIELDS: dict[str, Field] = {
    'method': F(
        'supervised', text(), 'the method module run (mlrelabel/methods/<method>.py; rules check the name)'
    ),
    'seed': F(0, integer(0), 'training seed: inits, data order, dropout and augmentation keys'),
    'compile_cache': F(
        '~/.cache/mlrelabel/xla',
        text(),
        "compiled XLA programs are reused by reruns, resumes and later rounds ('' = no cache); never "
        "changes results",
    ),
    # data: what is read, and how
    'data.source': F('digit_scenes', one_of(*DATA_SOURCES), 'where images and given labels come from'),
    'data.num_classes': F(
        0, integer(0), "classes; 0 = from the data (label file's class list, folders, largest label + 1)"
    ),
    'data.seed': F(0, integer(0), 'data composition seed (separate from the training seed)'),
    'data.image_size': F(
        0, integer(0), 'square side in pixels; 0 = from the data (mlrelabel/data/inspect.py)'
    ),
    'data.max_image_size': F(
        0, integer(0), 'cap of the data-driven image size (0 = by the number of training images)'
    ),
    'data.train_labels': F(
        'visible', one_of('visible', 'full'), 'digit scenes: train on the visible label or all'
    ),
    'data.val_given': F(
        'single', one_of('single', 'full'), 'digit scenes: validation given one label or all'
    ),
    'data.given_noise': F(
        0.0, number(0, 1, hi_open=True), 'digit scenes: fraction of wrong given training labels'
    ),
    'data.num_train': F(3000, integer(0), 'training images (digit scenes; ImageNet: > 0 = a seeded subset)'),
    'data.num_val': F(1000, integer(0), 'validation images (digit scenes; ImageNet: > 0 = a seeded subset)'),
    'data.num_test': F(0, integer(0), 'digit scenes: test images (0 = no test split)'),
    'data.layout': F(
        'scenes', one_of('scenes', 'grid'), 'digit scenes: 1-4 digits at random places | 3x3 grid (MILe)'
    ),
    'data.min_digits': F(1, integer(1), 'digit scenes: fewest digits per image'),
    'data.max_digits': F(4, integer(1), 'digit scenes: most digits per image'),
    'data.min_scale': F(12, integer(2), 'digit scenes: smallest digit side in pixels'),
    'data.max_scale': F(20, integer(2), 'digit scenes: largest digit side in pixels'),
    'data.visible': F('largest', one_of('largest', 'random'), 'digit scenes: which digit is the given label'),
    'data.train_json': F('', existing('file'), "source 'json': CS570 label file of the training images"),
    'data.val_json': F('', existing('file'), "source 'json': CS570 label file of the validation images"),
    'data.root': F('', existing('dir'), "resolves relative img_path values ('' = the label file's folder)"),
    'data.loader_workers': F(
        0, integer(0), '> 0: decode in this many grain worker processes (large JPEG sets)'
    ),
    'data.loader_threads': F(0, integer(0), "batches each loader process builds at once (0 = grain's 16)"),
    'data.host_augment': F(False, boolean(), 'random-resized-crop + flip in the loader instead of on device'),
    'data.tfds_name': F('imagenet2012', matches(r'\S+', 'a TFDS dataset name'), "source 'tfds': the dataset"),
    'data.tfds_data_dir': F('', existing('dir'), "source 'tfds': its data folder ('' = TFDS's default)"),
    'data.val_labels': F(
        '', existing('file'), "source 'folder': flat val/ labels ('' = TFDS validation_labels.txt)"
    ),
    'data.real_json': F(
        '', existing('file'), 'ReaL label sets of the validation images (the evaluation truth)'
    ),
    'data.synthetic': F(False, boolean(), "source 'folder' without a root: generate a tiny one (smoke runs)"),
    'data.train_path': F(
        '', existing('path'), 'annotation folder / attribute CSV / partial JSON of the training split'
    ),
    'data.val_path': F(
        '', existing('path'), "the same for validation ('' = hold out val_fraction of train_path)"
    ),
    'data.val_fraction': F(
        0.2, number(0, 1, lo_open=True, hi_open=True), "held-out share when val_path is ''"
    ),
    'data.images_dir': F(
        '', existing('dir'), "attribute CSV: folder of the `filename`s ('' = <csv folder>/images)"
    ),
    'data.attribute_groups': F('', text(), "attribute CSV: 'neck:7,sleeve_length:4' ('' = every column)"),
    'data.unlisted': F(
        'negative', one_of('negative', 'unknown'), "annotation folder: an unlisted image's label"
    ),
    'data.allow_overlap': F(
        False, boolean(), 'True: images in both train and val (same path or bytes) warn, not stop'
    ),
    'data.check_images': F(True, boolean(), 'open every image once; unreadable ones are skipped and counted'),
    'data.mean': F((), empty_or(numbers(3)), 'per-channel mean of [0, 1] pixels; () = measured on the data'),
    'data.std': F((), empty_or(numbers(3, 0, lo_open=True)), 'per-channel std; () = measured on the data'),
    # model
    'model.name': F(
        'auto', one_of('auto', *MODEL_NAMES), "the ResNet; 'auto' = by image size (data/inspect.py)"
    ),
    'model.width': F(
        0, integer(0), "stem channels; 0 = the network's own (64 torchvision, 16 small presets)"
    ),
    'model.small_stem': F(
        True, boolean(), "3x3 stem without max-pool (small images); set by model.name='auto'"
    ),
    'model.stem_stride': F(
        2, integer(0), "stride of the stem conv (0 = the stem's own: 1 small, 2 ImageNet)"
    ),
    'model.dropout_rate': F(
        0.0, number(0, 1, hi_open=True), 'dropout before the classifier (MC dropout needs it)'
    ),
    'model.dtype': F('float32', one_of('float32', 'bfloat16'), 'compute dtype (params stay float32)'),
    'model.pretrained': F(
        '',
        existing('file', 'torchvision:'),
        "torchvision ResNet weights to start from: a .pth/.pt/.npz file or 'torchvision:<name>'",
    ),
    'model.freeze_backbone': F(False, boolean(), 'train the classifier only'),
    'model.backbone_lr_scale': F(1.0, NONNEGATIVE, 'backbone learning rate = optim.learning_rate * this'),
    # train
    'train.epochs': F(10, integer(1), 'training epochs (relabel: of round 0)'),
    'train.min_steps': F(
        0, integer(0), '> 0: epochs are raised so that training takes at least this many steps'
    ),
    'train.batch_size': F(64, integer(1), 'images per training step (a multiple of the device count)'),
    'train.loss': F('softmax_ce', one_of(*LOSSES, *SINGLE_POSITIVE_LOSSES), 'or a single-positive loss'),
    'train.label_smoothing': F(0.0, FRACTION, 'softmax_ce only'),
    # Hyper-parameters of the single-positive losses (mlrelabel/losses/single_positive.py); each names the kinds using it.
    'train.single_positive.log_eps': F(
        1e-05, number(0, 1), 'every kind: L(q) = -log(q + log_eps); 0 = exact'
    ),
    'train.single_positive.label_smoothing': F(0.1, number(0, 1, hi_open=True), 'an_ls'),
    'train.single_positive.gamma': F(0.0, NONNEGATIVE, 'wan: weight of unobserved entries (0 = 1/(C-1))'),
    'train.single_positive.expected_positives': F(0.0, NONNEGATIVE, 'epr: positives per image (required)'),
    'train.single_positive.alpha': F(
        0.1, NONNEGATIVE, "em, em_apl: weight of the unobserved entries' entropy"
    ),
    'train.single_positive.beta': F(1.0, NONNEGATIVE, 'em_apl: weight of the soft pseudo-negatives'),
    'train.single_positive.warmup_epochs': F(
        3, integer(1), 'em_apl: first epoch (1-based) choosing pseudo-labels'
    ),
    'train.single_positive.neg_proportion': F(
        0.9, FRACTION, 'em_apl: share of unobserved entries pseudo-labelled'
    ),
    'train.single_positive.rejection_rate': F(
        0.0, number(0, 1, hi_open=True), "ll_*: first epoch's rejection rate"
    ),
    'train.single_positive.delta_rel': F(0.002, number(0, 1, hi_open=True), 'll_*: its growth per epoch'),
    'train.augment.enabled': F(True, boolean(), 'random-resized-crop (+ flip) on device'),
    'train.augment.scale': F(
        (0.6, 1.0), empty_or(pair(0, 1, lo_open=True)), 'crop area range; () = by the data'
    ),
    'train.augment.ratio': F((0.75, 1.3333333333333333), pair(0, lo_open=True), 'crop aspect-ratio range'),
    'train.augment.flip': F(False, boolean(), 'horizontal flips (off: digits are not mirror-symmetric)'),
    'train.augment.mixup': F(
        0.0, number(0), '> 0: mixup Beta(a, a) (benchmarks/history/methods.md: mixup on photo scenes)'
    ),
    'train.augment.zoom_out': F(
        0.0,
        number(0, 1, hi_open=True),
        '> 0: shrink crops onto a canvas (benchmarks/history/methods.md: Zoom-out)',
    ),
    'train.augment.zoom_out_prob': F(0.5, FRACTION, 'probability of a zoom-out per example'),
    'train.checkpoint_every_steps': F(
        50, integer(0), 'checkpoint this often, and at every epoch end (see checkpoint_every_seconds)'
    ),
    'train.checkpoint_every_seconds': F(
        30.0, number(0), 'no checkpoint sooner than this after the last (BENCHMARKS.md: Config defaults)'
    ),
    'train.log_every_steps': F(10, integer(1), 'training log and TensorBoard interval'),
    'train.eval_every_epochs': F(1, integer(0), 'validation interval (0 = only at the end of each phase)'),
    # optim
    'optim.name': F('adamw', one_of('sgd', 'adamw'), 'optimizer'),
    'optim.learning_rate': F(0.003, POSITIVE, 'peak learning rate'),
    'optim.lr_base_batch': F(0, integer(0), '> 0: lr scaled by batch_size / lr_base_batch'),
    'optim.momentum': F(0.9, number(0, 1, hi_open=True), 'sgd momentum'),
    'optim.nesterov': F(True, boolean(), 'sgd: Nesterov momentum'),
    'optim.weight_decay': F(0.05, NONNEGATIVE, 'decoupled (adamw) or L2 (sgd) weight decay'),
    'optim.decay_norm_and_bias': F(False, boolean(), 'also decay norm scales and biases'),
    'optim.warmup_epochs': F(1.0, NONNEGATIVE, 'linear warm-up epochs'),
    'optim.schedule': F('cosine', one_of('cosine', 'constant'), 'learning-rate schedule after the warm-up'),
    'optim.grad_clip': F(0.0, NONNEGATIVE, '> 0: clip gradients to this global norm'),
    'optim.b1': F(0.9, number(0, 1, hi_open=True), 'adamw beta1'),
    'optim.b2': F(0.999, number(0, 1, hi_open=True), 'adamw beta2'),
    # eval
    'eval.batch_size': F(256, integer(1), 'images per evaluation batch'),
    'eval.threshold': F(0.5, FRACTION, 'predicted set = argmax and every class with p > threshold'),
    'eval.imagenet_sets': F(
        '', names_in(*IMAGENET_SETS), "extra TFDS evaluation sets after training ('' = none)"
    ),
    # relabel (the crop → confidence → label rounds; only in configs with a relabel section)
    'relabel.confidence': F(
        'mc_dropout', one_of(*CONFIDENCES), "how each crop's class probabilities are sampled"
    ),
    'relabel.num_samples': F(16, integer(1), 'T Monte-Carlo samples per crop'),
    'relabel.perturbation.flip': F(0.0, FRACTION, 'mc_perturbation: flip probability'),
    'relabel.perturbation.scale': F(0.1, number(0, 1, hi_open=True), 'mc_perturbation: zoom range'),
    'relabel.perturbation.shift': F(0.1, NONNEGATIVE, 'mc_perturbation: shift as a fraction of the side'),
    'relabel.perturbation.brightness': F(0.1, NONNEGATIVE, 'mc_perturbation: brightness jitter'),
    'relabel.perturbation.contrast': F(0.1, FRACTION, 'mc_perturbation: contrast jitter'),
    'relabel.perturbation.noise': F(0.05, NONNEGATIVE, 'mc_perturbation: Gaussian pixel noise std'),
    'relabel.crops.kind': F('grid', one_of(*CROP_KINDS), 'which crops of each image are scored'),
    'relabel.crops.num_crops': F(8, integer(1), 'random / fixed / proposals: crops per image'),
    'relabel.crops.scale': F((0.15, 0.5), pair(0, 1, lo_open=True), 'random: area fraction range'),
    'relabel.crops.ratio': F((0.75, 1.3333333333333333), pair(0, lo_open=True), 'random: aspect-ratio range'),
    'relabel.crops.size': F((0.5, 0.5), pair(0, 1, lo_open=True), 'fixed: box height, width fractions'),
    'relabel.crops.grid_scales': F(
        (1.0, 0.6, 0.45), numbers(None, 0, 1, lo_open=True), 'grid: window sides / image side'
    ),
    'relabel.crops.overlap': F(
        0.67,
        number(0, 1, hi_open=True),
        'grid: overlap of windows of one scale (benchmarks/history/label-quality.md: 42 windows instead of '
        '26)',
    ),
    'relabel.crops.proposal_box_size': F(
        0.45, number(0, 1, lo_open=True), 'proposals: box side around each peak'
    ),
    'relabel.crops.include_full_image': F(True, boolean(), 'the whole image is always one of the crops'),
    'relabel.crops.size_fraction': F(
        0.7, number(0, 4, lo_open=True), 'crops are resized to this * data.image_size'
    ),
    'relabel.crops.crop_size': F(0, integer(0), '> 0: crops are resized to this many pixels instead'),
    'relabel.aggregate': F(
        'top2',
        AGGREGATE,
        "each class's evidence from the crops (benchmarks/history/label-quality.md: The mean of the two "
        "best crops)",
    ),
    'relabel.evidence': F(
        'mean', one_of('mean', 'last'), "log-odds averaged over the rounds so far | this round's"
    ),
    'relabel.assign': F('gmm', one_of(*ASSIGN_METHODS), 'how labels are assigned from the evidence'),
    'relabel.threshold': F(0.5, number(0, 1, lo_open=True, hi_open=True), "'threshold': global probability"),
    'relabel.topk': F(2, integer(1), "'topk': labels per image"),
    'relabel.min_conf': F(0.0, FRACTION, "'topk': ignore classes below this probability"),
    'relabel.gmm_min_posterior': F(
        0.9,
        number(0, 1, lo_open=True, hi_open=True),
        "'gmm': posterior for a label (benchmarks/history/label-quality.md: Posterior 0.9, positive floor "
        "0.05)",
    ),
    'relabel.gmm_max_samples': F(20000, integer(1), "'gmm': images sampled per class fit"),
    'relabel.gmm_min_separation': F(
        1.0, NONNEGATIVE, "'gmm': a class whose modes overlap more adds no label"
    ),
    'relabel.positive_floor': F(
        0.05, number(0, 1, hi_open=True), "'gmm': evidence quantile of held-out positives (keep < 0.25)"
    ),
    'relabel.uncertainty': F('std', one_of(*UNCERTAINTIES), "uncertainty filter's measure"),
    'relabel.max_uncertainty': F(0.0, NONNEGATIVE, 'drop assignments above this uncertainty (0 = no filter)'),
    'relabel.keep_given': F(True, boolean(), 'the given label is always kept'),
    'relabel.max_labels': F(0, integer(0), 'cap on labels per image (0 = no cap)'),
    'relabel.exclusive_groups': F(
        True, boolean(), 'attribute groups: at most one value per group, given first'
    ),
    'relabel.record_topk': F(20, integer(0), 'evidence kept per image: the top-k classes (0 = all C)'),
    'relabel.batch_size': F(64, integer(1), 'images per relabel batch (a multiple of the device count)'),
    'relabel.save_every_batches': F(50, integer(1), 'relabel progress is checkpointed this often'),
    'relabel.loss': F(
        'sigmoid_bce',
        one_of(*LOSSES, *(k for k in SINGLE_POSITIVE_LOSSES if k not in LABEL_REWRITING_LOSSES)),
        'loss of the relabel rounds on multi-hot targets; single-positive kinds see left-out classes as '
        'unobserved',
    ),
    'relabel.warm_start': F(True, boolean(), "start round k from round k-1's weights (else a fresh init)"),
    'relabel.round0_models': F(
        0,
        integer(0),
        'round-0 models averaged for round 1; 0 = by the data (benchmarks/history/label-quality.md: Three '
        'round-0 models)',
    ),
    'relabel.round0_models_min_top1': F(
        0.5,
        FRACTION,
        'more round-0 models are trained only when the first reached this val top-1 (0 = always)',
    ),
    'relabel.round0_checkpoint': F(
        '',
        Check(
            lambda v: isinstance(v, str) and (not v or v.startswith('torchvision:') or os.path.exists(v)),
            "'' or an existing run directory, round folder, Orbax checkpoint folder or weights file, or "
            "'torchvision:<name>'",
        ),
        "a model that replaces round 0's training and scores round 1's crops: a run directory, round "
        "folder, Orbax checkpoint folder, torchvision weights (.pth/.npz) or 'torchvision:<name>' ('' = train round 0)",
    ),
    'relabel.fresh_rounds': F(
        2,
        integer(0),
        'rounds 1..k start from a new init (benchmarks/history/label-quality.md: Two fresh rounds)',
    ),
    'relabel.fresh_epochs': F(
        0, integer(0), 'epochs of a fresh round (0 = train.epochs); set from fresh_min_steps'
    ),
    'relabel.fresh_min_steps': F(1200, integer(0), '> 0: a fresh round trains at least this many steps'),
    'relabel.extend_underfit_round0': F(
        True,
        boolean(),
        'an under-trained round 0 trains once more (benchmarks/history/label-quality.md: Round 0 sometimes '
        'learns late)',
    ),
    'relabel.epochs': F(
        6, integer(0), 'epochs of warm rounds (0 = train.epochs); raised to relabel.min_steps'
    ),
    'relabel.min_steps': F(300, integer(0), '> 0: warm rounds train at least this many steps'),
    # Which round is the output and when to stop, without multi-label truth (mlrelabel/relabel/select.py).
    'relabel.metric': F(
        'heldout_mixture_f1',
        one_of(*TRUTH_FREE_METRICS),
        'chooses rounds (benchmarks/history/label-quality.md: Round choice by the held-out mixture F1)',
    ),
    'relabel.tolerance': F(
        0.0,
        number(0, 1, hi_open=True),
        'stop once `metric` stays this fraction below its best (BENCHMARKS.md: Main job time)',
    ),
    'relabel.choose_tolerance': F(
        0.0,
        FRACTION,
        'output: the latest round within this of the best (benchmarks/history/label-quality.md: The best '
        'round)',
    ),
    'relabel.round1_margin': F(
        0.02,
        NONNEGATIVE,
        'round 1 is the output only with this lead (benchmarks/history/label-quality.md: Round 1 needs a '
        'clear lead)',
    ),
    'relabel.patience': F(
        1, integer(1), 'rounds below the best (by `tolerance`) before stopping (BENCHMARKS.md: Main job time)'
    ),
    'relabel.stop_from_round': F(
        4,
        integer(0),
        'the stop rule applies from this round on, round 1 no reference (0: any round; BENCHMARKS.md: Main job '
        'time)',
    ),
    'relabel.stable_fraction': F(
        0.01, FRACTION, 'also stop when fewer images than this fraction changed labels'
    ),
    'relabel.train_last_round': F(
        False,
        boolean(),
        'also train the model of a last round that is not the output (BENCHMARKS.md: Main job time)',
    ),
    'relabel.max_rounds': F(
        6, integer(0), 'relabel rounds after round 0 (benchmarks/history/label-quality.md: Six rounds)'
    ),
    'relabel.control': F(
        False, boolean(), 'also train round 1 on the given labels: an A/B gate of the labels'
    ),
    'relabel.gate_metric': F(
        'val_top1', one_of(*TRUTH_FREE_METRICS), 'control: the metric round 1 must win on'
    ),
    'relabel.min_delta': F(0.0, NONNEGATIVE, 'control: by more than this'),
    'relabel.review': F(
        True, boolean(), 'write review.csv / review.png of the additions and suspect given labels'
    ),
    'relabel.decisions': F(
        '', existing('file'), 'review decisions (mlrelabel-review): labels kept or never added'
    ),
    # relabel_maps (ReLabel; only in configs with a relabel_maps section)
    'relabel_maps.teacher_workdir': F(
        '', existing('dir'), "a finished run whose final model teaches ('' = train one)"
    ),
    'relabel_maps.teacher_recipe': F(
        '', text(), "relabel recipe run first as teacher ('' = a single-label teacher)"
    ),
    'relabel_maps.teacher_epochs': F(0, integer(0), 'epochs of a single-label teacher (0 = train.epochs)'),
    'relabel_maps.teacher_loss': F('softmax_ce', one_of(*LOSSES), 'loss of a single-label teacher'),
    'relabel_maps.teacher_image_size': F(0, integer(0), "teacher's input side (0 = data.image_size)"),
    'relabel_maps.store': F(
        '', existing('dir'), "an existing label-map store (e.g. imported maps; '' = generate)"
    ),
    'relabel_maps.map_size': F(5, integer(1), 'maps are resized to map_size x map_size before the top-k'),
    'relabel_maps.topk': F(5, integer(1), 'classes kept per map location'),
    'relabel_maps.batch_size': F(64, integer(1), 'images per map-generation batch'),
    'relabel_maps.shard_size': F(1024, integer(1), 'images per store shard file'),
    'relabel_maps.transpose_boxes': F(
        False, boolean(), "pool (x0, y0, x1, y1) as ReLabel's released code does"
    ),
    'relabel_maps.offset': F(0.5, number(), "RoIAlign coordinate shift (ReLabel's released code: 0.5)"),
    'relabel_maps.cutmix': F(False, boolean(), 'CutMix with region-pooled targets'),
    'relabel_maps.cutmix_alpha': F(1.0, POSITIVE, 'lam ~ Beta(alpha, alpha)'),
    'relabel_maps.cutmix_prob': F(
        0.5,
        FRACTION,
        "probability that an example is mixed (benchmarks/history/methods.md: ReLabel's teacher)",
    ),
    'relabel_maps.cutmix_off_epochs': F(5, integer(0), 'no CutMix during the last N epochs'),
    # partial labels (only in configs with a partial section)
    'partial.mode': F('selective', one_of(*PARTIAL_MODES), 'how unknown label entries are treated'),
    'partial.head': F(
        'sigmoid', one_of('sigmoid', 'group_softmax'), 'flat sigmoid | one softmax per attribute group'
    ),
    'partial.simulate': F(
        'rps', one_of('rps', 'fpc', 'none'), 'built-in data: partial labels from the hidden truth'
    ),
    'partial.rps_drop': F(0.5, FRACTION, 'rps: probability that an entry is unknown'),
    'partial.fpc_per_class': F(100, integer(1), 'fpc: annotated positives and negatives per class'),
    'partial.simulate_seed': F(0, integer(0), 'seed of the simulated partial labels'),
    'partial.gamma_pos': F(0.0, NONNEGATIVE, 'ASL focusing power of positives'),
    'partial.gamma_neg': F(1.0, NONNEGATIVE, 'ASL focusing power of negatives'),
    'partial.gamma_unann': F(2.0, NONNEGATIVE, 'ASL focusing power of unknowns'),
    'partial.clip': F(0.0, number(0, 1, hi_open=True), 'ASL probability shift of negatives'),
    'partial.alpha_pos': F(1.0, NONNEGATIVE, 'weight of positives'),
    'partial.alpha_neg': F(1.0, NONNEGATIVE, 'weight of negatives'),
    'partial.alpha_unann': F(1.0, NONNEGATIVE, 'weight of unknowns'),
    'partial.likelihood_topk': F(
        2, integer(0), 'selective: unknowns ignored per image (k * batch over the batch)'
    ),
    'partial.prior_threshold': F(
        0.3, FRACTION, 'selective: unknowns of classes with a higher prior are ignored'
    ),
    'partial.prior_epochs': F(
        0, integer(0), 'selective: epochs of the prior phase, part of train.epochs (0 = none)'
    ),
    'partial.prior_warm_start': F(True, boolean(), "the main phase continues from the prior phase's weights"),
    'partial.prior_path': F('', existing('file'), 'a Classes,avg_pred CSV: skips the prior phase'),
    'partial.balanced_sampling': F(False, boolean(), 'class-balanced sampling of training images'),
    # MILe (only in configs with a mile section)
    'mile.schema': F(
        'mile', one_of(*MILE_SCHEMAS), "softmax / sigmoid baselines or MILe's teacher-student rounds"
    ),
    'mile.k_t': F(20, integer(1), 'interactive phase: teacher steps on the given labels per generation'),
    'mile.k_s': F(20, integer(1), "imitation phase: student steps on the teacher's binary predictions"),
    'mile.rho': F(0.25, FRACTION, 'pseudo-label threshold on sigmoid probabilities'),
    'mile.or_given': F(True, boolean(), 'keep the given label among the pseudo-labels (without: collapse)'),
    'mile.sample': F(False, boolean(), 'Bernoulli(p) pseudo-labels instead of p > rho'),
    'mile.student_init': F('teacher', one_of('teacher', 'persist'), 'each imitation phase starts from'),
    'mile.burn_in': F(
        0.3, number(0, 1, hi_open=True), 'share of the updates lengthening the first teacher phase'
    ),
    'mile.select_metric': F(
        'val_given_map', one_of('val_given_map', 'val_top1', 'val_top5'), 'teacher or student'
    ),
    'mile.lr_schedule': F('run', one_of('run', 'own'), "one schedule over the run's steps | one per network"),
    # parallel, report
    'parallel.num_devices': F(0, integer(0), 'devices used (0 = all)'),
    'parallel.cpu_devices': F(
        2, integer(0), 'without an accelerator: JAX CPU devices (BENCHMARKS.md: Config defaults)'
    ),
    'parallel.coordinator_address': F('', text(), 'multi-host: host:port of process 0'),
    'parallel.num_processes': F(1, integer(1), 'multi-host: number of processes'),
    'parallel.process_id': F(0, integer(0), 'multi-host: this process'),
    'report.num_examples': F(16, integer(0), 'images drawn in the examples PNG'),
}

SCHEMA: dict[str, Check] = {field: f.check for field, f in FIELDS.items()}
# Sections of one method each: filled in only where a config has the section (its recipe creates it).
METHOD_SECTIONS = ('relabel', 'relabel_maps', 'partial', 'mile')
# Fields added after runs were made, with the value that behaves as the code before them did: `migrate` gives a
# saved config.json that lacks one this value (not the default), so an old run opens and resumes as it ran.
ADDED_FIELDS = {
    'train.augment.mixup': 0.0,
    'train.augment.zoom_out': 0.0,
    'train.augment.zoom_out_prob': 0.5,
    'relabel.round0_models': 1,
    'relabel.round0_models_min_top1': 0.0,
    'relabel.round0_checkpoint': '',
    'relabel.decisions': '',
    'relabel.round1_margin': 0.0,
    'relabel_maps.teacher_recipe': '',
    'data.allow_overlap': False,
}

MISSING = object()


def get(config, field: str, default: Any = MISSING) -> Any:
    """The value at dotted `field` of a ConfigDict / dict, or `default` when a part is absent."""
    node = config
    for part in field.split('.'):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError):
            return default
    return node


def _section_present(config, field: str) -> bool:
    section = field.split('.', 1)[0]
    return section not in METHOD_SECTIONS or section in config


def _set_absent(config, field: str, value: Any) -> None:
    """Sets dotted `field` of a ConfigDict to `value` unless it is there, creating sub-sections."""
    import ml_collections

    *parents, leaf = field.split('.')
    node = config
    for part in parents:
        if part not in node:
            node[part] = ml_collections.ConfigDict()
        node = node[part]
    if leaf not in node:
        node[leaf] = value


def defaults(*names: str):
    """A ConfigDict of the named fields at their defaults; a section name ('partial', 'relabel.crops') stands for
    every field under it."""
    import ml_collections

    config = ml_collections.ConfigDict()
    for name in names:
        chosen = [f for f in FIELDS if f == name or f.startswith(name + '.')]
        if not chosen:
            raise ValueError(f'defaults: no config field or section {name!r}')
        for field in chosen:
            _set_absent(config, field, FIELDS[field].default)
    return config


def complete(config):
    """Fills in every schema field that `config` (a ConfigDict) lacks with its default, in place; returns it.

    Fields of a method section (`METHOD_SECTIONS`) are filled in only where the config has that section. Run
    before command-line overrides apply, so that `--config.relabel.crops.kind=random` works on a recipe that
    does not list the field. Idempotent: present fields are never changed.
    """
    with config.unlocked():
        for field, f in FIELDS.items():
            if _section_present(config, field):
                _set_absent(config, field, f.default)
    return config


def migrate(saved: dict):
    """A run's saved config (config.json of any earlier version) as this version's ConfigDict: the one place
    old runs are brought up to date. Fields added since take `ADDED_FIELDS`'s value (how the code behaved
    before them), the rest their default."""
    import ml_collections

    config = ml_collections.ConfigDict(saved)
    for field, value in ADDED_FIELDS.items():
        if _section_present(config, field) and get(config, field) is MISSING:
            _set_absent(config, field, value)
    return complete(config)
