"""Certified training: loss, schedule, one step, the loop with checkpoints and resume, errors."""

import json

import pytest
import torch

from robusttext.cli import main
from robusttext.errors import RobustTextError
from robusttext.perturb import CharacterFlips, PerturbationSpace, Vocabulary
from robusttext.text import CharCNN, load_text_model
from robusttext.train import (
    Schedule,
    TrainConfig,
    evaluate,
    load_training_examples,
    robust_loss,
    train,
    worst_case_loss,
)
from robusttext.train.trainer import build_space
from tests.builders import ROWS, one_flip_strings, tiny_config, write_tsv


def test_worst_case_loss_is_cross_entropy_of_negated_margins():
    margins = torch.tensor([[2.0], [-1.0]])
    logits = torch.tensor([[0.0, -2.0], [0.0, 1.0]])
    expected = torch.nn.functional.cross_entropy(logits, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(worst_case_loss(margins), expected)


def test_schedule_warmup_ramp_hold():
    # as the text trainer builds it: eps to 1, moving at the first ramp step (lead 1)
    s = Schedule(warmup_steps=2, ramp_steps=4, robust_final=0.8, beta_start=1.0,
                 beta_final=0.0, lead=1)
    assert [s.eps(t) for t in range(8)] == [0, 0, 0.25, 0.5, 0.75, 1, 1, 1]
    assert s.robust(0) == 0 and s.robust(5) == pytest.approx(0.8)
    assert s.beta(1) == 1.0 and s.beta(7) == 0.0
    assert Schedule(0, 0, eps_target=0.0, robust_final=0.0, lead=1).eps(3) == 0.0


def test_one_step_reduces_the_robust_loss():
    torch.manual_seed(0)
    space = PerturbationSpace([CharacterFlips("qwerty")], budget=1, level="char")
    vocab = Vocabulary.build(space.split(s)[0] + list("qwertyuiopasdfghjklzxcvbnm")
                             for s, _ in ROWS)
    model = CharCNN(len(vocab), embed_dim=8, filters=6)
    batch = space.encode([s for s, _ in ROWS], vocab)
    labels = torch.tensor([y for _, y in ROWS])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before, parts = robust_loss(model, batch, labels, 1, k=0.5)
    assert {"clean_loss", "robust_loss", "verified"} <= set(parts)
    assert parts["robust_loss"] >= parts["clean_loss"] - 1e-6  # worst case is an upper bound
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after, _ = robust_loss(model, batch, labels, 1, k=0.5)
    assert after.item() < before.item()


def test_train_checkpoints_resumes_and_evaluates(tmp_path, capsys):
    config = tiny_config(tmp_path, epochs=1)
    metrics = train(config)
    assert set(metrics["verified_accuracy"]) == {"1"}
    assert metrics["exhaustive"]["unsound"] == 0
    bundle = load_text_model(tmp_path / "run")
    assert bundle.meta["state"] == {"epoch": 1, "step": 2}
    assert bundle.space.budget == 1 and bundle.space.level == "char"
    assert any(k.startswith("optim.") for k in bundle.extra_tensors)
    # resume for a second epoch: continues from the saved step
    metrics = train(tiny_config(tmp_path, epochs=2))
    assert "resuming" in capsys.readouterr().out
    bundle = load_text_model(tmp_path / "run")
    assert bundle.meta["state"] == {"epoch": 2, "step": 4}
    lines = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    again = evaluate(bundle.model, bundle.vocab, bundle.space,
                     load_training_examples(tmp_path / "train.tsv"), budgets=[1])
    assert again["verified_accuracy"] == metrics["verified_accuracy"]


def test_resume_refuses_another_space_or_model(tmp_path):
    train(tiny_config(tmp_path, epochs=1))
    with pytest.raises(RobustTextError, match="budget was 1, now 2"):
        train(tiny_config(tmp_path, budget=2))
    with pytest.raises(RobustTextError, match="sources"):
        train(tiny_config(tmp_path, sources=[str(write_keyboard(tmp_path))]))
    with pytest.raises(RobustTextError, match="holds a char-cnn checkpoint"):
        train(tiny_config(tmp_path, model="word-cnn"))


def test_word_level_flips_without_stop_words_are_the_char_level_one_flip_set(tmp_path):
    keyboard = {"a": ["s", "q"], "d": ["s"], "e": ["w"], "n": ["m"], "t": ["r", "y"]}
    config = tiny_config(tmp_path, model="lstm", sources=[str(tmp_path / "keys.json")],
                         stop_words=[])
    (tmp_path / "keys.json").write_text(json.dumps(keyboard))
    space = build_space(config)
    assert space.level == "word" and space.stop_words == frozenset()
    for sentence, _ in ROWS:
        tokens, protected = space.split(sentence)
        assert not any(protected)
        rewrites = {sentence}
        for i, (token, guard) in enumerate(zip(tokens, protected, strict=True)):
            for candidate in space.token_candidates(token, guard):
                rewrites.add(" ".join([*tokens[:i], candidate, *tokens[i + 1:]]))
        assert rewrites == one_flip_strings(sentence, keyboard)
    # the default keeps the project's stop words ("a", "and") unchanged at the word level
    default = build_space(tiny_config(tmp_path, model="lstm",
                                      sources=[str(tmp_path / "keys.json")]))
    assert {"a", "and"} <= default.stop_words


def test_stop_words_travel_with_the_checkpoint_and_must_match_on_resume(tmp_path):
    config = tiny_config(tmp_path, model="bow", filters=None, epochs=1, stop_words=[],
                         enumerate_limit=0)
    train(config)
    assert load_text_model(tmp_path / "run").space.stop_words == frozenset()
    with pytest.raises(RobustTextError, match="stop_words was \\[\\], now None"):
        train(tiny_config(tmp_path, model="bow", filters=None, epochs=2, enumerate_limit=0))


def write_keyboard(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"a": ["s"]}))
    return path


