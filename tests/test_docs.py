"""Every command and code block in README.md and docs/**/*.md runs, or is marked as needing a GPU or ImageNet.

The convention the pages follow (this file is its definition):

- ```` ```bash ```` and ```` ```python ```` fences are run. The blocks of one page run in order in one temporary
  folder (the working directory), with the repository on PYTHONPATH and its `configs/` linked there.
- A bash block holds one command per non-empty line that is not a comment; a trailing backslash continues a line.
  - `python -m mlrelabel.main --config=<recipe or configs/<r>.py>[:variant] ...` and `mlrelabel ...` run the
    recipe's `:smoke` variant (with `--workdir=runs/<recipe>` added where none is given). A page runs each recipe
    once: a later command of the same recipe is validated (recipe, overrides), not run.
  - `mlrelabel-review` / `python -m mlrelabel.review` run with `--no-serve` added unless `--apply` is given;
    `mlrelabel-predict` and other `python -m mlrelabel.<module>` commands run as written, with a timeout.
    `mlrelabel.compare` / `mlrelabel.compare_models` run their smoke variant with the first seed and the first
    entry or model named. A run directory such a command names that does not exist is the page's last smoke run.
  - Absolute paths under `/tmp/` are mapped into the temporary folder.
  - `pip install ...` is not run: it must be the README's install command, `pip install -c constraints.txt -e
    ".[<extras>]"` (or without `-c constraints.txt`), with extras that pyproject.toml defines.
  - `python -m pytest ...` is not run (it would recurse): its options must be ones pytest knows and its paths
    must exist.
  - `python <file>.py ...` runs the repository's file as written; a few shell utilities (ls, cat, head, ...) run
    in the temporary folder. Any other command is an error.
- A python block is written to a file and run in the page's temporary folder.
- A second word `gpu` or `imagenet` (```` ```bash gpu ````, ```` ```python imagenet ````) marks a block that is
  not run: a python one is compiled, a bash one checked to name existing modules, recipes, config fields and
  files. Any other second word is an error, so that a typo cannot skip a block.
- `text`, `console`, `json` and unlabelled fences are not run. Any other fence language is an error.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_LANGUAGES = ('bash', 'python')
QUIET_LANGUAGES = ('', 'text', 'console', 'json')
TAGS = ('gpu', 'imagenet')
SHELL_UTILITIES = ('ls', 'cat', 'head', 'tail', 'wc', 'mkdir', 'cp', 'echo', 'test', 'diff')
CONSOLE_SCRIPTS = {
    'mlrelabel': 'mlrelabel.main',
    'mlrelabel-predict': 'mlrelabel.predict',
    'mlrelabel-review': 'mlrelabel.review',
}
MAIN_TIMEOUT_S = 600
UNKNOWN = (
    'not a command the doc test knows how to run (see tests/test_docs.py); '
    'mark the block `bash gpu` / `bash imagenet` or show it as `text`'
)
COMMAND_TIMEOUT_S = 300


# ------------------------------------------------------------------------------------------ parsing
@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, its tag (the fence's second word), its text and first line."""

    lang: str
    tag: str
    code: str
    line: int
    words: int = 0  # words in the fence's info string

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGUAGES and not self.tag


_OPEN = re.compile(r'^ {0,3}(`{3,}|~{3,})\s*(.*)$')


