"""The label-maps method (`mlrelabel.label_maps.method`): its recipes build, its teacher is the relabel recipe
on the same data, seed and network, and a relabel teacher runs once and its chosen model writes the maps."""

import json
import os

import pytest

from mlrelabel.label_maps.store import LabelMapStore
from tests.helpers import recipe


@pytest.mark.parametrize('name', ['relabel_maps.py', 'relabel_maps_imagenet.py'])
def test_configs_build(name):
    full, smoke = recipe(name), recipe(name, 'smoke')
    assert full.method == smoke.method == 'relabel_maps' and full.train.loss == 'soft_ce'
    assert smoke.train.epochs <= 2 and smoke.relabel_maps.cutmix
    with pytest.raises(ValueError, match='variant'):
        recipe(name, 'huge')
    if name == 'relabel_maps_imagenet.py':
        o = full.optim
        assert (
            o.name,
            o.nesterov,
            o.learning_rate,
            o.lr_base_batch,
            o.weight_decay,
            o.warmup_epochs,
            o.schedule,
        ) == ('sgd', True, 0.1, 1024, 1e-4, 5.0, 'cosine')
        assert full.train.epochs == 300 and full.model.name == 'resnet50' and full.relabel_maps.map_size == 15
        assert (full.relabel_maps.cutmix_prob, full.relabel_maps.cutmix_off_epochs) == (1.0, 0)  # ReLabel's
    else:  # at 10 epochs every example mixed until the last 2 under-fits (benchmarks/history/methods.md: ReLabel's teacher)
        assert (full.relabel_maps.cutmix_prob, full.relabel_maps.cutmix_off_epochs) == (0.5, 5)


def test_the_recipes_teacher_is_the_relabel_recipe_on_the_same_data_seed_and_network():
    """`relabel_maps.teacher_recipe='mc_dropout'` (the digit recipe's default) runs exactly the config that
    `python -m mlrelabel.main --config=mc_dropout` runs on the same data and seed (so `mlrelabel.compare` may
    reuse its relabel entry's run), with the student's network and the recipe's own dropout and budget."""
    from mlrelabel.config import recipes
    from mlrelabel.data import inspect
    from mlrelabel.label_maps.method import teacher_config

    maps, direct = recipes.load('relabel_maps'), recipes.load('mc_dropout')
    assert maps.relabel_maps.teacher_recipe == 'mc_dropout'
    assert recipes.load('relabel_maps_imagenet').relabel_maps.teacher_recipe == ''  # 90 epochs on its labels
    for cfg in (maps, direct):
        cfg.seed = 3
        cfg.data.num_train = 500
        inspect.resolve_data_defaults(cfg)
    teacher = teacher_config(maps)
    inspect.resolve_data_defaults(teacher)  # as the teacher's run does (round 0's models, ...)
    assert teacher.to_dict() == direct.to_dict()
    maps.model.width = 32  # the student's network teaches too; the recipe keeps its dropout
    teacher = teacher_config(maps)
    assert teacher.model.width == 32 and teacher.model.dropout_rate == direct.model.dropout_rate > 0
    assert maps.model.dropout_rate == 0.0  # the student's config is left as it was


@pytest.mark.slow
def test_a_relabel_teacher_runs_once_in_teacher_and_its_chosen_model_writes_the_maps(tmp_path):
    """The relabel run is made in `<workdir>/teacher` (a run of its own: config.json, run.json, labels), its chosen
    round's model writes the maps, and rerunning the finished run does not run the teacher again."""
    import mlrelabel
    from mlrelabel.label_maps import method

    work = tmp_path / 'run'
    tiny = {
        'data': {'num_train': 64, 'num_val': 32, 'image_size': 16, 'min_scale': 6, 'max_scale': 9},
        'train': {'batch_size': 16, 'epochs': 1},
        'eval': {'batch_size': 16},
        'relabel_maps': {'teacher_recipe': 'mc_dropout:smoke', 'batch_size': 16, 'cutmix': False},
    }
    first = mlrelabel.run_config('relabel_maps:smoke', str(work), **tiny)
    teacher = work / 'teacher'
    manifest = json.load(open(teacher / 'run.json'))
    config = json.load(open(teacher / 'config.json'))
    assert manifest['method'] == 'relabel' and (teacher / 'labels.json').exists()
    assert config['data']['num_train'] == 64 and config['seed'] == 0 and config['model']['dropout_rate'] > 0
    assert method._checkpoint_dir(str(teacher)) == str(teacher / manifest['checkpoint'])
    meta = LabelMapStore(str(work / 'label_maps')).index['meta']
    assert meta['teacher'] == 'the mc_dropout:smoke run in teacher/'
    stamp = os.stat(teacher / 'run.json').st_mtime_ns
    again = mlrelabel.run_config('relabel_maps:smoke', str(work), **tiny)
    assert os.stat(teacher / 'run.json').st_mtime_ns == stamp  # finished: not run again
    assert again['final']['val_map'] == first['final']['val_map']
