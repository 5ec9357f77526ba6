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

from mlrelabel.config import base_config


def relabel_maps_fields() -> ml_collections.ConfigDict:
    """The `relabel_maps` group (shared with configs/relabel_maps_imagenet.py)."""
    r = ml_collections.ConfigDict()
    r.teacher_workdir = ''  # a previous run's work directory (its final model teaches); '' = make one here
    # A relabel recipe whose run on this data and seed teaches (its chosen round's model, in <workdir>/teacher):
    # 'mc_dropout', 'naive', ...; '' = a teacher trained here on the visible single labels (teacher_epochs/_loss)
    r.teacher_recipe = ''
    r.teacher_epochs = 0  # epochs of the teacher trained on the visible labels (0 = train.epochs)
    r.teacher_loss = 'softmax_ce'  # loss of the teacher trained on the visible single labels
    r.teacher_image_size = 0  # whole images are resized to this for the teacher (0 = data.image_size);
    # keep the training scale: at 2x the digit-scenes teacher's maps fall to 20% top-1
    r.store = ''  # an existing label-map store (e.g. imported ReLabel maps); '' = generate
    r.map_size = 5  # maps are resized to map_size x map_size before the top-k (ReLabel: 15)
    r.topk = 5  # classes kept per location (ReLabel: 5)
    r.batch_size = 64  # images per generation batch (multiple of the device count)
    r.shard_size = 1024  # images per store shard file
    r.transpose_boxes = False  # True pools (x0, y0, x1, y1) as ReLabel's released code does
    r.offset = 0.5  # RoIAlign coordinate shift (ReLabel's released code: 0.5)
    r.cutmix = False  # CutMix (Yun et al. 2019) with region-pooled targets
    r.cutmix_alpha = 1.0  # lam ~ Beta(alpha, alpha)
    # With cutmix=True: half the examples mixed, none in the last 5 epochs. At the 10-epoch budget every example
    # mixed until the last 2 epochs under-fits (val mAP 0.51 against one-hot's 0.59; this schedule 0.62,
    # without CutMix 0.66: BENCHMARKS.md, "ReLabel's teacher"). ReLabel's 300-epoch recipe mixes every example.
    r.cutmix_prob = 0.5  # probability that an example is mixed
    r.cutmix_off_epochs = 5  # no CutMix during the last N epochs
    return r


def get_config(variant: str = ''):
    config = base_config('smoke' if variant == 'smoke' else '')
    if variant not in ('', 'smoke'):
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    config.method = 'relabel_maps'
    config.train.loss = 'soft_ce'
    config.relabel_maps = r = relabel_maps_fields()
    # The teacher: the relabel loop's chosen model. A teacher trained on the single labels writes maps of one
    # object per image and its student does not beat plain training (README, "ReLabel"); this one does.
    r.teacher_recipe = 'mc_dropout'
    if variant == 'smoke':
        r.teacher_recipe = ''  # seconds: a teacher trained on the visible labels (tests run the relabel one)
        r.map_size = 4
        r.batch_size = 32
        r.shard_size = 100  # several shards, the last one partial
        r.cutmix = True  # the full path: pooling, CutMix, and CutMix off for the last epoch
        r.cutmix_off_epochs = 1
    return config
