"""Models: the Linen ResNet family (torchvision v1.5 topology) with small CPU presets, VGG-16 (with and without
batch norm), Inception-v3 and EfficientNet-B0 (torchvision's topologies), all built by name with `get_model`
(`models.zoo`); torchvision weight import/export; published weights by name (`models.weights`).

The networks load on first use of their names, so `mlrelabel.models.weights` (needed by config validation,
before JAX is imported) imports no JAX.
"""

__all__ = ["MODEL_NAMES", "ResNet", "get_model", "from_torchvision", "to_torchvision"]

_SOURCES = {
    "MODEL_NAMES": "zoo",
    "ResNet": "resnet",
    "get_model": "zoo",
    "from_torchvision": "torchvision",
    "to_torchvision": "torchvision",
}


def __getattr__(name: str):
    if name in _SOURCES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
