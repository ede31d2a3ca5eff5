"""A user's model for the certified fine-tuning benchmark, made by transformers alone.

Trains a lower-cased WordPiece tokenizer (``tokenizers``) on SST-2's training phrases, builds
a small ``BertForSequenceClassification`` from a plain ``BertConfig`` (BERT's defaults: GELU,
LayerNorm eps 1e-12; only the sizes are small) and trains it with ``transformers.Trainer``
(normal cross-entropy, no robusttext code), then saves model and tokenizer with
``save_pretrained`` and prints its dev accuracy. ``robusttext train --model FOLDER`` then
continues it with the certified loss (``bench/archive/hf_results.md``, certified fine-tuning).

    OMP_NUM_THREADS=1 python bench/hf/trainer_user_model.py --out runs/hf/user-bert \
        [--data ../shared/data] [--pieces 16000] [--epochs 2] [--limit N]

``Trainer`` needs ``accelerate``: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def wordpiece_tokenizer(sentences: list[str], size: int, folder: Path):
    """A BERT tokenizer (``[CLS] ... [SEP]``) over a WordPiece vocabulary of ``size`` pieces
    trained on ``sentences``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    raw.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=size,
                                                                 special_tokens=specials))
    folder.mkdir(parents=True, exist_ok=True)
    pieces = sorted(raw.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(f"{p}\n" for p, _ in pieces))
    return BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)


def read_tsv(path: Path, limit: int | None = None) -> tuple[list[str], list[int]]:
    lines = path.read_text().splitlines()[1:]
    rows = [line.rsplit("\t", 1) for line in lines if line.strip()]
    if limit is not None:
        rows = rows[:limit]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--pieces", type=int, default=16000)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N training phrases")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import datasets
    import numpy as np
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    torch.manual_seed(args.seed)
    data, out = Path(args.data), Path(args.out)
    texts, labels = read_tsv(data / "sst2" / "train.tsv", args.limit)
    dev_texts, dev_labels = read_tsv(data / "sst2" / "dev.tsv")
    tokenizer = wordpiece_tokenizer(texts, args.pieces, out / "wordpiece")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=1,
                        num_attention_heads=4, intermediate_size=128,
                        max_position_embeddings=128, num_labels=2, type_vocab_size=2)
    model = BertForSequenceClassification(config)

    def encode(batch):
        return tokenizer(batch["sentence"], truncation=True, max_length=128)

    train = datasets.Dataset.from_dict({"sentence": texts, "label": labels}).map(
        encode, batched=True, remove_columns=["sentence"])
    dev = datasets.Dataset.from_dict({"sentence": dev_texts, "label": dev_labels}).map(
        encode, batched=True, remove_columns=["sentence"])

    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1)
                                   == prediction.label_ids).mean())}

    arguments = TrainingArguments(
        output_dir=str(out / "trainer"), num_train_epochs=args.epochs,
        per_device_train_batch_size=64, per_device_eval_batch_size=128, learning_rate=1e-3,
        warmup_steps=100, weight_decay=0.01, save_strategy="no", eval_strategy="epoch",
        logging_steps=200, report_to=[], use_cpu=True, seed=args.seed,
        dataloader_num_workers=0)
    trainer = Trainer(model=model, args=arguments, train_dataset=train, eval_dataset=dev,
                      data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=accuracy)
    start = time.time()
    trainer.train()
    figures = trainer.evaluate()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"{out}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"{len(tokenizer)} pieces, {len(texts)} training phrases, {args.epochs} epochs in "
          f"{time.time() - start:.0f} s; dev accuracy {figures['eval_accuracy']:.4f}")


if __name__ == "__main__":
    main()
