"""Partial-label training (CSL, Ben-Baruch et al. 2022) on the built-in digit scenes with simulated
random-per-sample (RPS) partial labels: half of all (image, class) entries are unknown.

python -m mlrelabel.main --config=configs/partial.py
python -m mlrelabel.main --config=configs/partial.py --config.partial.mode=ignore
python -m mlrelabel.main --config=configs/partial.py:smoke

Your own data: `--config.data.source=annotation_folder|attribute_csv|partial_json` with
`--config.data.train_path=... --config.data.val_path=...` (see mlrelabel/data/formats.py).
"""

from mlrelabel.config import base_config, schema


def get_config(variant: str = ''):
    config = base_config(variant)
    config.method = 'partial'
    config.train.loss = 'sigmoid_bce'  # only names the link (sigmoid) for reports; the loss is partial.mode
    config.train.epochs = 12

    # The partial-label fields at the schema's defaults: the prior phase is off (`partial.prior_epochs` = 0)
    # because the digit scenes are class-balanced (docs/partial.md).
    config.partial = schema.defaults('partial').partial

    if variant == 'smoke':
        config.train.epochs = 2
    return config
