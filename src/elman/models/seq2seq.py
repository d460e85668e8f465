"""RNN encoder-decoder translation models: the lecture's, Cho et al.'s and attention (one family).

Every kind encodes the source pieces x_1 … x_S (the last one ``</s>``) with a recurrent
encoder (:class:`elman.nn.Recurrent`: any cell, any depth)::

    h_i = φ(h_{i−1}, x_i) = f(W_hh h_{i−1} + W_hx E_x x_i + b)

and predicts the target pieces y_1 … y_n, y_{n+1} = ``</s>``, one at a time. They differ in what
the decoder sees.

``kind = "plain"`` -- the lecture's model. The decoder starts from the encoder's last state and
runs with **no input**::

    s_0 = h_S
    s_t = φ(s_{t−1}) = f(W_hh' s_{t−1} + b')           (the decoder's own weights)
    P(y_t | x) = softmax(W_S s_t + b_S)

It is the lecture's equations exactly, h_t = f(W_hh h_{t−1} + W_hx x_t) for the encoder,
h_t = f(W_hh h_{t−1}) and y_t = softmax(W_S h_t) for the decoder, with ``cell = "elman"``,
``cell_options = {bias = false}``, ``output_bias = false`` (no b, b', b_S) and
``decoder_input_matrix = false`` (recipes/multi30k-plain-lecture.toml). With
``decoder_input_matrix = true`` (the default, so that older checkpoints load) the decoder also
holds a W_hx' (H × 1) that only ever multiplies a constant 0 input: the same function, with a
dead parameter; with false it reads a 0-feature input, W_hx' is H × 0 and holds nothing.

Everything it knows about the source is the one vector h_S, and it never learns which words it
has already written: s_t, and so the distribution of y_t, is the same whatever y_1 … y_{t−1}
were. Decoding can only follow one fixed sequence of distributions (beam search still ranks whole
sequences). It is the baseline the lecture draws, not a working translator.

``kind = "conditioned"`` -- Cho et al. 2014 (also Sutskever et al. 2014): the decoder reads the
previous target word and the source summary c = h_S (top layer) at every step, and both feed the
output::

    s_0 = tanh(W_b c)                                     (every layer from its own h_S)
    s_t = φ(s_{t−1}, [E_y y_{t−1} ; c])                   (y_0 = <s>)
    t_t = tanh(W_o [s_t ; E_y y_{t−1} ; c])
    P(y_t | y_<t, x) = softmax(W_S t_t + b_S)

``kind = "attention"`` -- a bidirectional encoder, h_i = [h→_i ; h←_i], and attention with
input feeding (Luong, Pham & Manning 2015; the score additive as Bahdanau et al. 2015 or
multiplicative as Luong)::

    s_0 = tanh(W_b [h→_S ; h←_1])                         (every layer)
    s_t = φ(s_{t−1}, [E_y y_{t−1} ; h̃_{t−1}])              (h̃_0 = 0: input feeding)
    a_t = softmax_i score(s_t, h_i),   c_t = Σ_i a_ti h_i  (elman.nn.attention)
    h̃_t = tanh(W_c [c_t ; s_t])
    P(y_t | y_<t, x) = softmax(W_S h̃_t + b_S)

Training is teacher forcing: the decoder reads the reference y_{t−1}, and the loss is the summed
cross entropy −Σ_t log P(y_t | …) over the real target pieces (optionally label-smoothed, in
training mode only). Padding is masked everywhere: the encoder stops at each source's true end,
attention gives padded positions weight 0, padded targets are out of the loss; so a sentence is
translated the same alone or in any batch. Dropout acts on the embeddings (``dropout_embedding``),
between stacked layers (``dropout_hidden``) and on the vector fed to W_S (``dropout_output``).

Decoding (elman.inference.search) uses ``encode`` once and ``step`` per output piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elman.data.batching import IGNORE_INDEX
from elman.data.pair_batches import PairBatch
from elman.data.subword import PAD_ID
from elman.models.limits import MAX_LAYERS, check_probabilities, check_sizes
from elman.nn import Recurrent
from elman.nn.attention import ATTENTIONS, build_attention
from elman.nn.recurrent import RecurrentState

KINDS = ("plain", "conditioned", "attention")


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int = 0  # both filled in from the subword vocabulary
    tgt_vocab_size: int = 0
    kind: str = "attention"  # plain | conditioned | attention (module docstring)
    cell: str = "gru"  # elman | lstm | gru, encoder and decoder
    cell_options: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 256  # E_x and E_y
    hidden_size: int = 512  # every layer of the decoder and each direction of the encoder
    num_layers: int = 1  # encoder and decoder alike
    attention: str = "additive"  # additive | multiplicative (kind = attention)
    attention_size: int | None = None  # additive: rows of W_a, U_a (default hidden_size)
    dropout_embedding: float = 0.3  # on E_x x_i and E_y y_{t−1}
    dropout_hidden: float = 0.3  # between stacked recurrent layers (num_layers > 1)
    dropout_output: float = 0.3  # on the vector fed to W_S
    label_smoothing: float = 0.0  # training loss only
    output_bias: bool = True  # b_S of softmax(W_S · + b_S); false: the lecture's softmax(W_S ·)
    decoder_input_matrix: bool = True  # kind = plain: false drops W_hx' (it only multiplies 0)
    impl: str = "auto"  # elman.nn.Recurrent: auto | fused | unrolled

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind = {self.kind!r} unknown; valid: {', '.join(KINDS)}")
        if self.attention not in ATTENTIONS:
            raise ValueError(
                f"attention = {self.attention!r} unknown; valid: {', '.join(ATTENTIONS)}"
            )
        check_sizes(self, ("embedding_dim", "hidden_size"))
        check_sizes(self, ("num_layers",), high=MAX_LAYERS)
        if self.attention_size is not None:
            check_sizes(self, ("attention_size",))
        check_probabilities(
            self, ("dropout_embedding", "dropout_hidden", "dropout_output", "label_smoothing")
        )
        if not self.decoder_input_matrix and self.kind != "plain":
            raise ValueError(
                f"decoder_input_matrix = false needs kind = plain (the {self.kind} decoder "
                "reads the previous target word)"
            )


@dataclass
class Memory:
    """What the decoder reads of the source, per sentence (row).

    Attributes:
        mask: (N, S) True at real source positions.
        states: (N, S, 2H) encoder states h_i (attention), else None.
        keys: (N, S, ·) the attention's precomputed source part, else None.
        summary: (N, H) the summary c (conditioned), else None.
    """

    mask: Tensor
    states: Tensor | None = None
    keys: Tensor | None = None
    summary: Tensor | None = None

    def repeat(self, k: int) -> Memory:
        """Every row k times in a row (rows i·k … i·k + k − 1 are sentence i): for beams."""

        def rep(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.repeat_interleave(k, dim=0)

        return Memory(
            self.mask.repeat_interleave(k, dim=0),
            states=rep(self.states),
            keys=rep(self.keys),
            summary=rep(self.summary),
        )


@dataclass
class DecoderState:
    """The decoder's recurrent state (L, N, H) (a pair for LSTM) and h̃_{t−1} (N, H) or None."""

    rnn: RecurrentState
    feed: Tensor | None = None

    def select(self, index: Tensor) -> DecoderState:
        """The rows ``index`` (N',) of this state (beam search's reordering)."""
        rnn: RecurrentState
        if isinstance(self.rnn, tuple):
            h, c = self.rnn
            rnn = (h.index_select(1, index), c.index_select(1, index))
        else:
            rnn = self.rnn.index_select(1, index)
        feed = None if self.feed is None else self.feed.index_select(0, index)
        return replace(self, rnn=rnn, feed=feed)


