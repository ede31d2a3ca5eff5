"""Image classifiers under L-infinity perturbations: data, DM models, PGD, certified training."""

from importlib import import_module

__all__ = ["ARCHITECTURES", "MODEL_REGISTRY", "Normalize", "build_model"]


def __getattr__(name: str):
    """The names of ``robusttext.vision.models``, imported on first use (PEP 562), so that
    ``robusttext vision --help`` loads no torch."""
    if name in __all__:
        return getattr(import_module("robusttext.vision.models"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
