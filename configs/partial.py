"""Partial-label training (CSL, Ben-Baruch et al. 2022) on the built-in digit scenes with simulated
random-per-sample (RPS) partial labels: half of all (image, class) entries are unknown.

python -m mlrelabel.main --config=configs/partial.py
python -m mlrelabel.main --config=configs/partial.py --config.partial.mode=ignore
python -m mlrelabel.main --config=configs/partial.py:smoke

Your own data: `--config.data.source=annotation_folder|attribute_csv|partial_json` with
`--config.data.train_path=... --config.data.val_path=...` (see mlrelabel/data/formats.py).
"""

import ml_collections

from mlrelabel.config import base_config


def get_config(variant: str = ''):
    config = base_config(variant)
    config.method = 'partial'
    config.train.loss = 'sigmoid_bce'  # only names the link (sigmoid) for reports; the loss is partial.mode
    config.train.epochs = 12

    m = config.model
    m.pretrained = ''  # torchvision ResNet state_dict (.pth/.pt needs torch; .npz does not)
    m.freeze_backbone = False  # train the classifier only
    m.backbone_lr_scale = 1.0  # fine-tuning: backbone learning rate = optim.learning_rate * this

    config.partial = p = ml_collections.ConfigDict()
    p.mode = 'selective'  # 'negative' | 'ignore' | 'ignore_normalize_classes' | 'selective'
    p.head = 'sigmoid'  # 'sigmoid' (flat) | 'group_softmax' (one softmax per attribute group)
    p.simulate = 'rps'  # built-in data: 'rps' | 'fpc' | 'none' partial labels from the hidden truth
    p.rps_drop = 0.5  # RPS: probability that an entry is unknown
    p.fpc_per_class = 100  # FPC: annotated positives and negatives per class
    p.simulate_seed = 0
    # ASL terms (CSL reference defaults): focusing powers, probability shift, weights.
    p.gamma_pos = 0.0
    p.gamma_neg = 1.0
    p.gamma_unann = 2.0
    p.clip = 0.0
    p.alpha_pos = 1.0
    p.alpha_neg = 1.0
    p.alpha_unann = 1.0
    # selective mode
    p.likelihood_topk = 2  # unknowns ignored per image (k * batch over the batch); 2 measured best of 1, 2
    p.prior_threshold = 0.3  # unknowns of classes with prior above this are ignored
    # Phase one ('ignore' mode) that estimates the prior; part of train.epochs. 0 = no prior: the digit
    # scenes are class-balanced (every prior ~0.25), so the prior cannot single out classes there; with
    # prior_epochs=4 and threshold 0.3 it ignored every class's unknowns (mAP 0.535, README).
    p.prior_epochs = 0
    p.prior_warm_start = True  # the main phase continues from phase one's weights
    p.prior_path = ''  # a Classes,avg_pred CSV: skips phase one
    p.balanced_sampling = False  # inverse-frequency (class-balanced) sampling of training images

    if variant == 'smoke':
        config.train.epochs = 2
    return config
