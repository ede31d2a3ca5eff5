"""The reading invariant, checked on every certify run.

A certificate is about the sentence the user wrote, read as their model reads it. Beside the
soundness invariant (``robusttext.certify.soundness``), every run checks, per sentence:

- the ids robusttext certifies are the ids the model's tokenizer gives for the raw text: for a
  ``transformers`` model ``tokenizer(text)["input_ids"]``; for robusttext's own models the GLUE
  words of ``robusttext.perturb.tokenizers.tokenize`` looked up in the vocabulary;
- the clean logits robusttext computes (padded batches, its own body) are the model's own
  forward on those ids, the sentence alone, unpadded: ``transformers``'
  ``model(input_ids, attention_mask).logits`` (the scores ``pipeline("text-classification")``
  turns into probabilities), or a robusttext model's ``forward``.

A mismatch is a bug (in robusttext's reading or its copy of the model), never bad input: it
raises ``ReadingMismatch`` naming the sentence, so no certificate of another reading is given.
"""

from __future__ import annotations

import torch

from robusttext.certify.soundness import SoundnessViolation

LOGIT_RTOL = 1e-4
LOGIT_ATOL = 1e-4


class ReadingMismatch(SoundnessViolation):
    """robusttext's reading of a sentence is not the model's own."""


def reference_ids(space, vocab, text: str) -> list[int]:
    """The ids the model's own tokenizer gives ``text`` (see the module docstring)."""
    if hasattr(space, "subword_tokenizer"):
        return space.reference_ids(text)
    return space.reference_ids(text, vocab)


def own_logits(model, rows: list[list[int]], device) -> torch.Tensor:
    """``[n, classes]``: the model's own forward on each id list of ``rows``, sentence by
    sentence, grouped by length so nothing is padded (a ``transformers`` model through its own
    ``forward`` with an all-ones attention mask: what ``pipeline`` computes for one sentence;
    XLM's mean summary counts padded positions, so a padded batch would give other logits)."""
    from robusttext.text.hf.model import HFTextModel

    out: list[torch.Tensor | None] = [None] * len(rows)
    by_length: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_length.setdefault(len(r), []).append(i)
    with torch.no_grad():
        for length, chosen in by_length.items():
            ids = torch.tensor([rows[i] for i in chosen], dtype=torch.long, device=device)
            if isinstance(model, HFTextModel):
                ones = torch.ones(len(chosen), length, dtype=torch.long, device=device)
                logits = model.hf(input_ids=ids, attention_mask=ones).logits.float()
            else:
                logits = model(ids, torch.ones(len(chosen), length, device=device)).float()
            for k, i in enumerate(chosen):
                out[i] = logits[k]
    return torch.stack(out)


def check_reading(model, space, vocab, texts: list[str], token_ids: torch.Tensor,
                  mask: torch.Tensor, logits: torch.Tensor, compare_logits: bool = True,
                  origins: list[str] | None = None) -> None:
    """Raise ReadingMismatch unless each sentence of ``texts`` is certified on its model's
    ids (``token_ids``/``mask``: the batch robusttext certifies) and robusttext's clean
    ``logits`` ``[n, classes]`` are the model's own forward on them (skipped with
    ``compare_logits`` False)."""
    rows = []
    for j, text in enumerate(texts):
        ours = token_ids[j][mask[j] > 0].tolist()
        theirs = reference_ids(space, vocab, text)
        if ours != theirs:
            raise ReadingMismatch(f"{_name(text, origins, j)}: robusttext would certify the ids "
                                  f"{ours} but the model's tokenizer reads {theirs}")
        rows.append(theirs)
    if not compare_logits:
        return
    reference = own_logits(model, rows, logits.device)
    ours = logits.float()
    scale = reference.abs().amax(1, keepdim=True).clamp(min=1.0)
    bad = ((ours - reference).abs() > LOGIT_ATOL * scale + LOGIT_RTOL * reference.abs()).any(1)
    if bad.any():
        j = int(bad.nonzero()[0])
        raise ReadingMismatch(f"{_name(texts[j], origins, j)}: robusttext's clean logits "
                              f"{ours[j].tolist()} differ from the model's own forward "
                              f"{reference[j].tolist()}")


def _name(text: str, origins, j: int) -> str:
    where = f"{origins[j]}: " if origins and origins[j] else ""
    return f"{where}sentence {text!r}"
