"""Crop → Confidence → Label rounds with mc_perturbation confidence on the built-in digit scenes.

python -m mlrelabel.main --config=configs/mc_perturbation.py
python -m mlrelabel.main --config=configs/mc_perturbation.py:smoke
"""

from mlrelabel.config import relabel_recipe


def get_config(variant: str = ''):
    return relabel_recipe(variant, confidence='mc_perturbation')
