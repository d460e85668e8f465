"""Recurrent neural network language model.

The lecture's RNN LM, with any of elman's cells and any depth:

    x_t = C w_t                                  (embedding of the input word)
    h_t = σ(W_hh h_{t-1} + W_hx x_t)             (or an LSTM / GRU step, stacked L times)
    ŷ_t = softmax(W_S h_t + b)                   (distribution over the next word; no b with
                                                  ``output_bias = false``)

trained on the cross entropy J = −(1/T) Σ_t log ŷ_{t, w_{t+1}} and reported as perplexity exp(J).
A training step computes J block by block without keeping the (T·B, V) logits
(``elman.nn.output.linear_cross_entropy``); evaluation uses the plain logits.
Dropout (Zaremba et al. 2014) applies to the embeddings, between layers and to the top layer's
outputs (with ``locked_dropout`` the embedding, between-layer and output masks are drawn once per
sequence, Gal and Ghahramani 2016; ``dropout_words`` drops whole word types from C;
``activation_reg`` and ``temporal_activation_reg`` add AWD-LSTM's AR and TAR to the training
loss; ``elman.nn.regularisers``);
``weight_dropout`` is DropConnect on every W_hh (one mask per batch, shared by all its
time steps: the weight-dropped RNN of Merity et al. 2018), which regularises the recurrence itself
and still runs in the fused kernel. With ``tie_weights`` the output matrix W_S is the embedding
matrix C (Press & Wolf 2017); with ``output = "class"`` it is the class softmax's word matrix W.
The lecture's sigmoid RNN LM, h_t = σ(W_hh h_{t-1} + W_hx x_t), ŷ_t = softmax(W_S h_t) with no
bias anywhere, is ``cell = "elman"``, ``cell_options = {nonlinearity = "sigmoid", bias = false}``
and ``output_bias = false`` (recipes/ptb-rnn-lecture.toml); it needs no special code.

``output = "adaptive"`` replaces the V-way softmax by Grave et al.'s (2017) adaptive softmax
(``torch.nn.AdaptiveLogSoftmaxWithLoss``): a head over the most frequent words plus one entry per
tail cluster, each cluster a smaller softmax behind a projection of size H / div_value^k.
``output = "class"`` is Mikolov et al.'s (2011) class-based softmax,
ŷ_t,w = P(c(w) | h_t) · P(w | c(w), h_t) over ``output_classes`` frequency classes (default ⌈√V⌉;
``elman.nn.output``). The vocabulary's ids are in descending frequency
(``elman.data.vocabulary``), which is what the cutoffs and classes assume. Both are still a
normalised distribution: ``forward`` returns log ŷ_t over all V words, so perplexity, mixing and
sampling use them as they use the full softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elman.models.limits import (
    MAX_LAYERS,
    check_div_value,
    check_init_range,
    check_probabilities,
    check_sizes,
)
from elman.nn import Recurrent
from elman.nn.output import (
    OUTPUTS,
    ClassSoftmax,
    factored_output,
    float32,
    linear_cross_entropy,
)
from elman.nn.regularisers import activation_penalty, dropout, embed_with_word_dropout

State = Tensor | tuple[Tensor, Tensor] | None


@dataclass
class RNNLMConfig:
    vocab_size: int = 0  # filled in from the training vocabulary
    cell: str = "lstm"
    embedding_dim: int = 200
    hidden_size: int = 200
    num_layers: int = 2
    cell_options: dict[str, Any] = field(default_factory=dict)
    impl: str = "auto"
    dropout_embedding: float = 0.0
    dropout_hidden: float = 0.0  # between recurrent layers
    dropout_output: float = 0.0
    weight_dropout: float = 0.0  # DropConnect on the recurrent matrices W_hh
    locked_dropout: bool = False  # one mask per sequence for every dropout but weight_dropout
    dropout_words: float = 0.0  # embedding dropout: whole word types dropped (Merity et al.)
    activation_reg: float = 0.0  # AR: α · mean(h̃_t²) of the top layer's dropped outputs
    temporal_activation_reg: float = 0.0  # TAR: β · mean((h_t − h_{t−1})²) before dropout
    tie_weights: bool = False
    output_bias: bool = True  # the b of softmax(W_S h_t + b); false: the lecture's softmax(W_S h_t)
    init_range: float | None = 0.1  # U(-r, r) for the embedding and W_S; None keeps torch defaults
    recurrent_init_range: float | None = None  # U(-r, r) for every recurrent weight (Zaremba)
    output: str = "softmax"  # softmax | adaptive (Grave et al. 2017) | class (Mikolov et al. 2011)
    adaptive_cutoffs: list[int] = field(default_factory=lambda: [2000, 10000])
    adaptive_div_value: float = 4.0
    output_classes: int = 0  # classes of output = "class"; 0 = ⌈√V⌉

    def __post_init__(self) -> None:
        check_sizes(self, ("embedding_dim", "hidden_size"))
        check_sizes(self, ("num_layers",), high=MAX_LAYERS)
        check_probabilities(
            self,
            ("dropout_embedding", "dropout_hidden", "dropout_output", "weight_dropout",
             "dropout_words"),
        )  # fmt: skip
        check_init_range(self, ("init_range", "recurrent_init_range"))
        for name in ("activation_reg", "temporal_activation_reg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} = {value}: must be a finite number >= 0")
        check_div_value(self.adaptive_div_value)
        if self.output not in OUTPUTS:
            raise ValueError(f"output {self.output!r} unknown; valid: {', '.join(OUTPUTS)}")
        if self.output == "adaptive" and self.tie_weights:
            raise ValueError(
                "tie_weights needs output = softmax or class (the adaptive tails hold no V × H "
                "matrix to tie)"
            )
        if not self.output_bias and self.output != "softmax":
            raise ValueError(
                f"output_bias = false needs output = softmax (the {self.output} softmax keeps "
                "its biases)"
            )
        if self.output_classes < 0:
            raise ValueError(f"output_classes must be 0 (⌈√V⌉) or more, got {self.output_classes}")
        if self.tie_weights and self.embedding_dim != self.hidden_size:
            raise ValueError(
                f"tie_weights needs embedding_dim == hidden_size "
                f"(got {self.embedding_dim} and {self.hidden_size})"
            )


class RNNLM(nn.Module):
    """Embedding → Recurrent → W_S; ``forward`` gives logits and the next state.

    ``counts`` (training-token count per word id) places the class softmax's frequency bins;
    a model about to load a checkpoint needs none (the bins are saved with the weights).
    """

    def __init__(self, config: RNNLMConfig, counts: Tensor | None = None) -> None:
        super().__init__()
        if config.vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive, got {config.vocab_size}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.drop_embedding = dropout(config.dropout_embedding, config.locked_dropout)
        self.recurrent = Recurrent(
            config.cell,
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout_hidden,
            impl=config.impl,
            weight_dropout=config.weight_dropout,
            locked_dropout=config.locked_dropout,
            **config.cell_options,
        )
        self.drop_output = dropout(config.dropout_output, config.locked_dropout)
        # the adaptive or class softmax; None for the full softmax W_S (``decoder``)
        self.factored = factored_output(
            config.output,
            config.hidden_size,
            config.vocab_size,
            adaptive_cutoffs=config.adaptive_cutoffs,
            adaptive_div_value=config.adaptive_div_value,
            output_classes=config.output_classes,
            counts=counts,
        )
        if self.factored is None:
            self.decoder = nn.Linear(config.hidden_size, config.vocab_size, config.output_bias)
            if config.tie_weights:
                self.decoder.weight = self.embedding.weight
        elif config.tie_weights:  # the class softmax's W, like W_S, holds one row per word
            # RNNLMConfig refuses tie_weights with the adaptive softmax (no V × H matrix)
            assert isinstance(self.factored, ClassSoftmax), type(self.factored)
            self.factored.words.weight = self.embedding.weight
        self._penalty: Tensor | None = None
        self._init_weights()

    def _init_weights(self) -> None:
        r = self.config.init_range
        if r is not None:
            nn.init.uniform_(self.embedding.weight, -r, r)
            if self.factored is None:
                if not self.config.tie_weights:
                    nn.init.uniform_(self.decoder.weight, -r, r)
                if self.decoder.bias is not None:
                    nn.init.zeros_(self.decoder.bias)
        rr = self.config.recurrent_init_range
        if rr is not None:
            for p in self.recurrent.parameters():
                nn.init.uniform_(p, -rr, rr)

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return self.recurrent.init_state(batch_size, device=device)

    def hidden(self, inputs: Tensor, state: State = None) -> tuple[Tensor, State]:
        """The top layer's h_t after output dropout, (T, B, H), and the final state."""
        x = embed_with_word_dropout(self.embedding, inputs, self.config.dropout_words)
        x = self.drop_embedding(x)  # (T, B, E)
        h, state = self.recurrent(x, state)  # (T, B, H)
        dropped = self.drop_output(h)
        cfg = self.config
        if (
            self.training
            and torch.is_grad_enabled()
            and (cfg.activation_reg > 0 or cfg.temporal_activation_reg > 0)
        ):
            self._penalty = activation_penalty(
                h, dropped, cfg.activation_reg, cfg.temporal_activation_reg
            )
        return dropped, state

    def penalty(self) -> Tensor | None:
        """AR + TAR of the last training forward pass (the trainer adds it to the step's loss),
        or None when neither is set; read once."""
        penalty, self._penalty = self._penalty, None
        return penalty

    def forward(self, inputs: Tensor, state: State = None) -> tuple[Tensor, State]:
        """inputs: shape (T, B) word ids → logits (T, B, V) and the final state.

        With a factored output the "logits" are the normalised log ŷ_t themselves (a
        log_softmax of them changes nothing), so every consumer of logits works unchanged.
        """
        h, state = self.hidden(inputs, state)
        return self.output(h), state

    def output(self, h: Tensor) -> Tensor:
        """The logits (or, with a factored output, log ŷ_t) of the hidden states h, (T, B, V)."""
        if self.factored is not None:
            T, B, H = h.shape
            with float32(h):
                logp = self.factored.log_prob(h.reshape(T * B, H).to(self.embedding.weight.dtype))
            return logp.view(T, B, -1)
        return self.decoder(h)  # (T, B, V)

    def target_logprobs(self, h: Tensor, targets: Tensor) -> Tensor:
        """ln ŷ_t[y_t] of each target (T, B) given the hidden states h (T, B, H); a padded
        target (−100) gets word 0's score, for the caller to mask.

        The same numbers as :meth:`output` picked at the targets. With a factored output only
        each target's class is scored: the backward of :meth:`output`'s one slice per class
        zero-fills a (T·B, V) gradient per class, which made dynamic evaluation of a
        33k-word class softmax spend three quarters of its time filling zeros.
        """
        T, B, H = h.shape
        flat = targets.reshape(-1).clamp(min=0)
        if self.factored is not None:
            with float32(h):
                out = self.factored(h.reshape(T * B, H).to(self.embedding.weight.dtype), flat)
            return out.output.float().view(T, B)
        logp = torch.log_softmax(self.decoder(h).float(), dim=-1)
        return logp.gather(-1, flat.view(T, B, 1)).squeeze(-1)

    def loss(self, batch: Any, state: State = None) -> tuple[Tensor, int, State]:
        """Summed cross entropy over the batch's real targets, their count, the next state."""
        if self.factored is not None:
            # A factored output scores only each target's cluster (and the adaptive head):
            # the full V-way distribution is never built while training.
            h, state = self.hidden(batch.inputs, state)
            targets = batch.targets.reshape(-1)
            real = targets != -100  # padded targets (ignore_index) add nothing; masking by
            # multiplication, not indexing, keeps the step free of host syncs
            with float32(h):
                h = h.reshape(-1, h.size(-1)).to(self.embedding.weight.dtype)
                out = self.factored(h, targets.clamp(min=0))
            return -(out.output * real).sum(), batch.num_tokens, state
        # Padded targets hold ignore_index (-100), so padding adds nothing to the sum.
        targets = batch.targets.reshape(-1)
        h, state = self.hidden(batch.inputs, state)
        h = h.reshape(-1, h.size(-1))
        if torch.is_grad_enabled() and not torch.is_autocast_enabled(h.device.type):
            # a training step: the same sum, without keeping the (T·B, V) logits
            w, b = self.decoder.weight, self.decoder.bias
            return linear_cross_entropy(h, w, b, targets), batch.num_tokens, state
        loss_sum = F.cross_entropy(self.decoder(h), targets, reduction="sum")
        return loss_sum, batch.num_tokens, state
