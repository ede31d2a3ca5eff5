"""``transformers`` model folders and hub ids: load one as a robusttext text model, save one.

A folder written by ``save_pretrained`` (``config.json``, the weights, the tokenizer's files)
loads with ``load_transformers_folder``; a hub id (``ORG/NAME``) with ``load_transformers_hub``,
through ``transformers``' own resolution (``from_pretrained(id)``: downloaded where there is a
network, read from the Hugging Face cache offline, e.g. with ``HF_HUB_OFFLINE=1``). robusttext
adds ``robusttext.json`` beside them when it
saves (``save_transformers_folder``): the perturbation space the model was trained or certified
for, the training configuration and the measured metrics. ``AutoModelForSequenceClassification
.from_pretrained`` and ``pipeline("text-classification")`` read the folder as usual and ignore
that file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from robusttext.errors import RobustTextError
from robusttext.perturb.space import PerturbationSpace
from robusttext.perturb.subwords import SubwordSpace
from robusttext.text.hf.model import (
    SUPPORTED_ARCHITECTURES,
    HFTextModel,
    check_tokenizer_inputs,
    from_transformers,
)

ROBUSTTEXT_FILE = "robusttext.json"
FORMAT = "robusttext.transformers_folder"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
"""A folder holds a tokenizer when it has one of these (fast tokenizer, WordPiece, BPE)."""


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
"""The form of a hub model id: ``NAME`` or ``ORG/NAME`` (letters, digits, ``._-``)."""


def is_hub_id(name: str) -> bool:
    """True when ``name`` has the form of a hub model id (``ORG/NAME`` or ``NAME``)."""
    return bool(HUB_ID.fullmatch(name)) and ".." not in name and len(name) <= 96


def is_transformers_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder with a ``transformers`` ``config.json``."""
    return (Path(path) / "config.json").is_file()


def _read_config(path: Path) -> dict:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RobustTextError(f"{path}/config.json cannot be read: {error}") from None
    if not isinstance(config, dict):
        raise RobustTextError(f"{path}/config.json is not a JSON object")
    return config


def load_transformers_folder(path: str | Path, device: str = "cpu"):
    """``(text_model, tokenizer, saved)`` from a ``save_pretrained`` folder: the
    ``HFTextModel`` in eval mode on ``device``, the folder's tokenizer and the parsed
    ``robusttext.json`` (``{}`` when absent). RobustTextError for a folder without a tokenizer
    or with an architecture robusttext does not support (named, with the supported ones)."""
    path = Path(path).expanduser()
    config = _read_config(path)
    _check_architectures(path, config.get("architectures"), config.get("model_type"))
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise RobustTextError(f"{path} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                              "save the tokenizer with tokenizer.save_pretrained(folder) beside "
                              "the model")
    tokenizer, hf = _tokenizer_and_model(path, path, local_files_only=True)
    saved = read_robusttext_file(path)
    return from_transformers(hf).to(device).eval(), tokenizer, saved


