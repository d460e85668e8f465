"""DropConnect on W_hh (``Recurrent(weight_dropout=p)``): one mask per forward call, shared by
every time step; fused and unrolled paths draw and use the same mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from elman.nn import Recurrent

CASES = [("elman", {}), ("lstm", {}), ("gru", {"variant": "cudnn"})]


def pair(cell, opts, **kw):
    torch.manual_seed(0)
    fused = Recurrent(cell, 4, 5, impl="fused", weight_dropout=0.5, **opts, **kw).double()
    unrolled = Recurrent(cell, 4, 5, impl="unrolled", weight_dropout=0.5, **opts, **kw).double()
    unrolled.load_state_dict(fused.state_dict())
    return fused, unrolled


@pytest.mark.parametrize(("cell", "opts"), CASES, ids=[c for c, _ in CASES])
@pytest.mark.parametrize("lengths", [None, [6, 3, 5]])
def test_fused_and_unrolled_agree_under_the_same_seed(cell, opts, lengths):
    fused, unrolled = pair(cell, opts, num_layers=2, bidirectional=True)
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    lens = None if lengths is None else torch.tensor(lengths)
    torch.manual_seed(7)
    out_f, _ = fused(x, lengths=lens)
    torch.manual_seed(7)
    out_u, _ = unrolled(x, lengths=lens)
    torch.testing.assert_close(out_f, out_u)
    out_f.sum().backward()
    out_u.sum().backward()
    for (name, a), b in zip(fused.named_parameters(), unrolled.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_one_mask_is_shared_by_every_time_step():
    rnn = Recurrent("elman", 3, 4, impl="unrolled", weight_dropout=0.5).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.manual_seed(3)
    out, _ = rnn(x)
    torch.manual_seed(3)
    cell = rnn.cells[0]
    W_hh = F.dropout(cell.weight_hh, 0.5)  # the one draw the forward call makes
    h = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(5):
        h = torch.tanh(x[t] @ cell.weight_ih.t() + cell.bias_ih + h @ W_hh.t() + cell.bias_hh)
        torch.testing.assert_close(out[t], h)


def test_no_dropconnect_in_eval_mode_and_entries_dropped_get_no_gradient():
    torch.manual_seed(0)
    rnn = Recurrent("elman", 3, 4, impl="fused", weight_dropout=0.5).double()
    plain = Recurrent("elman", 3, 4, impl="fused").double()
    plain.load_state_dict(rnn.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    rnn.eval(), plain.eval()
    torch.testing.assert_close(rnn(x)[0], plain(x)[0])
    rnn.train()
    torch.manual_seed(1)
    mask = F.dropout(torch.ones(4, 4, dtype=torch.float64), 0.5) == 0
    torch.manual_seed(1)
    rnn(x)[0].sum().backward()
    assert mask.any() and (rnn.cells[0].weight_hh.grad[mask] == 0).all()


def test_bad_weight_dropout_is_a_value_error():
    with pytest.raises(ValueError, match="weight_dropout"):
        Recurrent("lstm", 3, 4, weight_dropout=1.0)
