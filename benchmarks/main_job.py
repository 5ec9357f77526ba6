"""Wall time of the main job with a cold and a warm compilation cache, plus the throughput benchmark.

  python benchmarks/main_job.py                                  # configs/mc_dropout.py, then --preset=cpu
  python benchmarks/main_job.py --config=configs/mc_dropout.py:smoke --benchmark=tiny --out=main_job.json
  python benchmarks/main_job.py --config.relabel.max_rounds=1             # overrides apply to both runs
  python benchmarks/main_job.py --runs=cold --benchmark= --keep --workdir=W  # the cold run alone, kept in W/cold

Runs `python -m mlrelabel.main` twice in fresh work directories, sharing one compilation cache that starts
empty (`--cache_dir`, default a new temporary folder): the first run compiles every XLA program, the second
should load them all. Each run's wall seconds and its programs compiled / loaded (the line `mlrelabel.main`
prints at the end) are reported. Then `python -m mlrelabel.benchmark --preset=<benchmark>` gives the
training and relabel-pass images/s. Versions, CPU count and date go with the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mlrelabel import compile_cache  # noqa: E402


def _env() -> dict:
    env = dict(os.environ)
    env.pop(compile_cache.ENV_DIR, None)  # the cache is the one named on the command line
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    return env


def time_run(config: str, workdir: str, cache_dir: str, overrides=(), log: str = '') -> dict:
    """One `mlrelabel.main` run: wall seconds, programs compiled / loaded, exit code."""
    cmd = [
        sys.executable,
        '-m',
        'mlrelabel.main',
        f'--config={config}',
        f'--workdir={workdir}',
        f'--config.compile_cache={cache_dir}',
        *overrides,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if log:
        with open(log, 'w') as f:
            f.write(proc.stdout + proc.stderr)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f'{" ".join(cmd)} failed with exit code {proc.returncode}')
    counts = compile_cache.parse_summary(proc.stderr) or {}
    return {'wall_s': round(wall, 1), **counts}


def run_benchmark(preset: str) -> dict:
    """Training and relabel-pass images/s from `mlrelabel.benchmark` (rows by benchmark name)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'bench.json')
        cmd = [sys.executable, '-m', 'mlrelabel.benchmark', f'--preset={preset}', f'--out={out}']
        subprocess.run(cmd, cwd=ROOT, env=_env(), check=True, capture_output=True)
        with open(out) as f:
            data = json.load(f)
    return {r['benchmark']: r for r in data['results']}


def versions() -> dict:
    from importlib import metadata

    out = {'python': platform.python_version(), 'cpu_count': os.cpu_count(), 'machine': platform.machine()}
    for name in ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'grain', 'numpy'):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='configs/mc_dropout.py')
    p.add_argument('--cache_dir', default='', help='must not exist yet (default: a temporary folder)')
    p.add_argument('--workdir', default='', help='the two runs go to <workdir>/cold and <workdir>/warm')
    p.add_argument('--benchmark', default='cpu', help="mlrelabel.benchmark preset ('' = skip)")
    p.add_argument('--out', default='', help='write the figures as JSON here')
    p.add_argument('--keep', action='store_true', help='keep the work directories and the cache')
    p.add_argument('--runs', default='cold,warm', help="which runs, in order: 'cold,warm' or 'cold'")
    args, overrides = p.parse_known_args(argv)
    bad = [o for o in overrides if not o.startswith('--config.')]
    if bad:
        p.error(f'unrecognized arguments: {" ".join(bad)} (overrides are --config.<field>=<value>)')
    args.overrides = overrides

    tmp = tempfile.mkdtemp(prefix='mlrelabel_main_job_')
    cache_dir = args.cache_dir or os.path.join(tmp, 'xla')
    if os.path.exists(cache_dir) and os.listdir(cache_dir):
        raise SystemExit(f'--cache_dir={cache_dir}: not empty; the first run must start with an empty cache')
    workdir = args.workdir or tmp
    runs = args.runs.split(',')
    if runs not in (['cold', 'warm'], ['cold']):
        p.error(f"--runs={args.runs}: expected 'cold,warm' or 'cold'")
    for name in runs:
        if os.path.exists(os.path.join(workdir, name)):
            raise SystemExit(
                f'{os.path.join(workdir, name)} exists: a run there would resume, not start afresh'
            )
    result = {
        'config': args.config,
        'overrides': args.overrides,
        'date': datetime.date.today().isoformat(),
        'versions': versions(),
    }
    try:
        for name in runs:
            print(f'{name} run ...', file=sys.stderr, flush=True)
            result[name] = time_run(
                args.config,
                os.path.join(workdir, name),
                cache_dir,
                args.overrides,
                log=os.path.join(workdir, f'{name}.log'),
            )
            print(f'  {result[name]}', file=sys.stderr, flush=True)
        if args.benchmark:
            print(f'mlrelabel.benchmark --preset={args.benchmark} ...', file=sys.stderr, flush=True)
            rows = run_benchmark(args.benchmark)
            result['benchmark'] = {
                'preset': args.benchmark,
                **{f'{k}_images_per_s': v['images_per_s'] for k, v in rows.items()},
            }
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f'| {args.config} | wall s | XLA programs compiled | loaded from the cache |\n|---|---|---|---|')
    for name in runs:
        r = result[name]
        print(f'| {name} cache | {r["wall_s"]} | {r.get("compiled", "?")} | {r.get("loaded", "?")} |')
    for key, value in result.get('benchmark', {}).items():
        if key.endswith('_images_per_s'):
            print(f'{key}: {value}')
    if args.out:
        from mlrelabel.io_utils import atomic_write_json

        atomic_write_json(args.out, result)
    return result


if __name__ == '__main__':
    main()
