"""Crop → Confidence → Label rounds with mc_dropout confidence on the built-in digit scenes.

python -m mlrelabel.main --config=configs/mc_dropout.py
python -m mlrelabel.main --config=configs/mc_dropout.py:smoke
"""

from mlrelabel.config import relabel_config


def get_config(variant: str = ''):
    return relabel_config(variant, confidence='mc_dropout')