def test_bad_data(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\na fine film\t1\nno label here\n")
    with pytest.raises(RobustTextError, match="bad.tsv:3: 1 fields"):
        load_training_examples(bad)
    bad.write_text("sentence\tlabel\na fine film\tpositive\n")
    with pytest.raises(RobustTextError, match="bad.tsv:2: label 'positive'"):
        load_training_examples(bad)
    bad.write_text("sentence\tlabel\na fine film\t7\n")
    with pytest.raises(RobustTextError, match="bad.tsv:2: label 7 is out of range"):
        load_training_examples(bad)
    bad.write_text("text\ty\n")
    with pytest.raises(RobustTextError, match="no label column 'label'"):
        load_training_examples(bad)
    empty = tmp_path / "empty.tsv"
    empty.write_text("sentence\tlabel\n")
    with pytest.raises(RobustTextError, match="no examples"):
        load_training_examples(empty)
    with pytest.raises(RobustTextError, match="no such"):
        load_training_examples(tmp_path / "missing.tsv")


def test_bad_configuration(tmp_path):
    with pytest.raises(RobustTextError, match="unknown setting"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(RobustTextError, match="must be int"):
        TrainConfig.from_dict({"epochs": "3"})
    with pytest.raises(RobustTextError, match="unknown model"):
        TrainConfig(model="no-such-model")
    path = tmp_path / "c.json"
    path.write_text("{bad json")
    with pytest.raises(RobustTextError, match="line 1"):
        TrainConfig.from_file(path)


def test_command_line(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": "bow", "budget": None, "epochs": 3}))
    assert main(["train", "--config", str(config), "--epochs", "1", "--budget", "2",
                 "--sources", "wordnet", "qwerty", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["model"], printed["epochs"], printed["budget"]) == ("bow", 1, 2)
    assert printed["sources"] == ["wordnet", "qwerty"]
    empty = tmp_path / "empty.tsv"
    empty.write_text("sentence\tlabel\n")
    assert main(["train", "--train", str(empty), "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == 2
    assert "empty" in capsys.readouterr().err
    out = tmp_path / "cli"
    assert main(["train", *sum(([f"--{k.replace('_', '-')}", str(v)] for k, v in {
        "model": "char-cnn", "embed-dim": 8, "filters": 6, "epochs": 1, "batch-size": 4,
        "train": write_tsv(tmp_path / "t.tsv"), "device": "cpu", "out": out,
        "robust-weight": 0.0}.items()), []), "--quiet"]) == 0
    assert (out / "weights.safetensors").is_file()


def test_steps_with_a_non_finite_gradient_are_skipped_not_applied(tmp_path, monkeypatch, capsys):
    """An overflowing bound must not write NaN into the weights: such steps are skipped and
    counted; an epoch in which every step overflows stops training with a clear error."""
    import robusttext.train.loss as loss_module

    real = loss_module.robust_loss
    calls = {"n": 0}

    def every_other_nan(*args, **kwargs):
        loss, parts = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] % 2 else loss), parts

    monkeypatch.setattr(loss_module, "robust_loss", every_other_nan)
    metrics = train(tiny_config(tmp_path, epochs=1))
    bundle = load_text_model(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in bundle.model.parameters())
    assert metrics["clean_accuracy"] >= 0
    assert "steps of epoch 1 had a non-finite gradient and were skipped" in capsys.readouterr().out

    monkeypatch.setattr(loss_module, "robust_loss",
                        lambda *a, **k: (lambda l, p: (l * float("nan"), p))(*real(*a, **k)))
    with pytest.raises(RobustTextError, match="every step of epoch 1 had a non-finite"):
        train(tiny_config(tmp_path, epochs=1, out=str(tmp_path / "run2")))


def test_further_eval_methods_add_their_verified_accuracy(tmp_path):
    """``--eval-methods ibp,crown-ibp``: the first gives the dev figures as before (and scores
    each epoch), each further one its verified accuracy per budget."""
    metrics = train(tiny_config(tmp_path, epochs=1, eval_methods=["ibp", "crown-ibp"]))
    assert metrics["method"] == "ibp"
    by_method = metrics["verified_accuracy_by_method"]
    assert set(by_method) == {"crown-ibp"} and set(by_method["crown-ibp"]) == {"1"}
    assert by_method["crown-ibp"]["1"] <= metrics["clean_accuracy"]