def load_transformers_hub(model_id: str, device: str = "cpu"):
    """``(text_model, tokenizer, saved, folder)`` of a hub id, as ``load_transformers_folder``
    gives for a folder; ``folder`` is the snapshot folder ``transformers`` resolved (in the
    Hugging Face cache). ``from_pretrained(model_id)`` downloads where there is a network and
    reads the cache offline; RobustTextError naming the id and what was tried (the folder, the
    cache, the hub) when neither has it."""
    from transformers import AutoConfig
    from transformers.utils import cached_file

    try:
        config = AutoConfig.from_pretrained(model_id)
        folder = Path(cached_file(model_id, "config.json")).parent
    except Exception as error:  # OSError, ValueError, requests' and huggingface_hub's errors
        raise RobustTextError(_not_found(model_id, error)) from None
    _check_architectures(model_id, config.architectures, config.model_type)
    tokenizer, hf = _tokenizer_and_model(model_id, model_id, local_files_only=False)
    try:
        extra = cached_file(model_id, ROBUSTTEXT_FILE, _raise_exceptions_for_missing_entries=False,
                            _raise_exceptions_for_connection_errors=False)
    except Exception:  # a hub that answers for config.json but not here: no saved space
        extra = None
    saved = read_robusttext_file(Path(extra).parent) if extra else {}
    return from_transformers(hf).to(device).eval(), tokenizer, saved, folder


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def hub_cache_entry(model_id: str) -> Path:
    """The folder the Hugging Face cache keeps ``model_id`` in (``models--org--name``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}"


def _not_found(model_id: str, error: BaseException) -> str:
    """One line: ``model_id`` is no folder, not in the cache, not on the hub (or offline)."""
    from huggingface_hub import constants

    folder = Path(model_id).expanduser().absolute()
    cache = hub_cache_entry(model_id)
    cached = "holds no usable snapshot" if cache.is_dir() else "does not exist"
    if constants.is_offline_mode():
        hub = "the hub was not asked (HF_HUB_OFFLINE is set)"
    else:
        hub = (f"the hub did not give it ({_first_line(error)}; with HF_HUB_OFFLINE=1 only the "
               "cache is read)")
    return (f"no such model: {model_id!r} is neither a folder ({folder} does not exist) nor a "
            f"robusttext shipped model, and transformers could not load it as a hub id: the "
            f"Hugging Face cache entry {cache} {cached}, and {hub}")


def _check_architectures(where, architectures, model_type) -> None:
    architectures = list(architectures or [])
    unsupported = [a for a in architectures if a not in SUPPORTED_ARCHITECTURES]
    if unsupported or not architectures:
        named = ", ".join(unsupported) or f"model_type {model_type!r} with no architectures entry"
        raise RobustTextError(f"{where}: robusttext does not support the architecture {named}; "
                              f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}")


def _tokenizer_and_model(source, where, local_files_only: bool):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except Exception as error:  # transformers raises many kinds of errors on bad folders
        raise RobustTextError(f"{where}: the tokenizer cannot be loaded: {error}") from None
    try:
        hf = AutoModelForSequenceClassification.from_pretrained(
            source, local_files_only=local_files_only)
    except Exception as error:
        raise RobustTextError(f"{where}: the model cannot be loaded: {error}") from None
    return tokenizer, hf


def read_robusttext_file(path: Path) -> dict:
    """The parsed ``robusttext.json`` of a folder, ``{}`` when there is none."""
    file = path / ROBUSTTEXT_FILE
    if not file.is_file():
        return {}
    try:
        saved = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RobustTextError(f"{file} cannot be read: {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise RobustTextError(f"{file} is not a robusttext file (no format {FORMAT!r})")
    return saved


def saved_space(saved: dict, tokenizer, model: HFTextModel) -> SubwordSpace | None:
    """The ``SubwordSpace`` of a folder's saved perturbation space, or None if it has none."""
    if not saved.get("perturbation_space"):
        return None
    space = PerturbationSpace.from_json(saved["perturbation_space"])
    return subword_space(space, tokenizer, model)


def subword_space(space: PerturbationSpace, tokenizer, model: HFTextModel) -> SubwordSpace:
    """``space`` through ``tokenizer``, limited to the model's positions."""
    check_tokenizer_inputs(model, tokenizer)
    return SubwordSpace(space, tokenizer, max_length=model.body.max_length)


def save_transformers_folder(
    directory: str | Path,
    model: HFTextModel,
    tokenizer,
    space: PerturbationSpace | SubwordSpace | None = None,
    *,
    training_config: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write ``model`` (its ``transformers`` model, ``save_pretrained``), ``tokenizer`` and
    ``robusttext.json`` (space, training configuration, metrics) into ``directory``."""
    if not isinstance(model, HFTextModel):
        raise RobustTextError(f"save_transformers_folder takes an HFTextModel (see "
                              f"from_transformers), got {type(model).__name__}")
    if isinstance(space, SubwordSpace):
        space = space.space
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.hf.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    extra: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "architecture": model.architecture,
        "perturbation_space": space.to_json() if space is not None else None,
        "training_config": training_config or {},
        "metrics": metrics or {},
    }
    (directory / ROBUSTTEXT_FILE).write_text(json.dumps(extra, indent=1) + "\n")
    return directory


def load_transformers_bundle(path: str | Path, device: str = "cpu"):
    """A ``TextModelBundle`` of a ``save_pretrained`` folder: ``vocab`` is the tokenizer's
    ``PieceVocabulary``, ``space`` the saved space through the tokenizer (None when the folder
    carries none), ``meta`` ``kind: "transformers"``, the architecture, the ``transformers``
    config and the saved training configuration and metrics."""
    path = Path(path).expanduser()
    model, tokenizer, saved = load_transformers_folder(path, device)
    return _bundle(model, tokenizer, saved, path.name, path)


def load_hub_bundle(model_id: str, device: str = "cpu"):
    """A ``TextModelBundle`` of a hub id (see ``load_transformers_hub``), named by the id, its
    ``path`` the resolved snapshot folder."""
    model, tokenizer, saved, folder = load_transformers_hub(model_id, device)
    return _bundle(model, tokenizer, saved, model_id, folder)


def _bundle(model, tokenizer, saved, name, path):
    from robusttext.perturb.subwords import PieceVocabulary
    from robusttext.text.bundle import TextModelBundle

    space = saved_space(saved, tokenizer, model)
    meta = {"kind": "transformers", "architecture": model.architecture,
            "model_config": model.hf.config.to_dict(),
            "training_config": saved.get("training_config", {}),
            "metrics": saved.get("metrics", {})}
    vocab = space.vocabulary if space is not None else PieceVocabulary(tokenizer)
    return TextModelBundle(model=model, vocab=vocab, space=space, meta=meta, name=name, path=path)
