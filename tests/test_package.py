"""The installable package: pyproject.toml agrees with requirements.txt and constraints.txt and lists every
package, recipes resolve by name, both console entry points give useful --help, and (slow) the built
package installed into a fresh virtual environment works from an unrelated folder."""

import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from mlrelabel.config import recipes
from tests.helpers import ROOT


def _pyproject() -> dict:
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        return tomllib.load(f)


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement line ('jax[cuda12]>=0.4' → 'jax')."""
    return re.sub(r'[-_.]+', '-', re.split(r'[\s\[<>=!~;]', requirement.strip(), maxsplit=1)[0]).lower()


def _lines(path: str) -> list[str]:
    with open(os.path.join(ROOT, path)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def test_requirements_txt_mirrors_pyproject():
    project = _pyproject()['project']
    expected = project['dependencies'] + project['optional-dependencies']['dev']
    assert sorted(_lines('requirements.txt')) == sorted(expected)


def test_constraints_pin_every_dependency_and_no_torch():
    project = _pyproject()['project']
    pins = dict(line.split('==') for line in _lines('constraints.txt'))
    pinned = {_name(n) for n in pins}
    for requirement in project['dependencies'] + project['optional-dependencies']['dev']:
        assert _name(requirement) in pinned, requirement
    assert all(re.fullmatch(r'[\w.+!-]+', v) for v in pins.values())  # exact versions only
    assert not pinned & {'torch', 'torchvision', 'tensorflow'}


def test_pyproject_lists_every_package():
    setuptools = _pyproject()['tool']['setuptools']
    found = {
        os.path.relpath(d, ROOT).replace(os.sep, '.')
        for d, _, files in os.walk(os.path.join(ROOT, 'mlrelabel'))
        if '__init__.py' in files
    }
    assert set(setuptools['packages']) == found | {'mlrelabel.configs'}
    assert setuptools['package-dir'] == {'mlrelabel.configs': 'configs'}
    scripts = _pyproject()['project']['scripts']
    assert scripts == {
        'mlrelabel': 'mlrelabel.main:cli',
        'mlrelabel-predict': 'mlrelabel.predict:cli',
        'mlrelabel-review': 'mlrelabel.review.cli:cli',
    }


def test_recipes_resolve_by_name_and_by_path(tmp_path, monkeypatch):
    configs = os.path.join(ROOT, 'configs')
    names = recipes.available()
    assert names == sorted(f[:-3] for f in os.listdir(configs) if f.endswith('.py') and not f.startswith('_'))
    monkeypatch.chdir(tmp_path)  # names work from any folder
    assert recipes.resolve('mc_dropout') == os.path.join(configs, 'mc_dropout.py')
    assert recipes.resolve('mc_dropout:smoke') == os.path.join(configs, 'mc_dropout.py') + ':smoke'
    assert recipes.resolve('supervised.py:smoke') == os.path.join(configs, 'supervised.py') + ':smoke'
    # A file path wins over a recipe name; relative paths are taken from the current folder.
    (tmp_path / 'mc_dropout').write_text('def get_config(variant=""):\n    return None\n')
    assert recipes.resolve('mc_dropout:smoke') == str(tmp_path / 'mc_dropout') + ':smoke'
    with pytest.raises(ValueError, match=r"no recipe named 'nosuch'; recipes: .*mc_dropout"):
        recipes.resolve('nosuch:smoke')
    with pytest.raises(ValueError, match='no recipe named'):
        recipes.resolve('configs/missing.py')
    cfg = recipes.load('mile:smoke')
    assert cfg.method == 'mile' and cfg.train.epochs <= 2
    assert recipes.display_name('configs/mc_dropout.py:smoke') == recipes.display_name('mc_dropout:smoke')


@pytest.mark.parametrize(
    'module, expected',
    [
        ('mlrelabel.main', ['--config: A recipe name', 'mc_dropout', '--workdir', '--verbosity']),
        ('mlrelabel.predict', ['--images: Folder of images', '--out', '--round', '--threshold', '--workdir']),
    ],
)
def test_help_describes_the_command_and_its_flags(module, expected, tmp_path):
    out = subprocess.run(
        [sys.executable, '-m', module, '--help'], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    for text in expected:
        assert text in out.stdout, (text, out.stdout)


@pytest.mark.slow
def test_installed_package_works_from_another_folder(tmp_path):
    """pip installs the package (non-editable) into a fresh venv; its console scripts, recipes by name and
    the Python API work from an unrelated folder. The venv borrows this environment's dependencies (the
    full install from PyPI with constraints.txt is .ci/check_installed.sh)."""
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'README.md', 'mlrelabel', 'configs'):
        copy = shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy
        copy(os.path.join(ROOT, name), src / name)
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages', str(venv)], check=True)
    python, bindir = str(venv / 'bin' / 'python'), venv / 'bin'
    install = subprocess.run(
        [python, '-m', 'pip', 'install', '-q', '--no-deps', str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    here = tmp_path / 'elsewhere'
    here.mkdir()

    def run(*args, check=True):
        out = subprocess.run(list(args), cwd=here, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0 or not check, (args, out.stdout[-2000:], out.stderr[-4000:])
        return out

    assert '--config: A recipe name' in run(str(bindir / 'mlrelabel'), '--help').stdout
    assert '--images: Folder of images' in run(str(bindir / 'mlrelabel-predict'), '--help').stdout
    bad = run(str(bindir / 'mlrelabel'), '--config=nosuch', check=False)
    assert bad.returncode != 0 and 'no recipe named' in bad.stderr
    tiny = ['--config.data.num_train=64', '--config.data.num_val=32', '--config.train.batch_size=16']
    tiny += ['--config.train.epochs=1', '--config.eval.batch_size=16', '--config.data.image_size=16']
    run(str(bindir / 'mlrelabel'), '--config=supervised:smoke', '--workdir=W', *tiny)
    code = f"""
import os, numpy as np, mlrelabel
from tensorboard.backend.event_processing import event_accumulator
assert mlrelabel.__file__.startswith({str(venv)!r}), mlrelabel.__file__
acc = event_accumulator.EventAccumulator('W/tensorboard')
acc.Reload()
assert [e.step for e in acc.Scalars('train/loss')] == [1, 2, 3, 4]
run = mlrelabel.load_run('W')
probs = run.predict(np.zeros((3, 21, 35, 3), np.uint8))
assert probs.shape == (3, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
print('ok', run.method)
"""
    assert run(python, '-c', code).stdout.split() == ['ok', 'supervised']
