"""Certify your own PyTorch sentiment classifier against synonym substitutions.

Your model only needs a ``forward(token_ids, mask)`` that calls an ``nn.Embedding`` on the ids;
``wrap_text_model`` cuts it at that embedding so the bound engine can bound what comes after.
Runs offline, in about 8 s on a 2-core CPU (measured 2026-12-07, the machine shared with a
test run):

    python examples/certify_own_model.py
"""

from __future__ import annotations

import torch
from torch import nn

from robusttext.certify import certify
from robusttext.certify.report import format_table
from robusttext.perturb import PerturbationSpace, SynonymTable, Vocabulary, tokenize
from robusttext.text.contract import wrap_text_model

SENTENCES = [
    ("a good and moving film", 1), ("a great cast and a fine story", 1),
    ("the plot is dull and the acting is bad", 0), ("an awful , boring movie", 0),
    ("good fun from start to end", 1), ("a poor script and weak jokes", 0),
    ("one of the best films this year", 1), ("tedious , bad and far too long", 0),
]
SYNONYMS = {"good": ["fine", "nice"], "great": ["fine", "good"], "bad": ["poor", "awful"],
            "dull": ["boring", "tedious"], "film": ["movie"], "movie": ["film"],
            "awful": ["bad", "terrible"], "weak": ["poor"], "best": ["finest"]}


class MyClassifier(nn.Module):
    """An ordinary classifier: embedding, convolution, ReLU, masked mean, linear."""

    def __init__(self, vocab_size: int, dim: int = 16, filters: int = 32):
        super().__init__()
        self.words = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, filters, 3, padding=1)
        self.out = nn.Linear(filters, 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(self.words(ids).transpose(1, 2)))  # [batch, filters, length]
        return self.out((h * mask.unsqueeze(1)).sum(2) / mask.sum(1, keepdim=True))


def main(steps: int = 200):
    torch.manual_seed(0)
    texts = [text for text, _ in SENTENCES]
    words = [w for t in texts for w in tokenize(t)] + [w for v in SYNONYMS.values() for w in v]
    vocab = Vocabulary(dict.fromkeys(words))
    space = PerturbationSpace(SynonymTable(SYNONYMS), budget=2)

    module = MyClassifier(len(vocab))
    batch = space.encode(texts, vocab)
    labels = torch.tensor([label for _, label in SENTENCES])
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(steps):  # plain (not certified) training, just to have a working model
        loss = nn.functional.cross_entropy(module(batch.token_ids, batch.mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model = wrap_text_model(module, embedding="words")  # embedding + traced body
    result = certify(model, vocab, space, SENTENCES, budgets=[1, 2], method="crown-ibp")
    print(format_table(result))
    for example in result.examples:
        if example.budget == 2:
            status = "certified" if example.certified else (
                "attacked" if example.attacked else "not certified")
            print(f"{status:>13}  margin >= {example.margin_lower:+.3f}  {example.text}")
    return result


if __name__ == "__main__":
    main()
