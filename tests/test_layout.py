"""The package's layout rules (ARCHITECTURE.md): imports point one way, no cycles. Modules are split by concept,
not by size: there is no line cap.

Every `import` counts, the ones inside functions too. A unit is a folder of `mlrelabel/` (`data`, `train`,
...) or a top-level module (`losses`, `run`, ...); each unit sits in one layer, and a module may import only
from its own layer or the ones below. The core (every layer below `methods`) never imports a method, `main`
or the other entry points. The tests mirror the package: each test file is named after the module or folder
it tests.
"""

from __future__ import annotations

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'mlrelabel')

# Bottom to top. A new folder or top-level module must be placed here (the test says so).
LAYERS = (
    (
        'errors',
        'io_utils',
        'parallel',
        'console',
        'progress',
        'compile_cache',
        'config',
        'manifest',
        'workdir',
        'tensorboard_writer',
        'report',
        'decisions',
    ),  # fmt: skip
    ('ops', 'models', 'losses'),  # pure array functions, networks and losses
    ('data', 'validation'),  # sources, label files, config checks
    ('eval',),  # metrics and the evaluation protocols
    ('train',),  # state, step, the fit loop, the inference stream, checkpoints
    ('methods',),  # what every method shares: launch, data and model set-up, the end of a run; supervised
    ('relabel', 'label_maps', 'partial', 'mile'),  # one folder per method: its core and its orchestration
    (
        '__init__',
        'api',
        'main',
        'run',
        'predict',
        'compare',
        'compare_models',
        'benchmark',
        'tools',
        'review',
    ),  # entry points
)
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}
CORE = LAYER['methods']  # layers below it are the core


