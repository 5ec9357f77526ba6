"""Cross-field rules: each `rule(config, devices) -> [problem, ...]` checks what spans several fields.

A rule names every field involved, its value and what would be consistent. Rules never raise on a value of
the wrong type (the schema reports those); `devices` is the number of visible accelerators, or None before
JAX is imported (then the device rules are skipped). Add a rule by appending a function to `RULES`.
"""

from __future__ import annotations

import importlib.util
import json
import os

from mlrelabel.config.schema import FORMAT_SOURCES, MISSING, MODEL_NAMES, get
from mlrelabel.manifest import has_steps, model_folder
from mlrelabel.models import weights  # the published-weights registry (no JAX import)

__all__ = ['RULES', 'available_methods', 'model_min_side', 'model_stride']

# config.method → the module whose `run(config, workdir)` runs it (imported by name: no heavy imports here).
METHOD_MODULES = {
    'relabel': 'mlrelabel.relabel.method',
    'relabel_maps': 'mlrelabel.label_maps.method',
    'partial': 'mlrelabel.partial.method',
    'mile': 'mlrelabel.mile.method',
    'supervised': 'mlrelabel.methods.supervised',
}
# config.method → the config section it reads.
METHOD_SECTIONS = {'relabel': 'relabel', 'relabel_maps': 'relabel_maps', 'partial': 'partial', 'mile': 'mile'}
# Fields read only by some data sources: field → those sources (anything else ignores the field).
SOURCE_FIELDS = {
    'data.train_json': ('json',),
    'data.val_json': ('json',),
    'data.root': ('json', 'folder'),
    'data.train_path': FORMAT_SOURCES,
    'data.val_path': FORMAT_SOURCES,
    'data.images_dir': ('attribute_csv',),
    'data.attribute_groups': ('attribute_csv',),
    'data.val_labels': ('folder',),
    'data.real_json': ('folder', 'tfds'),
}
# Batch sizes that are split over the devices.
BATCH_FIELDS = ('train.batch_size', 'eval.batch_size', 'relabel.batch_size', 'relabel_maps.batch_size')
# Image sides the model sees: each must be at least the model's total stride.
IMAGE_SIDES = ('data.image_size', 'relabel.crops.crop_size', 'relabel_maps.teacher_image_size')


def available_methods() -> list[str]:
    """The values `config.method` takes (`METHOD_MODULES`)."""
    return sorted(METHOD_MODULES)


