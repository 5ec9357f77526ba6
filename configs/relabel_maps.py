"""ReLabel (Yun et al. 2021) on the built-in digit scenes: a teacher (the relabel loop's chosen model, run first
in <workdir>/teacher) writes top-k label maps of every training image; a student trains on the maps pooled
over each random crop.

  python -m mlrelabel.main --config=configs/relabel_maps.py
  python -m mlrelabel.main --config=configs/relabel_maps.py --config.relabel_maps.cutmix=True
  python -m mlrelabel.main --config=configs/relabel_maps.py --config.relabel_maps.teacher_workdir=runs/mc_dropout-...
  python -m mlrelabel.main --config=configs/relabel_maps.py --config.relabel_maps.teacher_recipe=''  # single-label teacher
  python -m mlrelabel.main --config=configs/relabel_maps.py:smoke
"""

import ml_collections

from mlrelabel.config import base_config, schema


def relabel_maps_fields() -> ml_collections.ConfigDict:
    """The `relabel_maps` group at the schema's defaults (shared with configs/relabel_maps_imagenet.py)."""
    return schema.defaults('relabel_maps').relabel_maps


def get_config(variant: str = ''):
    config = base_config('smoke' if variant == 'smoke' else '')
    if variant not in ('', 'smoke'):
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    config.method = 'relabel_maps'
    config.train.loss = 'soft_ce'
    config.relabel_maps = r = relabel_maps_fields()
    # The teacher: the relabel loop's chosen model. A teacher trained on the single labels writes maps of one
    # object per image and its student does not beat plain training (docs/relabel_maps.md); this one does.
    r.teacher_recipe = 'mc_dropout'
    if variant == 'smoke':
        r.teacher_recipe = ''  # seconds: a teacher trained on the visible labels (tests run the relabel one)
        r.map_size = 4
        r.batch_size = 32
        r.shard_size = 100  # several shards, the last one partial
        r.cutmix = True  # the full path: pooling, CutMix, and CutMix off for the last epoch
        r.cutmix_off_epochs = 1
    return config
