"""A bert or xlm run exported as a plain ``transformers`` folder (what robusttext ships).

``export_transformers_folder(run, target, float16=True)`` writes only the ``transformers``
files of a ``robusttext train --architecture bert`` (or ``xlm``) checkpoint, so that robusttext
reads the target as the ``transformers`` folder it is, through its tokenizer, like any user's
model.
"""

from __future__ import annotations

import json
from pathlib import Path

from robusttext.errors import RobustTextError


def export_transformers_folder(checkpoint: str | Path, target: str | Path,
                               float16: bool = False, note: str = "") -> Path:
    """Write the ``transformers`` files of the bert or xlm checkpoint ``checkpoint`` (its
    ``save_pretrained`` model, word tokenizer and ``robusttext.json``) into ``target``, without
    robusttext's own checkpoint files, so that robusttext reads ``target`` as the
    ``transformers`` folder it is (through its tokenizer). ``float16`` stores the weights in
    half precision while ``config.json`` keeps ``dtype`` float32, so ``from_pretrained`` and
    robusttext both compute in float32 on the rounded weights (measure the folder again).
    ``note`` is added to ``robusttext.json``."""
    from robusttext.text.hf.folders import ROBUSTTEXT_FILE
    from robusttext.text.io import load_text_model

    bundle = load_text_model(checkpoint)
    if not hasattr(bundle.model, "exported_transformers_model"):
        raise RobustTextError(f"{checkpoint} is a {bundle.kind} checkpoint; only a bert or xlm "
                              "checkpoint has transformers files to export")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    hf = bundle.model.exported_transformers_model()
    if float16:
        hf = hf.half()
    hf.save_pretrained(target)
    config_file = target / "config.json"
    config = json.loads(config_file.read_text())
    config["dtype"] = "float32"
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    bundle.model.transformers_tokenizer(bundle.vocab).save_pretrained(target)
    saved = json.loads((Path(checkpoint) / ROBUSTTEXT_FILE).read_text())
    saved["perturbation_space"] = _without_stop_words(saved["perturbation_space"])
    saved["weights"] = "float16, computed in float32" if float16 else "float32"
    if note:
        saved["note"] = note
    (target / ROBUSTTEXT_FILE).write_text(json.dumps(saved, separators=(",", ":")) + "\n")
    return target


def _without_stop_words(space: dict) -> dict:
    """A saved space's JSON without the table entries of its stop words (never substituted, so
    every candidate list stays the same)."""
    stop = set(space.get("stop_words") or ())
    sources = [{**source, "table": {w: c for w, c in source["table"].items() if w not in stop}}
               if isinstance(source, dict) and "table" in source else source
               for source in space["sources"]]
    return {**space, "sources": sources}
