"""The whole run's progress in one line: the round, the phase and an ETA for the whole run.

A method names its planned phases up front (`Phase`: a kind such as 'train' or 'score', its round, its work in
units) and marks where each begins (`RunProgress.begin`). The time left is estimated from the phases measured so
far (`remaining_seconds`): a planned phase of a kind already measured takes that kind's seconds per unit; a kind
not measured yet takes the seconds per unit of all measured phases together (the units are forward passes of one
image, so kinds compare roughly). Until a phase has finished, the running phase's own rate stands for every
kind once a fifth of its work is done; before that the line says `ETA ?`. A run that stops early drops
the phases it will not run (`begin` of a later phase skips the ones before it), so the estimate follows.

On a terminal the line is updated in place: inside the open progress bar's description (the bar made by
`parallel.progress_bar`, so the two never draw over each other), else on a line of its own. Elsewhere (a log
file, a pipe) it is printed as plain lines: one per phase and at most one per `interval` seconds in between;
those lines also go to `<workdir>/progress.log`. `finish` prints the total wall time and the time per phase kind
and records them in `timing.json` under 'phases'.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import sys
import time
from typing import Callable, Sequence, TextIO

from mlrelabel.io_utils import record_timing

PROG = 'mlrelabel'
INTERVAL = 30.0  # seconds between plain lines within one phase
TTY_INTERVAL = 0.5  # seconds between redraws of the line on a terminal
MIN_DONE_HERE = 0.2  # a phase that did less of its work in this process (resumed) is not measured


@dataclasses.dataclass(frozen=True)
class Phase:
    """One planned step of a run.

    kind: what it does ('train', 'score', ...); phases of one kind take time in proportion to their units.
    units: its work in forward passes of one image (0: unknown, never estimated nor measured).
    round: the relabel round it belongs to (None: the run's set-up or end).
    bars: its work shows in progress bars: when it ran none, it resumed finished work and is not measured.
    """

    kind: str
    units: float = 0.0
    round: int | None = None
    bars: bool = False

    @property
    def name(self) -> str:
        return self.kind if self.round is None else f'round {self.round} {self.kind}'

    @property
    def group(self) -> str:
        """Its entry in the final line: round 0's training apart (it is most of a run), else its kind."""
        return self.name if self.round == 0 and self.kind == 'train' else self.kind


@dataclasses.dataclass(frozen=True)
class Measured:
    """A finished phase: its wall seconds and the fraction of its work done in this process."""

    phase: Phase
    seconds: float
    done_here: float = 1.0


def _rates(measured: Sequence[Measured]) -> tuple[dict, float | None]:
    """`({kind: seconds per unit}, seconds per unit over all kinds)` of the phases that count."""
    seconds, units = {}, {}
    for m in measured:
        work = m.phase.units * m.done_here
        if work > 0 and m.done_here >= MIN_DONE_HERE:
            seconds[m.phase.kind] = seconds.get(m.phase.kind, 0.0) + m.seconds
            units[m.phase.kind] = units.get(m.phase.kind, 0.0) + work
    if not units:
        return {}, None
    overall = sum(seconds.values()) / sum(units.values())
    return {k: seconds[k] / units[k] for k in units}, overall


def remaining_seconds(
    pending: Sequence[Phase],
    measured: Sequence[Measured],
    current: Phase | None = None,
    elapsed: float = 0.0,
    current_done: float = 0.0,
) -> float | None:
    """Seconds left for the `current` phase (running for `elapsed` seconds, `current_done` of its work done) and
    the `pending` ones. Before any phase has finished, the current phase's own rate stands for every kind once
    `MIN_DONE_HERE` of its work is done; None until then."""
    rates, overall = _rates(measured)
    if overall is None:
        if current is None or current.units <= 0 or current_done < MIN_DONE_HERE:
            return None
        rates, overall = {}, elapsed / (current_done * current.units)

    def cost(p: Phase) -> float:
        return p.units * rates.get(p.kind, overall)

    left = sum(cost(p) for p in pending)
    if current is not None:
        left += max(cost(current) - elapsed, 0.0)
    return left


def format_duration(seconds: float) -> str:
    """'45s', '3m12s', '2h05m'."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f'{s}s'
    if s < 3600:
        return f'{s // 60}m{s % 60:02d}s'
    return f'{s // 3600}h{s % 3600 // 60:02d}m'


@dataclasses.dataclass(frozen=True)
class ProgressOptions:
    """Where and how a `RunProgress` writes.

    stream: the output (None: sys.stderr at each write). tty: update one line in place (None: the stream's
    isatty). log_path: a file that also gets the plain lines. enabled: False writes nothing (processes other
    than the main one). clock: seconds, monotonic. interval: seconds between plain lines within a phase.
    """

    stream: TextIO | None = None
    tty: bool | None = None
    log_path: str | None = None
    enabled: bool = True
    clock: Callable[[], float] = time.monotonic
    interval: float = INTERVAL


class RunProgress:
    """The run's phases: planned (`plan`), current (`begin`) and measured; draws the line (module docstring)."""

    def __init__(self, options: ProgressOptions = ProgressOptions()):
        self.options = options
        self.start = options.clock()
        self.pending: list[Phase] = []
        self.measured: list[Measured] = []
        self.current = Phase('setup')
        self.current_start = self.start
        self.rounds = 0  # the last planned round
        self.bars: list = []  # open progress bars (`tracked`) and their first counts
        self.bar_work: list[tuple[float, float]] = []  # (done here, total) of the current phase's bars
        self.last_plain = self.last_drawn = -float('inf')
        self.planned = False  # `plan` was given: the line has an ETA
        self.drawn = False  # the terminal shows our line on a line of its own

    # -- the plan and its phases -------------------------------------------------------------------------------
    def plan(self, phases: Sequence[Phase]) -> None:
        """The phases still to run, in order (the current one not among them)."""
        self.pending, self.planned = list(phases), True
        self.rounds = max([p.round for p in self.pending if p.round is not None] + [self.rounds])

    def begin(self, kind: str, round: int | None = None) -> None:
        """Ends the current phase and starts the planned one of `kind` and `round`, dropping the planned phases
        before it (not run: the run skipped or stopped them); an unplanned phase has unknown units."""
        self._end_current()
        found = next((i for i, p in enumerate(self.pending) if (p.kind, p.round) == (kind, round)), None)
        if found is None:
            self.current = Phase(kind, round=round)
        else:
            self.current, self.pending = self.pending[found], self.pending[found + 1 :]
        self.current_start = self.options.clock()
        self._show(force=True)

    def _end_current(self) -> None:
        now = self.options.clock()
        work = sum(total for _, total in self.bar_work)
        done_here = sum(done for done, _ in self.bar_work) / work if work else 1.0
        if self.current.bars and not self.bar_work:
            done_here = 0.0  # its work was done before a resume
        self.measured.append(Measured(self.current, now - self.current_start, done_here))
        self.bar_work = []

    def remaining(self) -> float | None:
        elapsed = self.options.clock() - self.current_start
        return remaining_seconds(self.pending, self.measured, self.current, elapsed, self._current_done())

    def _current_done(self) -> float:
        """The fraction of the current phase's bar work done in this process (closed and open bars)."""
        work = list(self.bar_work) + [(max(b.n - first, 0), max(b.total or 0, 1)) for b, first in self.bars]
        total = sum(t for _, t in work)
        return sum(d for d, _ in work) / total if total else 0.0

    # -- the line ----------------------------------------------------------------------------------------------
    def _parts(self) -> tuple[str, str | None, str, str | None]:
        """(where, percent done, elapsed, ETA) of the line; percent and ETA None when unknown, ETA '' for a run
        without a plan (its phases come from its bars)."""
        phase = self.current
        where = phase.kind if phase.round is None else f'round {phase.round}/{self.rounds} {phase.kind}'
        elapsed = self.options.clock() - self.start
        left = self.remaining() if self.planned else None
        percent = None
        if left is not None and elapsed + left > 0:
            percent = f'{100 * elapsed / (elapsed + left):.0f}%'
        eta = ('?' if left is None else format_duration(left)) if self.planned else ''
        return where, percent, format_duration(elapsed), eta

    def status(self) -> str:
        """'round 1/6 score · 23% · 1m05s elapsed · ETA 3m40s' ('ETA ?' until a phase was measured)."""
        where, percent, elapsed, eta = self._parts()
        parts = [where] + ([percent] if percent else []) + [f'{elapsed} elapsed']
        return ' · '.join(parts + ([f'ETA {eta}'] if eta else []))

    def bar_status(self, desc: str) -> str:
        """A bar's description with the run's part: 'round 1 train · run 41% · ETA 3m12s'."""
        _, percent, elapsed, eta = self._parts()
        run = f'run {percent}' if percent else f'run {elapsed}'
        return f'{desc} · {run}' + (f' · ETA {eta}' if eta else '')

    def tty(self) -> bool:
        if self.options.tty is not None:
            return self.options.tty
        return bool(getattr(self._stream(), 'isatty', lambda: False)())

    def _stream(self) -> TextIO:
        return self.options.stream or sys.stderr

    def tick(self) -> None:
        """A bar moved: redraws the line when due."""
        self._show(force=False)

    def _show(self, force: bool) -> None:
        """Draws the line on a terminal (at most every `TTY_INTERVAL` s unless `force`d) and writes it as a plain
        line (every `interval` s unless forced: on a terminal to the log file only)."""
        if not self.options.enabled:
            return
        now = self.options.clock()
        tty, plain = self.tty(), force or now - self.last_plain >= self.options.interval
        if tty and (force or now - self.last_drawn >= TTY_INTERVAL):
            self.last_drawn = now
            self._draw(self.status())
        if plain:
            self.last_plain = now
            if tty:
                self._log(self.status())
            else:
                self._write(f'{PROG}: {self.status()}')

    def _draw(self, line: str) -> None:
        """On a terminal: in the open bar's description, else on our own line, cursor back at its start (so
        that text printed next overwrites it rather than follows it)."""
        shown = [bar for bar, _ in self.bars if not getattr(bar, 'disable', True)]
        if shown:
            bar = shown[-1]
            bar.set_description_str(self.bar_status(bar.run_desc), refresh=False)
            return
        width = shutil.get_terminal_size((0, 0)).columns
        if width > 1:  # a wrapped line could not be redrawn in place
            line = line[: width - 1]
        stream = self._stream()
        stream.write(f'\r{line}\x1b[K\r')
        stream.flush()
        self.drawn = True

    def clear(self) -> None:
        """Removes our own line from the terminal (before a bar or a message takes its place)."""
        if self.drawn:
            self._stream().write('\r\x1b[K')
            self._stream().flush()
            self.drawn = False

    def _write(self, text: str) -> None:
        """A plain line on the stream (through tqdm, which clears and redraws open bars) and in the log file."""
        from tqdm import tqdm

        self.clear()
        tqdm.write(text, file=self._stream())
        self._log(text.removeprefix(f'{PROG}: '))

    def _log(self, line: str) -> None:
        if self.options.log_path and self.options.enabled:
            with open(self.options.log_path, 'a', encoding='utf-8') as f:
                f.write(line + '\n')

    # -- bars --------------------------------------------------------------------------------------------------
    def attach(self, bar) -> None:
        """A bar opened; in a run without a plan it begins the phase its description names."""
        desc = getattr(bar, 'run_desc', '')
        if not self.planned and desc and desc != self.current.kind:
            self.begin(desc)
        self.bars.append((bar, bar.n))

    def detach(self, bar) -> None:
        for i, (b, first) in enumerate(self.bars):
            if b is bar:
                del self.bars[i]
                self.bar_work.append((max(bar.n - first, 0), max(bar.total or 0, 1)))
                return

    # -- the end -----------------------------------------------------------------------------------------------
    def seconds_by_group(self) -> dict[str, float]:
        """Wall seconds per phase group (`Phase.group`), in the order first run."""
        out: dict[str, float] = {}
        for m in self.measured:
            out[m.phase.group] = out.get(m.phase.group, 0.0) + m.seconds
        return out

    def finish(self, workdir: str | None = None) -> str:
        """Ends the run: prints 'done in 4m51s: setup 5s, round 0 train 1m40s, ...' and records the seconds in
        `<workdir>/timing.json` ('phases': `total_s` and `<group>_s`); returns the line."""
        self._end_current()
        self.pending = []
        total = self.options.clock() - self.start
        groups = self.seconds_by_group()
        line = f'done in {format_duration(total)}: ' + ', '.join(
            f'{g} {format_duration(s)}' for g, s in groups.items()
        )
        self.current = Phase('done')
        if self.options.enabled:
            self._write(f'{PROG}: {line}')
            if workdir:
                seconds = {f'{g.replace(" ", "_")}_s': round(s, 1) for g, s in groups.items()}
                record_timing(workdir, 'phases', {'total_s': round(total, 1), **seconds})
        return line


_active: list[RunProgress] = []


def active() -> RunProgress:
    """The progress of the run in progress (`tracking`), else a new one that writes nothing."""
    return _active[-1] if _active else RunProgress(ProgressOptions(enabled=False))


@contextlib.contextmanager
def tracking(workdir: str | None, enabled: bool = True, options: ProgressOptions | None = None):
    """Within this context `active()` is a new `RunProgress` on stderr (its plain lines also in
    `<workdir>/progress.log`); `enabled` False (processes other than the main one) writes nothing. A run that
    ends calls its `finish`."""
    if options is None:
        log_path = os.path.join(workdir, 'progress.log') if workdir and enabled else None
        options = ProgressOptions(log_path=log_path, enabled=enabled)
    tracker = RunProgress(options)
    _active.append(tracker)
    try:
        yield tracker
    finally:
        _active.remove(tracker)
        if options.enabled and tracker.tty():
            tracker.clear()


@functools.lru_cache(maxsize=None)
def tracked(bar_class: type) -> type:
    """`bar_class` (a tqdm class) whose bars report to the active run's progress: the line shows in their
    description on a terminal, their updates redraw it, and their counts say how much of a phase ran here."""

    class Tracked(bar_class):
        def __init__(self, *args, **kwargs):
            run = active()
            if not kwargs.get('disable'):
                run.clear()  # our own line gives way to the bar
            super().__init__(*args, **kwargs)
            self.run_desc = kwargs.get('desc') or ''
            self.run_progress = run
            run.attach(self)
            run.tick()

        def update(self, n=1):
            shown = super().update(n)
            self.run_progress.tick()
            return shown

        def close(self):
            run = getattr(self, 'run_progress', None)  # None: __init__ failed, tqdm's __del__ closes it
            if run is not None:
                run.detach(self)
            super().close()

    Tracked.__name__ = Tracked.__qualname__ = f'Tracked{bar_class.__name__}'
    return Tracked
