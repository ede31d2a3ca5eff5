"""The engine on every available device: same bounds as on the CPU, results on the device."""

import pytest
import torch
import torch.nn as nn

from robusttext.bounds import METHODS, LinfBall, SubstitutionSet, compute_bounds, margin_matrix
from tests.builders import ConvBody, random_problem

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def image_model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3),
                         nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4, 10)).eval()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", METHODS)
def test_image_bounds_match_the_cpu(device, method):
    torch.manual_seed(0)
    model = image_model()
    x = torch.rand(4, 1, 12, 12)
    C = margin_matrix(torch.tensor([0, 3, 5, 9]), 10)
    expected = compute_bounds(model, LinfBall(x, 0.05, 0, 1), method, C=C)
    model = model.to(device)
    got = compute_bounds(model, LinfBall(x.to(device), 0.05, 0, 1), method, C=C.to(device))
    for e, g in zip(expected, got):
        assert g.device.type == device
        torch.testing.assert_close(g.cpu(), e, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_substitution_bounds_and_gradients_on_device(device):
    table, ids, cand, cand_mask, mask = random_problem(0)
    body = ConvBody(table.shape[1])
    C = margin_matrix(torch.tensor([0, 1, 1]), 2)
    subs = SubstitutionSet(table[ids], table[cand], cand_mask, 2)
    expected, _ = compute_bounds(body, subs, "crown-ibp", C=C, extra_inputs=(mask,))
    body = body.to(device)
    table = table.to(device)
    subs = SubstitutionSet(table[ids.to(device)], table[cand.to(device)], cand_mask.to(device), 2)
    lower, _ = compute_bounds(body, subs, "crown-ibp", C=C.to(device),
                              extra_inputs=(mask.to(device),))
    torch.testing.assert_close(lower.cpu(), expected, atol=1e-4, rtol=1e-4)
    lower.sum().backward()
    assert all(p.grad is not None and p.grad.device.type == device for p in body.parameters())