def parse_fences(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, in order. Raises ValueError on a fence left open."""
    blocks, lines, k = [], text.splitlines(), 0
    while k < len(lines):
        opened = _OPEN.match(lines[k])
        if not opened:
            k += 1
            continue
        fence, info = opened.group(1), opened.group(2).strip()
        end = k + 1
        while end < len(lines) and not re.match(rf'^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$', lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f'line {k + 1}: the fence {fence}{info} is never closed')
        words = info.split()
        lang = words[0].lower() if words else ''
        tag = words[1] if len(words) > 1 else ''
        blocks.append(Block(lang, tag, '\n'.join(lines[k + 1 : end]) + '\n', k + 1, len(words)))
        k = end + 1
    return blocks


def fence_problem(block: Block) -> str | None:
    """Why a fence breaks the convention (unknown language, unknown tag), or None."""
    where = f'line {block.line}: ```{block.lang} {block.tag}'.rstrip()
    if block.lang not in RUN_LANGUAGES + QUIET_LANGUAGES:
        known = ', '.join(repr(x) for x in RUN_LANGUAGES + QUIET_LANGUAGES)
        return f'{where}: unknown fence language (known: {known})'
    if block.tag and block.lang not in RUN_LANGUAGES:
        return f'{where}: only bash and python fences take a second word'
    if block.tag and block.tag not in TAGS or block.words > 2:
        return f'{where}: the second word must be one of {", ".join(TAGS)} (and nothing after it)'
    return None


def bash_commands(code: str) -> list[str]:
    """The commands of a bash block: one per line, backslash continuations joined, blank and comment lines
    dropped."""
    commands, current = [], ''
    for raw in code.splitlines():
        line = raw.rstrip()
        if line.endswith('\\'):
            current += line[:-1] + ' '
            continue
        line, current = current + line, ''
        if line.strip() and not line.strip().startswith('#'):
            commands.append(line.strip())
    if current.strip():
        commands.append(current.strip())
    return commands


# ------------------------------------------------------------------------------------------ commands
@dataclasses.dataclass
class Command:
    """A bash command split into its environment assignments, what it runs and its arguments.

    `kind`: 'pip', 'pytest', 'main', 'review', 'module' (python -m mlrelabel.<module>), 'script'
    (python <file>), 'shell' (a shell utility) or 'unknown'; `target` is the module, file or program.
    """

    kind: str
    target: str
    args: list[str]
    env: dict[str, str]
    text: str


def split_command(text: str) -> Command:
    tokens = shlex.split(text, comments=True)
    env = {}
    while tokens and re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*=.*', tokens[0]):
        name, _, value = tokens.pop(0).partition('=')
        env[name] = value
    if not tokens:
        return Command('unknown', '', [], env, text)
    head, rest = tokens[0], tokens[1:]
    if head in CONSOLE_SCRIPTS:
        head, rest = 'python', ['-m', CONSOLE_SCRIPTS[head], *rest]
    if head in ('pip', 'pip3') and rest[:1] == ['install']:
        return Command('pip', 'pip', rest[1:], env, text)
    if head == 'pytest':
        return Command('pytest', 'pytest', rest, env, text)
    if head in ('python', 'python3') and rest[:1] == ['-m'] and len(rest) > 1:
        module, args = rest[1], rest[2:]
        if module == 'pip' and args[:1] == ['install']:
            return Command('pip', 'pip', args[1:], env, text)
        if module == 'pytest':
            return Command('pytest', 'pytest', args, env, text)
        if module == 'mlrelabel.main':
            return Command('main', module, args, env, text)
        if module in ('mlrelabel.review', 'mlrelabel.review.cli'):
            return Command('review', 'mlrelabel.review', args, env, text)
        if module.startswith('mlrelabel.'):
            return Command('module', module, args, env, text)
        return Command('unknown', module, args, env, text)
    if head in ('python', 'python3') and rest and rest[0].endswith('.py'):
        return Command('script', rest[0], rest[1:], env, text)
    if head in SHELL_UTILITIES:
        return Command('shell', head, rest, env, text)
    return Command('unknown', head, rest, env, text)


def option(args: list[str], name: str) -> str | None:
    """The value of `--name=value` (or `--name value`) in `args`, or None."""
    for k, arg in enumerate(args):
        if arg.startswith(f'--{name}='):
            return arg.split('=', 1)[1]
        if arg == f'--{name}' and k + 1 < len(args):
            return args[k + 1]
    return None


def set_option(args: list[str], name: str, value: str) -> list[str]:
    """`args` with `--name=value` in the place of `--name...` (absl reads `--config` before its overrides), or
    added at the end."""
    out, skip, done = [], False, False
    for k, arg in enumerate(args):
        if skip:
            skip = False
            continue
        pair = arg == f'--{name}' and k + 1 < len(args) and not args[k + 1].startswith('-')
        if arg.startswith(f'--{name}=') or pair:
            skip = pair
            if not done:
                out.append(f'--{name}={value}')
            done = True
            continue
        out.append(arg)
    return out if done else [*out, f'--{name}={value}']


def map_tmp(arg: str, tmp: str) -> str:
    """An argument with its absolute `/tmp/...` paths (whole or after `=`) moved under the folder `tmp`."""
    return re.sub(r'(^|=)/tmp/', lambda m: f'{m.group(1)}{tmp}/tmp/', arg)


def recipe_path(spec: str) -> tuple[str, str]:
    """`(absolute recipe file, variant)` of a `--config` value: a recipe name or a path relative to the
    repository (`configs/x.py`). Raises ValueError when neither exists."""
    from mlrelabel.config import recipes

    path, _, variant = spec.partition(':')
    if not os.path.isabs(path) and os.path.isfile(os.path.join(ROOT, path)):
        path = os.path.join(ROOT, path)
    resolved = recipes.resolve(path)
    return resolved.partition(':')[0], variant


def smoke_main(args: list[str]) -> tuple[list[str], str]:
    """A main command's arguments with the recipe's `:smoke` variant and a work directory; and the recipe name."""
    spec = option(args, 'config')
    if spec is None:
        raise ValueError('no --config=<recipe>')
    path, _ = recipe_path(spec)
    name = os.path.splitext(os.path.basename(path))[0]
    args = set_option(args, 'config', f'{path}:smoke')
    if option(args, 'workdir') is None:
        args = [*args, f'--workdir=runs/{name}']
    return args, name


def config_overrides(args: list[str]) -> dict[str, str]:
    """The `--config.<field>=<value>` overrides of a main command."""
    out = {}
    for arg in args:
        if arg.startswith('--config.'):
            field, _, value = arg[len('--config.') :].partition('=')
            out[field] = value
    return out


def module_exists(module: str) -> bool:
    base = os.path.join(ROOT, *module.split('.'))
    return os.path.isfile(base + '.py') or os.path.isfile(os.path.join(base, '__main__.py'))


@functools.lru_cache(maxsize=1)
def pyproject_extras() -> frozenset:
    import tomllib

    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        return frozenset(tomllib.load(f)['project'].get('optional-dependencies', {}))


def pip_problem(args: list[str]) -> str | None:
    """None when `pip install` is the README's install command: `-c constraints.txt` (optional), `-e`, and `.`
    or `.[extras]` with extras pyproject.toml defines."""
    rest = list(args)
    if rest[:2] == ['-c', 'constraints.txt']:
        rest = rest[2:]
    if len(rest) != 2 or rest[0] != '-e' or not re.fullmatch(r'\.(\[[\w,-]+\])?', rest[1]):
        return 'expected the install command: pip install -c constraints.txt -e ".[<extras>]"'
    extras = rest[1][2:-1].split(',') if '[' in rest[1] else []
    unknown = [e for e in extras if e not in pyproject_extras()]
    if unknown:
        return f'extras {unknown} are not in pyproject.toml (it has {sorted(pyproject_extras())})'
    return None


@functools.lru_cache(maxsize=1)
def pytest_help() -> str:
    out = subprocess.run(
        [sys.executable, '-m', 'pytest', '--help'], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    return out.stdout


def pytest_problem(args: list[str], help_text: str | None = None) -> str | None:
    """None when every option of a pytest command is one pytest knows and every path argument exists."""
    help_text = pytest_help() if help_text is None else help_text
    for arg in args:
        if arg.startswith('-'):
            name = arg.split('=', 1)[0]
            if not re.search(rf'(^|[\s,]){re.escape(name)}([\s,=]|$)', help_text, re.M):
                return f'pytest has no option {name}'
        elif ('/' in arg or arg.endswith('.py')) and not os.path.exists(
            os.path.join(ROOT, arg.split('::')[0])
        ):
            return f'no such test path {arg}'
    return None


@functools.lru_cache(maxsize=None)
def module_help(module: str) -> str:
    """What `python -m <module> --help` prints (the flags a command of it may name)."""
    env = {**os.environ, 'PYTHONPATH': ROOT}
    out = subprocess.run(
        [sys.executable, '-m', module, '--help'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout + out.stderr


def flag_problems(args: list[str], help_text: str) -> list[str]:
    """The `--flags` of `args` that `help_text` does not list (`--config.<field>` overrides are checked apart)."""
    known = set(re.findall(r'--[A-Za-z][\w-]*', help_text))
    known |= {f'--{x}' for x in re.findall(r'--\[no\]([A-Za-z][\w-]*)', help_text)}  # absl booleans
    problems = []
    for arg in args:
        name = arg.split('=', 1)[0]
        if not name.startswith('--') or name.startswith('--config.'):
            continue
        if name not in known and not (name.startswith('--no') and '--' + name[4:] in known):
            problems.append(f'{name}: not a flag of this command')
    return problems


def static_problems(command: Command) -> list[str]:
    """What a command that is not run names wrongly: modules, recipes, config fields, repository files."""
    from mlrelabel.config import schema

    problems = []
    if command.kind in ('main', 'module', 'review'):
        if not module_exists(command.target):
            problems.append(f'no module {command.target}')
        else:
            problems += flag_problems(command.args, module_help(command.target))
    if command.kind == 'pip':
        problems.append(pip_problem(command.args))
    if command.kind == 'pytest':
        problems.append(pytest_problem(command.args))
    spec = option(command.args, 'config')
    if spec and spec != '...' and '<' not in spec:
        try:
            recipe_path(spec)
        except ValueError as error:
            problems.append(str(error))
    for field in config_overrides(command.args):
        if field not in schema.FIELDS:
            problems.append(f'--config.{field}: no such config field')
    files = [command.target] if command.kind in ('script', 'unknown') else []
    for token in files + [a for a in command.args if not a.startswith('--config=')]:
        token = token.split('=', 1)[-1]
        relative = not os.path.isabs(token) and not token.startswith(('runs/', '.', '~'))
        if relative and token.endswith(('.py', '.sh')) and not os.path.exists(os.path.join(ROOT, token)):
            problems.append(f'no such file {token}')
    return [p for p in problems if p]


# ------------------------------------------------------------------------------------------ running
class PageRun:
    """Runs the blocks of one page in order in the folder `tmp`; `failures` collects what went wrong."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.runs: dict[str, str] = {}  # recipe name -> its smoke run's work directory
        self.last_run = ''
        self.failures: list[str] = []
        os.symlink(os.path.join(ROOT, 'configs'), os.path.join(tmp, 'configs'))
        os.makedirs(os.path.join(tmp, 'tmp'), exist_ok=True)
        self.env = {**os.environ, 'PYTHONPATH': os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')])}

    def call(self, argv: list[str], where: str, timeout: int, env: dict | None = None) -> bool:
        start = time.monotonic()
        try:
            out = subprocess.run(
                argv, cwd=self.tmp, env={**self.env, **(env or {})}, capture_output=True, text=True,
                timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            self.failures.append(f'{where}: still running after {timeout} s')
            return False
        print(f'{where}: {time.monotonic() - start:.0f} s')  # shown when the test fails
        if out.returncode != 0:
            tail = (out.stdout + out.stderr)[-3000:]
            self.failures.append(f'{where}: exit {out.returncode}\n{tail}')
        return out.returncode == 0

    def block(self, block: Block, page: str) -> None:
        where = f'{page}:{block.line}'
        if block.lang == 'python' and block.tag:
            try:
                compile(block.code, where, 'exec')
            except SyntaxError as error:
                self.failures.append(f'{where}: {error}')
        elif block.lang == 'python':
            path = os.path.join(self.tmp, f'block_{block.line}.py')
            with open(path, 'w') as f:
                f.write(block.code)
            self.call([sys.executable, path], where, MAIN_TIMEOUT_S)
        elif block.lang == 'bash':
            for text in bash_commands(block.code):
                command = split_command(text)
                here = f'{where} `{text}`'
                if block.tag:
                    self.failures += [f'{here}: {p}' for p in static_problems(command)]
                else:
                    self.command(command, here)

    def workdir_of(self, path: str) -> str:
        """`path` (a run directory a command names), or the page's last smoke run where it does not exist."""
        self.link(path, self.last_run)
        return path

    def link(self, path: str, run: str) -> None:
        """Makes the run directory `path` (in the page's folder) the smoke run `run` unless it exists."""
        full = os.path.join(self.tmp, path)
        if run and not os.path.lexists(full):
            os.makedirs(os.path.dirname(full) or '.', exist_ok=True)
            os.symlink(run, full)

    def command(self, command: Command, where: str) -> None:
        args = [map_tmp(a, self.tmp) for a in command.args]
        kind = command.kind
        if kind in ('pip', 'pytest'):
            problem = pip_problem(args) if kind == 'pip' else pytest_problem(args)
            if problem:
                self.failures.append(f'{where}: {problem}')
        elif kind == 'main':
            self.main(args, command.env, where)
        elif kind == 'review':
            positional = [a for a in args if not a.startswith('-')]
            if positional:
                args = [self.workdir_of(a) if a == positional[0] else a for a in args]
            if '--apply' not in args and '--no-serve' not in args:
                args.append('--no-serve')
            self.module('mlrelabel.review', args, command.env, where)
        elif kind == 'module':
            self.module(command.target, self.smoke_module(command.target, args), command.env, where)
        elif kind == 'script':
            path = command.target if os.path.isabs(command.target) else os.path.join(ROOT, command.target)
            self.call([sys.executable, path, *args], where, COMMAND_TIMEOUT_S, command.env)
        elif kind == 'shell':
            self.call(['bash', '-c', shlex.join([command.target, *args])], where, 60, command.env)
        else:
            self.failures.append(f'{where}: {UNKNOWN}')

    def main(self, args: list[str], env: dict, where: str) -> None:
        try:
            args, name = smoke_main(args)
        except ValueError as error:
            self.failures.append(f'{where}: {error}')
            return
        if name in self.runs:  # one smoke run per recipe and page: a later command is validated, and its work
            self.validate(args, where)  # directory is the earlier run's
            self.link(option(args, 'workdir'), self.runs[name])
            self.last_run = self.runs[name]
            return
        if self.call([sys.executable, '-m', 'mlrelabel.main', *args], where, MAIN_TIMEOUT_S, env):
            self.runs[name] = self.last_run = os.path.join(self.tmp, option(args, 'workdir'))

    def validate(self, args: list[str], where: str) -> None:
        script = (
            'import sys\n'
            'from mlrelabel.compare import parse_set\n'
            'from mlrelabel.config import recipes, schema\n'
            'from mlrelabel.validation import validate_config\n'
            'config = recipes.load(sys.argv[1])\n'
            'for field, value in parse_set(sys.argv[2:]).items():\n'
            '    node = config\n'
            '    *parents, leaf = field.split(".")\n'
            '    for part in parents:\n'
            '        node = node[part]\n'
            '    node[leaf] = value\n'
            'validate_config(config)\n'
        )
        sets = [f'{k}={v}' for k, v in config_overrides(args).items()]
        self.call([sys.executable, '-c', script, option(args, 'config'), *sets], where, COMMAND_TIMEOUT_S)

    def smoke_module(self, module: str, args: list[str]) -> list[str]:
        """Arguments of the comparison commands cut to one smoke run; run directories of predict mapped."""
        if module == 'mlrelabel.compare':
            args = set_option(args, 'variant', 'smoke')
            args = set_option(args, 'seeds', (option(args, 'seeds') or '0').split(',')[0])
            args = set_option(args, 'entries', (option(args, 'entries') or 'softmax').split(',')[0])
        if module == 'mlrelabel.compare_models':
            spec = (option(args, 'config') or 'supervised').partition(':')[0]
            args = set_option(args, 'config', f'{spec}:smoke')
            args = set_option(args, 'models', (option(args, 'models') or '').split(',')[0])
        if module == 'mlrelabel.predict' and option(args, 'workdir'):
            args = set_option(args, 'workdir', self.workdir_of(option(args, 'workdir')))
        return args

    def module(self, module: str, args: list[str], env: dict, where: str) -> None:
        if not module_exists(module):
            self.failures.append(f'{where}: no module {module}')
            return
        self.call([sys.executable, '-m', module, *args], where, COMMAND_TIMEOUT_S, env)


# ------------------------------------------------------------------------------------------ pages
def pages() -> list[str]:
    found = ['README.md'] + sorted(
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'docs', '**', '*.md'), recursive=True)
    )
    return [p for p in found if os.path.isfile(os.path.join(ROOT, p))]


def read_blocks(page: str) -> list[Block]:
    with open(os.path.join(ROOT, page), encoding='utf-8') as f:
        return parse_fences(f.read())


def heavy(page: str) -> bool:
    """Whether running a page's blocks takes a training run (over 30 s): a main command or a python block
    that trains."""
    try:
        blocks = read_blocks(page)
    except ValueError:  # a fence left open: test_page_fences_follow_the_convention says where
        return False
    for block in blocks:
        if not block.runs:
            continue
        if block.lang == 'python' and re.search(r'run_config|mlrelabel\.main|compare', block.code):
            return True
        if block.lang == 'bash':
            kinds = {split_command(c).kind for c in bash_commands(block.code)}
            targets = {split_command(c).target for c in bash_commands(block.code)}
            if 'main' in kinds or targets & {'mlrelabel.compare', 'mlrelabel.compare_models'}:
                return True
    return False


@pytest.mark.parametrize('page', pages())
def test_page_fences_follow_the_convention(page):
    """Every fence's language is one the test knows, and blocks that are not run name what exists."""
    problems = [p for p in map(fence_problem, read_blocks(page)) if p]
    for block in [] if problems else read_blocks(page):
        if block.lang == 'python':
            try:
                compile(block.code, f'{page}:{block.line}', 'exec')
            except SyntaxError as error:
                problems.append(f'line {block.line}: {error}')
        for text in bash_commands(block.code) if block.lang == 'bash' else []:
            command = split_command(text)
            found = static_problems(command)
            if command.kind == 'unknown' and not block.tag:
                found.append(UNKNOWN)
            problems += [f'line {block.line} `{text}`: {p}' for p in found]
    assert not problems, f'{page}:\n' + '\n'.join(problems)


@pytest.mark.parametrize(
    'page', [pytest.param(p, marks=[pytest.mark.slow] if heavy(p) else []) for p in pages()]
)
def test_page_blocks_run(page, tmp_path):
    """The page's bash and python blocks run in order in one folder (smoke variants of the recipes)."""
    blocks = read_blocks(page)
    assert not [p for p in map(fence_problem, blocks) if p], 'see test_page_fences_follow_the_convention'
    runner = PageRun(str(tmp_path))
    for block in blocks:
        if block.lang in RUN_LANGUAGES:
            runner.block(block, page)
    assert not runner.failures, f'{page}: {len(runner.failures)} failed\n\n' + '\n\n'.join(runner.failures)


# ------------------------------------------------------------------------------------------ the harness
SAMPLE = """# A page

```bash
python -m mlrelabel.main --config=configs/mc_dropout.py \\
    --config.relabel.max_rounds=2   # two rounds
# a comment line

mlrelabel-review /tmp/rv/run
```

```python gpu
print('on a GPU')
```

````text
```bash
not a fence of the page
```
````

```json
{}
```
"""


def test_parse_fences_reads_language_tag_code_and_line():
    blocks = parse_fences(SAMPLE)
    assert [(b.lang, b.tag, b.line) for b in blocks] == [('bash', '', 3), ('python', 'gpu', 11), ('text', '', 15),
                                                          ('json', '', 21)]  # fmt: skip
    assert blocks[1].code == "print('on a GPU')\n"
    assert blocks[2].code.startswith('```bash')  # a longer fence holds shorter ones
    assert [b.runs for b in blocks] == [True, False, False, False]
    with pytest.raises(ValueError, match='never closed'):
        parse_fences('```bash\nls\n')


def test_fence_problem_rejects_unknown_languages_and_tags():
    assert all(fence_problem(b) is None for b in parse_fences(SAMPLE))
    bad = parse_fences('```sh\nls\n```\n```bash gpus\nls\n```\n```text gpu\nx\n```\n```bash gpu x\nls\n```\n')
    problems = [fence_problem(b) for b in bad]
    assert 'unknown fence language' in problems[0]
    assert 'second word must be one of gpu, imagenet' in problems[1]
    assert 'only bash and python' in problems[2]
    assert 'nothing after it' in problems[3]


def test_bash_commands_join_continuations_and_drop_comments():
    commands = bash_commands(parse_fences(SAMPLE)[0].code)
    assert len(commands) == 2
    assert commands[0].startswith('python -m mlrelabel.main --config=configs/mc_dropout.py ')
    assert commands[0].endswith('# two rounds')
    assert commands[1] == 'mlrelabel-review /tmp/rv/run'


def test_split_command_kinds():
    kinds = {
        'pip install -c constraints.txt -e ".[dev]"': ('pip', 'pip'),
        'python -m pytest -q -n 2': ('pytest', 'pytest'),
        'mlrelabel --config=mc_dropout': ('main', 'mlrelabel.main'),
        'python -m mlrelabel.main --config=x': ('main', 'mlrelabel.main'),
        'mlrelabel-review W --apply': ('review', 'mlrelabel.review'),
        'mlrelabel-predict --workdir=W --images=I': ('module', 'mlrelabel.predict'),
        'python -m mlrelabel.compare --seeds=0': ('module', 'mlrelabel.compare'),
        'python benchmarks/main_job.py': ('script', 'benchmarks/main_job.py'),
        'ls runs': ('shell', 'ls'),
        'sbatch launch/x.sh': ('unknown', 'sbatch'),
    }
    for text, expected in kinds.items():
        command = split_command(text)
        assert (command.kind, command.target) == expected, text
    command = split_command('TPU_NAME=v4 ZONE=z launch/tpu_vm.sh --config=a  # every worker')
    assert command.env == {'TPU_NAME': 'v4', 'ZONE': 'z'}
    assert command.args == ['--config=a']


def test_smoke_main_substitutes_the_smoke_variant_and_a_workdir():
    args, name = smoke_main(['--config=configs/mc_dropout.py', '--config.seed=1'])
    assert name == 'mc_dropout'
    assert args == [
        f'--config={ROOT}/configs/mc_dropout.py:smoke',  # before its overrides, where absl reads it
        '--config.seed=1',
        '--workdir=runs/mc_dropout',
    ]
    args, name = smoke_main(['--config', 'naive:smoke', '--workdir=W'])
    assert (name, args) == ('naive', [f'--config={ROOT}/configs/naive.py:smoke', '--workdir=W'])
    with pytest.raises(ValueError, match='no recipe named'):
        smoke_main(['--config=no_such_recipe'])


def test_map_tmp_moves_tmp_paths_into_the_page_folder():
    assert map_tmp('/tmp/rv_smoke', '/x') == '/x/tmp/rv_smoke'
    assert map_tmp('--workdir=/tmp/a', '/x') == '--workdir=/x/tmp/a'
    assert map_tmp('runs/tmp/a', '/x') == 'runs/tmp/a'


def test_option_and_set_option():
    args = ['--seeds', '0,1', '--entries=a,b', 'x']
    assert option(args, 'seeds') == '0,1' and option(args, 'entries') == 'a,b' and option(args, 'no') is None
    assert set_option(args, 'seeds', '0') == ['--seeds=0', '--entries=a,b', 'x']
    assert set_option(args, 'variant', 'smoke') == [*args, '--variant=smoke']


def test_pip_problem_accepts_the_install_command_only():
    assert pip_problem(['-c', 'constraints.txt', '-e', '.[dev]']) is None
    assert pip_problem(['-e', '.[dev,torch]']) is None
    assert pip_problem(['-e', '.']) is None
    assert 'not in pyproject.toml' in pip_problem(['-c', 'constraints.txt', '-e', '.[nope]'])
    assert 'expected the install command' in pip_problem(['mlrelabel'])


def test_pytest_problem_checks_options_and_paths():
    help_text = (
        'general:\n  -k EXPRESSION  ...\n  -q, --quiet  ...\n  -n numprocesses, --numprocesses=numprocesses\n'
    )
    assert pytest_problem(['-q', '-n', '2', 'tests/test_docs.py'], help_text) is None
    assert pytest_problem(['--numprocesses=2'], help_text) is None
    assert pytest_problem(['--nope'], help_text) == 'pytest has no option --nope'
    assert pytest_problem(['tests/no_such_test.py'], help_text) == 'no such test path tests/no_such_test.py'


def test_static_problems_name_missing_modules_recipes_fields_and_files():
    good = split_command(
        'python -m mlrelabel.main --config=configs/mc_dropout_imagenet.py --config.seed=2 --workdir=W'
    )
    assert static_problems(good) == []
    assert static_problems(split_command('mlrelabel-review W --no-serve --port=0')) == []
    assert static_problems(split_command('mlrelabel-review W --serve')) == [
        '--serve: not a flag of this command'
    ]
    assert static_problems(split_command('launch/single_node_gpu.sh --config=...')) == []
    bad = split_command('python -m mlrelabel.nope --config=nope.py --config.relabel.no_field=1 launch/x.sh')
    problems = static_problems(bad)
    assert problems[0] == 'no module mlrelabel.nope'
    assert "no recipe named 'nope'" in problems[1]
    assert problems[2] == '--config.relabel.no_field: no such config field'
    assert problems[3] == 'no such file launch/x.sh'


def test_flag_problems_reads_the_help_text():
    help_text = '  --workdir: a folder\n  --[no]recursive: ...\n  --no-serve  write the page only'
    assert (
        flag_problems(['--workdir=W', '--norecursive', '--no-serve', '--config.seed=1', 'x'], help_text) == []
    )
    assert flag_problems(['--work_dir=W'], help_text) == ['--work_dir: not a flag of this command']


def test_page_run_runs_python_and_shell_and_reports_failures(tmp_path):
    runner = PageRun(str(tmp_path))
    page = '```python\nopen("out.txt", "w").write("hi")\n```\n```bash\ncat out.txt\nls no_such_file\n```\n'
    page += '```bash\nfrobnicate --now\n```\n```python gpu\nprint(\n```\n'
    for block in parse_fences(page):
        runner.block(block, 'sample.md')
    assert (tmp_path / 'out.txt').read_text() == 'hi'
    assert len(runner.failures) == 3
    assert runner.failures[0].startswith('sample.md:4 `ls no_such_file`: exit')
    assert 'not a command the doc test knows' in runner.failures[1]
    assert runner.failures[2].startswith('sample.md:11:')  # the gpu block's syntax error


def test_page_run_review_gets_no_serve_and_the_last_run(tmp_path, monkeypatch):
    runner = PageRun(str(tmp_path))
    calls = []
    monkeypatch.setattr(runner, 'call', lambda argv, where, timeout, env=None: calls.append(argv))
    runner.last_run = str(tmp_path / 'runs' / 'mc_dropout')
    os.makedirs(runner.last_run)
    runner.command(split_command('mlrelabel-review /tmp/rv_smoke'), 'x')
    assert calls[-1][-2:] == ['/tmp/rv_smoke'.replace('/tmp/', f'{tmp_path}/tmp/'), '--no-serve']
    assert os.path.realpath(tmp_path / 'tmp' / 'rv_smoke') == runner.last_run
    runner.command(split_command('mlrelabel-review /tmp/rv_smoke --apply'), 'x')
    assert '--no-serve' not in calls[-1]
    runner.runs['mc_dropout'] = runner.last_run
    runner.command(split_command('mlrelabel --config=mc_dropout --config.seed=3 --workdir=W2'), 'x')
    assert calls[-1][1] == '-c' and calls[-1][-1] == 'seed=3'  # validated, not run a second time
    assert os.path.realpath(tmp_path / 'W2') == runner.last_run  # commands naming W2 read the earlier run
    runner.last_run = str(tmp_path / 'no_such_run')
    runner.command(split_command('mlrelabel-review /tmp/other'), 'x')
    runner.command(split_command('mlrelabel-review /tmp/other'), 'x')  # a dangling link is not made twice
    runner.command(split_command('python -m mlrelabel.compare --entries=a,b --seeds=0,1,2'), 'x')
    assert calls[-1][3:] == ['--entries=a', '--seeds=0', '--variant=smoke']
