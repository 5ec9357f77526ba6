"""Recipes by name: `mc_dropout`, `mc_dropout:smoke`, or a config file path `configs/x.py[:variant]`.

The recipes are the top-level `configs/*.py` files. An installed package carries them as
`mlrelabel/configs/` (pyproject.toml maps that package to the `configs/` folder); a source checkout or
an editable install finds them beside the package. A value that names an existing file is a path and
wins over a recipe of the same name.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from mlrelabel.config import schema

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # mlrelabel/


def recipes_dir() -> str:
    """The folder of the recipe files: `mlrelabel/configs/` when installed, else `<checkout>/configs/`."""
    for candidate in (
        os.path.join(_PACKAGE_DIR, 'configs'),
        os.path.join(os.path.dirname(_PACKAGE_DIR), 'configs'),
    ):
        if os.path.isfile(os.path.join(candidate, 'mc_dropout.py')):
            return candidate
    raise FileNotFoundError(f'no recipe folder: neither {_PACKAGE_DIR}/configs nor {_PACKAGE_DIR}/../configs')


def available() -> list[str]:
    """Names of every recipe (`configs/<name>.py`), sorted."""
    return sorted(n[:-3] for n in os.listdir(recipes_dir()) if n.endswith('.py') and not n.startswith('_'))


def resolve(spec: str) -> str:
    """`'name[:variant]'` or `'path.py[:variant]'` → `'/abs/path.py[:variant]'` (ml_collections' form).

    Raises ValueError naming the value and the recipes when it is neither an existing file nor a recipe.
    """
    path, sep, variant = str(spec).partition(':')
    if os.path.isfile(path):
        return os.path.abspath(path) + sep + variant
    name = path[:-3] if path.endswith('.py') else path
    if name and os.sep not in name and '/' not in name:
        candidate = os.path.join(recipes_dir(), name + '.py')
        if os.path.isfile(candidate):
            return candidate + sep + variant
    raise ValueError(
        f'--config={spec}: no such config file and no recipe named {name!r}; recipes: '
        f'{", ".join(available())} (add :smoke for the seconds-long variant)'
    )


def load(spec: str) -> ml_collections.ConfigDict:
    """The config of a recipe name or file (`get_config(variant)`), unlocked, with every schema field filled in."""
    resolved = resolve(spec)
    path, _, variant = resolved.partition(':')
    module_name = 'mlrelabel_recipe_' + os.path.splitext(os.path.basename(path))[0]
    spec_ = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    config = module.get_config(variant) if variant else module.get_config()
    return schema.complete(config)


def display_name(spec: str) -> str:
    """`'mc_dropout-smoke'` for `'configs/mc_dropout.py:smoke'` or `'mc_dropout:smoke'` (work directory names)."""
    path, _, variant = str(spec).partition(':')
    name = os.path.splitext(os.path.basename(path))[0]
    return f'{name}-{variant}' if variant else name
