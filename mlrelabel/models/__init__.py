"""Models: the Linen ResNet family (torchvision v1.5 topology), small CPU presets, torchvision weight import."""

from mlrelabel.models.resnet import MODEL_NAMES, ResNet, get_model
from mlrelabel.models.torchvision import from_torchvision, to_torchvision

__all__ = ["MODEL_NAMES", "ResNet", "get_model", "from_torchvision", "to_torchvision"]
