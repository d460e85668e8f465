"""The (deep) bidirectional RNN tagger.

Each word w_t is read as the concatenation of a word embedding and, optionally, a vector spelt
from its characters by a small character-level BiRNN (so a word never seen in training still
gets features from its shape: suffixes, capitals, digits, hyphens):

    x_t = [E w_t ; c_t],   c_t = [h→_last ; h←_first]  of a BiRNN over the characters of w_t

The sentence is read by L bidirectional recurrent layers, layer i reading the concatenated
states of layer i−1 (:class:`elman.nn.Recurrent`), and every position predicts its tag from
both directions of the top layer:

    ŷ_t = softmax(U [h→_t ; h←_t] + c)

trained on the summed cross entropy −Σ_t log ŷ_{t, y_t} over the real words of the batch;
padded positions are masked out of the loss and of the recurrences (each backward direction
starts at its sentence's true end), so padding never changes a prediction. With
``bidirectional = False`` the model is the unidirectional RNN tagger ŷ_t = softmax(U h→_t + c).

Pretrained word vectors (``data.vectors``) either start E (then E is trained on), or, with
``frozen_vectors``, stay fixed in a second table P next to a trained E that starts at zero,
E w_t + P w_t (Dozat et al. 2017): words never seen in training then keep exactly the vector
space the trained words were fitted in.

Regularisation: dropout on x_t (``dropout_embedding``), between layers (``dropout_hidden``) and
on the top states (``dropout_output``); word dropout replaces a training word's id by ``<unk>``
with probability ``dropout_words``, so that the ``<unk>`` embedding is trained and the model
learns to lean on the characters of rare words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elman.data.batching import IGNORE_INDEX
from elman.data.tagging import TagBatch
from elman.models.limits import MAX_LAYERS, check_probabilities, check_sizes
from elman.nn import Recurrent

UNK_ID = 1  # elman.data.tagging.SPECIALS: <pad> = 0, <unk> = 1


@dataclass
class TaggerConfig:
    vocab_size: int = 0  # the three sizes are filled in from the training vocabularies
    char_vocab_size: int = 0
    num_tags: int = 0
    cell: str = "lstm"  # elman | lstm | gru, for the sentence and the character RNNs
    cell_options: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 100  # rows of E (and of P)
    char_embedding_dim: int = 32  # 0: no character encoder
    char_hidden_size: int = 64  # per direction
    hidden_size: int = 128  # per direction, every layer
    num_layers: int = 2
    bidirectional: bool = True
    dropout_embedding: float = 0.3  # on x_t
    dropout_hidden: float = 0.3  # between the recurrent layers
    dropout_output: float = 0.3  # on the top states, before U
    dropout_words: float = 0.0  # a training word's id becomes <unk> with this probability
    frozen_vectors: bool = False  # with data.vectors: E w_t + P w_t, P fixed, E from zero
    impl: str = "auto"

    def __post_init__(self) -> None:
        check_sizes(self, ("embedding_dim", "hidden_size"))
        check_sizes(self, ("num_layers",), high=MAX_LAYERS)
        check_sizes(self, ("char_embedding_dim",), low=0)  # 0: no character encoder
        if self.char_embedding_dim > 0:
            check_sizes(self, ("char_hidden_size",))
        check_probabilities(
            self, ("dropout_embedding", "dropout_hidden", "dropout_output", "dropout_words")
        )


class CharEncoder(nn.Module):
    """A word's characters -> c = [h→_last ; h←_first], shape (2·char_hidden_size,)."""

    def __init__(
        self, cell: str, num_chars: int, dim: int, hidden: int, **cell_options: Any
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, dim, padding_idx=0)
        self.rnn = Recurrent(
            cell, dim, hidden, bidirectional=True, batch_first=True, **cell_options
        )
        self.output_size = 2 * hidden

    def forward(self, chars: Tensor, lengths: Tensor) -> Tensor:
        """chars (U, C), lengths (U,) -> (U, 2·hidden)."""
        _, state = self.rnn(self.embedding(chars), lengths=lengths)
        h = state[0] if isinstance(state, tuple) else state  # (2, U, hidden): LSTM's h, not c
        return torch.cat([h[0], h[1]], dim=1)  # forward's last step, backward's first step


class Tagger(nn.Module):
    """Word (+ character) features, a stack of (bi)RNN layers, a softmax per word."""

    pretrained: Tensor | None  # the buffer P (frozen_vectors), else None

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        c = self.config = config
        for name in ("vocab_size", "char_vocab_size", "num_tags"):
            no_chars = name == "char_vocab_size" and c.char_embedding_dim == 0
            if getattr(c, name) < 1 and not no_chars:
                raise ValueError(f"{name} must be set (got {getattr(c, name)})")
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=0)
        if c.frozen_vectors:
            # P: filled from pretrained vectors by the task; a buffer, so saved but not trained.
            self.register_buffer("pretrained", torch.zeros(c.vocab_size, c.embedding_dim))
            nn.init.zeros_(self.embedding.weight)
        else:
            self.pretrained = None
        self.chars = (
            CharEncoder(
                c.cell,
                c.char_vocab_size,
                c.char_embedding_dim,
                c.char_hidden_size,
                **c.cell_options,
            )  # fmt: skip
            if c.char_embedding_dim > 0
            else None
        )
        input_size = c.embedding_dim + (self.chars.output_size if self.chars else 0)
        self.rnn = Recurrent(
            c.cell,
            input_size,
            c.hidden_size,
            num_layers=c.num_layers,
            bidirectional=c.bidirectional,
            dropout=c.dropout_hidden,
            batch_first=True,
            impl=c.impl,
            **c.cell_options,
        )
        self.drop_embedding = nn.Dropout(c.dropout_embedding)
        self.drop_output = nn.Dropout(c.dropout_output)
        self.output = nn.Linear(self.rnn.output_size, c.num_tags)  # U and c

    def forward(self, batch: TagBatch) -> Tensor:
        """Tag scores U [h→_t ; h←_t] + c, shape (B, T, num_tags); padded rows are not scores."""
        words = batch.words
        if self.training and self.config.dropout_words > 0:
            drop = torch.rand(words.shape, device=words.device) < self.config.dropout_words
            words = words.masked_fill(drop & (words != 0), UNK_ID)
        x = self.embedding(words)  # (B, T, embedding_dim)
        if self.pretrained is not None:
            x = x + F.embedding(words, self.pretrained)
        if self.chars is not None:
            spelt = self.chars(batch.chars, batch.char_lengths)  # (U, 2·char_hidden_size)
            x = torch.cat([x, spelt[batch.forms]], dim=2)  # (B, T, input_size)
        h, _ = self.rnn(self.drop_embedding(x), lengths=batch.lengths)  # (B, T, D·H)
        return self.output(self.drop_output(h))

    def loss(self, batch: TagBatch, state: None = None) -> tuple[Tensor, int, None]:
        """The trainer's contract: summed cross entropy over the real words, their count."""
        logits = self(batch)
        loss_sum = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),  # (B·T, K)
            batch.tags.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        return loss_sum, batch.num_tokens, None

    @torch.no_grad()
    def predict(self, batch: TagBatch) -> list[list[int]]:
        """The most probable tag id of every word, one list per sentence (padding dropped)."""
        best = self(batch).argmax(dim=2).cpu()  # (B, T)
        return [row[:n].tolist() for row, n in zip(best, batch.lengths.tolist(), strict=True)]


def build_tagger(config: TaggerConfig) -> Tagger:
    return Tagger(config)
