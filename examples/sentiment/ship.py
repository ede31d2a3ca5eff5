"""Copy a trained checkpoint into the package as a shipped model (weights only, no optimizer).

    python examples/sentiment/ship.py runs/gpu/word-wordnet-b3 word-wordnet

Keeps the vocabulary, the perturbation space (already restricted to the vocabulary for word
models), the training configuration and the measured metrics; refuses a folder over 5 MiB.
``--float16`` stores the weights in half precision (they load into a float32 model; measure
the shipped folder again, since rounding may change a figure); ``--notice FILE`` copies an
attribution file (the licences of the data the checkpoint carries) into the folder as
NOTICE.md.
"""

from __future__ import annotations

import argparse
import json
import shutil

from robusttext.perturb import PerturbationSpace, SynonymTable
from robusttext.text import load_text_model, save_text_model, shipped_model_path

LIMIT = 5 * 1024 * 1024  # 5 MiB


def without_stop_words(space: PerturbationSpace) -> PerturbationSpace:
    """The same space with the table entries of its stop words dropped (they are never
    substituted, so every candidate list under any vocabulary stays the same)."""
    sources = [
        SynonymTable({w: c for w, c in s.table.items() if w not in space.stop_words}, s.label)
        if isinstance(s, SynonymTable) else s
        for s in space.sources
    ]
    return PerturbationSpace(sources, **space.settings())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("name")
    parser.add_argument("--note", default="", help="how the model was trained (free text)")
    parser.add_argument("--float16", action="store_true", help="store the weights in float16")
    parser.add_argument("--notice", help="attribution file to ship beside the checkpoint")
    args = parser.parse_args()
    bundle = load_text_model(args.checkpoint)
    if not bundle.meta.get("metrics"):
        raise SystemExit(f"{args.checkpoint} has no measured metrics; evaluate it first")
    target = shipped_model_path(args.name)
    space = without_stop_words(bundle.space) if bundle.space.level == "word" else bundle.space
    model = bundle.model.half() if args.float16 else bundle.model
    if target.is_dir():
        shutil.rmtree(target)
    save_text_model(target, model, bundle.vocab, space,
                    training_config=bundle.meta.get("training_config"),
                    metrics=bundle.meta["metrics"], state=bundle.meta.get("state", {}),
                    note=args.note, word_vectors=bundle.meta.get("word_vectors", {}))
    if args.notice:
        shutil.copyfile(args.notice, target / "NOTICE.md")
    size = sum(p.stat().st_size for p in target.iterdir())
    if size > LIMIT:
        raise SystemExit(f"{target} is {size} bytes, over the 5 MiB limit")
    print(f"{target}: {size / 1e6:.2f} MB; metrics {json.dumps(bundle.meta['metrics'])}")


if __name__ == "__main__":
    main()
