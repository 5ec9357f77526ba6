"""Config validation: every field against its schema, cross-field rules, all problems at once, before any work."""

import glob
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from mlrelabel import validation
from mlrelabel.config import base_config, relabel_config
from mlrelabel.config import schema as S
from mlrelabel.errors import ConfigError
from mlrelabel.ops import boxes
from mlrelabel.validation import problems, validate_config
from tests.helpers import ROOT, recipe

# Recipes whose defaults need the user's data (ImageNet folders, label files): only those fields may be reported.
NEEDS_DATA = {
    'mile_imagenet.py': {'data.root'},
    'relabel_maps_imagenet.py': {'data.train_json', 'data.val_json'},
}
if importlib.util.find_spec('torch') is None:  # torchvision's published weights are PyTorch files
    NEEDS_DATA['cs570_imagenet.py'] = {'relabel.round0_checkpoint'}


def _recipe(name, variant):
    return recipe(name, variant)


@pytest.mark.parametrize(
    'name', sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'configs', '*.py')))
)
def test_every_recipe_and_variant_is_valid(name):
    for variant in ('', 'smoke'):
        found = problems(_recipe(name, variant), devices=1)
        named = {p.split('=')[0].removeprefix('config.') for p in found}
        assert named <= NEEDS_DATA.get(name, set()), (variant, found)


# (field, bad value, words the message must hold besides the field and the value)
MISTAKES = [
    ('relabel.confidence', 'mc_dropot', "did you mean 'mc_dropout'"),
    ('relabel.crops.kind', 'gird', "did you mean 'grid'"),
    ('relabel.aggregate', 'avg', "'max', 'mean' or 'top<k>'"),
    ('relabel.aggregate', 'top0', "'top<k>'"),
    ('relabel.assign', 'calib', "'gmm', 'threshold'"),
    ('relabel.loss', 'bce', "'sigmoid_bce'"),
    ('relabel.uncertainty', 'variance', "'std'"),
    ('relabel.metric', 'val_f1', "'val_top1'"),  # multi-label truth may score a run, never choose a round
    ('relabel.num_samples', 0, 'an integer >= 1'),
    ('relabel.batch_size', 0, 'an integer >= 1'),
    ('relabel.max_rounds', -1, 'an integer >= 0'),
    ('relabel.crops.scale', (0.5, 0.2), 'low <= high'),
    ('relabel.crops.grid_scales', (1.0, 1.5), 'in (0, 1]'),
    ('relabel.perturbation.flip', 1.5, 'in [0, 1]'),
    ('train.epochs', 0, 'an integer >= 1'),
    ('train.batch_size', -8, 'an integer >= 1'),
    ('train.loss', 'cross_entropy', "'softmax_ce'"),
    ('train.label_smoothing', 1.5, 'in [0, 1]'),
    ('train.augment.scale', (0.0, 1.0), 'in (0, 1]'),
    ('optim.learning_rate', -0.1, 'a number > 0'),
    ('optim.learning_rate', 0.0, 'a number > 0'),
    ('optim.name', 'adam', "did you mean 'adamw'"),
    ('optim.schedule', 'linear', "'cosine', 'constant'"),
    ('optim.momentum', 1.0, 'in [0, 1)'),
    ('optim.warmup_epochs', -1.0, '>= 0'),
    ('eval.batch_size', 0, 'an integer >= 1'),
    ('eval.threshold', 2.0, 'in [0, 1]'),
    ('eval.imagenet_sets', 'real,v3', "did you mean 'v2'"),
    ('model.name', 'resnet9', "'resnet18'"),
    ('model.dtype', 'float16', "'float32', 'bfloat16'"),
    ('model.dropout_rate', 1.0, 'in [0, 1)'),
    ('data.source', 'jsn', "did you mean 'json'"),
    ('data.layout', 'grids', "did you mean 'grid'"),
    ('data.std', (0.25, 0.0, 0.25), '3 numbers, each > 0'),
    ('data.image_size', -1, 'an integer >= 0'),
    ('parallel.num_devices', -1, 'an integer >= 0'),
    ('report.num_examples', -1, 'an integer >= 0'),
]


