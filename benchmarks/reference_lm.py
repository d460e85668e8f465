"""The plain-PyTorch language model and training step of pytorch/examples' word_language_model:
the reference that benchmarks/lm_throughput.py and benchmarks/time_to_quality.py hold elman
against (tests/train/test_reference_loop.py checks that elman's trainer takes the same steps).

    model = ReferenceLM(V, H, layers)                 # nn.Embedding → nn.LSTM → nn.Linear
    h = reference_step(model, opt, x, y, h, clip)     # detach, forward, mean CE, clip, step
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ReferenceLM(nn.Module):
    """Embedding (H) → ``layers``-layer LSTM (H) → Linear (V); with ``init`` every weight
    is drawn from U(−init, init) (Zaremba et al.), else torch's defaults."""

    def __init__(self, V: int, H: int, layers: int, init: float | None = None) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, H)
        self.rnn = nn.LSTM(H, H, layers)
        self.out = nn.Linear(H, V)
        if init is not None:
            for p in self.parameters():
                nn.init.uniform_(p, -init, init)

    def forward(self, x: Tensor, h: tuple[Tensor, Tensor] | None):
        y, h = self.rnn(self.emb(x), h)
        return self.out(y), h


def reference_step(
    model: ReferenceLM,
    opt: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    h: tuple[Tensor, Tensor] | None,
    clip: float,
) -> tuple[Tensor, Tensor]:
    """One truncated-BPTT step on inputs x and targets y (T, B); returns the carried state."""
    if h is not None:
        h = (h[0].detach(), h[1].detach())
    logits, h = model(x, h)
    loss = nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    loss.item()  # the reference logs its loss every step
    return h
