"""The CS570 flow on ImageNet-1k: a pretrained ResNet-50 relabels, then the rounds fine-tune from it.

Round 0 is not trained: torchvision's ImageNet ResNet-50 (`relabel.round0_checkpoint`, downloaded once into the
cache and checked against its published hash) scores round 1's crops with MC dropout, and every later round
fine-tunes from it on the multi-hot labels. Use your own model instead with
`--config.relabel.round0_checkpoint=PATH` (a run directory, a round folder, an Orbax folder, or .pth/.npz).

  python -m mlrelabel.main --config=configs/cs570_imagenet.py --config.data.source=folder \
      --config.data.root=/data/imagenet
"""

from mlrelabel.config import apply_imagenet_relabel_smoke, relabel_config, resnet50_imagenet


def get_config(variant: str = ''):
    c = relabel_config('', confidence='mc_dropout')
    resnet50_imagenet(c)
    c.model.dropout_rate = (
        0.1  # before the classifier: MC dropout needs it (torchvision's ResNet-50 has none)
    )
    r = c.relabel
    r.round0_checkpoint = 'torchvision:resnet50'
    r.num_samples = 16
    r.record_topk = 10
    r.batch_size = 1024
    r.save_every_batches = 100
    r.epochs = 5  # fine-tuning epochs of each round from the pretrained model
    r.fresh_rounds = 0  # every round continues from the one before it
    r.round0_models = 1
    r.max_rounds = 3
    r.crops.overlap = 0.5  # 26 windows per image, as the ImageNet relabel recipe
    r.extend_underfit_round0 = False
    if variant == 'smoke':
        apply_imagenet_relabel_smoke(c)
        c.model.name = 'resnet18'
        c.model.width = 16
        r.round0_checkpoint = ''  # tests give generated weights; '' trains round 0
    elif variant:
        raise ValueError(f"unknown config variant {variant!r}: expected '' or 'smoke'")
    return c