@pytest.mark.parametrize('field,value,words', MISTAKES, ids=[f'{f}={v}' for f, v, _ in MISTAKES])
def test_each_mistake_names_the_field_the_value_and_what_is_allowed(field, value, words):
    config = relabel_config('smoke')
    *parents, last = field.split('.')
    node = config
    for p in parents:
        node = node[p]
    with config.unlocked():
        node[last] = value
    found = [p for p in problems(config) if p.startswith(f'config.{field}={value!r}')]
    assert found, problems(config)
    assert words in found[0], found[0]


def test_all_problems_are_reported_at_once_one_per_line():
    config = relabel_config('smoke')
    config.relabel.crops.kind = 'gird'
    config.train.epochs = 0
    config.optim.learning_rate = -1.0
    config.relabel.max_rounds = -1
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    lines = str(info.value).splitlines()
    assert lines[0].startswith('4 problems in the config')
    for field in ('relabel.crops.kind', 'train.epochs', 'optim.learning_rate', 'relabel.max_rounds'):
        assert sum(f'config.{field}=' in line for line in lines[1:]) == 1, field
    assert isinstance(info.value, ValueError) and len(info.value.problems) == 4


def test_fields_outside_the_schema_are_accepted_but_unknown_values_are_not():
    config = relabel_config('smoke')
    with config.unlocked():
        config.relabel.evidence_source = 'crops'  # a field added later: not an error
        config.data.val_single_label = True
    assert problems(config, devices=1) == []
    del config.relabel['aggregate']  # a field a recipe does not have is skipped
    assert problems(config, devices=1) == []


def test_enumerations_equal_their_sources_of_truth():
    from mlrelabel import losses
    from mlrelabel.config import relabel_config
    from mlrelabel.losses import single_positive
    from mlrelabel.methods import common
    from mlrelabel.mile import method as mile
    from mlrelabel.mile import steps as mile_steps
    from mlrelabel.models import MODEL_NAMES
    from mlrelabel.partial import losses as partial
    from mlrelabel.relabel import confidence, score, select
    from mlrelabel.relabel import method as relabel_method

    def choices(field):
        return set(S.SCHEMA[field].choices)

    rewriting = set(single_positive.LABEL_REWRITING_KINDS)
    assert set(S.LABEL_REWRITING_LOSSES) == rewriting
    assert choices('relabel.loss') == set(losses.LOSSES) | (set(single_positive.KINDS) - rewriting)
    assert choices('train.loss') == set(losses.LOSSES) | set(single_positive.KINDS)
    assert set(S.SCHEMA) >= {f'train.single_positive.{k}' for k in relabel_config().train.single_positive}
    assert choices('model.name') == set(MODEL_NAMES) | {'auto'}
    assert choices('model.dtype') == set(common.DTYPES)
    assert choices('data.source') == {'digit_scenes', 'json'} | set(common.EXTERNAL_SOURCES)
    assert choices('eval.imagenet_sets') == set(common.IMAGENET_SETS)
    assert choices('relabel.confidence') == set(confidence.METHODS)
    assert choices('relabel.crops.kind') == set(boxes.SAMPLE_KINDS) | {'proposals'}
    assert choices('relabel.uncertainty') == set(score.UNCERTAINTIES)
    assert choices('relabel.assign') == set(relabel_method.ASSIGN_METHODS)
    assert choices('relabel.metric') == set(select.TRUTH_FREE_METRICS)
    assert choices('partial.mode') == set(partial.PARTIAL_MODES)
    assert choices('mile.schema') == set(mile.SCHEMA_LOSSES)
    assert choices('mile.student_init') == set(mile_steps.STUDENT_INITS)
    assert set(validation.available_methods()) == {'mile', 'partial', 'relabel', 'relabel_maps', 'supervised'}


