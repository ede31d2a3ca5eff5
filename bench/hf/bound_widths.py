"""Where the interval bounds of a bert run widen: IBP widths after each stage of the body.

For the first N validation sentences of a ``robusttext train --architecture bert`` run (its
``validation.tsv``), bounds the body cut after each stage (embeddings + positions, the
embedding LayerNorm, the attention scores of ``[CLS]``, attention + residual, norm1,
feed-forward + residual, norm2 at ``[CLS]``, the pooler's dense layer) over the substitution
set scaled by EPS (candidates at ``e + eps (e_k - e)``, as training ramps them), and prints the
mean and largest width ``upper - lower`` beside the mean absolute value of the stage.

    OMP_NUM_THREADS=1 python bench/hf/bound_widths.py RUN [--eps 0.1 1.0] [--sentences 16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from robusttext.bounds import SubstitutionSet, compute_bounds
from robusttext.text import load_text_model
from robusttext.text.sequence_models import MASKED_SCORE
from robusttext.train.data import load_training_examples

STAGES = ("embeddings + positions", "embedding LayerNorm", "scores of [CLS]",
          "attention + residual", "norm1", "feed-forward + residual", "norm2 at [CLS]",
          "pooler dense")


class Stage(nn.Module):
    """The body of a one-layer bert model, cut after stage ``upto`` (an index of STAGES)."""

    def __init__(self, body, upto: int):
        super().__init__()
        self.body, self.upto = body, upto

    def forward(self, x, mask):
        body, encoder = self.body, self.body.encoder
        layer = encoder.layers[0]
        batch = x.shape[0]
        x = torch.cat([body.cls.expand(batch, 1, body.cls.shape[0]), x], 1)
        mask = torch.cat([mask.new_ones(batch, 1), mask], 1)
        positions = (torch.cumsum(mask, 1) - 1).clamp(min=0).long()
        h = x + encoder.position(positions) + encoder.token_type.weight[0]
        if self.upto == 0:
            return h
        h = encoder.norm(h)
        if self.upto == 1:
            return h
        padded = ((1 - mask) * MASKED_SCORE)[:, None, None, :]
        length = h.shape[1]
        scale = (layer.hidden // layer.heads) ** -0.5
        q = layer._split_heads(layer.query(h) * scale, batch, length)
        k = layer._split_heads(layer.key(h), batch, length)
        v = layer._split_heads(layer.value(h), batch, length)
        scores = q @ k.transpose(2, 3) + padded
        if self.upto == 2:
            return scores[:, :, 0, 1:]  # [CLS]'s scores of the words
        attended = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(batch, length, -1)
        h = h + layer.out(attended)
        if self.upto == 3:
            return h
        h = layer.norm1(h)
        if self.upto == 4:
            return h
        h = h + layer.ffn_out(layer.activation(layer.ffn_in(h)))
        if self.upto == 5:
            return h
        h = layer.norm2(h)[:, 0]
        if self.upto == 6:
            return h
        return encoder.head[0](h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--sentences", type=int, default=16)
    args = parser.parse_args()
    bundle = load_text_model(args.run)
    model = bundle.model.eval()
    if len(model.body.encoder.layers) != 1:
        raise SystemExit("this probe cuts a one-layer bert model")
    examples = load_training_examples(str(Path(args.run) / "validation.tsv"), None)
    enc = bundle.space.encode([e.text for e in examples[: args.sentences]], bundle.vocab)
    print(f"{args.run}: {args.sentences} validation sentences, budget {bundle.space.budget}, IBP")
    print("| eps | stage | width: mean | width: largest | mean absolute value |")
    print("|---|---|---|---|---|")
    with torch.no_grad():
        words = model.embedding(enc.token_ids)
        candidates = model.embedding(enc.candidate_ids)
        for eps in args.eps:
            scaled = words[:, :, None] + eps * (candidates - words[:, :, None])
            subs = SubstitutionSet(words, scaled, enc.candidate_mask, budget=bundle.space.budget)
            for upto, name in enumerate(STAGES):
                stage = Stage(model.body, upto).eval()
                lower, upper = compute_bounds(stage, subs, "ibp", extra_inputs=(enc.mask,))
                value = stage(words, enc.mask)
                width = upper - lower
                print(f"| {eps:g} | {name} | {width.mean():.3g} | {width.max():.3g} | "
                      f"{value.abs().mean():.3g} |")


if __name__ == "__main__":
    main()
