"""Relabel a folder of JPEG photos with a model you already have, through the array-level API.

The folder holds one subfolder per class (`root/<class>/*.jpg`); every fifth photo of each class is held out
(the label rule's floors and checks read those). With torch and torchvision installed, the scorer is
torchvision's ImageNet ResNet-50, and the subfolders are named by ImageNet class names ('tabby',
'golden retriever', ...):

    python docs/examples/relabel_folder.py /data/photos labels.json

Any other model works the same way: `relabel_folder` takes any callable from crops to probabilities.
"""

from __future__ import annotations

import os
import sys

import numpy as np

import mlrelabel
from mlrelabel.data.label_table import LabelTable
from mlrelabel.data.labels import write_label_file

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')


def folder_split(root: str, held_out_every: int = 5):
    """`(class_names, train_paths, train_given, val_paths, val_given)` of a class-per-subfolder folder."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    split = {'train': ([], []), 'val': ([], [])}
    for c, name in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(root, name)) if f.lower().endswith(IMAGE_SUFFIXES))
        for i, f in enumerate(files):
            paths, given = split['val' if i % held_out_every == held_out_every - 1 else 'train']
            paths.append(os.path.join(root, name, f))
            given.append(c)
    (tp, tg), (vp, vg) = split['train'], split['val']
    return classes, tp, np.array(tg), vp, np.array(vg)


def relabel_folder(score_fn, root: str, crop_size: int = 224, rounds: int = 1):
    """Scores every photo's crops with `score_fn`, assigns labels from the evidence (averaged over `rounds`
    scorings: fine-tune your model between them), and returns `(result, class_names, train_paths)`."""
    classes, train_paths, train_given, val_paths, val_given = folder_split(root)
    options = mlrelabel.CropOptions(crop_size=crop_size)
    evidence = []
    for _ in range(rounds):
        evidence.append(mlrelabel.crop_evidence(score_fn, train_paths, options))
        held_out = mlrelabel.crop_evidence(score_fn, val_paths, options)
        # ... fine-tune your model on the labels assigned below, then score again ...
    result = mlrelabel.assign_labels(
        mlrelabel.average_evidence(evidence),
        train_given,
        held_out,
        val_given,
        class_names=classes,
        paths=train_paths,
    )
    return result, classes, train_paths


def torchvision_scorer(class_names):
    """torchvision's ImageNet ResNet-50 as a `score_fn`: each crop's probabilities of the folder's classes."""
    import torch
    from torchvision.models import ResNet50_Weights, resnet50

    weights = ResNet50_Weights.IMAGENET1K_V1
    columns = [weights.meta['categories'].index(name) for name in class_names]
    model = resnet50(weights=weights).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    @torch.no_grad()
    def score(batch):  # [B, S, S, 3] float32 in [0, 1] -> [B, C] probabilities
        x = (torch.from_numpy(batch).permute(0, 3, 1, 2) - mean) / std
        return torch.softmax(model(x), dim=1)[:, columns].numpy()

    return score


def main(root: str, out: str) -> None:
    classes = folder_split(root)[0]
    result, classes, paths = relabel_folder(torchvision_scorer(classes), root)
    if result.checks['keep_given']:
        print('relabeling did not help:', '; '.join(result.checks['flags']))
    table = LabelTable.from_lists(result.labels, len(classes))
    write_label_file(out, paths, table, classes)  # the CS570 label format the command writes
    print(f'{out}: {sum(len(x) > 1 for x in result.labels)} of {len(paths)} photos got more than one label')


if __name__ == '__main__':
    main(*sys.argv[1:3])