def test_model_stride_matches_the_model():
    """The image-size rule's stride is the real downsampling of the configured ResNet."""
    import jax
    import jax.numpy as jnp

    from mlrelabel.methods import common
    from mlrelabel.validation.rules import model_stride

    for name, small, stem in (('resnet_tiny', True, 2), ('resnet_tiny', True, 0), ('resnet18', False, 0)):
        c = base_config('smoke')
        c.model.name, c.model.small_stem, c.model.stem_stride, c.data.image_size = name, small, stem, 64
        model = common.build_model(c, 10)
        x = jnp.zeros((1, 64, 64, 3))
        variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
        fmap = jax.eval_shape(lambda v: model.apply(v, x, method='feature_map'), variables)
        assert fmap.shape[1] == 64 // model_stride(c), (name, small, stem)


def _one(config, devices=None):
    found = problems(config, devices)
    assert len(found) == 1, found
    return found[0]


def test_label_files_without_the_json_source_are_an_error(tmp_path):
    (tmp_path / 'train.json').write_text('{"data": []}')
    config = base_config('smoke')
    config.data.train_json = str(tmp_path / 'train.json')
    message = _one(config)
    assert 'config.data.train_json=' in message and "config.data.source='digit_scenes'" in message
    config.data.source = 'json'
    config.data.num_classes = 0  # from the label files (mlrelabel/data/inspect.py): not an error
    found = problems(config)
    assert any(p.startswith("config.data.val_json=''") for p in found)
    assert not any(p.startswith('config.data.num_classes') for p in found)
    config.data.train_json = str(tmp_path / 'missing.json')
    assert any("config.data.train_json='" in p and 'an existing file' in p for p in problems(config))


def test_source_specific_fields_and_needs():
    config = base_config('smoke')
    config.data.source = 'attribute_csv'
    assert _one(config).startswith("config.data.train_path='': config.data.source='attribute_csv'")
    config.data.source = 'folder'
    assert _one(config).startswith("config.data.root='': config.data.source='folder'")
    config.data.synthetic = True
    assert problems(config) == []
    config.data.source = 'digit_scenes'
    config.data.attribute_groups = 'neck:7'
    assert 'config.data.attribute_groups=' in _one(config)


def test_image_size_must_fit_the_model():
    config = relabel_config('smoke')  # resnet_tiny, small stem, stem stride 2: downsamples by 16
    config.data.image_size = 12
    config.data.min_scale, config.data.max_scale = 6, 10
    message = _one(config)
    assert message.startswith('config.data.image_size=12') and 'downsamples by 16' in message
    config.data.image_size = 32
    config.relabel.crops.crop_size = 8
    assert _one(config).startswith('config.relabel.crops.crop_size=8')


def test_digit_scene_rules():
    config = base_config('smoke')
    config.data.num_train = 16  # fewer than one batch of 32
    assert _one(config).startswith('config.data.num_train=16 < config.train.batch_size=32')
    config.data.num_train = 256
    config.data.num_val = 0
    assert _one(config).startswith('config.data.num_val=0')
    config.data.num_val = 64
    config.data.max_scale = 40
    assert 'max_scale <= image_size' in _one(config)
    config.data.max_scale = 16
    config.data.num_classes = 5
    assert _one(config).startswith('config.data.num_classes=5: the digit scenes have 10 classes')


