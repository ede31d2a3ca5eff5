"""Saving and loading text models with everything a certificate depends on.

A text-model checkpoint (``robusttext.checkpoint``) holds the weights and, as JSON sections,
``vocabulary``, ``tokenizer`` (style and level), ``perturbation_space`` (the space the model was
trained or certified for, budget included), ``training_config`` and ``metrics``.

Shipped models live in ``robusttext/assets/models/<name>`` (the repository's ``data/models``)
and load by name: ``load_text_model("char-flips")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robusttext import shipped
from robusttext.checkpoint import load_checkpoint, save_checkpoint
from robusttext.errors import RobustTextError
from robusttext.perturb import PerturbationSpace, Vocabulary
from robusttext.shipped import shipped_models
from robusttext.text.base import TextClassifier
from robusttext.text.bundle import TextModelBundle
from robusttext.text.kinds import MODEL_KINDS, build_model

SHIPPED_MODELS = shipped_models("text")
"""Name -> ``ShippedModel`` of the text models shipped in the package (``robusttext.shipped``)."""


def shipped_model_path(name: str) -> Path:
    """The folder of the shipped text model ``name``."""
    return shipped.shipped_model_path(name, "text")


def save_text_model(
    directory: str | Path,
    model: TextClassifier,
    vocab: Vocabulary,
    space: PerturbationSpace,
    *,
    training_config: dict | None = None,
    metrics: dict | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    **sections: Any,
) -> Path:
    """Write ``model`` with its vocabulary and perturbation space to ``directory``."""
    if not isinstance(model, TextClassifier):
        raise RobustTextError(f"save_text_model takes a robusttext text model, got "
                              f"{type(model).__name__}")
    if model.embedding.num_embeddings != len(vocab):
        raise RobustTextError(f"the model embeds {model.embedding.num_embeddings} tokens but the "
                              f"vocabulary has {len(vocab)}")
    check_space_level(model, space, where="save_text_model")
    path = save_checkpoint(
        directory, model, kind=model.kind, model_config=model.config(), tensors=extra_tensors,
        vocabulary=vocab.to_json(),
        tokenizer={"style": space.tokenizer, "level": space.level},
        perturbation_space=space.to_json(),
        training_config=training_config or {},
        metrics=metrics or {},
        **sections,
    )
    model.write_extra_files(path, vocab, space, training_config, metrics)
    return path


def check_space_level(model: TextClassifier, space: PerturbationSpace, where: str) -> None:
    """Refuse a space whose level (word or char) is not the model's."""
    if not isinstance(space, PerturbationSpace):
        raise RobustTextError(f"{where}: expected a PerturbationSpace, got "
                              f"{type(space).__name__}")
    if space.level != model.level:
        raise RobustTextError(f"{where}: a {model.kind} model reads {model.level}-level tokens, "
                              f"but the perturbation space is at the {space.level} level")


def check_space_matches(bundle: TextModelBundle, space: PerturbationSpace) -> None:
    """Refuse a space that cannot apply to the checkpoint: another level or tokenizer.

    (Another budget or other sources are fine: a model can be certified against any space of
    its own level and tokenizer.)
    """
    check_space_level(bundle.model, space, where=f"model {bundle.name}")
    if space.tokenizer != bundle.space.tokenizer:
        raise RobustTextError(
            f"model {bundle.name} was trained on {bundle.space.tokenizer!r} tokens, but the "
            f"perturbation space uses the {space.tokenizer!r} tokenizer")


