"""The launch scripts' dry runs print the command they would execute and run nothing."""

import os
import subprocess

import pytest

from tests.helpers import ROOT

ARGS = ['--config=configs/imagenet_resnet50.py', '--workdir=runs/r50', '--config.data.root=/data/image net']


def _dry(script, *args, env=None, flag=True):
    env = dict(os.environ, **(env or {}))
    if not flag:
        env['DRY_RUN'] = '1'
    cmd = ['bash', os.path.join(ROOT, 'launch', script), *args, *(['--dry-run'] if flag else [])]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.parametrize('flag', [True, False])
def test_slurm_dry_run_prints_srun(flag):
    out = _dry('slurm_multinode_gpu.sh', *ARGS, flag=flag)
    assert out.returncode == 0, out.stderr
    assert 'srun --ntasks-per-node=1 --kill-on-bad-exit=1 python -m mlrelabel.main' in out.stdout
    assert '--config=configs/imagenet_resnet50.py --workdir=runs/r50' in out.stdout
    assert '--dry-run' not in out.stdout


def test_tpu_vm_dry_run_targets_every_worker_and_quotes_arguments():
    out = _dry('tpu_vm.sh', *ARGS, env={'TPU_NAME': 'v4-32', 'ZONE': 'us-central2-b', 'REPO': '/src'})
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith(
        'gcloud compute tpus tpu-vm ssh v4-32 --zone=us-central2-b --worker=all --command='
    )
    assert 'python3\\ -m\\ mlrelabel.main' in line and 'image\\\\\\ net' in line
    missing = _dry('tpu_vm.sh', *ARGS, env={'TPU_NAME': '', 'ZONE': 'z'})
    assert missing.returncode != 0 and 'TPU_NAME' in missing.stderr


def test_single_node_dry_run_selects_gpus():
    out = _dry('single_node_gpu.sh', *ARGS, env={'GPUS': '0,1'}, flag=False)
    assert out.returncode == 0, out.stderr
    assert (
        'CUDA_VISIBLE_DEVICES=0\\,1 python -m mlrelabel.main --config=configs/imagenet_resnet50.py'
        in out.stdout
    )


@pytest.mark.parametrize('script', ['slurm_multinode_gpu.sh', 'single_node_gpu.sh', 'tpu_vm.sh'])
def test_scripts_without_arguments_print_usage(script):
    out = _dry(script)
    assert out.returncode == 2 and 'usage' in out.stderr
