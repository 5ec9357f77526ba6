"""Models: the Linen ResNet family (torchvision v1.5 topology) and small CPU presets."""

from mlrelabel.models.resnet import MODEL_NAMES, ResNet, get_model

__all__ = ["MODEL_NAMES", "ResNet", "get_model"]
