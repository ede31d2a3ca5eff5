"""Throughput on one device: sentences per second for certification and certified training.

Randomly initialised CharCNN (150-d, 100 filters of width 5; one QWERTY flip per position) and
WordCNN (300-d, 100 filters of width 3; 8 synonyms per word), on synthetic sentences of a
fixed token count, for each batch size and sentence length of the grid:

- ``encode``: ``space.encode`` (host side, tokens and candidates);
- ``bounds``: IBP margin lower bounds of an encoded batch (what certification spends per
  budget), no gradients;
- ``certify``: the whole ``certify`` call at one budget (encoding, bounds, beam attack with
  width 4 and 16 proposals; no enumeration);
- ``train``: one certified-training step (clean + IBP worst-case loss, backward, Adam).

    python bench/throughput.py                          # CPU, 1 thread, the default grid
    python bench/throughput.py --device cuda --batch-sizes 32,128,512 --lengths 16,64,256
    python bench/throughput.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

import torch

from robusttext.bounds.specs import margin_lower_bounds
from robusttext.certify import certify
from robusttext.perturb import CharacterFlips, PerturbationSpace, SynonymTable, Vocabulary
from robusttext.text import CharCNN, WordCNN
from robusttext.text.bounds import batch_problem
from robusttext.train import robust_loss

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def char_setup(seed: int = 0):
    """(model, vocab, space, sentence maker) for the character CNN."""
    torch.manual_seed(seed)
    space = PerturbationSpace(CharacterFlips("qwerty"), budget=1, level="char")
    vocab = Vocabulary(list(LETTERS + " "))
    model = CharCNN(len(vocab), embed_dim=150, filters=100, width=5)
    rng = random.Random(seed)

    def sentence(length: int) -> str:  # ``length`` characters, words of 2-7 letters
        out = ""
        while len(out) < length:
            out += "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 7))) + " "
        return out[:length].strip().ljust(length, "x")

    return model, vocab, space, sentence


def word_setup(seed: int = 0, words: int = 2000, synonyms: int = 8):
    """(model, vocab, space, sentence maker) for the word CNN over a synthetic vocabulary."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    names = [f"w{i}" for i in range(words)]
    table = {w: rng.sample(names, synonyms) for w in names[: words // 2]}
    space = PerturbationSpace(SynonymTable(table), budget=1)
    vocab = Vocabulary(names)
    model = WordCNN(len(vocab), embed_dim=300, filters=100, width=3)

    def sentence(length: int) -> str:
        return " ".join(rng.choice(names) for _ in range(length))

    return model, vocab, space, sentence


def rate(fn, n: int, device: torch.device, min_seconds: float) -> float:
    """Sentences per second of ``fn()`` handling ``n`` sentences, run until ``min_seconds``."""
    fn()  # warm-up: tracing, allocator
    sync(device)
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        sync(device)
        spent = time.perf_counter() - start
        if spent >= min_seconds:
            return n * runs / spent


def cell(model, vocab, space, optimizer, texts, device, min_seconds, certify_batches):
    """The four rates for one batch of ``texts``."""
    n = len(texts)
    labels = torch.tensor([i % 2 for i in range(n)], device=device)
    enc = space.encode(texts, vocab).to(device)
    many = [(t, i % 2) for i, t in enumerate(texts * certify_batches)]

    def bounds():
        with torch.no_grad():
            margin_lower_bounds(batch_problem(model.eval(), enc, labels, 1, classes=2), "ibp")

    def certify_all():
        certify(model, vocab, space, many, budgets=[1], batch_size=n, enumerate_limit=0,
                device=device)

    def step():
        model.train()
        loss, _ = robust_loss(model, enc, labels, 1, k=0.5, method="ibp")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return {"encode": rate(lambda: space.encode(texts, vocab), n, device, min_seconds),
            "bounds": rate(bounds, n, device, min_seconds),
            "certify": rate(certify_all, len(many), device, min_seconds),
            "train": rate(step, n, device, min_seconds)}


def measure(name, setup, batch_sizes, lengths, device, min_seconds, certify_batches):
    model, vocab, space, sentence = setup()
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows = []
    for length in lengths:
        for batch_size in batch_sizes:
            texts = [sentence(length) for _ in range(batch_size)]
            row = {"model": name, "length": length, "batch": batch_size}
            row.update(cell(model, vocab, space, optimizer, texts, device, min_seconds,
                            certify_batches))
            rows.append(row)
            print(f"{name:8s} length {length:4d} batch {batch_size:4d}: "
                  + ", ".join(f"{k} {row[k]:9.1f}/s" for k in ("encode", "bounds", "certify",
                                                                "train")), flush=True)
    return rows


def markdown(rows) -> str:
    lines = ["| model | length | batch | encode /s | bounds /s | certify /s | train step /s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['length']} | {r['batch']} | {r['encode']:.0f} | "
                     f"{r['bounds']:.0f} | {r['certify']:.0f} | {r['train']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--models", default="char,word")
    parser.add_argument("--batch-sizes", default="8,32,128")
    parser.add_argument("--char-lengths", default="32,128")
    parser.add_argument("--word-lengths", default="8,32")
    parser.add_argument("--min-seconds", type=float, default=0.5,
                        help="time each measurement at least this long (default 0.5)")
    parser.add_argument("--certify-batches", type=int, default=2,
                        help="batches per timed certify call (default 2)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else
             f"{torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs "
             f"({platform.processor() or platform.machine()})")
    print(f"torch {torch.__version__} on {device}: {where}")
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    for name in args.models.split(","):
        setup, lengths = {"char": (char_setup, args.char_lengths),
                          "word": (word_setup, args.word_lengths)}[name]
        rows += measure(f"{name}-cnn", setup, sizes, [int(n) for n in lengths.split(",")],
                        device, args.min_seconds, args.certify_batches)
    print()
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "where": where,
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
