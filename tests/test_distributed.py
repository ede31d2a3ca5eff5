"""Several processes (gloo on CPU, 2 ranks): sharded certification gives the single-process
report, a distributed training step gives the single-process weights, a failing rank stops the
others with a message, and the sharding helpers refuse more ranks than examples."""

import json
import multiprocessing
import os
import socket
import time
import traceback

import pytest
import torch

from robusttext import distributed
from robusttext.certify import certify, sharded
from robusttext.errors import RobustTextError
from robusttext.perturb import PerturbationSpace, Vocabulary
from robusttext.text import load_text_model
from robusttext.train import TrainConfig, parallel, train
from tests.builders import SENTENCES as CLI_SENTENCES
from tests.builders import save_word_model

# The certify CLI tests' sentences plus two (no new words, so the same saved model).
SENTENCES = [*CLI_SENTENCES, ("bad", 0), ("a good , fine story", 1)]
ROWS = [("a fine , moving film", 1), ("dull and tired", 0), ("a good story", 1),
        ("bad acting", 0), ("funny and warm", 1), ("a boring mess", 0), ("great fun", 1),
        ("weak , lazy script", 0)]
WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(target, *args, world=WORLD, timeout=60):
    """Run ``target(rank, *args)`` on ``world`` spawned ranks; return each rank's outcome:
    ``("ok", value)`` or ``("error", type name, message)``, plus the seconds taken."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank_main, args=(rank, world, port, queue, target, args))
             for rank in range(world)]
    began = time.time()
    for p in procs:
        p.start()
    outcomes = {}
    try:
        for _ in procs:
            rank, outcome = queue.get(timeout=timeout)
            outcomes[rank] = outcome
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return [outcomes[r] for r in range(world)], time.time() - began


def _rank_main(rank, world, port, queue, target, args):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      ROBUSTTEXT_DIST_TIMEOUT="30", OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    try:
        outcome = ("ok", target(rank, *args))
    except Exception as error:
        outcome = ("error", type(error).__name__, str(error), traceback.format_exc())
    finally:
        distributed.stop()
    queue.put((rank, outcome))


CERTIFY_OPTIONS = dict(budgets=[0, 1, 2], method="crown-ibp", batch_size=2, enumerate_limit=50)


def without_timings(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for s in report["summary"]:
        s.pop("timings")
    for key in ("setup_seconds", "world_size"):
        report["settings"].pop(key, None)
    return report


def _certify_rank(rank, model_path):
    job = distributed.start("cpu")
    bundle = load_text_model(model_path)
    result = sharded.certify_sharded(bundle.model, bundle.vocab, bundle.space, SENTENCES,
                                     **CERTIFY_OPTIONS)
    return result.to_json(), job.world


def _failing_certify(*args, **kwargs):
    if distributed.current().rank == 1:
        raise ValueError("rank one breaks on purpose")
    return certify(*args, **kwargs)


def _certify_rank_fails(rank, model_path):
    distributed.start("cpu")
    bundle = load_text_model(model_path)
    sharded.certify_sharded(bundle.model, bundle.vocab, bundle.space, SENTENCES,
                            certify_fn=_failing_certify, **CERTIFY_OPTIONS)


def test_two_ranks_certify_like_one(tmp_path):
    path = save_word_model(tmp_path / "model")
    bundle = load_text_model(path)
    single = certify(bundle.model, bundle.vocab, bundle.space, SENTENCES,
                     **CERTIFY_OPTIONS).to_json()
    outcomes, _ = launch(_certify_rank, str(path))
    for outcome in outcomes:
        assert outcome[0] == "ok", outcome
        report, world = outcome[1]
        assert world == WORLD and report["settings"]["world_size"] == WORLD
        assert without_timings(report) == without_timings(single)
    assert [e["index"] for e in single["examples"]] == list(range(len(SENTENCES))) * 3

    outcomes, seconds = launch(_certify_rank_fails, str(path))
    assert outcomes[1][:3] == ("error", "ValueError", "rank one breaks on purpose")
    assert outcomes[0][1] == "RankFailed" and "rank 1 of 2 failed" in outcomes[0][2]
    assert "rank one breaks on purpose" in outcomes[0][2] and seconds < 30


def train_settings(tmp_path, **changes):
    (tmp_path / "train.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in ROWS))
    settings = dict(model="char-cnn", embed_dim=8, filters=6, train=str(tmp_path / "train.tsv"),
                    dev=str(tmp_path / "train.tsv"), sources=["qwerty"], budget=1, epochs=1,
                    batch_size=3, warmup_epochs=0, ramp_epochs=0, robust_weight=0.5,
                    device="cpu", eval_budgets=[1], progress=False, lr=0.01)
    settings.update(changes)
    return settings


def _train_rank(rank, settings):
    settings = dict(settings)
    breaks = settings.pop("break_rank_1", None)
    if rank == 1 and breaks == "data":
        settings["train"] += ".missing"
    if rank == 1 and breaks == "step":  # the second training step raises on rank 1
        import robusttext.train.loss as loss

        calls, original = [], loss.robust_loss

        def robust_loss(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise FloatingPointError("rank one breaks in step 2")
            return original(*args, **kwargs)

        loss.robust_loss = robust_loss
    return train(TrainConfig(**settings))


def test_two_ranks_train_like_one(tmp_path, capsys):
    one = train_settings(tmp_path, out=str(tmp_path / "one"))
    two = train_settings(tmp_path, out=str(tmp_path / "two"))
    expected = train(TrainConfig(**one))
    outcomes, _ = launch(_train_rank, two)
    for outcome in outcomes:
        assert outcome[0] == "ok", outcome
        assert outcome[1] == expected  # every rank returns rank 0's dev metrics
    # batches of 3, 3, 2 sentences split 2+1, 2+1, 1+1: the weights of one process
    a, b = load_text_model(tmp_path / "one"), load_text_model(tmp_path / "two")
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4, msg=name)
    assert b.meta["state"] == {"epoch": 1, "step": 3}
    # a checkpoint of two ranks resumes on one
    train(TrainConfig(**{**two, "epochs": 2}))
    assert load_text_model(tmp_path / "two").meta["state"] == {"epoch": 2, "step": 6}
    assert "resuming" in capsys.readouterr().out


@pytest.mark.parametrize("breaks", ["data", "step"])
def test_a_failing_rank_stops_the_others(tmp_path, breaks):
    settings = train_settings(tmp_path, out=str(tmp_path / "run"), break_rank_1=breaks)
    outcomes, seconds = launch(_train_rank, settings)
    expected = ("RobustTextError", "no such") if breaks == "data" else (
        "FloatingPointError", "rank one breaks in step 2")
    assert outcomes[1][1] == expected[0] and expected[1] in outcomes[1][2], outcomes[1]
    assert outcomes[0][1] == "RankFailed", outcomes[0]
    assert "another rank stopped" in outcomes[0][2] and seconds < 30
    assert not (tmp_path / "run").exists()  # nothing written by a run that stopped


def test_sharding_is_deterministic_and_refuses_too_many_ranks():
    lengths = [5, 1, 3, 3, 2, 8, 1]
    shards = [sharded.certify_shard(lengths, 2, r, 3) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(7))
    assert shards[0] == [1, 6, 5]  # batches [1, 6] and [5] of the length order
    assert distributed.shard(list("abcde"), 1, 2) == ["b", "d"]
    with pytest.raises(RobustTextError, match="3 processes but only 2"):
        distributed.shard([1, 2], 0, 3)
    with pytest.raises(RobustTextError, match="only 1 sentences"):
        sharded.certify_shard([4], 2, 0, 2)


def test_batch_sampler_splits_each_global_batch():
    sampler = parallel.DistributedBatchSampler(
        lambda epoch: [[epoch, 1, 2], [3]], rank=1, world=2)
    sampler.set_epoch(7)
    assert list(sampler) == [([1], 3), ([3], 0)]  # a stand-in example with weight 0
    assert parallel.local_weight(1, 3, 2) == pytest.approx(2 / 3)
    assert parallel.local_weight(1, 0, 2) == 0.0


def test_robust_loss_leaves_the_padding_row_alone():
    """Padding must not train anything, or splitting a batch across ranks (other padding)
    would change the step."""
    from robusttext.perturb import CharacterFlips
    from robusttext.text import CharCNN
    from robusttext.train import robust_loss

    space = PerturbationSpace([CharacterFlips("qwerty")], budget=1, level="char")
    sentences = ["a fine , moving film", "bad"]
    vocab = Vocabulary.build(space.split(s)[0] for s in sentences)
    torch.manual_seed(0)
    model = CharCNN(len(vocab), embed_dim=8, filters=6)
    batch = space.encode(sentences, vocab)
    loss, _ = robust_loss(model, batch, torch.tensor([1, 0]), 1, k=1.0, eps=0.5)
    loss.backward()
    assert not model.embedding.weight.grad[vocab.pad_id].any()
    assert model.embedding.weight.grad.abs().sum() > 0


def _certify_command_rank(rank, model_path, data, out):
    import contextlib
    import io

    from robusttext.cli import main

    argv = ["certify", "--model", model_path, "--data", data, "--budget", "0,1,2", "--method",
            "crown-ibp", "--batch-size", "2", "--enumerate-limit", "50"]
    code = main([*argv, "--json", out])
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        too_many = main([*argv, "--limit", "1"])
    return code, too_many, errors.getvalue()


def test_certify_command_under_two_ranks(tmp_path, capsys):
    from robusttext.cli import main

    path = save_word_model(tmp_path / "model")
    data = tmp_path / "data.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in SENTENCES))
    argv = ["certify", "--model", str(path), "--data", str(data), "--budget", "0,1,2",
            "--method", "crown-ibp", "--batch-size", "2", "--enumerate-limit", "50"]
    assert main([*argv, "--json", str(tmp_path / "one.json")]) == 0
    outcomes, _ = launch(_certify_command_rank, str(path), str(data), str(tmp_path / "two.json"))
    for outcome in outcomes:
        assert outcome[0] == "ok", outcome
        code, too_many, errors = outcome[1]
        assert code == 0 and too_many == 2
        assert "2 processes but only 1 sentences" in errors

    def comparable(report):
        for s in report["summary"]:
            s.pop("timings")
        for model in report["models"].values():
            for key in ("setup_seconds", "world_size"):
                model["settings"].pop(key, None)
        return report

    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["models"]["model"]["settings"]["world_size"] == 2
    assert comparable(two) == comparable(one)
