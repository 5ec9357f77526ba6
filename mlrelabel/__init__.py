"""mlrelabel: turn single-label image datasets into multi-label ones (JAX + Flax).

The Python API (see docs/api.md):

    import mlrelabel
    mlrelabel.run_config('mc_dropout:smoke', 'runs/demo')   # runs a recipe (name, file or ConfigDict)
    run = mlrelabel.load_run('runs/demo')                   # a finished run: config, rounds, labels, ...
    probs = run.predict(images)                             # uint8 [N, H, W, 3] -> float32 [N, C]
    image = mlrelabel.read_image('photo.jpg')               # uint8 [H, W, 3], as the tool decodes it

Your own model (any callable from crops to probabilities), one relabel round by hand (`mlrelabel.api`):

    evidence = mlrelabel.crop_evidence(score_fn, train_images)     # [N, C] float32 log-odds
    result = mlrelabel.assign_labels(evidence, train_given, mlrelabel.crop_evidence(score_fn, val_images), val_given)

`import mlrelabel` stays light: JAX and the rest load on first use of these names (`mlrelabel.run`).
"""

__version__ = '0.1.0'
_API = tuple(
    'AssignOptions Assignment CropOptions assign_labels average_evidence crop_evidence window_boxes'.split()
)
__all__ = ['Run', 'load_run', 'read_image', 'run_config', *_API, '__version__']


def __getattr__(name: str):
    if name in ('Run', 'load_run', 'run_config'):
        from mlrelabel import run

        return getattr(run, name)
    if name in _API:
        from mlrelabel import api

        return getattr(api, name)
    if name == 'read_image':  # the decoder every source, predict and the review page use
        from mlrelabel.data.images import read_image

        return read_image
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
