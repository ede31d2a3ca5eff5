"""How many counter-fitted candidates a WordPiece vocabulary keeps on SST-2's dev set.

Trains a lower-cased WordPiece tokenizer (``tokenizers``) of VOCAB pieces on SST-2's training
sentences, then runs ``SubwordSpace`` over the dev sentences with the counter-fitted neighbours
and prints, per vocabulary size, the candidates kept and dropped by reason (no model needed).

    OMP_NUM_THREADS=1 python bench/hf_subword_drops.py [../shared/data]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from robusttext.data import load_examples
from robusttext.perturb import PerturbationSpace, load_source
from robusttext.perturb.subwords import SubwordSpace


def wordpiece(sentences: list[str], size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    raw.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=size,
                                                                 special_tokens=specials))
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def main(data: Path) -> None:
    train = [e.text for e in load_examples(data / "sst2" / "train.tsv")]
    dev = [e.text for e in load_examples(data / "sst2" / "dev.tsv")]
    space = PerturbationSpace(load_source(str(data / "counterfitted_neighbors.json")), budget=3)
    print(f"SST-2 dev: {len(dev)} sentences; counter-fitted neighbours; WordPiece trained on "
          f"{len(train)} training phrases")
    print("| pieces in vocabulary | candidates kept | dropped: piece count | several pieces "
          "| other slot | dropped share | seconds |")
    print("|---|---|---|---|---|---|---|")
    for size in (4000, 8000, 16000, 30522):
        start = time.perf_counter()
        sub = SubwordSpace(space, wordpiece(train, size))
        enc = sub.encode(dev)
        kept = int(enc.candidate_mask.sum())
        d = sub.dropped_totals()
        share = d["total"] / (d["total"] + kept)
        print(f"| {size} | {kept} | {d['piece_count']} | {d['several_pieces']} | "
              f"{d['other_slot']} | {share:.1%} | {time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
