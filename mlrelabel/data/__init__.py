"""Data: label tables and label files, the built-in digit scenes, datasets of images."""

from mlrelabel.data import digit_scenes as _digit_scenes
from mlrelabel.data.digit_scenes import (
    DigitSceneOptions,
    load_or_build_digit_scenes,
    make_digit_scenes,
    split_pool,
)
from mlrelabel.data.label_table import LabelFileError, LabelTable
from mlrelabel.data.labels import read_label_file, write_label_file
from mlrelabel.data.sources import Dataset, ImageFiles, digit_scenes_dataset, load_image_dataset

DIGIT_SCENES_NUM_CLASSES = _digit_scenes.NUM_CLASSES  # 10
DIGIT_SCENES_SPLITS = _digit_scenes.SPLITS  # ('train', 'val', 'test')

__all__ = [
    "DIGIT_SCENES_NUM_CLASSES",
    "DIGIT_SCENES_SPLITS",
    "Dataset",
    "ImageFiles",
    "LabelFileError",
    "LabelTable",
    "digit_scenes_dataset",
    "load_image_dataset",
    "DigitSceneOptions",
    "load_or_build_digit_scenes",
    "make_digit_scenes",
    "read_label_file",
    "split_pool",
    "write_label_file",
]
