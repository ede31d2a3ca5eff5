"""``robusttext certify --method M[,M...]``: several bound methods in one run, the attack and
the enumeration shared. Each method's outcome is checked against a separate run with that
method alone (never copied from the run under test); one method gives today's report."""

import json

import pytest
import torch

from robusttext.certify import certify
from robusttext.cli import main
from robusttext.data import Example
from robusttext.text import BagOfWords, WordCNN
from robusttext.text.sequence_models import BiLSTM
from tests.builders import word_setup

WORDS = "a good film , not dull".split()
EXAMPLES = [Example(" ".join(WORDS[(i + k) % len(WORDS)] for k in range(2 + i % 4)), i % 2)
            for i in range(8)]
# Per model kind, methods it takes (budget-ibp: the pooled bodies only).
METHODS = {"cnn": ["ibp", "budget-ibp", "crown-ibp", "auto"],
           "bow": ["crown", "ibp", "budget-ibp"],
           "lstm": ["crown-ibp", "ibp", "alpha-crown"]}
UNTIMED = ("timings", "setup_seconds", "exact_seconds", "bounds_seconds")


def tiny_model(kind: str, size: int):
    torch.manual_seed(0)
    model = {"cnn": lambda: WordCNN(size, embed_dim=6, filters=6),
             "bow": lambda: BagOfWords(size, embed_dim=6, hidden=6),
             "lstm": lambda: BiLSTM(size, embed_dim=6, hidden=4, max_length=16)}[kind]()
    with torch.no_grad():  # nearby embeddings: some sentences certified, some not
        model.embedding.weight.mul_(0.3)
        model.embedding.weight[0] = 0
    return model.eval()


def untimed(value):
    """A report without its timings (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in UNTIMED}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


@pytest.mark.parametrize("kind", list(METHODS))
def test_each_method_matches_a_run_with_it_alone(kind):
    vocab, space = word_setup()
    model = tiny_model(kind, len(vocab))
    methods = METHODS[kind]
    both = certify(model, vocab, space, EXAMPLES, budgets=[1, 2], method=methods,
                   alpha_steps=3 if "alpha-crown" in methods else None, batch_size=3)
    assert list(both.settings["methods"]) == methods
    certified = set()
    for method in methods:
        alone = certify(model, vocab, space, EXAMPLES, budgets=[1, 2], method=method,
                        alpha_steps=3 if method == "alpha-crown" else None, batch_size=3)
        assert [(r.index, r.budget) for r in alone.examples] == [
            (r.index, r.budget) for r in both.examples]
        for mine, its in zip(both.examples, alone.examples, strict=True):
            assert mine.by_method[method] == {"certified": its.certified,
                                              "margin_lower": its.margin_lower}
            # one attack and one enumeration, whatever the method
            assert (mine.attacked, mine.exhaustive, mine.set_size, mine.rewrite) == (
                its.attacked, its.exhaustive, its.set_size, its.rewrite)
            certified.add(its.certified)
        for mine, its in zip(both.summaries, alone.summaries, strict=True):
            assert mine.verified_accuracy_by_method[method] == its.verified_accuracy
        if method == methods[0]:  # the first method's outcome in the usual fields
            for mine, its in zip(both.examples, alone.examples, strict=True):
                assert (mine.certified, mine.margin_lower) == (its.certified, its.margin_lower)
            assert [s.verified_accuracy for s in both.summaries] == [
                s.verified_accuracy for s in alone.summaries]
    assert certified == {True, False}  # both outcomes are compared


def test_exact_in_a_list_is_the_exact_run():
    vocab, space = word_setup()
    model = tiny_model("cnn", len(vocab))
    both = certify(model, vocab, space, EXAMPLES, budgets=[1, 2, None],
                   method=["ibp", "exact"])
    alone = certify(model, vocab, space, EXAMPLES, budgets=[1, 2, None], method="exact")
    assert both.settings["exact"]["bounds"] == alone.settings["exact"]["bounds"] == "budget-ibp"
    for mine, its in zip(both.examples, alone.examples, strict=True):
        entry = mine.by_method["exact"]
        assert (entry["certified"], entry["margin_lower"], entry["exact"]) == (
            its.certified, its.margin_lower, its.exact)
        assert mine.exact == its.exact
    assert [s.exact_accuracy for s in both.summaries] == [
        s.exact_accuracy for s in alone.summaries]


def test_one_method_is_todays_report(word_model, data, tmp_path, capsys):
    """One method on the command line: the report of certify called with that method through
    the library, field for field, with no per-method keys."""
    from robusttext.data import load_examples
    from robusttext.text import load_text_model

    out = tmp_path / "one.json"
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--budget", "1,2",
                 "--method", "crown-ibp", "--enumerate-seconds", "none", "--json", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "verified (crown-ibp)" not in printed and "crown-ibp bounds," in printed
    report = json.loads(out.read_text())
    bundle = load_text_model(str(word_model), "cpu")
    examples = load_examples(data)
    library = certify(bundle.model, bundle.vocab, bundle.space, examples, budgets=[1, 2],
                      method="crown-ibp", device="cpu").to_json(model="word-model")
    library = json.loads(json.dumps(library))  # as written: tuples are lists
    assert untimed(report["examples"]) == untimed(library["examples"])
    assert untimed(report["summary"]) == untimed(library["summary"])
    assert untimed(report["models"]["word-model"]["settings"]) == untimed(library["settings"])
    assert not any("by_method" in e for e in report["examples"])
    assert not any("verified_accuracy_by_method" in s for s in report["summary"])


def test_cli_several_methods(word_model, data, tmp_path, capsys):
    """The table's verified column per method, the JSON's per-method outcomes: each that of a
    separate run with the method alone; the HTML names every method."""
    reports = {}
    for methods in ("ibp,crown-ibp", "ibp", "crown-ibp"):
        out = tmp_path / f"{methods}.json"
        html = [] if "," not in methods else ["--html", str(tmp_path / "page.html")]
        assert main(["certify", "--model", str(word_model), "--data", str(data), "--budget",
                     "1,2", "--method", methods, "--json", str(out), "--quiet", *html]) == 0
        reports[methods] = json.loads(out.read_text())
        printed = capsys.readouterr().out
        if "," in methods:
            assert "verified (ibp) verified (crown-ibp)" in printed
            assert "ibp, crown-ibp bounds" in printed
    both = reports["ibp,crown-ibp"]
    for method in ("ibp", "crown-ibp"):
        alone = reports[method]
        for mine, its in zip(both["examples"], alone["examples"], strict=True):
            assert mine["by_method"][method] == {"certified": its["certified"],
                                                 "margin_lower": its["margin_lower"]}
        for mine, its in zip(both["summary"], alone["summary"], strict=True):
            assert mine["verified_accuracy_by_method"][method] == its["verified_accuracy"]
    first = [{k: v for k, v in e.items() if k != "by_method"} for e in both["examples"]]
    assert untimed(first) == untimed(reports["ibp"]["examples"])
    assert both["models"]["word-model"]["settings"]["methods"] == {"ibp": "ibp",
                                                                   "crown-ibp": "crown-ibp"}
    page = (tmp_path / "page.html").read_text()
    assert "verified (ibp)" in page and "verified (crown-ibp)" in page


def test_several_methods_for_one_sentence(word_model, capsys):
    """A SENTENCE after the list, as after one method; each method's outcome on its line."""
    assert main(["certify", "--model", str(word_model), "--method", "ibp", "crown-ibp",
                 "a good movie", "--budget", "1"]) == 0
    printed = capsys.readouterr().out
    assert "ibp, crown-ibp bounds" in printed
    assert "by method: ibp " in printed and ", crown-ibp " in printed


