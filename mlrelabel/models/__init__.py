"""Models: the Linen ResNet family (torchvision v1.5 topology), small CPU presets, torchvision weight import,
published weights by name (`models.weights`).

The networks load on first use of their names, so `mlrelabel.models.weights` (needed by config validation,
before JAX is imported) imports no JAX.
"""

__all__ = ["MODEL_NAMES", "ResNet", "get_model", "from_torchvision", "to_torchvision"]

_SOURCES = {
    "MODEL_NAMES": "resnet",
    "ResNet": "resnet",
    "get_model": "resnet",
    "from_torchvision": "torchvision",
    "to_torchvision": "torchvision",
}


def __getattr__(name: str):
    if name in _SOURCES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
