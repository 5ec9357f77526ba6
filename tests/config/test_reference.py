"""docs/config.md is the schema's reference, generated: it must equal what `mlrelabel.config.reference` prints."""

import os

from mlrelabel.config import reference, schema


def test_every_field_says_what_it_does_in_one_line():
    missing = [field for field, f in schema.FIELDS.items() if not f.doc.strip() or '\n' in f.doc]
    assert not missing, f'fields without a one-line doc in mlrelabel/config/schema.py: {missing}'


def test_docs_config_md_is_the_generated_reference():
    with open(reference.DOC_PATH, encoding='utf-8') as f:
        written = f.read()
    assert written == reference.reference(), (
        f'{os.path.relpath(reference.DOC_PATH)} differs from the schema; regenerate it: {reference.COMMAND}'
    )


def test_reference_lists_every_field_with_default_and_recipes():
    text = reference.reference()
    for field in schema.FIELDS:
        assert f'| `{field}` |' in text
    row = next(line for line in text.splitlines() if line.startswith('| `relabel.confidence` |'))
    assert "`'mc_dropout'`" in row and "naive: `'naive'`" in row and 'mc_dropout:' not in row
    assert reference.section_of('relabel.crops.kind') == 'relabel.crops'
    assert reference.section_of('train.single_positive.alpha') == 'train.single_positive'
    assert reference.section_of('seed') == ''