def load_text_model(
    path_or_name: str | Path,
    device: str | torch.device = "cpu",
    expected_kind: str | tuple[str, ...] | None = None,
) -> TextModelBundle:
    """Load a shipped model by name (a key of SHIPPED_MODELS), a checkpoint folder, a
    ``save_pretrained`` folder or, when no such folder exists, a ``transformers`` hub id
    (``ORG/NAME``: downloaded where there is a network, else read from the Hugging Face
    cache)."""
    name = str(path_or_name)
    if isinstance(path_or_name, str) and name in SHIPPED_MODELS:
        path = shipped_model_path(name)
        if not path.is_dir():
            raise RobustTextError(f"shipped model {name!r} is missing from {path} (the package "
                                  "was installed without its assets?)")
    else:
        path = Path(path_or_name).expanduser()
        if not path.is_dir() and _is_hub_id(name, expected_kind):
            from robusttext.text.hf.folders import load_hub_bundle

            return load_hub_bundle(name, device)  # transformers' resolution: hub or cache
        if not path.is_dir():
            raise RobustTextError(f"no such model: {name} is neither a checkpoint folder nor "
                                  f"a shipped model ({', '.join(SHIPPED_MODELS)}); a "
                                  "transformers hub id has the form ORG/NAME")
        name = path.name
    if _is_transformers_folder(path, expected_kind):
        from robusttext.text.hf.folders import load_transformers_bundle

        return load_transformers_bundle(path, device)
    kinds = expected_kind if expected_kind is not None else tuple(MODEL_KINDS)
    state, extra, meta = load_checkpoint(path, expected_kind=kinds)
    for section in ("model_config", "vocabulary", "perturbation_space"):
        if not isinstance(meta.get(section), dict):
            raise RobustTextError(f"checkpoint {path} lacks its {section!r} section")
    model = build_model(meta["kind"], **meta["model_config"])
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise RobustTextError(f"checkpoint {path}: weights do not fit a {meta['kind']} model "
                              f"with {meta['model_config']}: {error}") from None
    vocab = Vocabulary.from_json(meta["vocabulary"])
    if len(vocab) != model.embedding.num_embeddings:
        raise RobustTextError(f"checkpoint {path}: the vocabulary has {len(vocab)} tokens but "
                              f"the model embeds {model.embedding.num_embeddings}")
    space = PerturbationSpace.from_json(meta["perturbation_space"])
    check_space_level(model, space, where=f"checkpoint {path}")
    model.to(device).eval()
    return TextModelBundle(model=model, vocab=vocab, space=space, meta=meta, name=name,
                           path=path, extra_tensors=extra)


def _is_hub_id(name: str, expected_kind) -> bool:
    """A name of the form ``ORG/NAME`` that the caller accepts as a ``transformers`` model
    (``expected_kind`` None or naming ``"transformers"``), whose ``ORG`` is no local folder
    (``runs/typo`` is a missing folder, not a hub id). A bare ``NAME`` counts only when the
    Hugging Face cache holds it: a mistyped shipped name gets the one-line "no such model"
    at once instead of a round of network retries."""
    from robusttext.text.hf.folders import hub_cache_entry, is_hub_id

    if not (_wants_transformers(expected_kind) and is_hub_id(name)):
        return False
    parent = Path(name).parent
    if parent == Path("."):
        return hub_cache_entry(name).is_dir()
    return not parent.is_dir()


def _wants_transformers(expected_kind) -> bool:
    return expected_kind is None or "transformers" in (
        (expected_kind,) if isinstance(expected_kind, str) else expected_kind)


def _is_transformers_folder(path: Path, expected_kind) -> bool:
    """A ``save_pretrained`` folder (config.json, no robusttext checkpoint) that the caller
    accepts (``expected_kind`` None or naming ``"transformers"``)."""
    from robusttext.checkpoint import META_FILE

    return _wants_transformers(expected_kind) and (path / "config.json").is_file() and not (
        path / META_FILE).is_file()


def bundle_space(bundle: TextModelBundle, space: PerturbationSpace | None = None):
    """The space to certify ``bundle`` against: ``space`` when given (checked against the
    model; through the tokenizer for a ``transformers`` model), else the one the model carries."""
    if bundle.kind == "transformers":
        from robusttext.text.hf.folders import subword_space

        if space is not None:
            return subword_space(space, bundle.vocab.tokenizer, bundle.model)
        if bundle.space is None:
            raise RobustTextError(f"model {bundle.name} carries no perturbation space; choose "
                                  "one with --sources (and --budget)")
        return bundle.space
    if space is None:
        return bundle.space
    check_space_matches(bundle, space)
    return space
