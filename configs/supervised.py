"""Plain single-label training on the built-in digit scenes (or any CS570 label files).

python -m mlrelabel.main --config=configs/supervised.py
python -m mlrelabel.main --config=configs/supervised.py:smoke --config.train.epochs=1
"""

from mlrelabel.config import base_recipe


def get_config(variant: str = ''):
    config = base_recipe(variant)
    config.method = 'supervised'
    return config
