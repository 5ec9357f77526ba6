"""The config reference (docs/config.md), generated from the schema: every field's type, default, allowed
values and meaning, by section, with the recipes that change it.

    python -m mlrelabel.config.reference            # prints it
    python -m mlrelabel.config.reference --write    # rewrites docs/config.md of this checkout

tests/config/test_reference.py fails when docs/config.md differs from what this prints.
"""

from __future__ import annotations

import os
import sys

from mlrelabel.config import recipes, schema

COMMAND = 'python -m mlrelabel.config.reference --write'
DOC_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'docs', 'config.md'
)

# What a section's fields are for, in a line (a section is a field's name up to its last dot, at most two parts).
SECTIONS = {
    '': 'The method, the training seed and the compilation cache.',
    'data': 'What is read, and how: the built-in digit scenes, CS570 label files, ImageNet, your own formats.',
    'model': 'The network.',
    'train': 'Training: epochs, batches and the loss.',
    'train.single_positive': 'Hyper-parameters of the single-positive losses (mlrelabel/losses/single_positive.py); '
    'each names the loss kinds using it.',
    'train.augment': 'Training augmentation.',
    'optim': 'The optimizer and its learning-rate schedule.',
    'eval': 'Evaluation.',
    'relabel': 'The crop → confidence → label rounds (only in configs with a relabel section).',
    'relabel.perturbation': 'The perturbations that `mc_perturbation` samples.',
    'relabel.crops': 'Which crops of each image are scored.',
    'relabel_maps': 'ReLabel label maps (only in configs with a relabel_maps section).',
    'partial': 'Partial labels (only in configs with a partial section).',
    'mile': 'MILe (only in configs with a mile section).',
    'parallel': 'Devices and hosts.',
    'report': 'Pictures written at the end of a run.',
}


def section_of(field: str) -> str:
    """`'relabel.crops'` for `'relabel.crops.kind'`, `'relabel'` for `'relabel.max_rounds'`, `''` for `'seed'`."""
    return '.'.join(field.split('.')[:-1][:2])


def type_name(value) -> str:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (tuple, list)):
        return 'tuple'
    return type(value).__name__


def recipe_changes() -> dict[str, list[str]]:
    """Field → `'recipe: value'` for every recipe (its default variant) whose value differs from the default."""
    out: dict[str, list[str]] = {}
    for name in recipes.available():
        config = recipes.load(name)
        for field, f in schema.FIELDS.items():
            value = schema.get(config, field)
            if value is not schema.MISSING and value != f.default:
                out.setdefault(field, []).append(f'{name}: `{value!r}`')
    return out


def _cell(text: str) -> str:
    """A table cell's text: pipes escaped, and `<name>` placeholders kept from being read as HTML."""
    return text.replace('|', '\\|').replace('<', '\\<')


def section_table(fields: list[str], changes: dict[str, list[str]]) -> list[str]:
    lines = [
        '| Field | Type | Default | Allowed | Meaning | Recipes that change it |',
        '|---|---|---|---|---|---|',
    ]
    for field in fields:
        f = schema.FIELDS[field]
        cells = [
            f'`{field}`',
            type_name(f.default),
            f'`{f.default!r}`',
            f.check.allowed,
            f.doc,
            '; '.join(changes.get(field, [])),
        ]
        lines.append('| ' + ' | '.join(_cell(c) for c in cells) + ' |')
    return lines


def reference() -> str:
    """The text of docs/config.md."""
    changes = recipe_changes()
    by_section: dict[str, list[str]] = {}
    for field in schema.FIELDS:
        by_section.setdefault(section_of(field), []).append(field)
    lines = [
        '# Config reference',
        '',
        f'Generated from `mlrelabel/config/schema.py` by `{COMMAND}`; do not edit by hand.',
        '',
        'Every field a config can hold, with its default and what it accepts. A recipe (`configs/<name>.py`) sets',
        'what it decides; every other field takes its default here. Any field can be set on the command line:',
        '`python -m mlrelabel.main --config=configs/mc_dropout.py --config.relabel.max_rounds=3`. The last column',
        "names the recipes whose default variant sets another value. Sections of one method (`relabel`,",
        '`relabel_maps`, `partial`, `mile`) exist only in the configs of that method.',
        '',
        'Sections: ' + ', '.join(f'[{s or "general"}](#{_anchor(s)})' for s in by_section) + '.',
    ]
    for section, fields in by_section.items():
        lines += ['', f'## {section or "general"}', '']
        if SECTIONS.get(section):
            lines += [SECTIONS[section], '']
        lines += section_table(fields, changes)
    return '\n'.join(lines) + '\n'


def _anchor(section: str) -> str:
    return (section or 'general').replace('.', '').lower()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog='python -m mlrelabel.config.reference', description=__doc__.split('\n')[0]
    )
    parser.add_argument('--write', action='store_true', help=f'rewrite {DOC_PATH} instead of printing')
    args = parser.parse_args(argv)
    text = reference()
    if args.write:
        with open(DOC_PATH, 'w', encoding='utf-8') as f:
            f.write(text)
        print(f'wrote {DOC_PATH}', file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == '__main__':
    main()
