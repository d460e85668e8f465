"""Two of AWD-LSTM's regularisers (Merity, Keskar and Socher 2018) for recurrent language models.

* Locked (variational) dropout (Gal and Ghahramani 2016): one Bernoulli mask m ∈ {0, 1/(1−p)}^D
  per sequence, the same at every time step, x̃_t = m ⊙ x_t. Standard dropout draws a new mask
  for every t.
* Embedding (word-type) dropout: whole rows of the embedding matrix C are dropped, so a word
  dropped from a batch is dropped at every position it occurs, C̃ = diag(m) C with
  m_w ∈ {0, 1/(1−p)} per word type.
* Activation regularisation, AR = α · mean(h̃_t²) over the top layer's dropped outputs h̃_t, and
  temporal activation regularisation, TAR = β · mean((h_t − h_{t−1})²) over its outputs before
  dropout: penalties of the training loss only (the trainer adds the model's ``penalty()``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence over inputs of shape (T, B, D)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p = {p}: must be in [0, 1)")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(keep) / keep  # (1, B, D)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout(p: float, locked: bool) -> nn.Module:
    """A dropout layer of rate ``p``: locked (one mask per sequence) or standard."""
    return LockedDropout(p) if locked else nn.Dropout(p)


def embed_with_word_dropout(embedding: nn.Embedding, inputs: Tensor, p: float) -> Tensor:
    """C w_t with whole word types dropped at rate ``p`` while training (C̃ = diag(m) C).

    Row w of C̃ is m_w C_w, so only the rows read are scaled: (C̃)[w_t] = m[w_t] C[w_t], the same
    numbers as indexing diag(m) C. Forming diag(m) C itself multiplied all V × D weights forward
    and backward on every step, which on one thread cost a 33k-word model a tenth of its step.
    """
    if not embedding.training or p == 0.0:
        return embedding(inputs)
    weight = embedding.weight
    keep = 1.0 - p
    mask = weight.new_empty(weight.size(0), 1).bernoulli_(keep) / keep  # (V, 1)
    return embedding(inputs) * F.embedding(inputs, mask)


def activation_penalty(raw: Tensor, dropped: Tensor, ar: float, tar: float) -> Tensor:
    """α · mean(h̃²) + β · mean((h_t − h_{t−1})²) for outputs of shape (T, B, H)."""
    penalty = raw.new_zeros((), dtype=torch.float32)
    if ar > 0.0:
        penalty = penalty + ar * dropped.float().pow(2).mean()
    if tar > 0.0 and raw.size(0) > 1:
        penalty = penalty + tar * (raw[1:] - raw[:-1]).float().pow(2).mean()
    return penalty
