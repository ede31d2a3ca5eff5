"""Image classifiers under L-infinity perturbations: data, DM models, PGD, certified training."""

from robusttext.vision.models import ARCHITECTURES, MODEL_REGISTRY, Normalize, build_model

__all__ = ["ARCHITECTURES", "MODEL_REGISTRY", "Normalize", "build_model"]
