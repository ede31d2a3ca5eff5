"""Certify a ``transformers`` model object on a ``datasets.Dataset`` (or a list of pairs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from robusttext.data import Example
from robusttext.data.records import check_label_column, parse_label, parse_text, pick_text_column
from robusttext.errors import RobustTextError
from robusttext.perturb.space import PerturbationSpace
from robusttext.perturb.subwords import SubwordSpace
from robusttext.text.hf.folders import (
    load_transformers_folder,
    load_transformers_hub,
    saved_space,
    subword_space,
)
from robusttext.text.hf.model import HFTextModel, check_tokenizer_inputs, from_transformers


def examples_from_dataset(data, text_column: str | None = None, label_column: str = "label",
                          num_labels: int | None = None) -> list[Example]:
    """The examples of a ``datasets.Dataset`` (or a list of ``(text, label)`` pairs /
    ``Example``). With ``num_labels``, RobustTextError when the data's labels do not fit a model
    of that many labels: a label out of range, or a ``ClassLabel`` column of another size."""
    if isinstance(data, Sequence) and not isinstance(data, str):
        examples = [_example(e, i) for i, e in enumerate(data)]
        where = "the examples"
    else:
        columns = getattr(data, "column_names", None)
        if not isinstance(columns, list):
            raise RobustTextError(f"expected a datasets.Dataset or a list of (text, label) pairs, "
                                  f"got {type(data).__name__}")
        text_name = pick_text_column(columns, text_column, "the data set")
        label_name = check_label_column(columns, label_column, "the data set")
        feature = data.features[label_name]
        classes = getattr(feature, "num_classes", None)
        if num_labels is not None and classes is not None and classes != num_labels:
            raise RobustTextError(f"the data set's {label_name!r} column has {classes} classes "
                                  f"but the model has {num_labels} labels")
        examples = [Example(parse_text(t, f"row {i}"), parse_label(y, f"row {i}"), f"row {i}")
                    for i, (t, y) in enumerate(zip(data[text_name], data[label_name]))]
        where = "the data set"
    if not examples:
        raise RobustTextError(f"{where} holds no examples")
    if num_labels is not None:
        top = max(e.label for e in examples)
        if top >= num_labels:
            raise RobustTextError(f"{where} has label {top} but the model has {num_labels} "
                                  f"labels (0..{num_labels - 1})")
    return examples


def _example(item, index: int) -> Example:
    """An ``Example`` from one item of a list: an ``Example`` or a ``(text, label)`` pair."""
    if isinstance(item, Example):
        return item
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise RobustTextError(f"example {index}: expected a (text, label) pair or an Example, "
                              f"got {type(item).__name__} {str(item)[:60]!r}")
    where = f"example {index}"
    return Example(parse_text(item[0], where), parse_label(item[1], where), where)


def certify_transformers(model: nn.Module | str | Path, tokenizer, data,
                         space: PerturbationSpace | SubwordSpace | None,
                         budgets: Sequence[int | None] | None = None, *,
                         text_column: str | None = None, label_column: str = "label",
                         **options):
    """Certify, attack and enumerate a ``transformers`` sequence classifier (or an
    ``HFTextModel``) on ``data`` (see ``examples_from_dataset``) against a word-level ``space``
    seen through ``tokenizer``. ``model`` may also be a ``save_pretrained`` folder or a hub id
    (``"ORG/NAME"``, through ``from_pretrained``: the hub, else the Hugging Face cache); then
    ``tokenizer`` None is the model's own and ``space`` None the one saved beside it.
    ``options`` go to ``robusttext.certify.certify`` (``method``, ``batch_size``,
    ``enumerate_limit``, ...). Returns its ``Certification``; the candidates the word pieces
    made robusttext drop are in ``settings["dropped_candidates"]`` (by reason) and in each
    example's ``dropped_candidates``."""
    from robusttext.certify import certify

    saved: dict = {}
    if isinstance(model, (str, Path)):
        if Path(model).expanduser().is_dir():
            model, own_tokenizer, saved = load_transformers_folder(model)
        else:
            model, own_tokenizer, saved, _ = load_transformers_hub(str(model))
        tokenizer = own_tokenizer if tokenizer is None else tokenizer
    if tokenizer is None:
        raise RobustTextError("certify_transformers: give the tokenizer of a model object")
    text_model = model if isinstance(model, HFTextModel) else from_transformers(model)
    if space is None:
        space = saved_space(saved, tokenizer, text_model)
        if space is None:
            raise RobustTextError("certify_transformers: the model carries no perturbation "
                                  "space; give one (e.g. PerturbationSpace(['counterfitted'], "
                                  "budget=3))")
    if isinstance(space, SubwordSpace):
        check_tokenizer_inputs(text_model, space.subword_tokenizer)
    else:
        space = subword_space(space, tokenizer, text_model)
    examples = examples_from_dataset(data, text_column, label_column, text_model.num_labels)
    return certify(text_model, space.vocabulary, space, examples, budgets, **options)
