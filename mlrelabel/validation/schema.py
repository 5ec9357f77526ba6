"""The declarative part of config validation: `Check`s and `SCHEMA`, dotted field → what is allowed.

One line per field. A field absent from the config is skipped (methods have different sections); a field absent
from the schema is accepted. Enumerations are literals here (no JAX import: `main` validates before anything
heavy); tests/test_validation.py keeps them equal to their sources (losses.LOSSES, models.MODEL_NAMES, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from typing import Any, Callable

__all__ = ['Check', 'MISSING', 'SCHEMA', 'get']


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
    """'' or an existing `file`, `dir` or `path` (URLs such as gs://... are not checked), or a name `<pre>...`."""
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
MODEL_NAMES = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnet_tiny', 'resnet_small')
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

SCHEMA: dict[str, Check] = {
    'seed': integer(0),
    # data
    'data.source': one_of(*DATA_SOURCES),
    'data.num_classes': integer(0),
    'data.seed': integer(0),
    'data.image_size': integer(0),
    'data.max_image_size': integer(0),
    'data.train_labels': one_of('visible', 'full'),
    'data.val_given': one_of('single', 'full'),
    'data.given_noise': number(0, 1, hi_open=True),
    'data.num_train': integer(0),
    'data.num_val': integer(0),
    'data.num_test': integer(0),
    'data.layout': one_of('scenes', 'grid'),
    'data.min_digits': integer(1),
    'data.max_digits': integer(1),
    'data.min_scale': integer(2),
    'data.max_scale': integer(2),
    'data.visible': one_of('largest', 'random'),
    'data.train_json': existing('file'),
    'data.val_json': existing('file'),
    'data.root': existing('dir'),
    'data.loader_workers': integer(0),
    'data.host_augment': boolean(),
    'data.tfds_name': matches(r'\S+', 'a TFDS dataset name'),
    'data.tfds_data_dir': existing('dir'),
    'data.val_labels': existing('file'),
    'data.real_json': existing('file'),
    'data.synthetic': boolean(),
    'data.train_path': existing('path'),
    'data.val_path': existing('path'),
    'data.val_fraction': number(0, 1, lo_open=True, hi_open=True),
    'data.images_dir': existing('dir'),
    'data.attribute_groups': text(),
    'data.unlisted': one_of('negative', 'unknown'),
    'data.check_images': boolean(),
    'data.allow_overlap': boolean(),
    'data.mean': empty_or(numbers(3)),
    'data.std': empty_or(numbers(3, 0, lo_open=True)),
    # model
    'model.name': one_of('auto', *MODEL_NAMES),
    'model.width': integer(0),
    'model.small_stem': boolean(),
    'model.stem_stride': integer(0),
    'model.dropout_rate': number(0, 1, hi_open=True),
    'model.dtype': one_of('float32', 'bfloat16'),
    'model.pretrained': existing('file', 'torchvision:'),  # or published weights (rules.py checks the name)
    'model.freeze_backbone': boolean(),
    'model.backbone_lr_scale': NONNEGATIVE,
    # train
    'train.epochs': integer(1),
    'train.min_steps': integer(0),
    'train.batch_size': integer(1),
    'train.loss': one_of(*LOSSES, *SINGLE_POSITIVE_LOSSES),
    'train.single_positive.log_eps': number(0, 1),
    'train.single_positive.label_smoothing': number(0, 1, hi_open=True),
    'train.single_positive.gamma': NONNEGATIVE,
    'train.single_positive.expected_positives': NONNEGATIVE,
    'train.single_positive.alpha': NONNEGATIVE,
    'train.single_positive.beta': NONNEGATIVE,
    'train.single_positive.warmup_epochs': integer(1),
    'train.single_positive.neg_proportion': FRACTION,
    'train.single_positive.rejection_rate': number(0, 1, hi_open=True),
    'train.single_positive.delta_rel': number(0, 1, hi_open=True),
    'train.label_smoothing': FRACTION,
    'train.augment.enabled': boolean(),
    'train.augment.scale': empty_or(pair(0, 1, lo_open=True)),
    'train.augment.ratio': pair(0, lo_open=True),
    'train.augment.flip': boolean(),
    'train.augment.mixup': number(0),
    'train.augment.zoom_out': number(0, 1, hi_open=True),
    'train.augment.zoom_out_prob': FRACTION,
    'train.checkpoint_every_steps': integer(0),
    'train.checkpoint_every_seconds': number(0),
    'train.log_every_steps': integer(1),
    'train.eval_every_epochs': integer(0),
    # optim
    'optim.name': one_of('sgd', 'adamw'),
    'optim.learning_rate': POSITIVE,
    'optim.lr_base_batch': integer(0),
    'optim.momentum': number(0, 1, hi_open=True),
    'optim.nesterov': boolean(),
    'optim.weight_decay': NONNEGATIVE,
    'optim.warmup_epochs': NONNEGATIVE,
    'optim.schedule': one_of('cosine', 'constant'),
    'optim.grad_clip': NONNEGATIVE,
    'optim.b1': number(0, 1, hi_open=True),
    'optim.b2': number(0, 1, hi_open=True),
    'eval.batch_size': integer(1),
    'eval.threshold': FRACTION,
    'eval.imagenet_sets': names_in(*IMAGENET_SETS),
    # relabel (the crop → confidence → label rounds)
    'relabel.confidence': one_of(*CONFIDENCES),
    'relabel.num_samples': integer(1),
    'relabel.perturbation.flip': FRACTION,
    'relabel.perturbation.scale': number(0, 1, hi_open=True),
    'relabel.perturbation.shift': NONNEGATIVE,
    'relabel.perturbation.brightness': NONNEGATIVE,
    'relabel.perturbation.contrast': FRACTION,
    'relabel.perturbation.noise': NONNEGATIVE,
    'relabel.crops.kind': one_of(*CROP_KINDS),
    'relabel.crops.num_crops': integer(1),
    'relabel.crops.scale': pair(0, 1, lo_open=True),
    'relabel.crops.ratio': pair(0, lo_open=True),
    'relabel.crops.size': pair(0, 1, lo_open=True),
    'relabel.crops.grid_scales': numbers(None, 0, 1, lo_open=True),
    'relabel.crops.overlap': number(0, 1, hi_open=True),
    'relabel.crops.proposal_box_size': number(0, 1, lo_open=True),
    'relabel.crops.include_full_image': boolean(),
    'relabel.crops.crop_size': integer(0),
    'relabel.crops.size_fraction': number(0, 4, lo_open=True),
    'relabel.evidence': one_of('mean', 'last'),
    'relabel.gmm_min_separation': NONNEGATIVE,
    'relabel.positive_floor': number(0, 1, hi_open=True),
    'relabel.aggregate': AGGREGATE,
    'relabel.assign': one_of(*ASSIGN_METHODS),
    'relabel.threshold': number(0, 1, lo_open=True, hi_open=True),
    'relabel.topk': integer(1),
    'relabel.min_conf': FRACTION,
    'relabel.gmm_min_posterior': number(0, 1, lo_open=True, hi_open=True),
    'relabel.gmm_max_samples': integer(1),
    'relabel.uncertainty': one_of(*UNCERTAINTIES),
    'relabel.max_uncertainty': NONNEGATIVE,
    'relabel.keep_given': boolean(),
    'relabel.max_labels': integer(0),
    'relabel.exclusive_groups': boolean(),
    'relabel.record_topk': integer(0),
    'relabel.batch_size': integer(1),
    'relabel.save_every_batches': integer(1),
    # multi-hot targets; single-positive kinds see left-out classes as unobserved (rewriting kinds would fight them)
    'relabel.loss': one_of(*LOSSES, *(k for k in SINGLE_POSITIVE_LOSSES if k not in LABEL_REWRITING_LOSSES)),
    'relabel.warm_start': boolean(),
    'relabel.epochs': integer(0),
    # Rounds are chosen and stopped on what users have: never on multi-label truth (relabel.select).
    'relabel.metric': one_of(*TRUTH_FREE_METRICS),
    'relabel.gate_metric': one_of(*TRUTH_FREE_METRICS),
    'relabel.control': boolean(),
    'relabel.stable_fraction': FRACTION,
    'relabel.review': boolean(),
    'relabel.min_steps': integer(0),
    'relabel.round0_models': integer(0),
    'relabel.round0_checkpoint': Check(
        lambda v: isinstance(v, str) and (not v or v.startswith('torchvision:') or os.path.exists(v)),
        "'' or an existing run directory, round folder, Orbax checkpoint folder or weights file, or "
        "'torchvision:<name>'",
    ),
    'relabel.round0_models_min_top1': FRACTION,
    'relabel.decisions': existing('file'),
    'relabel.fresh_rounds': integer(0),
    'relabel.fresh_epochs': integer(0),
    'relabel.fresh_min_steps': integer(0),
    'relabel.min_delta': NONNEGATIVE,
    'relabel.patience': integer(1),
    'relabel.tolerance': number(0, 1, hi_open=True),
    'relabel.max_rounds': integer(0),
    # relabel_maps (ReLabel)
    'relabel_maps.teacher_workdir': existing('dir'),
    'relabel_maps.teacher_recipe': text(),
    'relabel_maps.teacher_epochs': integer(0),
    'relabel_maps.teacher_loss': one_of(*LOSSES),
    'relabel_maps.teacher_image_size': integer(0),
    'relabel_maps.store': existing('dir'),
    'relabel_maps.map_size': integer(1),
    'relabel_maps.topk': integer(1),
    'relabel_maps.batch_size': integer(1),
    'relabel_maps.shard_size': integer(1),
    'relabel_maps.transpose_boxes': boolean(),
    'relabel_maps.offset': number(),
    'relabel_maps.cutmix': boolean(),
    'relabel_maps.cutmix_alpha': POSITIVE,
    'relabel_maps.cutmix_prob': FRACTION,
    'relabel_maps.cutmix_off_epochs': integer(0),
    # partial labels
    'partial.mode': one_of(*PARTIAL_MODES),
    'partial.head': one_of('sigmoid', 'group_softmax'),
    'partial.simulate': one_of('rps', 'fpc', 'none'),
    'partial.rps_drop': FRACTION,
    'partial.fpc_per_class': integer(1),
    'partial.simulate_seed': integer(0),
    'partial.gamma_pos': NONNEGATIVE,
    'partial.gamma_neg': NONNEGATIVE,
    'partial.gamma_unann': NONNEGATIVE,
    'partial.clip': number(0, 1, hi_open=True),
    'partial.alpha_pos': NONNEGATIVE,
    'partial.alpha_neg': NONNEGATIVE,
    'partial.alpha_unann': NONNEGATIVE,
    'partial.likelihood_topk': integer(0),
    'partial.prior_threshold': FRACTION,
    'partial.prior_epochs': integer(0),
    'partial.prior_warm_start': boolean(),
    'partial.prior_path': existing('file'),
    'partial.balanced_sampling': boolean(),
    # MILe
    'mile.schema': one_of(*MILE_SCHEMAS),
    'mile.k_t': integer(1),
    'mile.k_s': integer(1),
    'mile.rho': FRACTION,
    'mile.or_given': boolean(),
    'mile.sample': boolean(),
    'mile.student_init': one_of('teacher', 'persist'),
    'mile.burn_in': number(0, 1, hi_open=True),
    'mile.select_metric': one_of('val_given_map', 'val_top1', 'val_top5'),
    'mile.lr_schedule': one_of('run', 'own'),
    # parallel, report
    'parallel.num_devices': integer(0),
    'parallel.cpu_devices': integer(0),
    'parallel.coordinator_address': text(),
    'parallel.num_processes': integer(1),
    'parallel.process_id': integer(0),
    'report.num_examples': integer(0),
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
