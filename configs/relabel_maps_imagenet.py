"""ReLabel's ImageNet recipe (Yun et al. 2021, CutMix variant) for ResNet-50, on ImageNet in CS570 label files.

Import ReLabel's published maps first (needs torch only for this step), then train:

  python -m mlrelabel.tools.import_relabel_maps --root=relabel_imagenet/label_maps --order=train.json \\
      --out=stores/relabel_imagenet
  python -m mlrelabel.main --config=configs/relabel_maps_imagenet.py --config.data.train_json=train.json \\
      --config.data.val_json=val.json --config.relabel_maps.store=stores/relabel_imagenet

Without `relabel_maps.store` a ResNet-50 teacher is trained on the visible labels first (`teacher_epochs`)
and its own maps are generated. The recipe: SGD with Nesterov momentum 0.9, lr 0.1 for batch 1024 scaled
linearly with the batch, weight decay 1e-4, cosine decay with 5 warm-up epochs, 300 epochs, random-resized
crops (0.08-1) with flips, soft-target cross-entropy on LabelPooling targets, CutMix (alpha 1).
"""

import importlib.util as _util
import os as _os

from mlrelabel.config import apply_smoke, base_config, resnet50_imagenet

# configs/ is not a package: load the sibling file's shared field group by path.
_spec = _util.spec_from_file_location(
    '_relabel_maps_config', _os.path.join(_os.path.dirname(__file__), 'relabel_maps.py')
)
_relabel_maps = _util.module_from_spec(_spec)
_spec.loader.exec_module(_relabel_maps)


def get_config(variant: str = ''):
    if variant not in ('', 'smoke'):
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    c = base_config('')
    c.method = 'relabel_maps'
    resnet50_imagenet(c)
    c.data.source = 'json'
    c.data.check_images = False  # 1.28M files: skip the up-front decode pass
    c.train.epochs = 300
    c.train.loss = 'soft_ce'
    c.optim.lr_base_batch = 1024  # ReLabel: lr 0.1 for batch 1024, scaled linearly
    c.relabel_maps = r = _relabel_maps.relabel_maps_fields()
    r.teacher_epochs = 90
    r.map_size = 15
    r.topk = 5
    r.batch_size = 1024
    r.shard_size = 4096
    r.cutmix = True
    r.cutmix_alpha = 1.0
    r.cutmix_prob = 1.0
    r.cutmix_off_epochs = 0
    if variant == 'smoke':
        apply_smoke(c)  # resnet_tiny at 32 px, 2 epochs, batch 32
        c.model.small_stem = True
        c.model.stem_stride = 2
        c.model.dtype = 'float32'
        c.eval.batch_size = 64
        r.teacher_epochs = 1
        r.map_size = 4
        r.batch_size = 32
        r.shard_size = 100
        r.cutmix_off_epochs = 1
    return c
