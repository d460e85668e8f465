"""Recurrent: fused = unrolled = a naive per-sequence loop; padding, packing, layout, errors."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from elman.nn import Recurrent

T, B, I, H = 5, 3, 3, 4
LENGTHS = torch.tensor([5, 2, 4])

# (cell, options) for every cell and variant; the first four have a torch kernel
FUSABLE = [
    ("elman", {"nonlinearity": "tanh"}),
    ("elman", {"nonlinearity": "relu"}),
    ("lstm", {}),
    ("gru", {"variant": "cudnn"}),
]
UNFUSABLE = [("elman", {"nonlinearity": "sigmoid"}), ("gru", {"variant": "cho"})]
ALL = FUSABLE + UNFUSABLE


def cell_id(case):
    cell, options = case
    return "-".join([cell, *map(str, options.values())])


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def make_pair(cell, options, dtype, **kwargs):
    """A fused and an unrolled Recurrent holding the same parameters."""
    torch.manual_seed(0)
    fused = Recurrent(cell, I, H, impl="fused", **kwargs, **options).to(dtype)
    unrolled = Recurrent(cell, I, H, impl="unrolled", **kwargs, **options).to(dtype)
    unrolled.load_state_dict(fused.state_dict())
    return fused, unrolled


def random_state(rec, dtype):
    shape = (rec.num_layers * rec.num_directions, B, H)
    if rec.cell_type == "lstm":
        return torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
    return torch.randn(shape, dtype=dtype)


def outputs_and_grads(rec, x, state, lengths):
    """out, final state and the gradients of a random projection of both w.r.t. the
    parameters, the input and the initial state."""
    x = x.clone().requires_grad_()
    leaves = [x] + list(rec.parameters())
    if state is not None:
        state = tuple(s.clone().requires_grad_() for s in as_tuple(state))
        leaves += list(state)
        state = state if rec.cell_type == "lstm" else state[0]
    out, final = rec(x, state, lengths=lengths)
    g = torch.Generator().manual_seed(7)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    for s in as_tuple(final):
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
    grads = torch.autograd.grad(loss, leaves)
    return out, as_tuple(final), grads


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("variable", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("initial", [False, True], ids=["zero0", "state0"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("case", FUSABLE, ids=cell_id)
def test_fused_equals_unrolled(case, num_layers, bidirectional, initial, variable, dtype, tol):
    cell, options = case
    fused, unrolled = make_pair(
        cell, options, dtype, num_layers=num_layers, bidirectional=bidirectional
    )
    assert fused.uses_fused and not unrolled.uses_fused
    x = torch.randn(T, B, I, dtype=dtype)
    state = random_state(fused, dtype) if initial else None
    lengths = LENGTHS if variable else None
    want = outputs_and_grads(fused, x, state, lengths)
    got = outputs_and_grads(unrolled, x, state, lengths)
    for w, g in zip(want, got, strict=True):
        for a, b in zip(w if isinstance(w, tuple) else [w], g if isinstance(g, tuple) else [g],
                        strict=True):  # fmt: skip
            torch.testing.assert_close(b, a, rtol=0, atol=tol)


def naive(rec, x, state, lengths):
    """Each sequence alone, cut to its true length, one cell call per step; the
    backward direction runs the cell forward over the reversed sequence."""
    D, L = rec.num_directions, rec.num_layers
    state = as_tuple(state) if state is not None else as_tuple(rec.init_state(B, dtype=x.dtype))
    outs = torch.zeros(T, B, D * H, dtype=x.dtype)
    finals = [torch.zeros_like(s) for s in state]
    for b in range(B):
        seq = x[: lengths[b], b]  # (T_b, I)
        for layer in range(L):
            per_direction = []
            for d in range(D):
                k = layer * D + d
                cell = rec.cells[k]
                s = tuple(part[k, b : b + 1] for part in state)
                ys = []
                for x_t in seq.flip(0) if d else seq:
                    s = cell(x_t.unsqueeze(0), s if len(s) == 2 else s[0])
                    s = as_tuple(s)
                    ys.append(s[0][0])
                ys = torch.stack(ys)  # (T_b, H)
                per_direction.append(ys.flip(0) if d else ys)
                for i, part in enumerate(s):
                    finals[i][k, b] = part[0]
            seq = torch.cat(per_direction, 1)  # (T_b, D*H)
        outs[: lengths[b], b] = seq
    return outs, tuple(finals)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("case", ALL, ids=cell_id)
def test_unrolled_equals_naive_per_sequence_loop(case, bidirectional):
    """Covers every variant (also those without a torch kernel): the backward direction
    is the forward cell on each reversed sequence, starting at its true end."""
    cell, options = case
    torch.manual_seed(1)
    rec = Recurrent(cell, I, H, num_layers=2, bidirectional=bidirectional, impl="unrolled",
                    **options).double()  # fmt: skip
    x = torch.randn(T, B, I, dtype=torch.float64)
    state = random_state(rec, torch.float64)
    with torch.no_grad():
        out, final = rec(x, state, lengths=LENGTHS)
        want_out, want_final = naive(rec, x, state, LENGTHS)
    torch.testing.assert_close(out, want_out, rtol=0, atol=1e-12)
    for g, w in zip(as_tuple(final), want_final, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


PADDING_CASES = [(c, "fused") for c in FUSABLE] + [(c, "unrolled") for c in ALL]


@pytest.mark.parametrize(
    "case, impl", PADDING_CASES, ids=[f"{cell_id(c)}-{i}" for c, i in PADDING_CASES]
)
def test_padding_never_changes_a_result(case, impl):
    cell, options = case
    torch.manual_seed(2)
    rec = Recurrent(cell, I, H, num_layers=2, bidirectional=True, impl=impl, **options)
    x = torch.randn(T, B, I)
    pad = torch.arange(T).unsqueeze(1) >= LENGTHS.unsqueeze(0)  # (T, B)
    garbage = x.masked_fill(pad.unsqueeze(2), 1e3)
    out, final = rec(x, lengths=LENGTHS)
    out2, final2 = rec(garbage, lengths=LENGTHS)
    assert not out[pad].any(), "padded outputs must be exactly zero"
    torch.testing.assert_close(out2, out, rtol=0, atol=0)
    for a, b in zip(as_tuple(final), as_tuple(final2), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    # each sequence alone, unpadded, gives the same numbers
    for b in range(B):
        alone, alone_final = rec(x[: LENGTHS[b], b : b + 1])
        torch.testing.assert_close(out[: LENGTHS[b], b : b + 1], alone, rtol=0, atol=1e-6)
        for a, s in zip(as_tuple(alone_final), as_tuple(final), strict=True):
            torch.testing.assert_close(s[:, b : b + 1], a, rtol=0, atol=1e-6)


@pytest.mark.parametrize("impl", ["fused", "unrolled"])
def test_packed_sequence_in_packed_out(impl):
    torch.manual_seed(3)
    rec = Recurrent("lstm", I, H, num_layers=2, bidirectional=True, impl=impl).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    state = random_state(rec, torch.float64)
    packed = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    out, (h, c) = rec(packed, state)
    assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
    torch.testing.assert_close(out.sorted_indices, packed.sorted_indices)
    padded, lengths = pad_packed_sequence(out, total_length=T)
    want, (wh, wc) = rec(x, state, lengths=LENGTHS)
    torch.testing.assert_close(padded, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, wh, rtol=0, atol=1e-12)
    torch.testing.assert_close(c, wc, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", FUSABLE, ids=cell_id)
def test_same_weights_as_torch_modules(case):
    """Our names map to torch.nn.RNN/LSTM/GRU's and the numbers agree."""
    cell, options = case
    torch.manual_seed(4)
    rec = Recurrent(cell, I, H, num_layers=2, bidirectional=True, impl="unrolled", **options)
    module = {
        "elman": lambda: torch.nn.RNN(
            I, H, 2, nonlinearity=options.get("nonlinearity", "tanh"), bidirectional=True
        ),
        "lstm": lambda: torch.nn.LSTM(I, H, 2, bidirectional=True),
        "gru": lambda: torch.nn.GRU(I, H, 2, bidirectional=True),
    }[cell]()
    names = rec.torch_names()
    assert sorted(names.values()) == sorted(dict(module.named_parameters()))
    module.load_state_dict({names[k]: v for k, v in rec.state_dict().items()})
    x = torch.randn(T, B, I)
    out, final = rec(x)
    want, want_final = module(x)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-5)
    for a, b in zip(as_tuple(final), as_tuple(want_final), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_one_layout_for_both_impls():
    fused = Recurrent("gru", I, H, num_layers=2, bidirectional=True, variant="cudnn")
    unrolled = Recurrent("gru", I, H, num_layers=2, bidirectional=True, variant="cudnn",
                         impl="unrolled")  # fmt: skip
    assert list(fused.state_dict()) == list(unrolled.state_dict())
    assert fused.cells[2].weight_ih.shape == (3 * H, 2 * H)  # layer 2 reads [h→; h←]


def test_auto_picks_fused_only_where_a_kernel_applies():
    assert Recurrent("elman", I, H).uses_fused
    assert Recurrent("elman", I, H, nonlinearity="relu", init="identity").uses_fused
    assert Recurrent("lstm", I, H, forget_bias=0.0).uses_fused
    assert Recurrent("gru", I, H, variant="cudnn").uses_fused
    assert not Recurrent("gru", I, H).uses_fused  # default variant is Cho et al.
    assert not Recurrent("elman", I, H, nonlinearity="sigmoid").uses_fused
    assert not Recurrent("lstm", I, H, impl="unrolled").uses_fused


def test_reset_parameters_redraws_with_the_cells_init():
    rec = Recurrent("elman", I, H, num_layers=2, nonlinearity="relu", init="identity",
                    identity_scale=0.5)  # fmt: skip
    with torch.no_grad():
        for p in rec.parameters():
            p.fill_(3.0)
    rec.reset_parameters()
    for cell in rec.cells:
        torch.testing.assert_close(cell.weight_hh.detach(), 0.5 * torch.eye(H))
        assert not cell.bias_hh.detach().any()


def test_attributes_and_init_state():
    rec = Recurrent("lstm", I, H, num_layers=3, bidirectional=True)
    assert (rec.cell_type, rec.hidden_size, rec.num_layers) == ("lstm", H, 3)
    assert (rec.num_directions, rec.output_size) == (2, 2 * H)
    h, c = rec.init_state(B, dtype=torch.float64)
    assert h.shape == c.shape == (6, B, H) and h.dtype == torch.float64 and not h.any()
    h = Recurrent("elman", I, H).init_state(B)
    assert isinstance(h, torch.Tensor) and h.shape == (1, B, H)


@pytest.mark.parametrize("impl", ["fused", "unrolled"])
def test_batch_first(impl):
    torch.manual_seed(5)
    rec = Recurrent("lstm", I, H, bidirectional=True, impl=impl)
    first = Recurrent("lstm", I, H, bidirectional=True, impl=impl, batch_first=True)
    first.load_state_dict(rec.state_dict())
    x = torch.randn(T, B, I)
    out, (h, _) = rec(x, lengths=LENGTHS)
    out_bf, (h_bf, _) = first(x.transpose(0, 1), lengths=LENGTHS)
    torch.testing.assert_close(out_bf.transpose(0, 1), out)
    torch.testing.assert_close(h_bf, h)


@pytest.mark.parametrize("impl", ["fused", "unrolled"])
def test_dropout_only_between_layers(impl):
    torch.manual_seed(6)
    x = torch.randn(T, B, I)
    one = Recurrent("lstm", I, H, dropout=0.5, impl=impl).train()
    torch.testing.assert_close(one(x)[0], one.eval()(x)[0])  # no dropout after the last layer
    two = Recurrent("lstm", I, H, num_layers=2, dropout=0.5, impl=impl).train()
    assert not torch.allclose(two(x)[0], two.eval()(x)[0])


def test_gradcheck_unrolled_with_lengths():
    torch.manual_seed(8)
    rec = Recurrent("gru", I, 2, num_layers=2, bidirectional=True, impl="unrolled").double()
    x = torch.randn(4, B, I, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])
    assert torch.autograd.gradcheck(lambda x: rec(x, lengths=lengths)[0], (x,))


