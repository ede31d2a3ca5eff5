"""Text models: the contract, sound bounds checked by enumeration, checkpoints, bad input."""

import json

import pytest
import torch

from robusttext.bounds import SubstitutionSet, compute_bounds
from robusttext.errors import RobustTextError
from robusttext.perturb import PerturbationSpace, Vocabulary
from robusttext.text import (
    SHIPPED_MODELS,
    BagOfWords,
    CharCNN,
    WordCNN,
    check_space_matches,
    load_text_model,
    pretrained_embeddings,
    save_text_model,
)
from tests.builders import WORD_SYNONYMS, char_setup, random_text_problem, word_setup
from tests.oracles import enumerate_rewrites

MODELS = [
    ("char", lambda n: CharCNN(n, embed_dim=8, filters=6, width=5)),
    ("word", lambda n: WordCNN(n, embed_dim=8, filters=6, width=3)),
    ("word", lambda n: BagOfWords(n, embed_dim=8, hidden=6)),
    # Jia et al. 2019's recipe: a per-token projection before the convolution, dropout
    ("word", lambda n: WordCNN(n, embed_dim=8, filters=6, width=3, projection=5, dropout=0.3)),
    ("word", lambda n: BagOfWords(n, embed_dim=8, hidden=6, dropout=0.3)),
    ("char", lambda n: CharCNN(n, embed_dim=8, filters=6, width=5, dropout=0.3)),
]


@pytest.mark.parametrize("level,make", MODELS)
def test_contract_forward_is_body_of_embedding(level, make):
    torch.manual_seed(0)
    model = make(12).eval()
    ids = torch.randint(1, 12, (3, 7))
    mask = torch.ones(3, 7)
    mask[1, 4:] = 0
    ids[1, 4:] = 0
    assert isinstance(model.embedding, torch.nn.Embedding)
    torch.testing.assert_close(model(ids, mask), model.body(model.embedding(ids), mask))
    # padding does not change a sentence's logits (padding row is zero, mean is masked)
    alone = model(ids[1:2, :4], mask[1:2, :4])
    torch.testing.assert_close(model(ids, mask)[1:2], alone, atol=1e-5, rtol=1e-5)
    torch.fx.symbolic_trace(model.body)


@pytest.mark.parametrize("level,make", MODELS)
@pytest.mark.parametrize("method", ["ibp", "crown-ibp", "crown", "alpha-crown"])
def test_bounds_contain_every_enumerated_rewrite(level, make, method):
    vocab, space, sentences, batch, model = random_text_problem(level, make, seed=1)
    emb = model.embedding
    input_set = SubstitutionSet(emb(batch.token_ids), emb(batch.candidate_ids),
                                batch.candidate_mask, space.budget)
    with torch.no_grad():
        lower, upper = compute_bounds(model.body, input_set, method,
                                      extra_inputs=(batch.mask,))
        for b in range(len(sentences)):
            n = int(batch.mask[b].sum())
            rewrites = list(enumerate_rewrites(
                batch.token_ids[b, :n].tolist(), batch.candidate_ids[b, :n].tolist(),
                batch.candidate_mask[b, :n].tolist(), space.budget))
            assert len(rewrites) == space.count(sentences[b], vocab)
            ids = torch.tensor(rewrites)
            logits = model(ids, torch.ones(ids.shape))
            assert (logits >= lower[b] - 1e-5).all()
            assert (logits <= upper[b] + 1e-5).all()


def test_checkpoint_round_trip(tmp_path):
    vocab, space = word_setup()
    model = WordCNN(len(vocab), embed_dim=8, filters=4)
    save_text_model(tmp_path / "m", model, vocab, space, training_config={"lr": 1.0},
                    metrics={"clean_accuracy": 0.5})
    bundle = load_text_model(tmp_path / "m")
    assert bundle.kind == "word-cnn" and bundle.name == "m"
    assert bundle.vocab.tokens == vocab.tokens
    assert bundle.space.to_json() == space.to_json()
    assert bundle.meta["metrics"] == {"clean_accuracy": 0.5}
    batch = space.encode("a good film", vocab)
    torch.testing.assert_close(bundle.model(batch.token_ids, batch.mask),
                               model.eval()(batch.token_ids, batch.mask))


def test_a_half_precision_checkpoint_loads_into_a_float32_model(tmp_path):
    vocab, space = word_setup()
    torch.manual_seed(0)
    model = WordCNN(len(vocab), embed_dim=8, filters=4, projection=5, dropout=0.1).eval()
    save_text_model(tmp_path / "m", model.half(), vocab, space)
    bundle = load_text_model(tmp_path / "m")
    assert bundle.model.embedding.weight.dtype == torch.float32
    assert bundle.model.config() == {**model.config()}
    for name, value in model.state_dict().items():  # the float16 values, exactly
        torch.testing.assert_close(bundle.model.state_dict()[name], value.float(), rtol=0,
                                   atol=0)


