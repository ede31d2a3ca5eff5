"""Saving and loading vision models with robusttext.checkpoint (safetensors + JSON, no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from robusttext.checkpoint import load_checkpoint, save_checkpoint
from robusttext.errors import RobustTextError
from robusttext.vision.models import ARCHITECTURES, build_model


def save_model(
    directory: str | Path,
    model: nn.Module,
    config: dict[str, Any],
    tensors: dict[str, torch.Tensor] | None = None,
    **sections: Any,
) -> Path:
    """Write ``model`` with its :func:`~robusttext.vision.models.model_config` ``config``."""
    return save_checkpoint(
        directory, model, kind=config["name"], model_config=config, tensors=tensors, **sections
    )


def load_model(
    directory: str | Path, expected: str | None = None
) -> tuple[nn.Module, dict[str, torch.Tensor], dict[str, Any]]:
    """Rebuild a vision model from a checkpoint folder: ``(model in eval mode, extras, meta)``.

    ``expected`` names the architecture the caller wants (any DM model when None). Raises
    RobustTextError when the checkpoint holds another architecture or its weights do not fit.
    """
    kinds = (expected,) if expected else tuple(ARCHITECTURES)
    if expected and expected not in ARCHITECTURES:
        raise RobustTextError(
            f"unknown vision model {expected!r}; choose from {sorted(ARCHITECTURES)}"
        )
    state, extra, meta = load_checkpoint(directory, expected_kind=kinds)
    config = meta.get("model_config") or {}
    try:
        model = build_model(
            config["name"],
            config["in_channels"],
            config["image_size"],
            config["mean"],
            config["std"],
        )
    except (KeyError, TypeError) as error:
        raise RobustTextError(
            f"checkpoint {directory}: incomplete model_config ({error})"
        ) from None
    mismatched = _state_mismatch(model, state)
    if mismatched:
        raise RobustTextError(
            f"checkpoint {directory}: weights do not fit a {config['name']} model for "
            f"[{config['in_channels']}, {config['image_size']}, {config['image_size']}] inputs "
            f"({mismatched})"
        )
    model.load_state_dict(state)
    return model.eval(), extra, meta


def check_input_shape(meta: dict[str, Any], images: torch.Tensor, directory: str | Path) -> None:
    """RobustTextError unless ``images`` ``[N, C, H, W]`` have the checkpoint's input shape."""
    config = meta["model_config"]
    want = (config["in_channels"], config["image_size"], config["image_size"])
    if tuple(images.shape[1:]) != want:
        raise RobustTextError(
            f"checkpoint {directory} takes images of shape {list(want)}, the data has "
            f"{list(images.shape[1:])}"
        )


def _state_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        return f"missing {missing[:3]}, unexpected {unexpected[:3]}"
    wrong = [f"{k}: {found[k]} vs {expected[k]}" for k in expected if found[k] != expected[k]]
    return "; ".join(wrong[:3])
