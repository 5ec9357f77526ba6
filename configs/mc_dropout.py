"""Crop → Confidence → Label rounds with mc_dropout confidence on the built-in digit scenes.

python -m mlrelabel.main --config=configs/mc_dropout.py
python -m mlrelabel.main --config=configs/mc_dropout.py:smoke
"""

from mlrelabel.config import relabel_recipe


def get_config(variant: str = ''):
    return relabel_recipe(variant, confidence='mc_dropout')