def test_bad_checkpoints(tmp_path):
    vocab, space = word_setup()
    model = BagOfWords(len(vocab), embed_dim=8, hidden=4)
    save_text_model(tmp_path / "m", model, vocab, space)
    with pytest.raises(RobustTextError, match="'bow' model, expected 'char-cnn'"):
        load_text_model(tmp_path / "m", expected_kind="char-cnn")
    meta_path = tmp_path / "m" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(RobustTextError, match="newer"):
        load_text_model(tmp_path / "m")
    meta_path.write_text(json.dumps({**meta, "kind": "vision-thing"}))
    with pytest.raises(RobustTextError, match="vision-thing"):
        load_text_model(tmp_path / "m")
    with pytest.raises(RobustTextError, match="neither a checkpoint folder"):
        load_text_model(tmp_path / "nothing")
    char_vocab, char_space = char_setup()
    with pytest.raises(RobustTextError, match="char level"):
        save_text_model(tmp_path / "x", model, vocab, char_space)
    meta_path.write_text(json.dumps(meta))
    bundle = load_text_model(tmp_path / "m")
    with pytest.raises(RobustTextError, match="char level"):
        check_space_matches(bundle, char_space)
    raw = PerturbationSpace([WORD_SYNONYMS], budget=1, tokenizer="raw", stop_words=[])
    with pytest.raises(RobustTextError, match="tokenizer"):
        check_space_matches(bundle, raw)
    check_space_matches(bundle, PerturbationSpace([WORD_SYNONYMS], budget=3))


def test_shipped_models_load_and_carry_their_space():
    for name in SHIPPED_MODELS:
        try:
            bundle = load_text_model(name)
        except RobustTextError as error:
            pytest.skip(str(error))
        batch = bundle.space.encode("a gripping , funny film .", bundle.vocab)
        assert bundle.model(batch.token_ids, batch.mask).shape == (1, 2)
        assert bundle.space.budget is not None
        assert "metrics" in bundle.meta and bundle.meta["metrics"]


def test_pretrained_embeddings_from_a_local_transformers_model(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "film", "##s", "dull"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "tiny")
    config = BertConfig(vocab_size=len(words), hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=8)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(tmp_path / "tiny")
    matrix = BertModel.from_pretrained(tmp_path / "tiny").get_input_embeddings().weight
    vocab = Vocabulary(["good", "films", "zzz"])
    table, found = pretrained_embeddings(tmp_path / "tiny", vocab)
    assert table.shape == (5, 8) and found == 4  # <unk> and "zzz" map to [UNK] pieces
    torch.testing.assert_close(table[2], matrix[4])
    torch.testing.assert_close(table[3], matrix[[5, 6]].mean(0))
    assert (table[0] == 0).all()
    table, found = pretrained_embeddings(tmp_path / "tiny", vocab, token_to_row={"good": 4})
    assert found == 1
    torch.testing.assert_close(table[2], matrix[4])
    with pytest.raises(RobustTextError, match="outside"):
        pretrained_embeddings(tmp_path / "tiny", vocab, token_to_row={"good": 99})
    with pytest.raises(RobustTextError, match="cannot load"):
        pretrained_embeddings(tmp_path / "missing", vocab)


@pytest.mark.parametrize("level,make", [
    ("char", lambda n: CharCNN(n, embed_dim=8, filters=6, width=5, dropout=0.5)),
    ("word", lambda n: BagOfWords(n, embed_dim=8, hidden=6, dropout=0.5)),
])
def test_dropout_acts_in_training_mode_alone_and_is_kept_by_checkpoints(level, make, tmp_path):
    vocab, space = char_setup() if level == "char" else word_setup()
    torch.manual_seed(0)
    model = make(len(vocab))
    ids = torch.randint(1, len(vocab), (4, 9))  # no padding rows (those are zero)
    mask = torch.ones(4, 9)
    eval_logits = model.eval()(ids, mask)
    torch.testing.assert_close(model(ids, mask), eval_logits)  # eval mode: deterministic
    # Training mode: the body sees each vector entry either zeroed or doubled (p = 0.5).
    seen = []
    hook = model.body.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    trained = model.train()(ids, mask)
    hook.remove()
    vectors = model.embedding(ids).detach()
    kept = seen[0].detach() != 0
    torch.testing.assert_close(seen[0].detach()[kept], 2 * vectors[kept])
    assert 0.3 < kept.float().mean() < 0.7
    assert not torch.allclose(trained, eval_logits)
    save_text_model(tmp_path / "m", model, vocab, space)
    assert load_text_model(tmp_path / "m").model.dropout == 0.5
