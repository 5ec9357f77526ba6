"""A model whose backbone is fixed: transfer learning that trains the classifier only
(`model.freeze_backbone`, mlrelabel.partial.method); checkpoints of such runs store its variables."""

from __future__ import annotations


class FrozenBackbone:
    """A model-like wrapper: only the classifier `fc` is trainable; the backbone is fixed.

    Variables are `{'params': {'fc': ...}, 'batch_stats': {'stats': <BN statistics>, 'backbone':
    <backbone params>}}`: the fixed parameters travel in the non-trained collection, so they are jit
    arguments (not baked-in constants), stay out of the optimizer and weight decay, and are saved
    with every checkpoint. Batch norm always uses the stored statistics (inference mode).
    """

    def __init__(self, model):
        self.model = model

    @staticmethod
    def split(variables: dict) -> dict:
        params = dict(variables['params'])
        head = {'fc': params.pop('fc')}
        return {'params': head, 'batch_stats': {'stats': variables['batch_stats'], 'backbone': params}}

    @staticmethod
    def merge(variables: dict) -> dict:
        bs = variables['batch_stats']
        return {'params': {**bs['backbone'], **variables['params']}, 'batch_stats': bs['stats']}

    def apply(self, variables, images, train=False, mutable=False, rngs=None, dense=False, method=None, **kw):
        full = self.merge(variables)
        if method is not None:
            return self.model.apply(full, images, method=method, rngs=rngs, **kw)
        out = self.model.apply(full, images, train=False, dense=dense, dropout=bool(train), rngs=rngs)
        return (out, {'batch_stats': variables['batch_stats']}) if mutable else out
