"""One run of every figure issue 18 asks of a GPU machine, each part in its own process with its own time cap.

  python benchmarks/gpu_check.py --preset=gpu          # ResNet-50, 224 px, bf16 (benchmarks/gpu_check.sh)
  python benchmarks/gpu_check.py --preset=tiny --out_dir=/tmp/r   # the same parts at toy size on a CPU

Parts (`SECTIONS`, run in this order while the time budget lasts):
  train_jax    mlrelabel's train step (SGD, state donated, synthetic on-device uint8 images, NHWC, bf16)
  train_torch  torchvision's model, same batch and optimizer: AMP bf16, channels_last, cuDNN autotuning,
               eager and then `torch.compile` (the eager figure stands if compilation fails)
  relabel      the relabel pass: naive (T=1) and MC dropout (T=16) over K crops per image
  input        JPEG decode + random-resized-crop at 224 through grain worker processes, one per CPU core,
               on ImageNet-sized JPEGs generated first (`benchmarks/input_pipeline.py`)
  train_jax_<variant>  optional: the JAX step again with XLA flags or another batch (`PRESETS[...]['variants']`)
Each part (benchmarks/gpu_check_parts.py) runs in a child process (a crash, an unknown XLA flag or a GPU out-of-memory loses that part only,
and JAX and PyTorch never share the GPU's memory) and writes its figures as soon as it has them, so one that
hits its cap keeps what it measured. The merged result goes to `<out_dir>/<date>-<device>.json` and, when
`$OUT` is set, to `$OUT/gpu_check.json`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The flags NVIDIA's JAX containers set by default (latency-hiding scheduler) plus cuBLAS instead of Triton
# for the few matrix products; accepted by jaxlib 0.11.2 (an unknown flag aborts only that part).
HOPPER_FLAGS = '--xla_gpu_enable_latency_hiding_scheduler=true --xla_gpu_enable_triton_gemm=false'

PRESETS = {
    'gpu': {
        'bench': 'gpu',  # mlrelabel.benchmark preset: ResNet-50, 224 px, bf16, batch 256
        'budget_s': 420,  # all parts together; benchmarks/gpu_check.sh kills the run at 460 s
        'caps': {'train_jax': 180, 'train_torch': 200, 'relabel': 120, 'input': 90},
        # (worker processes, threads each); 0 workers = one per core. 512 batches of 64: with 16 workers x 1
        # thread, 144 batches at either end are left out (input_pipeline.measure) and 224 timed.
        'input': {
            'num_images': 1024,
            'batch': 64,
            'epochs': 32,
            'image_size': 224,
            'workers': [(0, 1), (4, 4)],
        },
        'variants': [
            {'name': 'xla_flags', 'env': {'XLA_FLAGS': HOPPER_FLAGS}, 'cap': 100},
            {'name': 'batch_512', 'batch': 512, 'cap': 100},
        ],
    },
    'tiny': {
        'bench': 'tiny',
        'budget_s': 300,  # generous: a shared 2-core machine can take minutes to compile the tiny programs
        'caps': {'train_jax': 150, 'train_torch': 120, 'relabel': 120, 'input': 90},
        'input': {'num_images': 48, 'batch': 4, 'epochs': 6, 'image_size': 224, 'workers': [(2, 1)]},
        'variants': [
            {'name': 'xla_flags', 'env': {'XLA_FLAGS': '--xla_cpu_enable_fast_math=false'}, 'cap': 90}
        ],
    },
}
SECTIONS = ('train_jax', 'train_torch', 'relabel', 'input')
GOALS = {'jax_over_torch': 1.2, 'jax_images_per_s': 4000, 'mc_dropout_cost': 1.2}


# ---------------------------------------------------------------------------------- the run (parent)


def _run_part(name: str, args, out_dir: str, cap: float, env: dict | None = None, extra=()) -> dict:
    """Runs one part in a child process for at most `cap` seconds; returns its figures and status."""
    path = os.path.join(out_dir, f'{name}.json')
    cmd = [sys.executable, os.path.abspath(__file__), f'--part={name}', f'--preset={args.preset}', *extra]
    child_env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE, os.environ.get('PYTHONPATH', '')]))
    if name == 'input':
        child_env['JAX_PLATFORMS'] = 'cpu'  # the loader needs no accelerator
    for key, value in (env or {}).items():  # XLA_FLAGS add to any the machine sets
        child_env[key] = f'{child_env.get(key, "")} {value}'.strip() if key == 'XLA_FLAGS' else value
    start = time.perf_counter()
    log = os.path.join(out_dir, f'{name}.log')
    with open(log, 'w') as f:
        try:
            proc = subprocess.run(
                cmd + [f'--part_out={path}'], env=child_env, stdout=f, stderr=subprocess.STDOUT, timeout=cap
            )
            status = 'ok' if proc.returncode == 0 else f'failed (exit code {proc.returncode})'
        except subprocess.TimeoutExpired:
            status = f'stopped at its cap of {cap:.0f} s'
    wall = round(time.perf_counter() - start, 1)
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    with open(log) as f:
        tail = f.read()[-1500:]
    info = {'status': status, 'wall_s': wall}
    if status != 'ok':
        info['log_tail'] = tail
    print(f'[gpu_check] {name}: {status} in {wall} s', file=sys.stderr, flush=True)
    return {'figures': data, **info}


def _versions() -> dict:
    from importlib import metadata

    out = {'python': platform.python_version(), 'cpu_count': os.cpu_count()}
    names = ('jax', 'jaxlib', 'jax-cuda13-plugin', 'jax-cuda12-plugin', 'flax', 'optax', 'orbax-checkpoint')
    for name in names + ('grain', 'numpy', 'pillow', 'torch', 'torchvision'):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        smi = subprocess.run(
            ['nvidia-smi', '--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if smi.returncode == 0 and smi.stdout.strip():
            gpu, driver, memory = [x.strip() for x in smi.stdout.splitlines()[0].split(',')]
            out.update(nvidia_smi_gpu=gpu, driver=driver, gpu_memory=memory)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        pass
    return out


def _ratio(a, b, digits=3):
    return round(a / b, digits) if a and b else None


def merge(parts: dict, preset_name: str, started: float, versions: dict | None = None) -> dict:
    """The result file: `device`, `date`, `versions`, `train`, `relabel`, `input`, `goals` and `parts`."""
    fig = {k: v.get('figures', {}) for k, v in parts.items()}
    versions = dict(versions or _versions())
    jax_train, torch_train = fig.get('train_jax', {}), fig.get('train_torch', {})
    for key in ('torch', 'torchvision', 'cuda', 'cudnn'):
        if torch_train.get(key) is not None:
            versions[f'torch_{key}' if key in ('cuda', 'cudnn') else key] = torch_train[key]
    if jax_train.get('platform_version'):
        versions['jax_platform_version'] = jax_train['platform_version']
    device = jax_train.get('device') or fig.get('relabel', {}).get('device') or versions.get('nvidia_smi_gpu')
    device = device or 'unknown'
    jax_ips, torch_ips = jax_train.get('images_per_s'), torch_train.get('images_per_s')
    variants = {
        k[len('train_jax_') :]: {
            key: v.get(key) for key in ('images_per_s', 'batch', 'ms_per_call', 'first_call_s', 'xla_flags')
        }
        for k, v in fig.items()
        if k.startswith('train_jax_')
    }
    best = max([jax_ips or 0] + [v['images_per_s'] or 0 for v in variants.values()]) or None
    train = {
        'model': jax_train.get('model'),
        'image_size': jax_train.get('image_size'),
        'dtype': jax_train.get('dtype'),
        'jax_images_per_s': jax_ips,
        'torch_images_per_s': torch_ips,
        'ratio': _ratio(jax_ips, torch_ips),
        'batch': jax_train.get('batch'),
        'iters': jax_train.get('iters'),
        'repeats': jax_train.get('repeats'),
        'jax_ms_per_step': jax_train.get('ms_per_call'),
        'jax_first_call_s': jax_train.get('first_call_s'),
        'jax_xla_flags': jax_train.get('xla_flags'),
        'torch_compiled': torch_train.get('compiled'),
        'torch_eager_images_per_s': torch_train.get('eager_images_per_s'),
        'torch_first_call_s': torch_train.get('first_call_s'),
        'torch_compile_error': torch_train.get('compile_error'),
        'torch_skipped': torch_train.get('skipped'),
        'jax_variants': variants,
        'jax_best_images_per_s': best,
        'ratio_best': _ratio(best, torch_ips),
    }
    rel = fig.get('relabel', {})
    naive, mc = rel.get('relabel_naive', {}), rel.get('relabel_mc_dropout', {})
    relabel = {
        'naive_images_per_s': naive.get('images_per_s'),
        'mc_dropout_images_per_s': mc.get('images_per_s'),
        'ratio': _ratio(naive.get('images_per_s'), mc.get('images_per_s')),  # MC dropout's cost over naive's
        'batch': naive.get('batch'),
        'crops': naive.get('crops'),
        'samples': mc.get('samples'),
        'iters': naive.get('iters'),
        'repeats': naive.get('repeats'),
    }
    inp = fig.get('input', {})
    rows = inp.get('rows', [])
    row = max(rows, key=lambda r: r['steady_images_per_s']) if rows else {}
    input_ = {
        'images_per_s': row.get('steady_images_per_s'),
        'workers': row.get('workers'),
        'threads': row.get('threads'),
        'startup_s': row.get('startup_s'),
        'timed_images': row.get('timed_images'),
        'rows': rows,
        **{
            k: inp.get(k)
            for k in ('num_images', 'mean_jpeg_kb', 'source_size', 'image_size', 'batch', 'epochs')
        },
    }

    def goal(value, ok):
        return None if value is None else bool(ok(value))

    goals = {
        'jax_at_least_1.2x_torch': goal(train['ratio'], lambda r: r >= GOALS['jax_over_torch']),
        'jax_at_least_4000_images_per_s': goal(jax_ips, lambda v: v >= GOALS['jax_images_per_s']),
        'mc_dropout_at_most_1.2x_naive': goal(relabel['ratio'], lambda r: r <= GOALS['mc_dropout_cost']),
        'input_at_least_training_rate': goal(
            input_['images_per_s'] if jax_ips else None, lambda v: v >= (best or jax_ips)
        ),
    }
    return {
        'device': device,
        'date': datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        'preset': preset_name,
        'versions': versions,
        'train': train,
        'relabel': relabel,
        'input': input_,
        'goals': goals,
        'total_s': round(time.perf_counter() - started, 1),
        'parts': {k: {key: v[key] for key in v if key != 'figures'} for k, v in parts.items()},
    }


def slug(text: str) -> str:
    return re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-') or 'unknown'


def _write(result: dict, parts: dict, work: str, out_dir: str, previous: str) -> str:
    """Writes the result (again after every part, so a run killed at its limit keeps what it has) and, with
    `$OUT`, copies it there with the parts' logs. Returns the result file's path."""
    sys.path.insert(0, ROOT)
    from mlrelabel.io_utils import atomic_write_json

    path = os.path.join(out_dir, f'{result["date"]}-{slug(result["device"])}.json')
    atomic_write_json(path, result)
    if previous and previous != path and os.path.exists(previous):
        os.remove(previous)  # the device's name became known
    if os.environ.get('OUT'):
        shutil.copy(path, os.path.join(os.environ['OUT'], 'gpu_check.json'))
        with open(os.path.join(os.environ['OUT'], 'gpu_check_parts.log'), 'w') as out:
            for name in parts:
                log = os.path.join(work, f'{name}.log')
                if os.path.exists(log):
                    with open(log) as f:
                        out.write(f'===== {name}\n{f.read()[-20000:]}\n')
    return path


def run_all(args) -> dict:
    started = time.perf_counter()
    preset = PRESETS[args.preset]
    deadline = started + (args.budget_s or preset['budget_s'])
    out_dir = args.out_dir or os.path.join(ROOT, 'benchmarks', 'results')
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix='gpu_check_')
    plan = [(name, preset['caps'][name], None, ()) for name in SECTIONS]
    for v in preset['variants']:
        extra = (f'--batch={v["batch"]}',) if v.get('batch') else ()
        plan.append((f'train_jax_{v["name"]}', v['cap'], v.get('env'), extra))
    versions = _versions()
    parts, path = {}, ''
    for name, cap, env, extra in plan:
        left = deadline - time.perf_counter()
        optional = name not in SECTIONS
        if left < (cap if optional else 20):
            parts[name] = {'status': f'skipped: {left:.0f} s of the budget left', 'wall_s': 0.0}
            print(f'[gpu_check] {name}: {parts[name]["status"]}', file=sys.stderr, flush=True)
        else:
            parts[name] = _run_part(name, args, work, min(cap, left), env, extra)
        result = merge(parts, args.preset, started, versions)
        path = _write(result, parts, work, out_dir, path)
    shutil.rmtree(work, ignore_errors=True)
    print(summary(result, path), flush=True)
    return result


def summary(r: dict, path: str) -> str:
    t, rl, i = r['train'], r['relabel'], r['input']
    lines = [
        f'{r["device"]}  {r["date"]}  preset={r["preset"]}  total {r["total_s"]} s  -> {path}',
        f'train  JAX {t["jax_images_per_s"]} img/s  torch {t["torch_images_per_s"]} img/s '
        f'(compiled={t["torch_compiled"]}, eager {t["torch_eager_images_per_s"]})  ratio {t["ratio"]}  '
        f'batch {t["batch"]}',
        f'       JAX variants {json.dumps({k: v["images_per_s"] for k, v in t["jax_variants"].items()})}',
        f'relabel naive {rl["naive_images_per_s"]} img/s  MC dropout T={rl["samples"]} '
        f'{rl["mc_dropout_images_per_s"]} img/s  cost ratio {rl["ratio"]}',
        f'input  {i["images_per_s"]} img/s with {i["workers"]} grain workers x {i["threads"]} threads',
        f'goals  {json.dumps(r["goals"])}',
        'parts  ' + '; '.join(f'{k}: {v["status"]} ({v["wall_s"]} s)' for k, v in r['parts'].items()),
    ]
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--preset', choices=sorted(PRESETS), default='gpu')
    p.add_argument('--out_dir', default='', help='default: benchmarks/results')
    p.add_argument('--budget_s', type=float, default=0, help="all parts together (default: the preset's)")
    p.add_argument('--part', default='', help=argparse.SUPPRESS)  # internal: run one part in this process
    p.add_argument('--part_out', default='', help=argparse.SUPPRESS)
    p.add_argument('--batch', type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.part:
        return run_all(args)
    import gpu_check_parts as parts

    rec = parts.Recorder(args.part_out)
    preset = PRESETS[args.preset]
    if args.part.startswith('train_jax'):
        parts.part_train_jax(rec, preset, args.batch)
    else:
        parts.PARTS[args.part](rec, preset)


if __name__ == '__main__':
    main()
