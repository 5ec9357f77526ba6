"""The schema is the one place of every config field's default: recipes list few fields, `complete` fills in
the rest before command-line overrides, `migrate` opens runs saved by earlier versions."""

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from mlrelabel import validation
from mlrelabel.config import recipes, schema

RECIPES = recipes.available()


def _leaves(c) -> list[str]:
    out = []
    for k, v in c.items():
        out += [f'{k}.{x}' for x in _leaves(v)] if isinstance(v, ml_collections.ConfigDict) else [k]
    return out


def _recipe(name, variant=''):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f'_r_{name}', f'{recipes.recipes_dir()}/{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def test_main_recipe_lists_at_most_90_fields():
    assert len(_leaves(_recipe('mc_dropout'))) <= 90


@pytest.mark.parametrize('field', sorted(schema.FIELDS))
def test_every_default_passes_its_own_check(field):
    f = schema.FIELDS[field]
    assert f.check.problem(field, f.default) is None


@pytest.mark.parametrize('variant', ['', 'smoke'])
@pytest.mark.parametrize('name', RECIPES)
def test_recipes_set_only_schema_fields_and_complete_to_a_valid_config(name, variant):
    raw = _recipe(name, variant)
    unknown = [f for f in _leaves(raw) if f not in schema.FIELDS]
    assert not unknown, f'{name}: fields the schema does not know: {unknown}'
    config = schema.complete(raw)
    # ImageNet recipes need the user's data folder or label files (and torch for torchvision weights here).
    needs = ("='': config.data.source=", 'needs torch')
    assert [p for p in validation.problems(config) if not any(n in p for n in needs)] == []
    for section in schema.METHOD_SECTIONS:  # a method's section only where its recipe made one
        assert (section in config) == (section in raw)


def test_complete_fills_absent_fields_and_keeps_present_ones():
    c = ml_collections.ConfigDict(
        {'method': 'relabel', 'relabel': {'crops': {'overlap': 0.3}}, 'train': {'epochs': 3}}
    )
    schema.complete(c)
    assert c.relabel.crops.overlap == 0.3 and c.train.epochs == 3
    assert c.relabel.crops.kind == schema.FIELDS['relabel.crops.kind'].default
    assert c.optim.b2 == schema.FIELDS['optim.b2'].default
    assert 'partial' not in c and 'mile' not in c
    before = c.to_json(sort_keys=True)
    assert schema.complete(c).to_json(sort_keys=True) == before  # idempotent


def test_cli_overrides_a_field_the_recipe_does_not_list():
    from mlrelabel import main  # noqa: F401  (wraps the --config parser with schema.complete)

    assert 'crops' in _recipe('mc_dropout', 'smoke').relabel
    assert 'proposal_box_size' not in _recipe('mc_dropout', 'smoke').relabel.crops
    fv = flags.FlagValues()
    argv = ['prog', '--config=mc_dropout:smoke', '--config.relabel.crops.kind=proposals',
            '--config.relabel.crops.proposal_box_size=0.3', '--config.relabel.perturbation.noise=0.2']  # fmt: skip
    holder = config_flags.DEFINE_config_file('config', None, '', flag_values=fv, sys_argv=argv)
    fv['config'].parser.parse = flags.FLAGS['config'].parser.parse  # main's parser: complete, then override
    fv(argv)
    config = holder.value
    assert config.relabel.crops.kind == 'proposals'
    assert config.relabel.crops.proposal_box_size == 0.3
    assert config.relabel.perturbation.noise == 0.2
    assert config.relabel.max_uncertainty == schema.FIELDS['relabel.max_uncertainty'].default
    assert validation.problems(config) == []


def test_migrate_gives_fields_added_since_a_run_their_old_behaviour():
    saved = schema.complete(recipes.load('mc_dropout:smoke')).to_dict()
    del saved['train']['augment']['zoom_out'], saved['relabel']['round0_models'], saved['optim']['b1']
    config = schema.migrate(saved)
    assert config.train.augment.zoom_out == schema.ADDED_FIELDS['train.augment.zoom_out']
    assert config.relabel.round0_models == 1  # one round-0 model, as before the field existed
    assert config.optim.b1 == schema.FIELDS['optim.b1'].default
    assert 'relabel_maps' not in config  # added fields of absent sections stay absent
    assert validation.problems(config) == []


def test_defaults_of_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match='no config field'):
        schema.defaults('relabel.no_such_field')