def _int(config, field: str, default: int = 0) -> int:
    value = get(config, field, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _method(config, devices) -> list[str]:
    method, methods = get(config, 'method', MISSING), available_methods()
    if method not in methods:
        return [f'config.method={method!r}: expected one of {", ".join(map(repr, methods))}']
    section = METHOD_SECTIONS.get(method)
    if section and get(config, section, MISSING) is MISSING:
        return [
            f'config.method={method!r} needs the config.{section} section: start from a {method} recipe in configs/'
        ]
    return []


def _source_fields(config, devices) -> list[str]:
    """Files given to a source that does not read them are an error, not silently ignored."""
    source, out = get(config, 'data.source', None), []
    for field, sources in SOURCE_FIELDS.items():
        value = get(config, field, '')
        if value and source not in sources:
            needed = ' or '.join(f"'{s}'" for s in sources)
            out.append(
                f'config.{field}={value!r} is read only with config.data.source={needed}, but '
                f'config.data.source={source!r}: set --config.data.source or leave config.{field} empty'
            )
    return out


def _source_needs(config, devices) -> list[str]:
    """What each source cannot run without."""
    source, out = get(config, 'data.source', None), []
    if source == 'json':
        for field in ('data.train_json', 'data.val_json'):
            if not get(config, field, ''):
                out.append(f"config.{field}='': config.data.source='json' needs a CS570 label file here")
    if source in FORMAT_SOURCES and not get(config, 'data.train_path', ''):
        out.append(f"config.data.train_path='': config.data.source={source!r} needs the training annotations")
    if source == 'attribute_csv' and get(config, 'data.attribute_groups', ''):
        from mlrelabel.data.formats import parse_groups

        try:
            parse_groups(get(config, 'data.attribute_groups'))
        except (ValueError, AttributeError) as e:
            out.append(f'config.data.attribute_groups: {e}')
    if source == 'folder' and not get(config, 'data.root', '') and not get(config, 'data.synthetic', False):
        out.append(
            "config.data.root='': config.data.source='folder' needs an ImageNet-layout folder "
            '(train/<wnid>/*.JPEG and val/)'
        )
    return out


def _digit_scenes(config, devices) -> list[str]:
    if get(config, 'data.source', None) != 'digit_scenes':
        return []
    out = []
    size = _int(config, 'data.image_size') or 40  # 0 = the generator's own size
    if get(config, 'data.layout', 'scenes') == 'scenes':
        lo, hi = _int(config, 'data.min_digits', 1), _int(config, 'data.max_digits', 1)
        if lo > hi:
            out.append(f'config.data.min_digits={lo} > config.data.max_digits={hi}: expected min <= max')
        lo, hi = _int(config, 'data.min_scale', 2), _int(config, 'data.max_scale', 2)
        if not lo <= hi <= size:
            out.append(
                f'config.data.min_scale={lo}, config.data.max_scale={hi}, config.data.image_size={size}: '
                'expected min_scale <= max_scale <= image_size'
            )
    elif size < 6:
        out.append(f"config.data.image_size={size}: config.data.layout='grid' needs >= 6 (a 3x3 grid)")
    for field in ('data.num_train', 'data.num_val'):
        if _int(config, field, 1) < 1:
            out.append(
                f'config.{field}={get(config, field)!r}: the digit scenes need >= 1 image in this split'
            )
    n, batch = _int(config, 'data.num_train', 1), _int(config, 'train.batch_size', 1)
    if 0 < n < batch:
        out.append(
            f'config.data.num_train={n} < config.train.batch_size={batch}: an epoch needs at least one full batch'
        )
    classes = get(config, 'data.num_classes', 10)
    if classes not in (0, 10):
        out.append(f'config.data.num_classes={classes!r}: the digit scenes have 10 classes')
    return out


# The networks other than the ResNets keep torchvision's stems: (total stride, smallest image side they run at).
_FIXED_STEMS = {
    'vgg16': (32, 32),
    'vgg16_bn': (32, 32),
    'inception_v3': (32, 75),
    'efficientnet_b0': (32, 32),
}


def model_stride(config) -> int:
    """The total downsampling of the configured network: for a ResNet stem conv × max-pool (not with the small
    stem) × 8; 32 for VGG-16, Inception-v3 and EfficientNet-B0."""
    name = get(config, 'model.name', None)
    if name in _FIXED_STEMS:
        return _FIXED_STEMS[name][0]
    small = bool(get(config, 'model.small_stem', False))
    stem = _int(config, 'model.stem_stride') or (1 if small else 2)
    return stem * (1 if small else 2) * 8


def model_min_side(config) -> int:
    """The smallest image side the configured network runs at (Inception-v3: 75 px; the others: their stride)."""
    name = get(config, 'model.name', None)
    return _FIXED_STEMS[name][1] if name in _FIXED_STEMS else model_stride(config)


def _image_fits_model(config, devices) -> list[str]:
    name = get(config, 'model.name', MISSING)
    if name in (MISSING, 'auto'):  # 'auto' picks a model that fits
        return []
    side_min, out = model_min_side(config), []
    for field in IMAGE_SIDES:
        side = _int(config, field)
        if 0 < side < side_min and name in _FIXED_STEMS:
            out.append(
                f'config.{field}={side}: config.model.name={name!r} needs images of at least {side_min} px '
                f'(torchvision\'s stem and {model_stride(config)}x downsampling); expected >= {side_min} '
                '(e.g. --config.data.image_size), or a ResNet with a small stem for small images'
            )
        elif 0 < side < side_min:
            out.append(
                f'config.{field}={side}: config.model.name={name!r} with '
                f'small_stem={get(config, "model.small_stem", False)}, stem_stride={get(config, "model.stem_stride", 0)} '
                f'downsamples by {side_min}; expected >= {side_min} (or a smaller config.model.stem_stride)'
            )
    return out


def _relabel(config, devices) -> list[str]:
    if get(config, 'method', None) != 'relabel':
        return []
    conf = get(config, 'relabel.confidence', None)
    rate = get(config, 'model.dropout_rate', 0.0)
    if conf in ('mc_dropout', 'mc_dropout_full') and not (isinstance(rate, (int, float)) and rate > 0):
        return [
            f'config.relabel.confidence={conf!r} needs dropout, but config.model.dropout_rate={rate!r}: '
            "expected > 0 (or use 'naive' / 'mc_perturbation')"
        ]
    return []


def _relabel_maps(config, devices) -> list[str]:
    if get(config, 'method', None) != 'relabel_maps':
        return []
    out = []
    loss = get(config, 'train.loss', None)
    if loss not in ('soft_ce', 'softmax_ce'):
        out.append(
            f"config.train.loss={loss!r}: label-map targets are distributions; expected 'soft_ce' (or 'softmax_ce')"
        )
    teacher, store = get(config, 'relabel_maps.teacher_workdir', ''), get(config, 'relabel_maps.store', '')
    if teacher and store:
        out.append(
            f'config.relabel_maps.teacher_workdir={teacher!r} is not used when config.relabel_maps.store={store!r} '
            'is given (the store already holds the maps): leave one of them empty'
        )
    recipe = get(config, 'relabel_maps.teacher_recipe', '')
    if recipe and not teacher and not store:
        out += _teacher_recipe(recipe)
    if isinstance(teacher, str) and teacher and os.path.isdir(teacher):
        rounds = [
            os.path.join(teacher, n, 'checkpoints') for n in os.listdir(teacher) if n.startswith('round_')
        ]
        dirs = [teacher, os.path.join(teacher, 'checkpoints')] + rounds
        if not any(has_steps(d) for d in dirs):
            out.append(
                f'config.relabel_maps.teacher_workdir={teacher!r}: no Orbax checkpoint in it, in '
                f'{teacher}/checkpoints or in {teacher}/round_<k>/checkpoints (expected a finished run)'
            )
        elif not any(
            os.path.exists(os.path.join(p, 'config.json')) for p in (teacher, os.path.dirname(teacher))
        ):
            out.append(
                f'config.relabel_maps.teacher_workdir={teacher!r}: no config.json (expected a run directory)'
            )
    return out


def _teacher_recipe(recipe) -> list[str]:
    """`relabel_maps.teacher_recipe` must name a relabel recipe (its run teaches the label maps)."""
    from mlrelabel.config import recipes

    try:
        method = recipes.load(recipe).get('method')
    except (ValueError, FileNotFoundError) as e:
        why = str(e).removeprefix(f'--config={recipe}: ')
        return [f'config.relabel_maps.teacher_recipe={recipe!r}: {why}']
    if method != 'relabel':
        return [
            f'config.relabel_maps.teacher_recipe={recipe!r} is a {method!r} recipe; expected a relabel recipe '
            "(mc_dropout, naive, mc_perturbation, with :smoke for the seconds-long one) or '' for a teacher "
            'trained on the visible labels'
        ]
    return []


def _partial(config, devices) -> list[str]:
    if get(config, 'method', None) != 'partial':
        return []
    out, source = [], get(config, 'data.source', None)
    if source not in ('digit_scenes',) + FORMAT_SOURCES:
        out.append(
            f"config.data.source={source!r}: config.method='partial' needs partial annotations "
            f'({", ".join(FORMAT_SOURCES)}) or the digit scenes (partial labels simulated from their truth)'
        )
    if get(config, 'partial.head', None) == 'group_softmax' and source != 'attribute_csv':
        out.append(
            f"config.partial.head='group_softmax' needs attribute groups: config.data.source='attribute_csv', "
            f'not {source!r}'
        )
    prior, epochs = _int(config, 'partial.prior_epochs'), _int(config, 'train.epochs', 1)
    selective = (
        get(config, 'partial.mode', None) == 'selective' and get(config, 'partial.head', None) == 'sigmoid'
    )
    if selective and not get(config, 'partial.prior_path', '') and prior >= epochs > 0:
        out.append(
            f'config.partial.prior_epochs={prior}: expected < config.train.epochs={epochs} '
            '(the prior phase is part of the training epochs)'
        )
    return out


def _pretrained(config, devices) -> list[str]:
    path, name = get(config, 'model.pretrained', ''), get(config, 'model.name', None)
    if not isinstance(path, str) or not path:
        return []
    if weights.is_weights_name(path):
        return _published_weights(path, name)
    out = []
    if name not in MODEL_NAMES:
        out.append(
            f'config.model.pretrained={path!r} needs the network its weights belong to, but config.model.name='
            f'{name!r}: expected a torchvision network ({", ".join(n for n in MODEL_NAMES if not n.startswith("resnet_"))}; '
            'or resnet_tiny / resnet_small, the ResNet topology narrower)'
        )
    if not path.endswith('.npz') and importlib.util.find_spec('torch') is None:
        out.append(
            f'config.model.pretrained={path!r}: reading a PyTorch file needs torch (pip install '
            '"mlrelabel[torch]"), or convert it once to .npz: '
            'np.savez(out, **{k: v.numpy() for k, v in state_dict.items()})'
        )
    return out


def _published_weights(name: str, network, field: str = 'model.pretrained') -> list[str]:
    """Weights given by name ('torchvision:resnet50') in `field`: a known name, of the network `model.name`
    builds."""
    if name not in weights.REGISTRY:
        return [
            f'config.{field}={name!r}: unknown published weights; expected one of '
            f'{", ".join(sorted(weights.REGISTRY))}, or a local state_dict file'
        ]
    entry, out = weights.REGISTRY[name], []
    if network != entry.network:
        out.append(
            f'config.{field}={name!r} holds {entry.network} weights, but config.model.name={network!r}: '
            f'set --config.model.name={entry.network}'
        )
    if not entry.filename.endswith('.npz') and importlib.util.find_spec('torch') is None:
        out.append(
            f'config.{field}={name!r}: reading its PyTorch file ({entry.filename}) needs torch (pip install '
            '"mlrelabel[torch]")'
        )
    return out


def _round0_checkpoint(config, devices) -> list[str]:
    """`relabel.round0_checkpoint`: published weights of the configured network, or a run (or one of its round
    folders) that trained the same network on as many classes as this run has."""
    path = get(config, 'relabel.round0_checkpoint', '')
    if not isinstance(path, str) or not path:
        return []
    network, field = get(config, 'model.name', None), 'relabel.round0_checkpoint'
    if weights.is_weights_name(path):
        return _published_weights(path, network, field)
    if os.path.isdir(path) and model_folder(path) is None:
        return [
            f'config.{field}={path!r}: expected a finished run directory (with run.json), one of its round folders '
            '(W/round_0), an Orbax checkpoint folder or torchvision weights (.pth, .npz, torchvision:<name>); this '
            'folder is none of them'
        ]
    if os.path.isfile(path) and not path.endswith(('.pth', '.pt', '.npz')):
        return [
            f'config.{field}={path!r}: a weights file must be a torchvision state_dict (.pth, .pt or .npz)'
        ]
    run_dir = (
        path if os.path.isfile(os.path.join(path, 'config.json')) else os.path.dirname(os.path.abspath(path))
    )
    if not os.path.isfile(os.path.join(run_dir, 'config.json')):
        return []  # an Orbax folder or a weights file: checked against the network when it is loaded
    with open(os.path.join(run_dir, 'config.json')) as f:
        theirs = json.load(f)
    out = []
    their_network = theirs.get('model', {}).get('name')
    if network not in (None, 'auto') and their_network != network:
        out.append(
            f'config.{field}={path!r}: that run trained config.model.name={their_network!r}, this run builds '
            f'{network!r}: set --config.model.name={their_network} (and its width) or use another checkpoint'
        )
    ours, their_classes = _int(config, 'data.num_classes'), _run_classes(run_dir, theirs)
    if ours and their_classes and their_classes != ours:
        out.append(
            f'config.{field}={path!r}: that run has {their_classes} classes, this run has {ours}: its classifier '
            'cannot score this run\'s classes'
        )
    return out


def _run_classes(run_dir: str, config: dict) -> int:
    manifest = os.path.join(run_dir, 'run.json')
    if os.path.isfile(manifest):
        with open(manifest) as f:
            return int(json.load(f).get('num_classes') or 0)
    return int(config.get('data', {}).get('num_classes') or 0)


def _imagenet_sets(config, devices) -> list[str]:
    sets, classes = get(config, 'eval.imagenet_sets', ''), get(config, 'data.num_classes', 0)
    ok = classes == 1000 or (classes == 0 and get(config, 'data.source', None) in ('folder', 'tfds'))
    if isinstance(sets, str) and sets.strip() and not ok:
        return [
            f'config.eval.imagenet_sets={sets!r} evaluates ImageNet-1k classifiers, but '
            f'config.data.num_classes={classes!r}: expected 1000'
        ]
    return []


def _zoom_out(config, devices) -> list[str]:
    """Zoom-out runs on device after the crop, and moves the picture under the crop's box."""
    zoom = get(config, 'train.augment.zoom_out', 0.0)
    if not isinstance(zoom, (int, float)) or zoom <= 0 or not get(config, 'train.augment.enabled', True):
        return []
    out = []
    if get(config, 'data.host_augment', False):
        out.append(
            f'config.train.augment.zoom_out={zoom} runs on device, and config.data.host_augment=True moves the '
            'augmentation to the loader: set data.host_augment=False, or train.augment.zoom_out=0'
        )
    if get(config, 'method', None) == 'relabel_maps':
        out.append(
            f'config.train.augment.zoom_out={zoom}: LabelPooling pools the label map over each crop\'s box, '
            'which a zoom-out no longer matches; expected 0 with method=relabel_maps'
        )
    return out


def _parallel(config, devices) -> list[str]:
    out = []
    pid, n = _int(config, 'parallel.process_id'), _int(config, 'parallel.num_processes', 1)
    if pid >= n:
        out.append(f'config.parallel.process_id={pid}: expected < config.parallel.num_processes={n}')
    if devices is None:
        return out
    wanted = _int(config, 'parallel.num_devices')
    if wanted > devices:
        out.append(f'config.parallel.num_devices={wanted}: only {devices} devices are visible')
        return out
    used = wanted or devices
    for field in BATCH_FIELDS:
        batch = _int(config, field)
        if batch > 0 and batch % used:
            out.append(
                f'config.{field}={batch}: expected a multiple of the {used} devices in use '
                f'(config.parallel.num_devices={wanted}; 0 = all)'
            )
    return out


RULES = [
    _method,
    _round0_checkpoint,
    _source_fields,
    _source_needs,
    _digit_scenes,
    _image_fits_model,
    _relabel,
    _relabel_maps,
    _partial,
    _pretrained,
    _imagenet_sets,
    _zoom_out,
    _parallel,
]
