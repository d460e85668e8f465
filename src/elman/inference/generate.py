"""Sampling text from a language model: temperature, top-k and nucleus (top-p) sampling.

At each step the model's distribution ŷ_t = softmax(z_t / τ) is restricted to the k most probable
tokens (top-k) and/or to the smallest set whose probability reaches p (top-p, Holtzman et al.
2020), renormalised, and sampled with a seeded generator.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set the logits outside the top-k / top-p set to -inf. logits: shape (V,)."""
    if top_k is not None and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the mass before it already reaches p; the first always stays.
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def sample(
    model: nn.Module,
    prompt_ids: list[int],
    num_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> list[int]:
    """Continue ``prompt_ids`` by ``num_tokens`` sampled ids (temperature 0 means greedy).

    ``model(inputs (T, B), state) -> (logits (T, B, V), state)`` is the language-model contract.
    """
    if not prompt_ids:
        raise ValueError("prompt_ids must hold at least one id (e.g. the <eos> id)")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    generator = torch.Generator(device="cpu")
    if seed is not None:
        generator.manual_seed(seed)
    model.eval()
    inputs = torch.tensor(prompt_ids, dtype=torch.long, device=device).view(-1, 1)  # (T, 1)
    logits, state = model(inputs, None)
    out: list[int] = []
    for _ in range(num_tokens):
        z = logits[-1, 0].float().cpu()  # (V,)
        if temperature == 0:
            next_id = int(z.argmax())
        else:
            z = filter_logits(z / temperature, top_k, top_p)
            next_id = int(torch.multinomial(torch.softmax(z, -1), 1, generator=generator))
        out.append(next_id)
        step = torch.tensor([[next_id]], dtype=torch.long, device=device)  # (1, 1)
        logits, state = model(step, state)
    return out