def test_method_rules(tmp_path):
    config = relabel_config('smoke')
    config.model.dropout_rate = 0.0
    message = _one(config)
    assert (
        "config.relabel.confidence='mc_dropout' needs dropout" in message
        and 'config.model.dropout_rate=0.0' in message
    )
    config = base_config('smoke')
    config.method = 'relabel'
    assert _one(config).startswith("config.method='relabel' needs the config.relabel section")
    config.method = 'relable'
    assert _one(config).startswith("config.method='relable': expected one of")
    config = _recipe('relabel_maps.py', 'smoke')
    config.train.loss = 'sigmoid_bce'
    assert _one(config).startswith("config.train.loss='sigmoid_bce': label-map targets")
    config.train.loss = 'soft_ce'
    config.relabel_maps.teacher_recipe = 'supervised'
    assert _one(config).startswith(
        "config.relabel_maps.teacher_recipe='supervised' is a 'supervised' recipe; expected a relabel recipe"
    )
    config.relabel_maps.teacher_recipe = 'mc_dropuot'
    assert _one(config).startswith("config.relabel_maps.teacher_recipe='mc_dropuot': no such config file")
    config.relabel_maps.teacher_recipe = 'naive:smoke'
    assert problems(config) == []
    config.relabel_maps.teacher_workdir = str(tmp_path)
    assert 'no Orbax checkpoint' in _one(config)
    (tmp_path / 'checkpoints' / '12').mkdir(parents=True)
    assert 'no config.json' in _one(config)
    (tmp_path / 'config.json').write_text('{}')
    assert problems(config) == []
    config.relabel_maps.store = str(tmp_path)
    assert 'is not used when config.relabel_maps.store' in _one(config)
    config = _recipe('partial.py', 'smoke')
    config.partial.head = 'group_softmax'
    assert _one(config).startswith("config.partial.head='group_softmax' needs attribute groups")
    config.partial.head = 'sigmoid'
    config.partial.prior_epochs = 2
    assert _one(config).startswith('config.partial.prior_epochs=2: expected < config.train.epochs=2')
    config = base_config('smoke')
    config.eval.imagenet_sets = 'real'
    assert 'evaluates ImageNet-1k classifiers' in _one(config)


def test_device_rules_run_when_the_device_count_is_known():
    config = relabel_config('smoke')
    config.relabel.batch_size = 30
    assert problems(config) == []  # before JAX: the device count is unknown
    message = _one(config, devices=4)
    assert message.startswith('config.relabel.batch_size=30: expected a multiple of the 4 devices')
    config.relabel.batch_size = 32
    config.parallel.num_devices = 8
    assert _one(config, devices=4).startswith('config.parallel.num_devices=8: only 4 devices')
    config.parallel.num_devices = 0
    config.parallel.process_id = 1
    assert _one(config, devices=4).startswith(
        'config.parallel.process_id=1: expected < config.parallel.num_processes=1'
    )


def test_main_run_stops_before_the_workdir_is_claimed(tmp_path):
    from mlrelabel import main

    config = relabel_config('smoke')
    config.relabel.crops.kind = 'gird'
    with pytest.raises(ConfigError, match=r'config\.relabel\.crops\.kind'):
        main.run(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()


def _cli(workdir, *overrides):
    command = [
        sys.executable,
        '-m',
        'mlrelabel.main',
        '--config=configs/mc_dropout.py:smoke',
        f'--workdir={workdir}',
    ]
    return subprocess.run(command + list(overrides), cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_mistakes_exit_2_naming_the_field_then_the_corrected_command_runs_in_the_same_workdir(tmp_path):
    work = tmp_path / 'run'
    for flag, field in (
        ('--config.relabel.crops.kind=gird', 'relabel.crops.kind'),
        ('--config.train.epochs=0', 'train.epochs'),
        ('--config.relabel.max_rounds=-1', 'relabel.max_rounds'),
        ('--config.optim.learning_rate=-0.1', 'optim.learning_rate'),
        (f'--config.data.train_json={tmp_path}/x.json', 'data.train_json'),
        ('--config.relabel.batch_size=0', 'relabel.batch_size'),
        ('--config.relabel.review_epochs=0', 'relabel.review_epochs'),  # no such field (it was renamed)
        ('--config.nosuch.x=1', 'nosuch.x'),
    ):
        done = _cli(work, flag)
        assert done.returncode == 2, (flag, done.stderr[-2000:])
        assert f'config.{field}=' in done.stderr, (flag, done.stderr[-2000:])
        assert 'Traceback' not in done.stderr
        assert not (work / 'config.json').exists(), flag
    done = _cli(work, '--config.relabel.max_rounds=0', '--config.train.epochs=1')
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((work / 'config.json').read_text())['relabel']['max_rounds'] == 0
