"""Ship a trained bert or xlm checkpoint as a plain ``transformers`` folder inside the package.

    python bench/hf/ship_transformers.py RUN/best xlm-counterfitted --float16 \
        --notice examples/sentiment/NOTICE-counterfitted-glove.md --note "..."

Writes ``robusttext/assets/models/NAME``: ``config.json``, ``model.safetensors``, the word
tokenizer and ``robusttext.json`` (``robusttext.text.hf.export.export_transformers_folder``),
no robusttext checkpoint files, so robusttext certifies it through the tokenizer as any
``transformers`` folder; refuses a folder over 5 MiB. Measure the shipped folder again.
"""

from __future__ import annotations

import argparse
import shutil

from robusttext.shipped import MODELS_DIR
from robusttext.text.hf.export import export_transformers_folder

LIMIT = 5 * 1024 * 1024  # 5 MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("name")
    parser.add_argument("--float16", action="store_true")
    parser.add_argument("--notice", help="attribution file shipped as NOTICE.md")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    target = MODELS_DIR / args.name
    if target.is_dir():
        shutil.rmtree(target)
    export_transformers_folder(args.checkpoint, target, float16=args.float16, note=args.note)
    if args.notice:
        shutil.copyfile(args.notice, target / "NOTICE.md")
    size = sum(p.stat().st_size for p in target.iterdir())
    if size > LIMIT:
        raise SystemExit(f"{target} is {size} bytes, over the 5 MiB limit")
    print(f"{target}: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