@pytest.mark.parametrize(
    "make, argument, accepted",
    [
        (lambda: Recurrent("transformer", I, H), "cell", "'elman', 'lstm', 'gru'"),
        (lambda: Recurrent("elman", I, H, nonlinearity="gelu"), "nonlinearity", "'relu'"),
        (lambda: Recurrent("elman", I, H, impl="cudnn"), "impl", "'unrolled'"),
        (lambda: Recurrent("lstm", I, H, nonlinearity="tanh"), "nonlinearity", "forget_bias"),
        (lambda: Recurrent("gru", I, H, hiden_size=4), "hiden_size", "variant"),
        (lambda: Recurrent("gru", I, H, impl="fused"), "fused", "variant='cudnn'"),
        (lambda: Recurrent("elman", I, H, nonlinearity="sigmoid", impl="fused"), "fused",
         "sigmoid"),
        (lambda: Recurrent("lstm", I, H, num_layers=0), "num_layers", "positive integer"),
        (lambda: Recurrent("lstm", I, H, dropout=1.5), "dropout", "[0, 1)"),
    ],
)  # fmt: skip
def test_bad_constructor_arguments_are_named(make, argument, accepted):
    with pytest.raises(ValueError, match=argument) as info:
        make()
    assert accepted in str(info.value)


@pytest.mark.parametrize("impl", ["fused", "unrolled"])
def test_bad_forward_arguments_are_named(impl):
    rec = Recurrent("lstm", I, H, num_layers=2, impl=impl)
    x = torch.randn(T, B, I)
    cases = [
        (lambda: rec(torch.randn(B, I)), "x has shape .* expected \\(T, B, input_size\\)"),
        (lambda: rec(torch.randn(T, B, I + 1)), "input_size=3"),
        (lambda: rec(x.double()), "x has dtype torch.float64; expected .* torch.float32"),
        (lambda: rec(x.long()), "x has dtype torch.int64"),
        (lambda: rec(x, torch.zeros(2, B, H)), "state must be a pair \\(h, c\\)"),
        (lambda: rec(x, (torch.zeros(1, B, H),) * 2), "state must be .*\\(2, 3, 4\\)"),
        (lambda: rec(x, lengths=torch.tensor([5, 2])), "lengths must be .* \\(batch=3,\\)"),
        (lambda: rec(x, lengths=torch.tensor([6, 2, 1])), "lengths must lie in \\[1, T=5\\]"),
        (lambda: rec(x, lengths=torch.tensor([5.0, 2.0, 1.0])), "lengths must be an integer"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
