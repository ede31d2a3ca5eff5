"""The epoch loop shared by text and vision training: when it stops, what it tells each epoch."""

from __future__ import annotations

from robusttext.train import loop as loop_module
from robusttext.train.loop import EpochLoop, run_epochs


def _run(loop: EpochLoop, start: int = 0):
    trained, ended = [], []
    run_epochs(loop, start, trained.append, lambda epoch, final: ended.append((epoch, final)))
    return trained, ended


def test_runs_every_epoch_from_the_start_and_marks_only_the_last_final():
    trained, ended = _run(EpochLoop(epochs=4), start=1)
    assert trained == [1, 2, 3]
    assert ended == [(1, False), (2, False), (3, True)]


def test_a_finished_run_trains_nothing():
    assert _run(EpochLoop(epochs=3), start=3) == ([], [])


def test_time_limit_stops_before_the_epoch_that_would_pass_it(monkeypatch):
    # every epoch takes 60 s; limit 2.5 min: after epoch 1, 2 epochs project to 120 s (go on);
    # after epoch 2, 3 epochs project to 180 s > 150 s (stop), by hand
    clock = iter(range(0, 10_000, 60))
    monkeypatch.setattr(loop_module.time, "time", lambda: next(clock))
    said = []
    trained, ended = _run(EpochLoop(epochs=10, time_limit_minutes=2.5,
                                    say=lambda *a, **k: said.append(a[0])))
    assert trained == [0, 1]
    assert ended[-1] == (1, True)
    assert said == ["stopping after epoch 2: another epoch would pass the time limit of "
                    "2.5 minutes"]


def test_the_processes_agree_to_stop():
    # one rank wants to stop after the first epoch: every rank stops there
    trained, ended = _run(EpochLoop(epochs=5, agree=lambda final: True))
    assert trained == [0] and ended == [(0, True)]
