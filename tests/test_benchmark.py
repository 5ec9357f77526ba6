"""The benchmark command runs at its tiny size and reports every measurement."""

from mlrelabel import benchmark


def test_tiny_benchmark_reports_all_measurements():
    rows = benchmark.run('tiny', num_classes=10)
    names = [r['benchmark'] for r in rows]
    assert names == ['train', 'inference', 'relabel_naive', 'relabel_mc_dropout', 'relabel_mc_dropout_full']
    assert all(r['images_per_s'] > 0 and r['batch'] == 16 for r in rows)
    mc = {r['benchmark']: r for r in rows}
    assert mc['relabel_mc_dropout']['samples'] == 4 and mc['relabel_naive']['samples'] == 1
    assert mc['relabel_mc_dropout']['crop_samples_per_s'] > 0


def test_torch_reference_and_ratio():
    """The PyTorch reference path (skipped where torch/torchvision are not installed)."""
    import pytest

    pytest.importorskip('torchvision')
    jax_rows = benchmark.run('tiny_resnet18', only=['train', 'inference'])
    torch_rows = benchmark.torch_reference('tiny_resnet18', compile_model=False)
    assert [r['benchmark'] for r in torch_rows] == ['train', 'inference']
    ratio = benchmark.ratios(jax_rows, torch_rows)
    assert set(ratio) == {'train', 'inference'} and all(v > 0 for v in ratio.values())
