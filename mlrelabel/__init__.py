"""mlrelabel: turn single-label image datasets into multi-label ones (JAX + Flax).

The Python API (see README "Python API"):

    import mlrelabel
    mlrelabel.run_config('mc_dropout:smoke', 'runs/demo')   # runs a recipe (name, file or ConfigDict)
    run = mlrelabel.load_run('runs/demo')                   # a finished run: config, rounds, labels, ...
    probs = run.predict(images)                             # uint8 [N, H, W, 3] -> float32 [N, C]

`import mlrelabel` stays light: JAX and the rest load on first use of these names (`mlrelabel.run`).
"""

__version__ = '0.1.0'
__all__ = ['Run', 'load_run', 'run_config', '__version__']


def __getattr__(name: str):
    if name in ('Run', 'load_run', 'run_config'):
        from mlrelabel import run

        return getattr(run, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
