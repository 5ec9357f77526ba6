"""`python -m mlrelabel.compare_models`: the pretrained sources of every network, the picture and the
table."""

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def test_pretrained_sources():
    from mlrelabel.compare_models import pretrained_sources

    assert pretrained_sources('', ['vgg16']) == {}
    assert pretrained_sources('torchvision', ['vgg16']) == {'vgg16': 'torchvision:vgg16'}
    assert pretrained_sources('vgg16=/w/v.pth', ['vgg16', 'resnet18']) == {'vgg16': '/w/v.pth'}
    with pytest.raises(ValueError, match='expected name=FILE'):
        pretrained_sources('alexnet=/w/a.pth', ['vgg16'])


@pytest.mark.slow
def test_compare_models_writes_the_picture_and_table(tmp_path):
    import json

    cmd = [
        sys.executable, '-m', 'mlrelabel.compare_models', '--config=supervised:smoke', '--models=resnet_tiny,vgg16',
        f'--workdir={tmp_path}', '--set=train.epochs=2',
    ]  # fmt: skip
    result = subprocess.run(
        cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.load(open(tmp_path / 'model_comparison.json'))
    assert list(table['models']) == ['resnet_tiny', 'vgg16']
    for row in table['models'].values():
        assert {'train_loss', 'train_accuracy', 'val_loss', 'val_top1'} <= set(row['history'][-1])
    assert (tmp_path / 'model_comparison.png').stat().st_size > 1000
