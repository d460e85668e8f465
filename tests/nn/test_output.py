"""Output layers: the class-based softmax against NumPy, the blockwise linear + cross entropy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from elman.nn.output import (
    ClassSoftmax,
    default_classes,
    factored_output,
    frequency_bins,
    linear_cross_entropy,
)


def numpy_class_softmax(m: ClassSoftmax, h: np.ndarray) -> np.ndarray:
    """P(w | h) = P(c(w) | h) · P(w | c(w), h), each factor a softmax written out in NumPy."""
    U, d = m.classes.weight.detach().double().numpy(), m.classes.bias.detach().double().numpy()
    W, b = m.words.weight.detach().double().numpy(), m.words.bias.detach().double().numpy()
    starts = m.starts.tolist()

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    p_class = softmax(h @ U.T + d)
    scores = h @ W.T + b
    p = np.empty_like(scores)
    for c in range(len(starts) - 1):
        s, e = starts[c], starts[c + 1]
        p[:, s:e] = p_class[:, c : c + 1] * softmax(scores[:, s:e])
    return p


def test_frequency_bins_cut_equal_token_mass_into_contiguous_nonempty_runs() -> None:
    # 207 tokens; the shares 1/4, 2/4, 3/4 are reached at words 0, 1 and 2
    counts = torch.tensor([100, 50, 30, 10, 5, 5, 3, 2, 1, 1])
    assert frequency_bins(counts, 4).tolist() == [0, 1, 2, 3, 10]
    # more classes than the mass can separate: every class still gets a word
    assert frequency_bins(counts, 10).tolist() == list(range(11))
    assert frequency_bins(counts, 1).tolist() == [0, 10]
    # uniform counts: equal runs
    assert frequency_bins(torch.ones(12), 3).tolist() == [0, 4, 8, 12]
    rng = np.random.default_rng(0)
    zipf = torch.from_numpy(np.sort(rng.zipf(1.3, size=500))[::-1].copy())
    starts = frequency_bins(zipf, 23)
    assert starts[0] == 0 and starts[-1] == 500 and bool((starts.diff() > 0).all())


def test_class_softmax_equals_numpy_and_is_normalised() -> None:
    torch.manual_seed(0)
    counts = torch.tensor([40, 20, 10, 8, 6, 5, 4, 3, 2, 1, 1])
    m = ClassSoftmax(5, 11, 4, counts).double()
    h = torch.randn(9, 5, dtype=torch.float64)
    logp = m.log_prob(h)
    np.testing.assert_allclose(logp.exp().detach().numpy(), numpy_class_softmax(m, h.numpy()))
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(9, dtype=torch.float64))
    targets = torch.randint(0, 11, (9,))
    out = m(h, targets)
    torch.testing.assert_close(out.output, logp.gather(1, targets[:, None]).squeeze(1))
    torch.testing.assert_close(out.loss, -out.output.mean())


def test_class_softmax_gradcheck_float64() -> None:
    torch.manual_seed(1)
    m = ClassSoftmax(4, 8, 3).double()
    h = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 7, 3, 3, 5, 1])
    assert torch.autograd.gradcheck(lambda x: m(x, targets).output, (h,))
    assert torch.autograd.gradcheck(lambda x: m.log_prob(x), (h,))


def test_class_bins_travel_with_the_weights_and_settings_are_checked() -> None:
    trained = ClassSoftmax(4, 10, 3, torch.tensor([50, 20, 9, 8, 5, 4, 2, 1, 1, 1]))
    fresh = ClassSoftmax(4, 10, 3)  # equal runs until the checkpoint is loaded
    assert fresh.starts.tolist() != trained.starts.tolist()
    fresh.load_state_dict(trained.state_dict())
    assert fresh.starts.tolist() == trained.starts.tolist()
    h = torch.randn(2, 4)
    torch.testing.assert_close(fresh.log_prob(h), trained.log_prob(h))
    empty = fresh(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert empty.output.shape == (0,)
    with pytest.raises(ValueError, match="output_classes 11"):
        ClassSoftmax(4, 10, 11)
    with pytest.raises(ValueError, match="counts has 3 entries"):
        ClassSoftmax(4, 10, 2, torch.ones(3))
    assert default_classes(33278) == 183
    assert factored_output("class", 4, 100).num_classes == 10
    assert factored_output("softmax", 4, 100) is None
    with pytest.raises(ValueError, match="output 'hierarchical' unknown"):
        factored_output("hierarchical", 4, 100)


@pytest.mark.parametrize("rows", [1, 8, 37, 256])
def test_linear_cross_entropy_equals_torchs_loss_and_gradients(rows: int) -> None:
    torch.manual_seed(0)
    N, H, V = 37, 5, 11
    h = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    w = torch.randn(V, H, dtype=torch.float64, requires_grad=True)
    b = torch.randn(V, dtype=torch.float64, requires_grad=True)
    target = torch.randint(V, (N,))
    target[[3, 20]] = -100  # padding: ignore_index
    results = []
    for loss_fn in (
        lambda: F.cross_entropy(F.linear(h, w, b), target, reduction="sum"),
        lambda: linear_cross_entropy(h, w, b, target, rows=rows),
    ):
        for p in (h, w, b):
            p.grad = None
        loss = loss_fn()
        (0.7 * loss).backward()  # the backward scales by the incoming gradient
        results.append((loss.detach(), [p.grad.clone() for p in (h, w, b)]))
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, g in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, g, rtol=1e-12, atol=1e-12)


def test_linear_cross_entropy_stays_finite_far_below_the_top_logit() -> None:
    # exp(z_target − max) underflows to 0 in float32 here; the loss must still be ~200 nats
    h = torch.tensor([[1.0]])
    w = torch.tensor([[0.0], [200.0]])
    loss = linear_cross_entropy(h, w, torch.zeros(2), torch.tensor([0]))
    torch.testing.assert_close(loss, torch.tensor(200.0))


def test_linear_cross_entropy_without_a_bias_equals_torchs_loss_and_gradients() -> None:
    torch.manual_seed(1)
    h = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    target = torch.randint(6, (9,))
    want = F.cross_entropy(F.linear(h, w), target, reduction="sum")
    want_grads = torch.autograd.grad(want, (h, w))
    got = linear_cross_entropy(h, w, None, target, rows=4)
    got_grads = torch.autograd.grad(got, (h, w))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, g in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, g, rtol=1e-12, atol=1e-12)