def _modules() -> dict[str, str]:
    """`{'mlrelabel.x.y': path}` for every module of the package."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, '.')
                out[rel.removesuffix('.__init__')] = path
    return out


MODULES = _modules()


def _imports(module: str, path: str) -> set[str]:
    """The package modules `module` imports (anywhere in the file), resolved to module names."""
    is_package = path.endswith('__init__.py')
    package = module if is_package else module.rsplit('.', 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split('.')[: len(package.split('.')) - node.level + 1]
                base = '.'.join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ''
            names = [f'{base}.{a.name}' if f'{base}.{a.name}' in MODULES else base for a in node.names]
        else:
            continue
        found.update(n for n in names if n in MODULES and n != module)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split('.')
    return '__init__' if len(parts) == 1 else parts[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each a list of nodes."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_unit_has_a_layer():
    missing = sorted({_unit(m) for m in MODULES} - set(LAYER))
    assert not missing, f'place {missing} in a layer of tests/test_layout.py LAYERS (and ARCHITECTURE.md)'


def test_no_import_cycle_between_modules():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_folders():
    units: dict[str, set[str]] = {}
    for a, targets in GRAPH.items():
        units.setdefault(_unit(a), set()).update(_unit(b) for b in targets if _unit(b) != _unit(a))
    assert _cycles(units) == []


def test_imports_point_down_the_layers():
    upward = sorted(
        f'{a} imports {b} ({_unit(b)} is above {_unit(a)})'
        for a, targets in GRAPH.items()
        for b in targets
        if LAYER.get(_unit(b), 0) > LAYER.get(_unit(a), 0)
    )
    assert not upward, '\n'.join(upward)


def test_the_core_never_imports_methods_or_entry_points():
    bad = sorted(
        f'{a} imports {b}'
        for a, targets in GRAPH.items()
        if LAYER.get(_unit(a), CORE) < CORE
        for b in targets
        if LAYER.get(_unit(b), 0) >= CORE
    )
    assert not bad, '\n'.join(bad)


@pytest.mark.parametrize(
    'graph, cycles',
    [({'a': {'b'}, 'b': {'a'}, 'c': {'a'}}, [['a', 'b']]), ({'a': {'b'}, 'b': {'c'}, 'c': set()}, [])],
)
def test_cycle_finder(graph, cycles):
    assert _cycles(graph) == cycles


ENTRY_MODULES = (
    'mlrelabel.main', 'mlrelabel.predict', 'mlrelabel.compare', 'mlrelabel.compare_models', 'mlrelabel.benchmark',
    'mlrelabel.review.cli',
)  # fmt: skip
EXITING_FUNCTIONS = ('main', 'cli')


def _exits(tree: ast.AST) -> list[ast.AST]:
    """Nodes that end the process: `SystemExit` raised or built, `sys.exit`, `exit()` / `quit()` (catching
    SystemExit in an `except` clause is not one)."""
    caught = {
        id(n)
        for h in ast.walk(tree)
        if isinstance(h, ast.ExceptHandler) and h.type is not None
        for n in ast.walk(h.type)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == 'SystemExit' and id(node) not in caught:
            found.append(node)
        elif (
            isinstance(node, ast.Attribute) and node.attr == 'exit' and getattr(node.value, 'id', '') == 'sys'
        ):
            found.append(node)
        elif isinstance(node, ast.Call) and getattr(node.func, 'id', '') in ('exit', 'quit'):
            found.append(node)
    return found


def _exits_outside_entry_functions(module: str, source: str) -> list[str]:
    """`module:line` of every exit outside a `main`/`cli` function of an entry module (everywhere else
    library code raises a typed exception from mlrelabel.errors)."""
    tree = ast.parse(source)
    allowed = set()
    if module in ENTRY_MODULES or module.startswith('mlrelabel.tools.'):
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in EXITING_FUNCTIONS:
                allowed |= {id(n) for n in ast.walk(node)}
    return [f'{module}:{n}' for n in sorted(n.lineno for n in _exits(tree) if id(n) not in allowed)]


def test_library_code_raises_typed_exceptions_not_system_exit():
    bad = [
        hit for m, p in sorted(MODULES.items()) for hit in _exits_outside_entry_functions(m, open(p).read())
    ]
    assert not bad, f'SystemExit / sys.exit outside an entry point main/cli (raise mlrelabel.errors.*): {bad}'


def test_the_exit_finder_sees_every_form():
    source = (
        'import sys\n'
        'def main():\n    sys.exit(1)\n'
        'def cli():\n    try:\n        main()\n    except SystemExit:\n        raise SystemExit(2)\n'
        'def helper():\n    raise SystemExit("no")\n'
        'def other():\n    sys.exit(3)\n'
        'def caught():\n    try:\n        pass\n    except (SystemExit, KeyError):\n        pass\n'
        "if __name__ == '__main__':\n    exit(main())\n"
    )
    assert _exits_outside_entry_functions('mlrelabel.main', source) == [
        'mlrelabel.main:10',
        'mlrelabel.main:12',
        'mlrelabel.main:19',
    ]
    assert len(_exits_outside_entry_functions('mlrelabel.data.x', source)) == 5


def test_import_finder_sees_imports_inside_functions():
    assert 'mlrelabel.main' in GRAPH['mlrelabel.run']  # imported inside run_config


MAX_FUNCTIONS_OVER = 12  # functions a reader can hold: few exceed 6 parameters or 60 lines


def _functions():
    for module, path in MODULES.items():
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield module, node


def test_few_functions_take_more_than_six_parameters_or_sixty_lines():
    many, long = [], []
    for module, node in _functions():
        a = node.args
        params = [p for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ('self', 'cls')]
        if len(params) > 6:
            many.append(f'{module}.{node.name} ({len(params)} parameters)')
        if node.end_lineno - node.lineno + 1 > 60:
            long.append(f'{module}.{node.name} ({node.end_lineno - node.lineno + 1} lines)')
    assert len(many) <= MAX_FUNCTIONS_OVER, many
    assert len(long) <= MAX_FUNCTIONS_OVER, long


# The tests mirror the package: tests/<folder>/test_<module>.py (or test_<folder>.py for what concerns the
# whole folder) and tests/test_<module>.py for top-level modules. Suites about the project rather than one
# module are listed here.
TESTS = os.path.dirname(os.path.abspath(__file__))
CROSS_CUTTING = {
    'test_layout.py',  # these rules
    'test_package.py',  # pyproject, requirements, the installed package
    'test_docs.py',  # the documentation's claims and examples
    'test_cpu_devices.py',  # a CPU split into JAX devices before JAX starts
    'test_multihost.py',  # two processes train as one
    'test_gpu_check.py',  # benchmarks/gpu_check.py
    'test_launch_scripts.py',  # launch/*.sh
    'test_benchmark_scripts.py',  # the diagnostic scripts of benchmarks/
    'test_benchmarks_doc.py',  # BENCHMARKS.md: its opening table, links and the sections code names
}
TEST_SUPPORT = {'__init__.py', 'conftest.py', 'helpers.py'}  # fixtures and shared helpers, beside the tests


def _misplaced_tests(tests_dir: str, package_dir: str, cross_cutting=frozenset()) -> list[str]:
    """Test files (and folders) of `tests_dir` whose path names no module or folder of `package_dir`."""
    bad = []
    for folder, dirs, files in os.walk(tests_dir):
        dirs[:] = [d for d in dirs if not d.startswith(('.', '__'))]
        rel = os.path.relpath(folder, tests_dir)
        parts = [] if rel == '.' else rel.split(os.sep)
        mirror = os.path.join(package_dir, *parts)
        if parts and not os.path.isdir(mirror):
            bad.append(f'{rel}/ (no mlrelabel/{rel}/)')
            continue
        if parts and '__init__.py' not in files:
            bad.append(f'{rel}/ (no __init__.py: equal file names in two folders would clash)')
        for name in files:
            if not name.endswith('.py') or name in TEST_SUPPORT or (not parts and name in cross_cutting):
                continue
            stem = name.removeprefix('test_')[:-3]
            owner = os.path.join(mirror, stem)
            if not name.startswith('test_') or not (
                os.path.isfile(owner + '.py') or os.path.isdir(owner) or (parts and stem == parts[-1])
            ):
                bad.append(os.path.join(rel, name) if parts else name)
    return sorted(bad)


def test_every_test_file_is_named_after_a_module_or_folder_of_the_package():
    assert not _misplaced_tests(TESTS, PACKAGE, CROSS_CUTTING), (
        'name each test file after what it tests: tests/<folder>/test_<module>.py, tests/<folder>/'
        'test_<folder>.py or tests/test_<module>.py (or list a suite about the whole project in CROSS_CUTTING)'
    )


def test_the_test_layout_finder_names_each_misplaced_file(tmp_path):
    package, tests = tmp_path / 'pkg', tmp_path / 'tests'
    for path in ('relabel/assign.py', 'relabel/__init__.py', 'run.py', 'data/__init__.py'):
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text('')
    good = ['test_run.py', 'test_relabel.py', 'relabel/test_assign.py', 'relabel/test_relabel.py']
    good += ['relabel/__init__.py', 'relabel/helpers.py', 'conftest.py', 'test_suite.py']
    wrong = ['test_engine.py', 'relabel/test_run.py', 'relabel/assign_test.py', 'models/test_resnet.py']
    wrong += ['data/test_data.py']  # data/ lacks __init__.py
    for path in good + wrong:
        (tests / path).parent.mkdir(parents=True, exist_ok=True)
        (tests / path).write_text('')
    (tests / 'relabel' / '__init__.py').write_text('')
    assert _misplaced_tests(str(tests), str(package), {'test_suite.py'}) == [
        'data/ (no __init__.py: equal file names in two folders would clash)',
        'models/ (no mlrelabel/models/)',
        'relabel/assign_test.py',
        'relabel/test_run.py',
        'test_engine.py',
    ]
