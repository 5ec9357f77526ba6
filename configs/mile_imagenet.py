"""MILe on ImageNet with the ResNet-50 recipe of Rajeswar et al. (CVPR 2022), evaluated on ReaL labels.

Needs an ImageNet folder (`--config.data.root=/path/to/imagenet`) and the ReaL validation label sets:

python -m mlrelabel.main --config=configs/mile_imagenet.py --config.data.root=/data/imagenet
python -m mlrelabel.main --config=configs/mile_imagenet.py --config.data.root=... --config.mile.schema=softmax

Recipe: ResNet-50 (torchvision topology), 224 px random-resized crops with flips, batch 256, SGD with
momentum 0.9 (no Nesterov), learning rate 0.1 per 256 images with a cosine schedule, weight decay 1e-4,
sigmoid BCE, pseudo-label threshold rho = 0.25. The smoke variant shrinks everything to a tiny model.
"""

import importlib.util
import os

from mlrelabel.config import apply_smoke, base_config, resnet50_imagenet


def _mile_fields(schema: str):
    """`config.mile` defaults shared with configs/mile.py (loaded by path: configs/ is not a package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mile.py')
    spec = importlib.util.spec_from_file_location('_mile_config', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mile_fields(schema)


def get_config(variant: str = ''):
    if variant not in ('', 'smoke'):
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    c = base_config('')
    c.method = 'mile'
    c.mile = _mile_fields('mile')
    c.mile.k_t = 5000  # about one epoch of teacher steps at batch 256 per generation
    c.mile.k_s = 5000
    c.mile.or_given = False  # the paper's rule: pseudo-labels are the thresholded predictions only

    resnet50_imagenet(c)
    c.data.source = 'folder'  # ImageNet train/ and val/ class folders (sorted-WNID class order)
    c.model.dtype = 'float32'
    t = c.train
    t.epochs = 100
    t.batch_size = 256
    t.loss = 'sigmoid_bce'  # informational: the schema decides the loss
    o = c.optim
    o.nesterov = False
    o.warmup_epochs = 0.0
    c.eval.batch_size = 500
    if variant == 'smoke':
        apply_smoke(c)
        c.data.num_train = 256
        c.data.num_val = 128
        c.optim.learning_rate = 0.01
        c.mile.k_t = 3
        c.mile.k_s = 2
    return c
