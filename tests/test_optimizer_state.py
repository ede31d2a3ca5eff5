"""Optimizer state in a checkpoint: saved under ``optim.``, restored exactly, and the older
spellings (text's ``adam.``, vision's flattened tensors) still load."""

import pytest
import torch

from robusttext.checkpoint import optimizer_tensors, restore_optimizer


def stepped(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).square().sum().backward()
        optimizer.step()
    return model, optimizer


def fresh_like(model):
    copy = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    copy.load_state_dict(model.state_dict())
    return copy, torch.optim.Adam(copy.parameters(), lr=0.01)


@pytest.mark.parametrize("spelling", ["optim", "adam", "flat"])
def test_restored_state_takes_the_same_next_step(spelling):
    model, optimizer = stepped()
    tensors = optimizer_tensors(optimizer)
    assert tensors and all(k.startswith("optim.") for k in tensors)
    if spelling == "adam":
        tensors = {"adam." + k[len("optim."):]: v for k, v in tensors.items()}
    if spelling == "flat":
        tensors = {k: v.reshape(-1).clone() for k, v in tensors.items()}
    tensors["rng.torch"] = torch.get_rng_state()  # other tensors are left alone
    copy, restored = fresh_like(model)
    restore_optimizer(restored, tensors)
    x = torch.randn(5, 3)
    for m, o in ((model, optimizer), (copy, restored)):
        o.zero_grad()
        m(x).square().sum().backward()
        o.step()
    for a, b in zip(model.parameters(), copy.parameters()):
        assert torch.equal(a, b)
