"""transformers classifiers as text models: same logits as transformers, sound bounds.

Every bound is checked against the true margins of every rewrite in the set, computed by
re-tokenising each rewritten sentence and running the transformers model's own forward (not the
robusttext wrapper, not the piece encoding used by the bounds).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from robusttext.bounds import TokenSubstitutionSet, margin_matrix  # noqa: E402
from robusttext.bounds.specs import margin_lower_bounds  # noqa: E402
from robusttext.certify.margins import margins  # noqa: E402
from robusttext.errors import RobustTextError  # noqa: E402
from robusttext.perturb import PerturbationSpace, SynonymTable  # noqa: E402
from robusttext.perturb.subwords import SubwordSpace  # noqa: E402
from robusttext.text.bounds import PositionwiseSet, body_problem  # noqa: E402
from robusttext.text.hf import SUPPORTED_ARCHITECTURES, from_transformers  # noqa: E402
from tests.hf_tiny import (  # noqa: E402
    SENTENCES,
    TABLE,
    bert_tokenizer,
    tiny_model,
    word_set_lower_margins,
)
from tests.oracles import word_rewrites  # noqa: E402

ARCHITECTURES = ("bert", "roberta", "distilbert")


def _engine_bounds_exact_gelu() -> bool:
    """Whether the bound engine has a rule for F.gelu (the exact erf form) yet."""
    from robusttext.bounds import Box, compute_bounds

    class Gelu(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x)

    try:
        compute_bounds(Gelu(), Box(-torch.ones(1, 2), torch.ones(1, 2)), "ibp")
    except RobustTextError:
        return False
    return True


EXACT_GELU = pytest.mark.skipif(not _engine_bounds_exact_gelu(),
                                reason="the bound engine has no GELU (erf) rule yet")
# Activations per architecture: DistilBERT has relu and gelu only.
CASES = [pytest.param(a, "relu", id=f"{a}-relu") for a in ARCHITECTURES] + [
    pytest.param("bert", "gelu_new", id="bert-gelu_tanh"),
    pytest.param("roberta", "gelu_pytorch_tanh", id="roberta-gelu_tanh"),
] + [pytest.param(a, "gelu", id=f"{a}-gelu", marks=EXACT_GELU) for a in ARCHITECTURES]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return bert_tokenizer(tmp_path_factory.mktemp("vocab"))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_new"])
def test_wrapper_gives_the_transformers_logits_on_padded_batches(architecture, activation):
    if architecture == "distilbert" and activation == "gelu_new":
        pytest.skip("DistilBERT has relu and gelu only")
    hf = tiny_model(architecture, activation)
    model = from_transformers(hf)
    assert model.embedding is hf.get_input_embeddings()
    torch.manual_seed(1)
    ids = torch.randint(5, 26, (3, 7))
    mask = torch.ones(3, 7)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    ids[mask == 0] = 0
    expected = hf(input_ids=ids, attention_mask=mask.long()).logits
    torch.testing.assert_close(model(ids, mask), expected, atol=1e-5, rtol=1e-5)


def _true_margins(hf, tokenizer, words, options, budget, label):
    """Margins of ``label`` on every rewrite of ``words`` (at most ``budget`` positions, each
    from ``options[p]``), each rewrite tokenised as a sentence and run through ``hf``."""
    texts = word_rewrites(words, options, budget)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = hf(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits
    return margins(logits, torch.full((len(texts),), label)), texts


def _kept_words(space: SubwordSpace, word: str) -> list[str]:
    """The candidate words the sub-word space keeps for ``word``, read back from its pieces."""
    entry = space._word(word, False)
    own = list(entry.pieces)
    kept = []
    for candidate in space.space.token_candidates(word):
        pieces = list(space.pieces(candidate))
        if len(pieces) == len(own) and pieces[entry.slot] in entry.candidates and all(
                pieces[j] == own[j] for j in range(len(own)) if j != entry.slot):
            kept.append(candidate)
    return kept


@pytest.mark.parametrize(("architecture", "activation"), CASES)
@pytest.mark.parametrize("method", ["crown-ibp", pytest.param("ibp", marks=pytest.mark.slow),
                                    pytest.param("crown", marks=pytest.mark.slow)])
@pytest.mark.parametrize("positionwise", [False, True], ids=["embeddings", "positionwise"])
def test_bounds_are_sound_against_enumeration_through_the_transformers_model(
        architecture, activation, method, positionwise, tokenizer):
    """Over the word vectors (the body bounded whole) and over their images under the body's
    position-wise first layers (``PositionwiseSet``: its ``encode`` bounded)."""
    hf = tiny_model(architecture, activation, seed=3)
    model = from_transformers(hf)
    space = SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=2, stop_words=[]),
                         tokenizer)
    texts = [s for s, _ in SENTENCES]
    labels = torch.tensor([y for _, y in SENTENCES])
    enc = space.encode(texts)
    for budget in (0, 1, 2):
        lower = word_set_lower_margins(model, enc, labels, budget, method, positionwise)
        for i, text in enumerate(texts):
            words = text.split()
            options = [_kept_words(space, w) for w in words]
            true, _ = _true_margins(hf, tokenizer, words, options, budget, int(labels[i]))
            assert lower[i] <= true.min() + 1e-4, (text, budget)
            if budget == 0 and activation != "gelu":  # one sentence: the bound is its margin
                # (The engine's F.gelu rule widens even a point by its rounding margin, and two
                # layers of interval attention amplify that: on this model crown-ibp gives -0.35
                # for a clean margin of 1.64. Relu and the tanh form written with products stay
                # exact on a point.)
                torch.testing.assert_close(lower[i], true[0], atol=1e-3, rtol=1e-3)


def test_unsupported_architecture_is_named_with_the_supported_ones():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    hf = GPT2ForSequenceClassification(GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=20))
    with pytest.raises(RobustTextError, match="GPT2ForSequenceClassification") as error:
        from_transformers(hf)
    for name in SUPPORTED_ARCHITECTURES:
        assert name in str(error.value)


def test_unsupported_activation_and_position_type_are_named():
    with pytest.raises(RobustTextError, match="activation 'silu'"):
        from_transformers(tiny_model("bert", "silu"))
    hf = tiny_model("bert")
    hf.config.position_embedding_type = "relative_key"
    with pytest.raises(RobustTextError, match="relative_key"):
        from_transformers(hf)


def test_exact_gelu_is_refused_by_name_until_the_engine_bounds_it(tokenizer):
    if _engine_bounds_exact_gelu():
        pytest.skip("the engine bounds GELU now")
    model = from_transformers(tiny_model("bert", "gelu"))
    enc = SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=1), tokenizer).encode(
        "the film is good")
    subs = TokenSubstitutionSet(model.embedding.weight, enc.token_ids, enc.candidate_ids,
                                enc.candidate_mask, 1, "exact")
    with pytest.raises(RobustTextError, match="gelu"):
        margin_lower_bounds(body_problem(model.body, subs, margin_matrix(torch.tensor([1]), 2)
                                         .to(subs.center), enc.mask), "ibp")


def test_a_positionwise_set_keeps_the_logits_and_tightens_ibp(tokenizer):
    """``encode(positionwise(x))`` is the body; ``substitution_set`` carries the set through the
    body's first layers (a ``PositionwiseSet``, reused at another budget as built fresh); IBP
    over the images is never looser than over the word vectors (each image lies in
    LayerNorm's interval image of the vectors' box, and interval arithmetic keeps inclusion)
    and is tighter on a sentence with candidates."""
    from robusttext.bounds import compute_bounds
    from robusttext.text.bounds import substitution_set

    model = from_transformers(tiny_model("bert", "relu", seed=3))
    space = SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=2, stop_words=[]),
                         tokenizer)
    texts = [s for s, _ in SENTENCES]
    labels = torch.tensor([y for _, y in SENTENCES])
    enc = space.encode(texts)
    with torch.no_grad():
        x = model.embedding(enc.token_ids)
        torch.testing.assert_close(model.body.encode(model.body.positionwise(x, enc.mask),
                                                     enc.mask), model.body(x, enc.mask))
        C = margin_matrix(labels, 2)
        for budget in (1, 2):
            images = substitution_set(model, enc, budget)
            assert isinstance(images, PositionwiseSet)
            words = TokenSubstitutionSet(model.embedding.weight, enc.token_ids,
                                         enc.candidate_ids, enc.candidate_mask, budget, "exact")
            tight = margin_lower_bounds(body_problem(model.body, images, C, enc.mask), "ibp")
            loose = margin_lower_bounds(body_problem(model.body, words, C, enc.mask), "ibp")
            assert (tight >= loose - 1e-5).all()
            # the first layers' output: the images' box inside (and narrower than) the IBP
            # box of those layers over the vectors' set
            low, high = compute_bounds(_Positionwise(model.body), words, "ibp",
                                       extra_inputs=(enc.mask,))
            image_low, image_high = images.interval()
            assert (image_low >= low - 1e-5).all() and (image_high <= high + 1e-5).all()
            assert ((high - low) - (image_high - image_low)).amax() > 1.0
            reused = substitution_set(model, enc, 2 if budget == 1 else 1).with_budget(budget)
            again = margin_lower_bounds(body_problem(model.body, reused, C, enc.mask), "ibp")
            torch.testing.assert_close(again, tight)


class _Positionwise(torch.nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x, mask):
        return self.body.positionwise(x, mask)


def test_a_body_with_a_hook_is_bounded_whole_as_its_call_runs(tokenizer):
    """A forward hook on the body runs more than ``encode(positionwise(x))``: the set stays
    the word vectors' and the body is bounded as its call runs, hook included. The bounds hold
    below the margin of every token rewrite run through the hooked model, and on the sentence
    alone (budget 0) equal the hooked model's margin, 8 away from the model's own."""
    from robusttext.text.bounds import batch_problem, substitution_set
    from tests.oracles import enumerate_rewrites

    model = from_transformers(tiny_model("bert", "relu", seed=3))
    model.body.register_forward_hook(lambda module, args, out: out + torch.tensor([4.0, -4.0]))
    space = SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=1, stop_words=[]),
                         tokenizer)
    texts = [s for s, _ in SENTENCES]
    labels = torch.tensor([y for _, y in SENTENCES])
    enc = space.encode(texts)
    assert not isinstance(substitution_set(model, enc, 1), PositionwiseSet)
    with torch.no_grad():
        for budget in (0, 1):
            lower = margin_lower_bounds(batch_problem(model, enc, labels, budget),
                                        "crown-ibp").amin(1)
            for i in range(len(texts)):
                length = int(enc.mask[i].sum())
                rewrites = torch.tensor(list(enumerate_rewrites(
                    enc.token_ids[i, :length].tolist(), enc.candidate_ids[i, :length].tolist(),
                    enc.candidate_mask[i, :length].tolist(), budget)))
                logits = model(rewrites, torch.ones(rewrites.shape))
                y = int(labels[i])
                true = logits[:, y] - logits[:, 1 - y]
                assert lower[i] <= true.min() + 1e-4
                if budget == 0:
                    torch.testing.assert_close(lower[i], true[0], atol=1e-3, rtol=1e-3)
