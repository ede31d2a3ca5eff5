"""Does robusttext read a sentence as the model's tokenizer does? Title-cased running-text forms
of SST-2 dev sentences through a cased WordPiece BERT and a byte-level BPE RoBERTa (tiny, from
``tests/hf_tiny.py``, tokenizers trained on SST-2 phrases): the sentences whose certified ids
differ from ``tokenizer(text)["input_ids"]`` and whose clean prediction differs from
``transformers``' own forward.

    PYTHONPATH=TREE python bench/tokenizer_reading.py   # TREE: the robusttext to measure

The ``robusttext`` on ``PYTHONPATH`` is measured (run it with another tree to compare).
Results: ``bench/raw_text_results.md``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(count: int = 200) -> None:
    import robusttext
    from robusttext.certify.margins import predict
    from robusttext.perturb import PerturbationSpace, SynonymTable
    from robusttext.perturb.subwords import SubwordSpace
    from robusttext.text.hf import from_transformers

    torch.set_num_threads(1)
    tiny = _load("hf_tiny", HERE.parent / "tests" / "hf_tiny.py")
    running_text = _load("raw_text_figures", HERE / "raw_text_figures.py").running_text
    dev = [line.rsplit("\t", 1)[0] for line in tiny.SST2_TRAIN.with_name("dev.tsv")
           .read_text().splitlines()[1:count + 1]]
    texts = [t for t in (running_text(s).title() for s in dev) if len(t.split()) <= 25]
    print(f"robusttext from {Path(robusttext.__file__).parent}")
    for family in ("wordpiece-cased", "bpe"):
        tokenizer, hf = tiny.family_setup(family)
        space = SubwordSpace(PerturbationSpace(SynonymTable({"good": ["great"]}), budget=1),
                             tokenizer, max_length=64)
        model = from_transformers(hf)
        predictions = ids = 0
        for start in range(0, len(texts), 32):
            chunk = texts[start:start + 32]
            enc = space.encode(chunk)
            ours = predict(model, enc.token_ids, enc.mask).argmax(1)
            batch = tokenizer(chunk, padding=True, return_tensors="pt")
            with torch.no_grad():
                theirs = hf(input_ids=batch["input_ids"],
                            attention_mask=batch["attention_mask"]).logits.argmax(1)
            predictions += int((ours != theirs).sum())
            ids += sum(enc.token_ids[j][enc.mask[j] > 0].tolist() != tokenizer(t)["input_ids"]
                       for j, t in enumerate(chunk))
        print(f"{family}: of {len(texts)} title-case sentences, ids differ from the "
              f"tokenizer's in {ids}, the clean prediction from transformers' in {predictions}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
