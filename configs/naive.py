"""Crop → Confidence → Label rounds with naive confidence on the built-in digit scenes.

python -m mlrelabel.main --config=configs/naive.py
python -m mlrelabel.main --config=configs/naive.py:smoke
"""

from mlrelabel.config import relabel_recipe


def get_config(variant: str = ''):
    return relabel_recipe(variant, confidence='naive')
