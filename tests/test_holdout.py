"""The validation split held out from training phrases, and model selection on it."""

import json
import random

import pytest

from robusttext.errors import RobustTextError
from robusttext.text import load_text_model
from robusttext.train import train
from robusttext.train.data import Example
from robusttext.train.holdout import holdout_split
from tests.builders import tiny_config, write_tsv


def contains(outer: list[str], inner: list[str]) -> bool:
    """Whether ``inner`` is a contiguous part of ``outer`` (brute force)."""
    n = len(inner)
    return any(outer[i : i + n] == inner for i in range(len(outer) - n + 1))


def phrase_set(seed=0):
    """Sentences and all their contiguous sub-phrases (like SST-2's training phrases), with a
    few shared short phrases."""
    rng = random.Random(seed)
    words = "the film is a good bad dull story not very fine , funny".split()
    sentences = [[rng.choice(words) for _ in range(rng.randint(3, 7))] for _ in range(40)]
    phrases = []
    for s in sentences:
        for i in range(len(s)):
            for j in range(i + 1, len(s) + 1):
                if rng.random() < 0.3 or (i, j) == (0, len(s)):
                    phrases.append(" ".join(s[i:j]))
    return [Example(p, rng.randint(0, 1)) for p in phrases]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_held_out_sentences_leak_into_no_training_phrase(seed):
    examples = phrase_set(seed)
    split = holdout_split(examples, 0.2, seed=seed, split=str.split)
    tokens = [e.text.split() for e in examples]
    roots = [t for t in tokens if not any(len(o) > len(t) and contains(o, t) for o in tokens)]
    held = [e.text.split() for e in split.validation]
    train_tokens = [e.text.split() for e in split.train]
    assert split.roots == len({tuple(r) for r in roots})
    assert len(held) == round(0.2 * split.roots) and len({tuple(h) for h in held}) == len(held)
    assert all(h in roots for h in held)
    kept_roots = [r for r in roots if r not in held]
    for t in train_tokens:
        # a training phrase is no held-out sentence and belongs to some training sentence
        assert t not in held
        assert any(contains(r, t) for r in kept_roots)
    # every phrase is in one of the two sets or was dropped as a part of held-out roots only
    assert len(split.train) + len(split.validation) + split.dropped == len(examples)
    for e in examples:
        t = e.text.split()
        if t not in held and not any(contains(r, t) for r in kept_roots):
            assert any(contains(h, t) for h in held)


def test_the_split_is_fixed_by_its_seed():
    examples = phrase_set()
    first = holdout_split(examples, 0.25, seed=5, split=str.split)
    again = holdout_split(examples, 0.25, seed=5, split=str.split)
    other = holdout_split(examples, 0.25, seed=6, split=str.split)
    assert first.validation == again.validation and first.train == again.train
    assert first.validation != other.validation
    with pytest.raises(RobustTextError, match="validation_fraction"):
        holdout_split(examples, 1.5, seed=0, split=str.split)


def test_training_picks_the_epoch_on_the_validation_split(tmp_path, capsys):
    rows = [(f"{a} {b} {c}", y) for (a, y) in [("good", 1), ("fine", 1), ("dull", 0),
                                                ("bad", 0)]
            for b in ("film", "story", "plot") for c in ("today", "again")]
    data = write_tsv(tmp_path / "phrases.tsv", rows)
    config = tiny_config(tmp_path, train=str(data), dev=str(data), validation_fraction=0.25,
                         epochs=3, enumerate_limit=0)
    metrics = train(config)
    said = capsys.readouterr().out
    assert "validation split: 6 held-out root phrases of 24" in said
    history = [json.loads(line) for line in
               (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    # the dev set is not looked at while training; the validation split is
    assert all("val_clean" in r and "dev_clean" not in r for r in history)
    scores = [r["val_verified_1"] + 1e-3 * r["val_clean"] for r in history]
    assert metrics["selected_epoch"] == 1 + scores.index(max(scores))
    best = load_text_model(tmp_path / "run" / "best")
    assert best.meta["state"]["epoch"] == metrics["selected_epoch"]
    assert best.meta["metrics"] == metrics
    held = (tmp_path / "run" / "validation.tsv").read_text().splitlines()
    assert held[0] == "sentence\tlabel" and len(held) == 7
    assert {line.split("\t")[0] for line in held[1:]} <= {s for s, _ in rows}