class Seq2Seq(nn.Module):
    """The encoder-decoder of ``config.kind`` (module docstring).

    ``forward(src, src_lengths, tgt_in) -> (logits (B, T, V), weights (B, T, S) or None)``
    scores a whole target under teacher forcing; ``encode`` and ``step`` decode one piece at a
    time and compute exactly the same numbers (tested).
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        c = self.config = config
        for name in ("src_vocab_size", "tgt_vocab_size"):
            if getattr(c, name) < 1:
                raise ValueError(f"{name} must be set (got {getattr(c, name)})")
        E, H, L = c.embedding_dim, c.hidden_size, c.num_layers
        self.kind = c.kind
        bidirectional = c.kind == "attention"
        D = 2 if bidirectional else 1

        def rnn(input_size: int, bi: bool = False) -> Recurrent:
            return Recurrent(
                c.cell, input_size, H, num_layers=L, bidirectional=bi, dropout=c.dropout_hidden,
                batch_first=True, impl=c.impl, **c.cell_options,
            )  # fmt: skip

        self.src_embedding = nn.Embedding(c.src_vocab_size, E, padding_idx=PAD_ID)
        self.encoder = rnn(E, bidirectional)
        self.drop_embedding = nn.Dropout(c.dropout_embedding)
        self.drop_output = nn.Dropout(c.dropout_output)
        if c.kind == "plain":
            # s_t = f(W_hh' s_{t−1} + b'): no input (0 features), or a constant 0 through W_hx'
            self.decoder = rnn(1 if c.decoder_input_matrix else 0)
        else:
            self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, E, padding_idx=PAD_ID)
            self.decoder = rnn(E + H)  # [E y ; c] or [E y ; h̃]
            self.bridge = nn.Linear(D * H, H)  # W_b
        if c.kind == "conditioned":
            self.combine = nn.Linear(H + E + H, H)  # W_o over [s_t ; E y_{t−1} ; c]
        if c.kind == "attention":
            self.attention = build_attention(c.attention, H, D * H, c.attention_size or H)
            self.combine = nn.Linear(D * H + H, H)  # W_c over [c_t ; s_t]
        self.output = nn.Linear(H, c.tgt_vocab_size, c.output_bias)  # W_S, b_S

    # ------------------------------------------------------------------ encoder

    def encode(
        self, src: Tensor, src_lengths: Tensor, h0: RecurrentState | None = None
    ) -> tuple[Memory, DecoderState]:
        """src (B, S), src_lengths (B,) -> the memory and the decoder's initial state.

        ``h0``: the encoder's initial state (default zeros; the ONNX export passes zeros
        shaped from ``src``, so that the batch size stays a variable of the graph)."""
        S = src.shape[1]
        mask = torch.arange(S, device=src.device).unsqueeze(0) < src_lengths.unsqueeze(1)
        states, final = self.encoder(
            self.drop_embedding(self.src_embedding(src)), h0, lengths=src_lengths
        )
        if self.kind == "plain":
            return Memory(mask), DecoderState(final)  # s_0 = h_S, every layer
        h = final[0] if isinstance(final, tuple) else final  # (L·D, B, H): LSTM's h, not c
        L, B, H = self.config.num_layers, src.shape[0], self.config.hidden_size
        per_layer = h.view(L, -1, B, H).permute(0, 2, 1, 3).reshape(L, B, -1)  # (L, B, D·H)
        s0 = torch.tanh(self.bridge(per_layer))  # (L, B, H)
        rnn0: RecurrentState = (s0, torch.zeros_like(s0)) if isinstance(final, tuple) else s0
        if self.kind == "conditioned":
            return Memory(mask, summary=h[-1]), DecoderState(rnn0)  # c = top layer's h_S
        keys = self.attention.precompute(states)
        feed = states.new_zeros(B, H)  # h̃_0 = 0
        return Memory(mask, states=states, keys=keys), DecoderState(rnn0, feed)

    # ------------------------------------------------------------------ decoder

    def _attend(self, s: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """s_t (N, H) -> h̃_t = tanh(W_c [c_t ; s_t]) (N, H), weights a_t (N, S)."""
        context, weights = self.attention(s, memory.keys, memory.states, memory.mask)
        return torch.tanh(self.combine(torch.cat([context, s], dim=1))), weights

    def _decode(
        self, emb: Tensor | None, state: DecoderState, memory: Memory, T: int
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """T decoder steps from ``state``; emb (N, T, E) embedded inputs (None: plain).

        Returns the vectors fed to W_S (N, T, H), the new state, the weights (N, T, S) or None.
        """
        if self.kind == "plain":
            h = state.rnn[0] if isinstance(state.rnn, tuple) else state.rnn  # (L, N, H)
            zeros = h.new_zeros(h.shape[1], T, self.decoder.input_size)  # (N, T, 1 or 0)
            out, rnn = self.decoder(zeros, state.rnn)
            return out, DecoderState(rnn), None
        assert emb is not None  # only "plain" has no input
        if self.kind == "conditioned":
            assert memory.summary is not None  # encode gives "conditioned" its summary
            c = memory.summary.unsqueeze(1).expand(-1, T, -1)  # (N, T, H)
            out, rnn = self.decoder(torch.cat([emb, c], dim=2), state.rnn)
            t = torch.tanh(self.combine(torch.cat([out, emb, c], dim=2)))
            return t, DecoderState(rnn), None
        rnn, feed = state.rnn, state.feed
        assert feed is not None  # encode gives "attention" h̃_0
        tildes, weights = [], []
        for emb_t in emb.unbind(1):  # input feeding: step t reads h̃_{t−1}
            x = torch.cat([emb_t, feed], dim=1).unsqueeze(1)  # (N, 1, E + H)
            s, rnn = self.decoder(x, rnn)
            feed, a = self._attend(s.squeeze(1), memory)
            tildes.append(feed)
            weights.append(a)
        return torch.stack(tildes, 1), DecoderState(rnn, feed), torch.stack(weights, 1)

    def _embed_target(self, tokens: Tensor) -> Tensor | None:
        return None if self.kind == "plain" else self.drop_embedding(self.tgt_embedding(tokens))

    def features(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing up to the output layer: the vectors fed to W_S (B, T, H) and the
        attention weights (B, T, S) or None."""
        memory, state = self.encode(src, src_lengths)
        out, _, weights = self._decode(self._embed_target(tgt_in), state, memory, tgt_in.shape[1])
        return self.drop_output(out), weights

    def forward(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: src (B, S), src_lengths (B,), tgt_in (B, T) = <s> y_1 … y_{T−1}
        -> logits (B, T, V) of y_1 … y_T, attention weights (B, T, S) or None."""
        out, weights = self.features(src, src_lengths, tgt_in)
        return self.output(out), weights

    def step(
        self, prev: Tensor, state: DecoderState, memory: Memory
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoder step: prev (N,) the previous pieces -> logits (N, V), the new state,
        attention weights (N, S) or None. (``plain`` ignores ``prev``.)"""
        emb = self._embed_target(prev.unsqueeze(1))  # (N, 1, E)
        out, state, weights = self._decode(emb, state, memory, 1)
        logits = self.output(self.drop_output(out.squeeze(1)))
        return logits, state, None if weights is None else weights.squeeze(1)

    # ------------------------------------------------------------------ the trainer's contract

    def loss(self, batch: PairBatch, state: None = None) -> tuple[Tensor, int, None]:
        """Summed (label-smoothed in training) cross entropy over the real target pieces.

        W_S, the largest product, is applied at the real positions only, not at the padding."""
        out, _ = self.features(batch.src, batch.src_lengths, batch.tgt_in)
        real = batch.tgt_out != IGNORE_INDEX  # (B, T)
        loss_sum = F.cross_entropy(
            self.output(out[real]),  # (N, V), N real target pieces
            batch.tgt_out[real],
            reduction="sum",
            label_smoothing=self.config.label_smoothing if self.training else 0.0,
        )
        return loss_sum, batch.num_tokens, None


def build_seq2seq(config: Seq2SeqConfig) -> Seq2Seq:
    return Seq2Seq(config)
