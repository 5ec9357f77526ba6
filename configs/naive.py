"""Crop → Confidence → Label rounds with naive confidence on the built-in digit scenes.

python -m mlrelabel.main --config=configs/naive.py
python -m mlrelabel.main --config=configs/naive.py:smoke
"""

from mlrelabel.config import relabel_config


def get_config(variant: str = ''):
    return relabel_config(variant, confidence='naive')
