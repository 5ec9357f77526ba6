"""ResNet-50 on ImageNet-1k: the supervised baseline recipe (Goyal et al. 2017, "Accurate, Large Minibatch
SGD": SGD + Nesterov momentum, lr 0.1 per 256 images scaled linearly, 5 warm-up epochs, cosine decay,
weight decay 1e-4, label smoothing 0.1, 90 epochs at 224 px, bf16 compute).

  python -m mlrelabel.main --config=configs/imagenet_resnet50.py                       # TFDS imagenet2012
  python -m mlrelabel.main --config=configs/imagenet_resnet50.py --config.data.source=folder \
      --config.data.root=/data/imagenet                                                # train/<wnid>/*.JPEG
  python -m mlrelabel.main --config=configs/imagenet_resnet50.py:smoke --config.data.root=DIR

The `smoke` variant trains a few steps of a tiny ResNet at 32 px on the folder `data.root` names (with no
root: a generated 4-class folder under the work directory), so the ImageNet wiring is checked anywhere.
Launch on clusters with `launch/*.sh`; the data fields are documented in `mlrelabel/data/imagenet.py`.
"""

from mlrelabel.config import apply_imagenet_smoke, base_config, resnet50_imagenet


def get_config(variant: str = ''):
    c = base_config('')
    c.method = 'supervised'
    resnet50_imagenet(c)
    c.train.label_smoothing = 0.1
    if variant == 'smoke':
        apply_imagenet_smoke(c)
        c.data.num_val = 0
        c.data.check_images = True
        c.train.epochs = 2
        c.train.checkpoint_every_steps = 2
    elif variant:
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    return c
