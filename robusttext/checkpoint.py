"""Checkpoints: safetensors weights plus a JSON file, never pickle.

A checkpoint is a folder holding ``weights.safetensors`` and ``checkpoint.json``. The JSON has
``format_version``, ``kind`` (the model family, e.g. ``"char-cnn"`` or ``"dm-small"``),
``model_config`` (the keyword arguments that rebuild the model) and any other JSON-serialisable
sections the caller passes (vocabulary, tokenizer settings, perturbation space, training
configuration, metrics, optimizer step).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from robusttext.config import read_json_file
from robusttext.errors import RobustTextError

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "checkpoint.json"


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    *,
    kind: str,
    model_config: dict[str, Any],
    tensors: dict[str, torch.Tensor] | None = None,
    **sections: Any,
) -> Path:
    """Write ``model``'s weights and the JSON sections into ``directory`` (created if needed).

    ``tensors`` are saved beside the weights under the prefix ``extra.`` (for example optimizer
    moments), so that resuming needs no pickle either.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for name, value in (tensors or {}).items():
        weights[f"extra.{name}"] = value.detach().cpu().contiguous()
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "model_config": model_config}
    meta.update(sections)
    tmp_weights = directory / (WEIGHTS_FILE + ".tmp")
    tmp_meta = directory / (META_FILE + ".tmp")
    save_file(weights, str(tmp_weights))
    tmp_meta.write_text(json.dumps(meta, separators=(",", ":"), sort_keys=True))
    tmp_weights.replace(directory / WEIGHTS_FILE)
    tmp_meta.replace(directory / META_FILE)
    return directory


def load_checkpoint(
    directory: str | Path, *, expected_kind: str | tuple[str, ...] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint folder: ``(model_state_dict, extra_tensors, meta)``.

    Raises RobustTextError when the folder is missing a file, was written by a newer format
    version, or holds another kind of model than ``expected_kind``.
    """
    directory = Path(directory)
    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise RobustTextError(f"checkpoint {directory}: missing {path.name}")
    meta = read_json_file(meta_path, "checkpoint")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RobustTextError(
            f"checkpoint {directory}: format version {version!r} is newer than this robusttext "
            f"reads ({FORMAT_VERSION}); upgrade robusttext"
        )
    if expected_kind is not None:
        kinds = (expected_kind,) if isinstance(expected_kind, str) else expected_kind
        if meta.get("kind") not in kinds:
            raise RobustTextError(
                f"checkpoint {directory} holds a {meta.get('kind')!r} model, expected "
                + " or ".join(repr(k) for k in kinds)
            )
    tensors = read_weights(weights_path)
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return model_state, extra, meta


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; RobustTextError naming the file when it is empty,
    truncated or not safetensors at all."""
    size = path.stat().st_size
    if size == 0:
        raise RobustTextError(f"checkpoint {path}: the weights file is empty (0 bytes); the "
                              "checkpoint was not written completely")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RobustTextError(f"checkpoint {path}: not a readable safetensors file ({size} "
                              f"bytes; truncated or corrupt?): {reason}") from None


# -- optimizer state, saved as extra tensors --------------------------------------------------

OPTIMIZER_PREFIX = "optim."
OLD_OPTIMIZER_PREFIXES = ("adam.",)  # text checkpoints written before the names were shared


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state (e.g. Adam's step and moments) as tensors named
    ``optim.<parameter index>.<key>``, for ``save_checkpoint(tensors=...)``."""
    tensors = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"{OPTIMIZER_PREFIX}{index}.{key}"] = torch.as_tensor(value).detach().clone()
    return tensors


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Load the state ``optimizer_tensors`` saved (also under the old prefix ``adam.``, and
    flattened, as vision checkpoints stored it) into ``optimizer``; other tensors are ignored.
    Its parameter groups (learning rates) stay as they are."""
    shapes = [p.shape for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        prefix = next((p for p in (OPTIMIZER_PREFIX, *OLD_OPTIMIZER_PREFIXES)
                       if name.startswith(p)), None)
        if prefix is None:
            continue
        index, key = name[len(prefix):].split(".", 1)
        index = int(index)
        shape = () if key == "step" else shapes[index]
        state.setdefault(index, {})[key] = value.reshape(shape)
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
