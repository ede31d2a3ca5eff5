"""Every training setting acts or is refused: the checks ``robusttext train`` runs on the
resolved settings (flags and ``--config`` file) before any work.

``check_ranges`` refuses values out of range that ``TrainConfig.validate`` leaves to the code
that reads them (which would fail later, in Python's words or with a traceback);
``check_settings_act`` refuses a setting given another value than its default where it changes
nothing (a size the architecture does not have, a dev-set setting without ``--dev``, a
CROWN-IBP weight under IBP, ...). Both name the flag, in one line.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from robusttext.config import flag
from robusttext.errors import RobustTextError
from robusttext.train.config import TrainConfig

SIZES = ("embed_dim", "filters", "width", "hidden", "heads", "ffn", "max_length", "layers",
         "projection")
"""Integer model settings; each must be at least 1 where it is given."""

AT_LEAST = (("train_limit", 1), ("eval_limit", 1), ("max_vocab", 2), ("max_candidates", 1),
            ("wordnet_senses", 1), ("seed", 0), *((name, 1) for name in SIZES))

DEFAULTS = TrainConfig.__dataclass_fields__


def _default(name: str):
    field = DEFAULTS[name]
    return field.default_factory() if callable(field.default_factory) else field.default


def check_ranges(config: TrainConfig) -> None:
    """RobustTextError naming the first setting out of its range."""
    for name, least in AT_LEAST:
        value = getattr(config, name)
        if value is not None and value < least:
            raise RobustTextError(f"{flag(name)} must be at least {least}, got {value}")
    if config.seed >= 2**32:
        raise RobustTextError(f"--seed must be below 2**32, got {config.seed}")
    if config.weight_decay < 0:
        raise RobustTextError(f"--weight-decay must be >= 0, got {config.weight_decay:g}")
    if config.lr_decay <= 0:
        raise RobustTextError(f"--lr-decay must be positive, got {config.lr_decay:g}")
    late = [e for e in config.lr_decay_epochs if e > config.epochs]
    if late:
        raise RobustTextError(f"--lr-decay-epochs {','.join(map(str, late))}: after the last "
                              f"epoch (--epochs {config.epochs}), so the learning rate would "
                              "never change there")


def _is_local(source: str) -> bool:
    from robusttext.data.examples import LOCAL_SUFFIXES

    return Path(source).suffix.lower() in LOCAL_SUFFIXES or Path(source).is_file()


def _architecture_settings(config: TrainConfig) -> None:
    """A model setting the architecture does not take (``--filters`` for a bag of words)."""
    from robusttext.train.trainer import MODEL_SETTINGS

    if config.start_from is not None:  # the continued model keeps its own architecture
        given = [k for k in MODEL_SETTINGS if getattr(config, k) is not None]
        named = (["--architecture"] if config.model != _default("model") else []) + [
            flag(k) for k in given]
        if named:
            raise RobustTextError(f"{', '.join(named)} changes nothing with --model "
                                  f"{config.start_from} (the continued model keeps its "
                                  "architecture and sizes); leave it out")
        return
    from robusttext.text.kinds import MODEL_KINDS

    if config.model in ("bert", "xlm") and config.embed_dim and config.heads and \
            config.embed_dim % config.heads:  # their hidden size is --embed-dim
        raise RobustTextError(f"--embed-dim {config.embed_dim} must be a multiple of --heads "
                              f"{config.heads}")
    takes = set(inspect.signature(MODEL_KINDS[config.model].__init__).parameters)
    given = [k for k in MODEL_SETTINGS if getattr(config, k) is not None]
    foreign = [k for k in given if k not in takes]
    if foreign:
        own = ", ".join(flag(k) for k in MODEL_SETTINGS if k in takes)
        raise RobustTextError(f"{', '.join(flag(k) for k in foreign)} does not apply to a "
                              f"{config.model} model (its settings: {own})")


def _needs(config: TrainConfig) -> list[tuple[str, bool, str]]:
    """``(setting, whether what it refines is there, what that is)`` for each setting that
    acts only beside another."""
    dev = config.dev is not None
    validation = config.validation_fraction > 0
    wordnet = config.space_file is None and "wordnet" in config.sources
    return [
        ("train_split", not _is_local(config.train), "a hub --train data set"),
        ("dev_split", dev and not _is_local(config.dev), "a hub --dev data set"),
        ("eval_limit", dev, "--dev"),
        ("eval_budgets", dev, "--dev"),
        ("eval_all_words", dev, "--dev"),
        ("enumerate_limit", dev, "--dev"),
        ("eval_methods", dev or validation, "--dev or --validation-fraction"),
        ("select_by", validation, "--validation-fraction"),
        ("wordnet_senses", wordnet, "the wordnet source (--sources wordnet)"),
        ("method", config.robust, "a robust loss (--robust-weight above 0)"),
        ("warmup_epochs", config.robust, "a robust loss (--robust-weight above 0)"),
        ("ramp_epochs", config.robust, "a robust loss (--robust-weight above 0)"),
        ("oracle_every", config.robust, "a robust loss (--robust-weight above 0)"),
        ("beta_start", config.method == "crown-ibp", "--method crown-ibp"),
        ("beta_final", config.method == "crown-ibp", "--method crown-ibp"),
        ("lr_decay", bool(config.lr_decay_epochs), "--lr-decay-epochs"),
        ("amp", _cuda(config.device), "a CUDA device"),
    ]


def _cuda(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def check_settings_act(config: TrainConfig) -> None:
    """RobustTextError naming a setting given another value than its default where it would
    change nothing."""
    _architecture_settings(config)
    if config.space_file is not None:  # the file's space is used, with --budget
        for name in ("sources", "max_candidates", "stop_words"):
            if getattr(config, name) != _default(name):
                raise RobustTextError(f"{flag(name)} changes nothing beside --space-file (the "
                                      "file's space is used, with --budget); leave it out")
    for name, present, needs in _needs(config):
        value = getattr(config, name)
        if value == _default(name) or present:
            continue
        shown = flag(name) if isinstance(value, bool) else f"{flag(name)} {_shown(value)}"
        raise RobustTextError(f"{shown} changes nothing without {needs}; leave it out")


def _shown(value) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else f"{value}"
