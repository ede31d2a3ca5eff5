"""The peer benchmark's LSTM comparison module (bench/peer_speed.py) without the peer.

``GateLSTM`` must compute exactly the function of robusttext's ``BiLSTMBody`` (it is what both
libraries bound in the side-by-side LSTM rows), and robusttext's bounds on it must hold on every
rewrite of a small substitution set (enumerated).
"""

import importlib.util
import itertools
import sys
from pathlib import Path

import torch

from robusttext.bounds import SubstitutionSet, compute_bounds, margin_matrix
from robusttext.text import BiLSTM

BENCH = Path(__file__).resolve().parents[1] / "bench" / "peer_speed.py"


def _peer_speed():
    spec = importlib.util.spec_from_file_location("peer_speed", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("peer_speed", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gate_lstm_matches_the_bilstm_body():
    torch.manual_seed(0)
    body = BiLSTM(50, embed_dim=6, hidden=3, max_length=8).body.eval()
    gates = _peer_speed().GateLSTM(body, 5)
    x, mask = torch.randn(4, 5, 6), torch.ones(4, 5)
    with torch.no_grad():
        torch.testing.assert_close(gates(x, mask), body(x, mask), rtol=1e-5, atol=1e-6)


def test_bounds_on_gate_lstm_hold_on_every_rewrite():
    torch.manual_seed(1)
    body = BiLSTM(50, embed_dim=4, hidden=2, max_length=3).body.eval()
    gates = _peer_speed().GateLSTM(body, 3)
    original = torch.randn(1, 3, 4)
    candidates = original[:, :, None] + 0.3 * torch.randn(1, 3, 2, 4)
    cand_mask = torch.tensor([[[True, True], [True, False], [False, False]]])
    subs = SubstitutionSet(original, candidates, cand_mask, budget=1)
    C = margin_matrix(torch.tensor([0]), 2)
    mask = torch.ones(1, 3)
    with torch.no_grad():
        bounds = {m: compute_bounds(gates, subs, m, C=C, extra_inputs=(mask,),
                                    bound_upper=False)[0].item() for m in ("ibp", "crown-ibp")}
        # every sentence with at most one position replaced by a real candidate
        choices = [[None] + [k for k in range(2) if cand_mask[0, p, k]] for p in range(3)]
        for picks in itertools.product(*choices):
            if sum(k is not None for k in picks) > 1:
                continue
            x = original.clone()
            for p, k in enumerate(picks):
                if k is not None:
                    x[0, p] = candidates[0, p, k]
            margin = (C @ gates(x, mask).unsqueeze(-1)).item()
            for method, lower in bounds.items():
                assert lower <= margin + 1e-5, (method, picks)
