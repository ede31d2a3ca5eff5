"""The certified-training CNNs of Gowal et al. 2018 (Table 1): DM-small, DM-medium, DM-large.

Each model maps images ``[batch, C, H, W]`` in [0, 1] to logits ``[batch, 10]``. Its first module
normalises the input with constant buffers, ``(x - mean) / std``, so that an L-infinity radius is
in pixel units. Only Conv2d, Linear, ReLU, Flatten and that normalisation appear, which is what
the bound engine needs. Padding follows the reference implementations: VALID for small and medium,
SAME (padding 1) for large.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robusttext.errors import RobustTextError

NUM_CLASSES = 10


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; ``mean`` and ``std`` are buffers ``[1, C, 1, 1]``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std):
            raise RobustTextError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise RobustTextError(f"std must be positive, got {list(std)}")
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[batch, C, H, W]`` -> same shape."""
        return (x - self.mean) / self.std


# A layer spec: ("conv", out_channels, kernel, stride, padding) or ("fc", out_features).
LayerSpec = tuple


@dataclass(frozen=True)
class Architecture:
    """A named stack of conv and fully connected layers, each followed by ReLU."""

    name: str
    layers: tuple[LayerSpec, ...]


ARCHITECTURES: dict[str, Architecture] = {
    "dm-small": Architecture(
        "dm-small", (("conv", 16, 4, 2, 0), ("conv", 32, 4, 1, 0), ("fc", 100))
    ),
    "dm-medium": Architecture(
        "dm-medium",
        (
            ("conv", 32, 3, 1, 0),
            ("conv", 32, 4, 2, 0),
            ("conv", 64, 3, 1, 0),
            ("conv", 64, 4, 2, 0),
            ("fc", 512),
            ("fc", 512),
        ),
    ),
    "dm-large": Architecture(
        "dm-large",
        (
            ("conv", 64, 3, 1, 1),
            ("conv", 64, 3, 1, 1),
            ("conv", 128, 3, 2, 1),
            ("conv", 128, 3, 1, 1),
            ("conv", 128, 3, 1, 1),
            ("fc", 512),
        ),
    ),
}


def build_model(
    name: str,
    in_channels: int = 1,
    image_size: int = 28,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_classes: int = NUM_CLASSES,
) -> nn.Sequential:
    """Build ``name`` (``dm-small``, ``dm-medium``, ``dm-large``) for inputs
    ``[C, image_size, image_size]``; ``mean``/``std`` default to 0/1 per channel (identity)."""
    if name not in ARCHITECTURES:
        raise RobustTextError(f"unknown vision model {name!r}; choose from {sorted(ARCHITECTURES)}")
    if in_channels <= 0 or image_size <= 0:
        raise RobustTextError(f"bad input shape [{in_channels}, {image_size}, {image_size}]")
    mean = [0.0] * in_channels if mean is None else list(mean)
    std = [1.0] * in_channels if std is None else list(std)
    if len(mean) != in_channels:
        raise RobustTextError(f"mean has {len(mean)} channels, the model takes {in_channels}")
    modules: list[nn.Module] = [Normalize(mean, std)]
    channels, size, flat = in_channels, image_size, None
    for spec in ARCHITECTURES[name].layers:
        if spec[0] == "conv":
            _, out, kernel, stride, padding = spec
            size = (size + 2 * padding - kernel) // stride + 1
            if size <= 0:
                raise RobustTextError(f"{name} needs larger images than {image_size}x{image_size}")
            modules += [nn.Conv2d(channels, out, kernel, stride=stride, padding=padding), nn.ReLU()]
            channels = out
        else:
            if flat is None:
                flat = channels * size * size
                modules.append(nn.Flatten())
            modules += [nn.Linear(flat, spec[1]), nn.ReLU()]
            flat = spec[1]
    modules.append(nn.Linear(flat, num_classes))
    return nn.Sequential(*modules)


def model_config(
    name: str, in_channels: int, image_size: int, mean: Sequence[float], std: Sequence[float]
) -> dict:
    """The JSON-serialisable keyword arguments that rebuild a model with :func:`build_model`."""
    return {
        "name": name,
        "in_channels": int(in_channels),
        "image_size": int(image_size),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }


# Registry for benchmarks: name -> factory(in_channels, image_size) on unnormalised inputs.
MODEL_REGISTRY: dict[str, Callable[[int, int], nn.Module]] = {
    name: (lambda c, s, _n=name: build_model(_n, c, s)) for name in ARCHITECTURES
}

# The input shapes the models are defined for: data set -> (channels, image size).
INPUT_SHAPES = {"mnist": (1, 28), "fashion-mnist": (1, 28), "cifar10": (3, 32)}
