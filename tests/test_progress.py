"""The run's progress line (mlrelabel.progress): the ETA arithmetic on a fake clock, plain lines off a terminal,
the line in place on one, and the relabel run's plan."""

import io
import json
import re

import pytest

from mlrelabel import progress
from mlrelabel.progress import Measured, Phase, ProgressOptions, RunProgress, remaining_seconds


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


PLAN = [
    Phase('eval', 10, round=0),
    Phase('score', 400, round=1, bars=True),
    Phase('assign', 10, round=1),
    Phase('train', 200, round=1, bars=True),
    Phase('eval', 10, round=1),
    Phase('score', 400, round=2, bars=True),
    Phase('assign', 10, round=2),
    Phase('train', 200, round=2, bars=True),
    Phase('eval', 10, round=2),
    Phase('finish', 0),
]


ROUND0 = Phase('train', 100, round=0)  # a phase that needs no bar to be measured


def _tracker(tty=False, interval=30.0, **extra):
    clock, stream = Clock(), io.StringIO()
    options = ProgressOptions(stream=stream, tty=tty, clock=clock, interval=interval, **extra)
    return RunProgress(options), clock, stream


def test_no_estimate_until_a_phase_with_work_was_measured():
    assert remaining_seconds(PLAN, []) is None
    assert remaining_seconds(PLAN, [Measured(Phase('setup'), 5.0)]) is None  # no units: says nothing


def test_before_any_phase_ends_the_running_phase_rate_estimates_the_run_once_a_fifth_is_done():
    current = Phase('train', 100, round=0)
    pending = [Phase('score', 300, round=1), Phase('train', 50, round=1)]
    assert remaining_seconds(pending, [], current, elapsed=10.0, current_done=0.1) is None  # too little done
    # 40 % of 100 units in 20 s: 0.5 s/unit; 60 units left here, 350 planned
    assert remaining_seconds(pending, [], current, elapsed=20.0, current_done=0.4) == pytest.approx(30 + 175)
    assert remaining_seconds(pending, [], Phase('setup'), elapsed=20.0, current_done=0.9) is None  # no units


def test_a_measured_kind_takes_its_own_rate_and_other_kinds_the_overall_one():
    measured = [Measured(Phase('train', 100, round=0), 50.0), Measured(Phase('score', 400, round=1), 40.0)]
    # train: 0.5 s/unit, score: 0.1 s/unit; eval unmeasured: (50 + 40) / 500 = 0.18 s/unit
    pending = [Phase('train', 200, round=1), Phase('score', 100, round=2), Phase('eval', 10, round=2)]
    assert remaining_seconds(pending, measured) == pytest.approx(100 + 10 + 1.8)
    # the current phase: its estimate less the time it has run, never below 0
    assert remaining_seconds([], measured, Phase('train', 200), elapsed=30.0) == pytest.approx(70.0)
    assert remaining_seconds([], measured, Phase('train', 200), elapsed=500.0) == 0.0


def test_a_phase_resumed_from_finished_work_is_not_measured():
    fast = Measured(Phase('score', 400, round=1), 0.5, done_here=0.0)  # its records were on disk
    train = Measured(Phase('train', 100, round=0), 50.0)
    assert remaining_seconds([Phase('score', 400)], [train, fast]) == pytest.approx(200.0)
    half = Measured(
        Phase('score', 400, round=1), 10.0, done_here=0.5
    )  # half of it ran here: 10 s / 200 units
    assert remaining_seconds([Phase('score', 400)], [train, half]) == pytest.approx(20.0)


def test_durations_read_as_minutes_and_seconds():
    assert [progress.format_duration(s) for s in (0, 44.6, 192, 7500)] == ['0s', '45s', '3m12s', '2h05m']


def test_plain_lines_say_eta_unknown_until_the_first_phase_ends_then_estimate_the_plan():
    run, clock, stream = _tracker()
    run.plan([ROUND0] + PLAN)
    run.begin('train', 0)
    clock.now += 20.0
    run.begin('eval', 0)  # round 0 trained 100 units in 20 s: 0.2 s per unit for every kind
    lines = stream.getvalue().splitlines()
    assert lines[0] == 'mlrelabel: round 0/2 train · 0s elapsed · ETA ?'
    # left: eval 10 (just started), then score 400 + assign 10 + train 200 + eval 10 twice: 1250 units at 0.2 s
    assert lines[1] == 'mlrelabel: round 0/2 eval · 7% · 20s elapsed · ETA 4m10s'


def test_plain_lines_within_a_phase_come_at_most_once_per_interval():
    run, clock, stream = _tracker(interval=30.0)
    run.plan(PLAN)
    run.begin('score', 1)
    for _ in range(10):  # bars tick every 5 s
        clock.now += 5.0
        run.tick()
    assert len(stream.getvalue().splitlines()) == 1 + 1  # the phase's line and one after 30 s


