"""BENCHMARKS.md opens with the table of what the current defaults reach, and every section a code comment names
exists in the file it names (BENCHMARKS.md or a history file under benchmarks/history/)."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `(BENCHMARKS.md: Title)`, `BENCHMARKS.md, "Title"`, and the same with a history file.
REFERENCE = re.compile(r'(BENCHMARKS\.md|benchmarks/history/[\w-]+\.md)(?::\s*([^)\'"]+)\)|,\s*"([^"]+)")')


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def _flat(text: str) -> str:
    return ' '.join(text.split())


def references(text: str) -> list[tuple[str, str]]:
    """`(file, section title)` of every section a text names (whitespace of wrapped comments collapsed)."""
    return [(m.group(1), (m.group(2) or m.group(3)).strip()) for m in REFERENCE.finditer(_flat(text))]


def test_references_are_found_in_wrapped_comments():
    text = 'x (BENCHMARKS.md: Config defaults)\n y; benchmarks/history/cpu.md, "Cold and\n    warm") (BENCHMARKS.md).'
    assert references(text) == [
        ('BENCHMARKS.md', 'Config defaults'),
        ('benchmarks/history/cpu.md', 'Cold and warm'),
    ]


def test_benchmarks_md_opens_with_the_table():
    lines = [line for line in _read('BENCHMARKS.md').splitlines() if line.strip()]
    if lines[0].startswith('# '):
        lines = lines[1:]
    assert lines[0].startswith('| ') and lines[1].startswith('|---'), 'BENCHMARKS.md must open with its table'
    rows = []
    for line in lines[2:]:
        if not line.startswith('|'):
            break
        rows.append(line)
    assert rows
    for row in rows:  # each figure with its date and its command
        assert re.search(r'\| 20\d\d-\d\d-\d\d \|', row), row
        assert re.search(r'\| `[^`]+` \|$', row), row


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    heads = re.findall(r'^#+ (.+)$', markdown, re.M)
    return {re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-') for h in heads}


def test_anchors_follow_github():
    assert anchors("## The array-level API with a run's round-0 model (2026-12-07, seed 0)\n") == {
        'the-array-level-api-with-a-runs-round-0-model-2026-12-07-seed-0'
    }


def test_links_of_benchmarks_md_exist():
    for target, anchor in re.findall(r'\]\(([^)#]*)(?:#([^)]*))?\)', _read('BENCHMARKS.md')):
        path = target or 'BENCHMARKS.md'
        assert os.path.exists(os.path.join(ROOT, path)), target
        if anchor:
            assert anchor in anchors(_read(path)), f'{path}#{anchor}'


def test_every_section_code_names_exists():
    sources = [
        p
        for folder in ('mlrelabel', 'benchmarks', 'tests', 'configs')
        for p in glob.glob(os.path.join(ROOT, folder, '**', '*.py'), recursive=True)
    ]
    missing = []
    for path in sources:
        if os.path.samefile(path, __file__):
            continue
        for file, title in references(_read(path)):
            if title not in _flat(_read(file)):
                missing.append(f'{os.path.relpath(path, ROOT)}: {file}: {title}')
    assert not missing, 'sections named in code but absent:\n' + '\n'.join(missing)
