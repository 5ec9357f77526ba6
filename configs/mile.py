"""Multi-label iterated learning (MILe; Rajeswar et al., CVPR 2022) and its baselines on the built-in data.

python -m mlrelabel.main --config=configs/mile.py                                   # MILe, scenes layout
python -m mlrelabel.main --config=configs/mile.py --config.mile.schema=softmax      # or sigmoid
python -m mlrelabel.main --config=configs/mile.py --config.data.layout=grid         # MILe's multi-label MNIST

All three schemas take the same number of updates (`train.epochs` × steps per epoch); for 'mile' they are
shared between teacher (interactive) and student (imitation) steps. `train.loss` is set by the schema.
"""

import ml_collections

from mlrelabel.config import base_config, schema


def mile_fields(schema_name: str = 'mile') -> ml_collections.ConfigDict:
    """The `config.mile` group at the schema's defaults, with `schema_name` (shared with configs/mile_imagenet.py)."""
    fields = schema.defaults('mile').mile
    fields.schema = schema_name
    return fields


def get_config(variant: str = ''):
    config = base_config(variant)
    config.method = 'mile'
    config.train.loss = 'sigmoid_bce'  # informational: the schema decides the loss
    config.mile = mile_fields()
    if variant == 'smoke':
        config.mile.k_t = 3
        config.mile.k_s = 2
    else:
        # MILe's budget for every schema: at 40 epochs MILe leads sigmoid training, at 10 and 20 it does not
        # (docs/mile.md).
        config.train.epochs = 40
    return config
