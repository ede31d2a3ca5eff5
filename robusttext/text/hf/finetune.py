"""Certified fine-tuning of a ``transformers`` classifier the user already has.

``robusttext train --model FOLDER`` (a ``save_pretrained`` folder or a hub id, the setting
``start_from``) continues training that model with the certified loss of
``robusttext.train.loss`` and writes a folder of the same kind into ``--out``: the model's own
config (``save_pretrained``), its own tokenizer, and ``robusttext.json`` beside them (the
perturbation space, the training configuration, the measured metrics and the run's state).
The sentences are read through the model's tokenizer (``robusttext.perturb.subwords``): each
word keeps the candidates its pieces cover exactly, as certification does.

The training loop is the one of every text model (``robusttext.train.trainer``); this module
gives it the starting point and the saving step:

- ``start(config, out, space)`` -> ``Start``: the model (``HFTextModel``), its
  ``PieceVocabulary``, the space through the tokenizer, and, when ``out`` already holds an
  unfinished run of the same settings, the state and optimizer moments to resume from;
- ``save(directory, model, space, ...)`` writes the folder (with the optimizer's moments in
  ``optimizer.safetensors`` when given, so a run resumes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robusttext.config import changed_settings
from robusttext.errors import RobustTextError
from robusttext.perturb import PerturbationSpace
from robusttext.perturb.subwords import SubwordSpace
from robusttext.text.hf.folders import (
    ROBUSTTEXT_FILE,
    read_robusttext_file,
    save_transformers_folder,
    subword_space,
)
from robusttext.text.hf.model import HFTextModel

OPTIMIZER_FILE = "optimizer.safetensors"
"""The optimizer's moments of an unfinished run, beside the model's files."""


@dataclass
class Start:
    """Where a fine-tuning run starts: ``model`` (train mode is the caller's), ``vocab`` (the
    tokenizer's pieces), ``space`` (the word space through the tokenizer), ``state`` (``epoch``,
    ``step``, ``best``; empty for a new run) and ``optimizer`` (saved moments, or empty)."""

    model: HFTextModel
    vocab: Any
    space: SubwordSpace
    state: dict = field(default_factory=dict)
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)


def is_run_folder(out: str | Path) -> bool:
    """True when ``out`` holds a fine-tuning run (a ``robusttext.json`` with a state)."""
    path = Path(out)
    if not (path / ROBUSTTEXT_FILE).is_file():
        return False
    return "state" in read_robusttext_file(path)


def read_state(folder: str | Path) -> dict:
    """The run state saved in ``folder``'s ``robusttext.json`` (``{}`` when none)."""
    return read_robusttext_file(Path(folder)).get("state", {})


def start(config, out: str | Path, space: PerturbationSpace, device="cpu",
          same: tuple[str, ...] = ("start_from",)) -> Start:
    """The model to train: ``out``'s when it holds a run whose settings ``same`` equal
    ``config``'s (resume), else ``config.start_from`` (a folder or a hub id). ``space`` is the
    word-level space of ``config``; it is read through the model's tokenizer."""
    from robusttext.text.io import load_text_model

    out = Path(out)
    resuming = is_run_folder(out)
    source = out if resuming else config.start_from
    bundle = load_text_model(source, device=device)
    if bundle.kind != "transformers":
        raise RobustTextError(f"--model {config.start_from}: robusttext train --model continues "
                              f"a transformers model (a save_pretrained folder or a hub id); "
                              f"{source} is a robusttext {bundle.kind} checkpoint (continue it "
                              f"with --out {source})")
    state: dict = {}
    moments: dict[str, torch.Tensor] = {}
    if resuming:
        saved = read_robusttext_file(out)
        _check_same_settings(out, saved.get("training_config", {}), config, same)
        state = saved["state"]
        if (out / OPTIMIZER_FILE).is_file():
            from safetensors.torch import load_file

            moments = load_file(str(out / OPTIMIZER_FILE), device=str(device))
    tokenizer = bundle.vocab.tokenizer
    through = subword_space(space, tokenizer, bundle.model)
    return Start(bundle.model, through.vocabulary, through, state, moments)


def _check_same_settings(out: Path, saved: dict, config, names: tuple[str, ...]) -> None:
    differs = changed_settings(saved, config, names)
    if differs:
        raise RobustTextError(
            f"{out} holds a fine-tuning run with other settings ("
            + "; ".join(differs.values()) + "). Use another --out")


def save(directory: str | Path, model: HFTextModel, space: SubwordSpace, *,
         training_config: dict | None, metrics: dict | None, state: dict | None = None,
         optimizer: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` as a ``save_pretrained`` folder with its own tokenizer and config,
    ``robusttext.json`` (space, training configuration, metrics, ``state``) and, when given,
    the optimizer's moments."""
    directory = Path(directory)
    save_transformers_folder(directory, model, space.vocabulary.tokenizer, space.space,
                             training_config=training_config, metrics=metrics)
    if state is not None:
        file = directory / ROBUSTTEXT_FILE
        saved = json.loads(file.read_text())
        saved["state"] = state
        file.write_text(json.dumps(saved, indent=1) + "\n")
    if optimizer:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in optimizer.items()},
                  str(directory / OPTIMIZER_FILE))
    elif (directory / OPTIMIZER_FILE).is_file():
        (directory / OPTIMIZER_FILE).unlink()
    return directory
