"""Attention: weights are a distribution over the real positions, and match the equations."""

from __future__ import annotations

import pytest
import torch

from elman.nn.attention import AdditiveAttention, MultiplicativeAttention, build_attention

B, S, Q, K, A = 3, 5, 4, 6, 7


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(B, Q, generator=g)
    memory = torch.randn(B, S, K, generator=g)
    lengths = torch.tensor([5, 2, 1])
    mask = torch.arange(S).unsqueeze(0) < lengths.unsqueeze(1)  # (B, S)
    return query, memory, mask


@pytest.fixture(params=["additive", "multiplicative"])
def attention(request):
    torch.manual_seed(0)
    return build_attention(request.param, Q, K, A)


def test_weights_sum_to_one_and_ignore_padding(attention):
    query, memory, mask = inputs()
    context, weights = attention(query, attention.precompute(memory), memory, mask)
    assert context.shape == (B, K) and weights.shape == (B, S)
    torch.testing.assert_close(weights.sum(1), torch.ones(B))
    assert bool((weights[~mask] == 0).all()) and bool((weights[mask] > 0).all())
    assert weights[2, 0] == 1.0  # one real position takes all the weight
    noisy = memory.masked_fill(~mask.unsqueeze(2), 1e6)  # whatever padding holds
    context2, weights2 = attention(query, attention.precompute(noisy), noisy, mask)
    torch.testing.assert_close(context2, context)
    torch.testing.assert_close(weights2, weights)


def test_additive_is_bahdanaus_score():
    torch.manual_seed(1)
    att = AdditiveAttention(Q, K, A)
    query, memory, mask = inputs(1)
    _, weights = att(query, att.precompute(memory), memory, mask)
    W, U, b, v = att.query.weight, att.key.weight, att.key.bias, att.v.weight[0]
    for i in range(B):
        n = int(mask[i].sum())
        e = torch.stack([v @ torch.tanh(W @ query[i] + U @ memory[i, j] + b) for j in range(n)])
        torch.testing.assert_close(weights[i, :n], torch.softmax(e, 0))


def test_multiplicative_is_luongs_general_score():
    torch.manual_seed(2)
    att = MultiplicativeAttention(Q, K)
    query, memory, mask = inputs(2)
    context, weights = att(query, att.precompute(memory), memory, mask)
    for i in range(B):
        n = int(mask[i].sum())
        e = torch.stack([query[i] @ att.weight @ memory[i, j] for j in range(n)])
        a = torch.softmax(e, 0)
        torch.testing.assert_close(weights[i, :n], a)
        torch.testing.assert_close(context[i], (a.unsqueeze(1) * memory[i, :n]).sum(0))


def test_unknown_kind():
    with pytest.raises(ValueError, match="additive, multiplicative"):
        build_attention("dot", Q, K, A)
