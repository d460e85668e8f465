"""Bengio et al.'s neural probabilistic language model (JMLR 2003), with direct connections.

The next word w_t is predicted from the n − 1 words before it:

    x = [C(w_{t−n+1}); …; C(w_{t−1})]            concatenated embeddings, ((n−1)·m,)
    ŷ = softmax(W2 tanh(W1 x + b1) + W3 x + b3)  distribution over the V words

One embedding table C is shared by every context position; W3 x are the *direct connections*
from the input to the output (``direct=False`` drops them: ŷ = softmax(W2 tanh(W1 x + b1) + b3)).
The paper writes the same model y = b + W x + U tanh(d + H x). Symbols → parameters:

    lecture   paper   parameter            shape
    C         C       ``embedding.weight``  (V, m)
    W1        H       ``hidden.weight``     (h, (n−1)·m)
    b1        d       ``hidden.bias``       (h,)
    W2        U       ``output.weight``     (V, h)
    b3        b       ``output.bias``       (V,)
    W3        W       ``direct.weight``     (V, (n−1)·m)   (absent when direct=False)

with m = ``embedding_dim``, h = ``hidden_size``, n − 1 = ``context_size``. Dropout (not in the
paper) applies to x (``dropout_embedding``, so also to the direct connections' input) and to the
hidden layer tanh(W1 x + b1) (``dropout_hidden``).

Under the trainer's ``train.autocast = "bfloat16"`` the matrix products of training steps run in
bfloat16 (the weights, the softmax and the loss stay float32; a factored output layer always
runs in float32); evaluation always computes in float32, so the reported perplexities are the
float32 model's. On CPUs with AVX-512 BF16 the V-way output layer, which dominates the cost,
runs several times faster.

``output = "adaptive"`` replaces the V-way output layer by Grave et al.'s (2017) adaptive softmax
(``torch.nn.AdaptiveLogSoftmaxWithLoss``) over the features [tanh(W1 x + b1); x] (only the first
part without direct connections): its head on those features is exactly W2 a + W3 x + b3
restricted to the frequent words and the cluster entries. ``output = "class"`` is Mikolov et
al.'s (2011) class-based softmax over the same features: ŷ_w = P(c(w) | a, x) · P(w | c(w), a, x),
where the second factor is W2 a + W3 x + b3 restricted to the words of class c(w)
(``elman.nn.output``). ``forward`` then returns the normalised log ŷ over all V words, so
evaluation and mixing are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elman.models.limits import (
    MAX_CONTEXT,
    check_div_value,
    check_init_range,
    check_probabilities,
    check_sizes,
)
from elman.nn.output import OUTPUTS, factored_output, float32


@dataclass
class NPLMConfig:
    vocab_size: int = 0  # filled in from the training vocabulary
    context_size: int = 4  # n − 1 previous words (a 5-gram model)
    embedding_dim: int = 100  # m, the word feature size (rows of C)
    hidden_size: int = 200  # h, the tanh layer
    direct: bool = True  # the direct connections W3 x
    dropout_embedding: float = 0.0  # on x, the concatenated embeddings
    dropout_hidden: float = 0.0  # on the hidden layer tanh(W1 x + b1)
    init_range: float | None = 0.1  # U(−r, r) for C, W2 and W3; None keeps torch defaults
    output: str = "softmax"  # softmax | adaptive (Grave et al. 2017) | class (Mikolov et al. 2011)
    adaptive_cutoffs: list[int] = field(default_factory=lambda: [2000, 10000])
    adaptive_div_value: float = 4.0
    output_classes: int = 0  # classes of output = "class"; 0 = ⌈√V⌉

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output {self.output!r} unknown; valid: {', '.join(OUTPUTS)}")
        if self.output_classes < 0:
            raise ValueError(f"output_classes must be 0 (⌈√V⌉) or more, got {self.output_classes}")
        check_probabilities(self, ("dropout_embedding", "dropout_hidden"))
        check_sizes(self, ("context_size",), high=MAX_CONTEXT)
        check_sizes(self, ("embedding_dim", "hidden_size"))
        check_init_range(self, ("init_range",))
        check_div_value(self.adaptive_div_value)


class NPLM(nn.Module):
    """ŷ = softmax(W2 tanh(W1 x + b1) + W3 x + b3) over a window of ``context_size`` words."""

    def __init__(
        self,
        vocab_size: int,
        context_size: int,
        embedding_dim: int,
        hidden_size: int,
        *,
        direct: bool = True,
        dropout_embedding: float = 0.0,
        dropout_hidden: float = 0.0,
        init_range: float | None = 0.1,
        output: str = "softmax",
        adaptive_cutoffs: list[int] | None = None,
        adaptive_div_value: float = 4.0,
        output_classes: int = 0,
        counts: Tensor | None = None,
    ) -> None:
        super().__init__()
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.context_size = context_size
        inputs = context_size * embedding_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim)  # C
        self.drop_embedding = nn.Dropout(dropout_embedding)
        self.hidden = nn.Linear(inputs, hidden_size)  # W1, b1
        self.drop_hidden = nn.Dropout(dropout_hidden)
        self.use_direct = direct
        # the adaptive or class softmax over [a; x]; None for the full W2 a + W3 x + b3
        self.factored = factored_output(
            output,
            hidden_size + (inputs if direct else 0),
            vocab_size,
            adaptive_cutoffs=adaptive_cutoffs,
            adaptive_div_value=adaptive_div_value,
            output_classes=output_classes,
            counts=counts,
        )
        self.output: nn.Linear | None  # W2, b3
        self.direct: nn.Linear | None  # W3
        if self.factored is not None:
            self.output = self.direct = None
        else:
            self.output = nn.Linear(hidden_size, vocab_size)  # W2, b3
            self.direct = nn.Linear(inputs, vocab_size, bias=False) if direct else None  # W3
        if init_range is not None:
            nn.init.uniform_(self.embedding.weight, -init_range, init_range)
        if init_range is not None and self.output is not None:
            nn.init.uniform_(self.output.weight, -init_range, init_range)
            nn.init.zeros_(self.output.bias)
            if self.direct is not None:
                nn.init.uniform_(self.direct.weight, -init_range, init_range)

    def features(self, contexts: Tensor) -> tuple[Tensor, Tensor]:
        """x = the concatenated embeddings and a = tanh(W1 x + b1), after their dropouts."""
        x = self.embedding(contexts).flatten(1)  # (B, n−1, m) -> (B, (n−1)·m)
        x = self.drop_embedding(x)
        return x, self.drop_hidden(torch.tanh(self.hidden(x)))  # (B, h)

    def _factored_features(self, contexts: Tensor) -> Tensor:
        """[a; x] (a alone without direct connections) for a factored output, in float32.

        Only the hidden layer runs under a bfloat16 autocast: torch's adaptive softmax cannot
        mix dtypes (its index_copy_ fails) and the factored layers are cheap anyway.
        """
        x, a = self.features(contexts)
        dtype = self.embedding.weight.dtype
        return torch.cat([a.to(dtype), x.to(dtype)], dim=1) if self.use_direct else a.to(dtype)

    def forward(self, contexts: Tensor) -> Tensor:
        """contexts: shape (B, n − 1) word ids, oldest first → logits, shape (B, V).

        With a factored output these are the normalised log ŷ (log_softmax leaves them as
        they are), so every consumer of logits works unchanged.
        """
        if self.factored is not None:
            features = self._factored_features(contexts)
            with float32(contexts):
                return self.factored.log_prob(features)
        assert self.output is not None  # the full softmax's W2, b3 exist without a factored layer
        x, a = self.features(contexts)
        logits = self.output(a)  # W2 a + b3, (B, V)
        if self.direct is not None:
            logits = logits + self.direct(x)  # + W3 x
        return logits.to(self.output.bias.dtype)  # float32 logits from a bfloat16 autocast

    def loss(self, batch: Any, state: None = None) -> tuple[Tensor, int, None]:
        """Summed cross entropy over the batch's targets, their count, and no state."""
        if self.factored is not None:
            # only each target's cluster (and the adaptive head) is scored
            features = self._factored_features(batch.contexts)
            with float32(batch.contexts):
                out = self.factored(features, batch.targets)
            return -out.output.sum(), batch.num_tokens, None
        logits = self(batch.contexts)
        loss_sum = F.cross_entropy(logits, batch.targets, reduction="sum")
        return loss_sum, batch.num_tokens, None


def build_nplm(config: NPLMConfig, counts: Tensor | None = None) -> NPLM:
    """The model a recipe's ``[model]`` section describes (``counts``: see ``ClassSoftmax``)."""
    return NPLM(
        config.vocab_size,
        config.context_size,
        config.embedding_dim,
        config.hidden_size,
        direct=config.direct,
        dropout_embedding=config.dropout_embedding,
        dropout_hidden=config.dropout_hidden,
        init_range=config.init_range,
        output=config.output,
        adaptive_cutoffs=config.adaptive_cutoffs,
        adaptive_div_value=config.adaptive_div_value,
        output_classes=config.output_classes,
        counts=counts,
    )