def test_a_run_that_stops_early_drops_the_rounds_it_skips_and_ends_with_its_times(tmp_path):
    run, clock, stream = _tracker(log_path=str(tmp_path / 'progress.log'))
    clock.now += 4.0  # set-up
    run.plan([ROUND0] + PLAN)
    run.begin('train', 0)
    clock.now += 60.0
    for kind, k in (('eval', 0), ('score', 1), ('assign', 1), ('train', 1), ('eval', 1)):
        run.begin(kind, k)
        clock.now += 5.0
    run.begin('finish')  # round 2 never runs
    assert run.pending == [] and run.current.kind == 'finish'
    assert run.status().endswith('ETA 0s')
    clock.now += 2.0
    line = run.finish(str(tmp_path))
    assert (
        line
        == 'done in 1m31s: setup 4s, round 0 train 1m00s, eval 10s, score 5s, assign 5s, train 5s, finish 2s'
    )
    out = stream.getvalue().splitlines()
    assert out[-1] == 'mlrelabel: ' + line
    assert (tmp_path / 'progress.log').read_text().splitlines()[-1] == line
    phases = json.loads((tmp_path / 'timing.json').read_text())['phases']
    assert phases == {
        'total_s': 91.0,
        'setup_s': 4.0,
        'round_0_train_s': 60.0,
        'eval_s': 10.0,
        'score_s': 5.0,
        'assign_s': 5.0,
        'train_s': 5.0,
        'finish_s': 2.0,
    }


def test_a_disabled_progress_writes_nothing(tmp_path):
    run, clock, stream = _tracker(enabled=False, log_path=str(tmp_path / 'progress.log'))
    run.plan(PLAN)
    run.begin('eval', 0)
    run.finish(str(tmp_path))
    assert stream.getvalue() == '' and not (tmp_path / 'progress.log').exists()
    assert not (tmp_path / 'timing.json').exists()


def test_on_a_terminal_the_line_is_redrawn_in_place_and_lives_in_the_open_bars_description():
    from tqdm import tqdm

    run, clock, stream = _tracker(tty=True)
    with progress.tracking(None, options=run.options) as run:
        run.plan([ROUND0] + PLAN)
        run.begin('train', 0)
        drawn = stream.getvalue()
        assert (
            drawn == '\rround 0/2 train · 0s elapsed · ETA ?\x1b[K\r'
        )  # no newline: the next draw replaces it
        bar = progress.tracked(tqdm)(total=10, desc='round 0 train', file=stream, mininterval=0)
        assert stream.getvalue().startswith(drawn + '\r\x1b[K')  # our line gave way to the bar
        clock.now += 20.0
        bar.update(10)
        bar.close()
        assert run.bars == [] and run.bar_work == [(10, 10)]
        run.begin('eval', 0)
        # before any phase ended: round 0's own rate, 0.2 s per unit, for the 1,250 units planned after it
        assert bar.desc == 'round 0 train · run 7% · ETA 4m10s'
        clock.now += 1.0
        bar = progress.tracked(tqdm)(total=400, desc='round 1 relabel train', file=stream, mininterval=0)
        run.begin('score', 1)
        clock.now += 1.0
        bar.update(100)
        assert re.fullmatch(r'round 1 relabel train · run \d+% · ETA \dm\d\ds', bar.desc)
        bar.close()
    assert stream.getvalue().endswith('\n')  # the bar left its last state on a line of its own


def test_a_bar_resumed_near_its_end_marks_its_phase_as_mostly_done_before():
    from tqdm import tqdm

    run, clock, stream = _tracker()
    with progress.tracking(None, options=run.options) as run:
        run.plan(PLAN)
        run.begin('score', 1)
        bar = progress.tracked(tqdm)(total=100, initial=90, desc='round 1 relabel train', file=io.StringIO())
        bar.update(10)
        bar.close()
        clock.now += 1.0
        run.begin('assign', 1)
    assert run.measured[-1].done_here == pytest.approx(0.1)


def test_a_run_without_a_plan_takes_its_phases_from_its_bars():
    from tqdm import tqdm

    run, clock, stream = _tracker()
    with progress.tracking(None, options=run.options) as run:
        clock.now += 3.0
        progress.tracked(tqdm)(total=4, desc='train', file=io.StringIO()).close()
        clock.now += 10.0
        assert run.finish() == 'done in 13s: setup 3s, train 10s'
    assert 'ETA' not in stream.getvalue()  # nothing to estimate from


def test_outside_a_run_bars_report_to_nobody():
    from tqdm import tqdm

    bar = progress.tracked(tqdm)(total=2, desc='crop evidence', file=io.StringIO())
    bar.update(2)
    bar.close()
    assert progress.active().measured == []


def test_the_relabel_plan_follows_the_config():
    import types

    from mlrelabel.config import relabel_config
    from mlrelabel.relabel import phases

    config = relabel_config('smoke')
    config.relabel.max_rounds = 3
    config.relabel.round0_models = 2
    config.relabel.control = True
    ctx = types.SimpleNamespace(config=config, train=range(256), val=range(128))
    plan = phases.planned(ctx)
    assert [p.name for p in plan[:6]] == [
        'round 0 train', 'round 0 eval', 'round 1 score', 'round 1 assign', 'round 1 train', 'round 1 eval'
    ]  # fmt: skip
    assert len(plan) == 2 + 4 * 3 + 1 and plan[-1].kind == 'finish'
    by_name = {p.name: p for p in plan}
    batch = config.train.batch_size
    epoch = phases.TRAIN_PASSES * batch * (256 // batch)
    assert by_name['round 0 train'].units == epoch * config.train.epochs * 2  # two round-0 models
    assert by_name['round 1 score'].units == 2 * by_name['round 2 score'].units  # both score round 1
    from mlrelabel.relabel.round_models import round_epochs

    assert by_name['round 1 train'].units == 2 * epoch * round_epochs(config, 1)  # with its control arm