@pytest.mark.parametrize("argv,expected", [
    (["--method", "ibp,nope"], "argument --method: 'nope' is not one of auto, ibp"),
    (["--method", "crwn", "ibp"], "argument --method: 'crwn' is not one of"),
    (["--method", "ibp,crwn"], "did you mean crown?"),
    (["--method", "ibp", "crwn"], "did you mean crown?"),  # a typo, not a one-word sentence
])
def test_a_bad_item_is_refused_naming_the_flag(argv, expected, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["certify", *argv])
    assert stop.value.code == 2
    assert expected in capsys.readouterr().err


def test_flags_of_one_method_need_it_in_the_list(word_model, capsys):
    assert main(["certify", "--model", str(word_model), "a good movie", "--method",
                 "ibp,crown", "--alpha-steps", "3"]) != 0
    assert "--alpha-steps 3 goes with --method alpha-crown, not --method ibp,crown" in (
        capsys.readouterr().err)
    assert main(["certify", "--model", str(word_model), "a good movie", "--method",
                 "ibp,crown", "--exact-time-limit", "3"]) != 0
    assert "goes with --method exact, not --method ibp,crown" in capsys.readouterr().err
    assert main(["certify", "--model", str(word_model), "a good movie", "--budget", "1",
                 "--method", "ibp,alpha-crown", "--alpha-steps", "2", "--quiet"]) == 0


def test_help_shows_the_list_syntax(capsys):
    with pytest.raises(SystemExit):
        main(["certify", "--help"])
    assert "--method M[,M...]" in capsys.readouterr().out


def test_merged_shards_keep_every_method():
    """Two ranks' shards merged (``certify.sharded``) give the one-process per-method report."""
    from robusttext.certify.sharded import certify_shard, merge_certifications

    vocab, space = word_setup()
    model = tiny_model("cnn", len(vocab))
    options = dict(budgets=[1, 2], method=["crown-ibp", "ibp"], batch_size=2)
    single = certify(model, vocab, space, EXAMPLES, **options)
    lengths = [len(row) for row in space.rows([e.text for e in EXAMPLES], vocab)[0]]
    parts = []
    for rank in range(2):
        mine = certify_shard(lengths, 2, rank, 2)
        parts.append((mine, certify(model, vocab, space, [EXAMPLES[i] for i in mine],
                                    **options)))
    merged = merge_certifications(parts)
    assert [untimed(e.to_json()) for e in merged.examples] == [
        untimed(e.to_json()) for e in single.examples]
    assert [s.verified_accuracy_by_method for s in merged.summaries] == [
        s.verified_accuracy_by_method for s in single.summaries]
