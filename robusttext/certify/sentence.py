"""``robusttext certify "a sentence"``: one sentence seen whole.

Prints the tokens as the model reads them (its own tokenizer's pieces for a ``transformers``
model, robusttext's GLUE words otherwise), those it does not know marked, the model's
prediction and margin, each position that may change with its candidates
(as the model's vocabulary reads them), and per budget whether the prediction is certified,
the certified margin (the lower bound), what the attack and the enumeration found, and a
rewrite that flips it when one was found.
"""

from __future__ import annotations

from collections.abc import Callable

from robusttext.errors import RobustTextError

SHOWN_CANDIDATES = 12  # candidates listed per position; the count is always given


def read_tokens(space, vocab, text: str) -> list[tuple[str, str, list[str]]]:
    """Per position of ``text``: ``(token, as the model's vocabulary reads it, candidates)``
    (an unknown token reads as the vocabulary's unknown token)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cuts are the space's own setting
        tokens, entries = space.candidates(text, vocab)
    return [(token, vocab.token(token_id), [vocab.token(c) for c in candidates])
            for token, (token_id, candidates) in zip(tokens, entries, strict=True)]


def changeable_positions(space, vocab, text: str) -> list[tuple[int, str, list[str]]]:
    """``(position, token, candidates)`` of each position of ``text`` that may change, with
    tokens and candidates as the model's vocabulary reads them."""
    return [(p, token, candidates)
            for p, (token, _, candidates) in enumerate(read_tokens(space, vocab, text))
            if candidates]


def show_sentence(bundle, text: str, label: int | None, budgets: list[int | None] | None,
                  options: dict, say: Callable[..., None] = print):
    """Certify ``text`` with ``bundle`` (a loaded text model) and print it whole (see the
    module docstring). ``label`` None: the prediction is the label. ``options``: keyword
    arguments of ``certify`` (the command's, ``robusttext.certify.cli.certify_options``).
    Returns the ``Certification`` (for ``--json``)."""
    from robusttext.certify.certifier import DEFAULT_BUDGETS, DEFAULT_ENUMERATE_LIMIT, certify
    from robusttext.certify.margins import margins, predict
    from robusttext.certify.report import bounds_used, describe_space

    space, vocab, model = bundle.space, bundle.vocab, bundle.model
    enc = space.encode([text], vocab).to(model.embedding.weight.device)
    logits = predict(model, enc.token_ids, enc.mask)
    classes = logits.shape[1]
    prediction = int(logits.argmax(1))
    if label is not None and not 0 <= label < classes:
        raise RobustTextError(f"--label {label}: the model has {classes} classes (0 to "
                              f"{classes - 1})")
    chosen = prediction if label is None else label
    if budgets is None:
        budgets = [space.budget] if space.budget is not None else list(DEFAULT_BUDGETS)
    result = certify(model, vocab, space, [(text, chosen)], budgets=budgets, **options)
    margin = float(margins(logits, logits.new_tensor([chosen]).long()))
    shown = repr if space.level == "char" else str

    say(f"{bundle.name}: {describe_space(space, budgets)}; {bounds_used(result.settings)} bounds")
    say(f"sentence:   {text}")
    for line in reading_lines(space, vocab, text, enc):
        say(line)
    whose = "the prediction" if label is None else f"label {label}"
    say(f"prediction: class {prediction} of {classes}; margin of {whose} {margin:.3f} "
        f"(its logit minus the highest other)"
        + ("" if label is None or label == prediction else "  (MISCLASSIFIED)"))
    positions = changeable_positions(space, vocab, text)
    length = int(enc.mask.sum())
    say(f"may change: {len(positions)} of {length} positions")
    for position, token, candidates in positions:
        listed = ", ".join(shown(c) for c in candidates[:SHOWN_CANDIDATES])
        more = len(candidates) - SHOWN_CANDIDATES
        say(f"  {position:4d}  {shown(token)} -> {len(candidates)}: {listed}"
            + (f", ... (+{more})" if more > 0 else ""))
    if hasattr(space, "dropped_lines"):  # a sub-word space: the candidates its pieces drop
        for line in space.dropped_lines(text):
            say(line)
    for r in result.examples:
        say(describe_result(r, options.get("enumerate_limit", DEFAULT_ENUMERATE_LIMIT), shown))
    return result


def unknown_id(vocab) -> int | None:
    """The id the model reads an unknown token as (a word vocabulary's or a tokenizer's)."""
    if hasattr(vocab, "unk_id"):
        return vocab.unk_id
    return getattr(getattr(vocab, "tokenizer", None), "unk_token_id", None)


def reading_lines(space, vocab, text: str, enc) -> list[str]:
    """Two lines: the sentence's tokens as the model reads them (an unknown one as
    ``[token?]``), and how many of them the model does not know."""
    ids = enc.token_ids[0][enc.mask[0] > 0].tolist()
    tokens = enc.tokens[0]
    unk = unknown_id(vocab)
    unknown = [t for t, i in zip(tokens, ids, strict=True) if unk is not None and i == unk]
    if space.level == "char":
        shown = "".join(f"[{t}?]" if i == unk else t for t, i in zip(tokens, ids, strict=True))
        what = "characters"
    else:
        shown = " ".join(f"[{t}?]" if i == unk else t for t, i in zip(tokens, ids, strict=True))
        what = "pieces" if hasattr(space, "subword_tokenizer") else "tokens"
    if hasattr(space, "subword_tokenizer"):
        unknown = space.unknown_words(text) or unknown  # as written in the text
    count = (f"unknown:    {len(unknown)} of {len(ids)} {what} the model does not know"
             + (f": {', '.join(unknown)}" if unknown else ""))
    return [f"reads as:   {shown}", count]


def describe_result(r, enumerate_limit: int, shown: Callable[[str], str] = str) -> str:
    """One line per budget: certified or not, the certified margin, the set, what the attack
    and the enumeration found, the flipping rewrite, and with several methods each one's
    outcome and certified margin."""
    budget = "any number of positions" if r.budget is None else (
        f"{r.budget} position{'' if r.budget == 1 else 's'}")
    head = f"budget {budget}: " + ("CERTIFIED" if r.certified else "not certified")
    parts = [f"certified margin (lower bound) {r.margin_lower:.3f}",
             f"{r.set_size:,} sentence{'' if r.set_size == 1 else 's'} in the set"]
    if r.exhaustive is True:
        parts.append("enumerated: every one keeps the label")
    elif r.exhaustive is None:
        parts.append(f"not enumerated (more than --enumerate-limit {enumerate_limit:,})")
    if r.prediction != r.label:
        parts.append("the sentence itself is misclassified")
    elif r.attacked:
        parts.append(f"the attack flips it: {shown(r.rewrite)}")
    elif r.exhaustive is False:
        parts.append(f"the enumeration flips it: {shown(r.rewrite)}")
    elif r.exact == "counterexample":
        parts.append(f"the exact search flips it: {shown(r.rewrite)}")
    elif not r.certified:
        parts.append("the attack found no flip")
    if r.exact is not None:
        parts.append(f"exact search: {r.exact} ({r.exact_seconds:.2f} s)")
    if r.by_method:  # several methods: the first one's outcome above, each one's here
        parts.append("by method: " + ", ".join(
            f"{name} {'CERTIFIED' if entry['certified'] else 'not certified'} "
            f"({entry['margin_lower']:.3f})" for name, entry in r.by_method.items()))
    return head + "; " + "; ".join(parts)
