"""The computations an exported file holds: thin modules around elman's models, traced to ONNX.

Each wrapper takes and returns plain tensors only (no dataclasses, no ``None``), named in
``inputs``/``outputs`` in the order ``forward`` takes and returns them, with the axes that vary
(``batch``, ``time`` …) in ``dynamic``. ids and lengths are int64, everything else float32.

* :class:`LMStep` -- one step of the RNN LM (:mod:`elman.models.rnnlm`)::

      x_t = C w_t
      h_t = σ(W_hh h_{t−1} + W_hx x_t)        (or the LSTM / GRU step, every layer)
      log ŷ_t = log softmax(W_S h_t + b)       (distribution over w_{t+1})

* :class:`TaggerGraph` -- the whole BiRNN tagger (:mod:`elman.models.tagger`) over a padded
  batch: log ŷ_t = log softmax(U [h→_t ; h←_t] + c) for every position t.
* :class:`EncoderGraph` and :class:`DecoderStep` -- the translation model
  (:mod:`elman.models.seq2seq`) split where decoding splits it: ``encode`` once per sentence
  (h_i, s_0, and the attention's keys U_a h_i), ``step`` once per output piece
  (s_t, a_t, h̃_t, log P(y_t | y_<t, x)).

A step graph holds one time step, so any cell runs in it (its Python loop runs once). A graph
over whole sentences needs a length that varies, so its recurrent layers must run in torch's
fused kernel (exported as ONNX's LSTM / GRU / RNN operators, which take ``sequence_lens``):
the LSTM, the GRU of ``variant = "cudnn"`` and the tanh or ReLU Elman cell
(:func:`check_fused`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from elman.errors import ElmanError
from elman.models.rnnlm import RNNLM
from elman.models.seq2seq import DecoderState, Memory, Seq2Seq
from elman.models.tagger import Tagger
from elman.nn.recurrent import Recurrent, RecurrentState


def check_fused(rnn: Recurrent, what: str) -> None:
    """Run ``rnn`` in torch's fused kernel from now on, or stop in one line if it has none.

    A recipe's ``impl = "unrolled"`` computes the same numbers as the kernel (tested in
    elman.nn), so the exported graph may use the kernel for it."""
    kernel = getattr(rnn, "_kernel", None)
    if kernel is None:
        raise ElmanError(
            f"cannot export the {what}: its {rnn.cell_type} cell has no fused kernel, and a "
            "graph over whole sentences needs one (LSTM, GRU with variant = 'cudnn', or a "
            "tanh/relu Elman cell); docs/export.md"
        )
    rnn.uses_fused = True


def state_names(lstm: bool, suffix: str = "") -> list[str]:
    return ["h" + suffix, "c" + suffix] if lstm else ["h" + suffix]


def as_state(parts: tuple[Tensor, ...]) -> RecurrentState:
    """(h,) -> h and (h, c) -> (h, c): Recurrent's state from the graph's inputs."""
    return (parts[0], parts[1]) if len(parts) == 2 else parts[0]


def as_parts(state: RecurrentState) -> tuple[Tensor, ...]:
    return tuple(state) if isinstance(state, tuple) else (state,)


def zero_state(rnn: Recurrent, like: Tensor, batch: int) -> tuple[Tensor, ...]:
    """Zeros (L·D, batch, H) for every part of ``rnn``'s state, ``batch`` taken from a tensor's
    shape so that the traced graph keeps it dynamic."""
    h = like.new_zeros((rnn.num_layers * rnn.num_directions, batch, rnn.hidden_size))
    return (h, torch.zeros_like(h)) if rnn.state_size == 2 else (h,)


class Graph(nn.Module):
    """A module to trace: its input and output names, in order, and their free axes."""

    inputs: list[str]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]]  # name -> {axis: its name}; names of other graphs too


class LMStep(Graph):
    """tokens (batch,) w_t and the state h_{t−1} [c_{t−1}] (L, batch, H) -> log ŷ_t (batch, V)
    and h_t [c_t]."""

    def __init__(self, model: RNNLM) -> None:
        super().__init__()
        self.model = model
        lstm = model.recurrent.state_size == 2
        self.inputs = ["tokens", *state_names(lstm)]
        self.outputs = ["log_probs", *state_names(lstm, "_out")]
        state_axes = {1: "batch"}
        self.dynamic = {
            "tokens": {0: "batch"},
            "log_probs": {0: "batch"},
            **{name: state_axes for name in self.inputs[1:] + self.outputs[1:]},
        }

    def forward(self, tokens: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, new = self.model(tokens.unsqueeze(0), as_state(state))  # (1, B, V)
        assert new is not None  # a recurrent model always returns its state
        return (torch.log_softmax(logits[0].float(), dim=-1), *as_parts(new))

    def example(self, batch: int) -> tuple[Tensor, ...]:
        tokens = torch.arange(batch) % self.model.config.vocab_size
        return (tokens, *zero_state(self.model.recurrent, self.probe(), batch))

    def probe(self) -> Tensor:
        return self.model.embedding.weight


class TaggerGraph(Graph):
    """words (batch, time), [chars (batch, time, chars), char_lengths (batch, time)], lengths
    (batch,) -> log ŷ (batch, time, K); rows past a sentence's length are not predictions.

    Every word is spelt in its own row of ``chars`` (elman batches the distinct forms once: the
    same numbers); a padded word may have ``char_lengths`` 0."""

    def __init__(self, model: Tagger) -> None:
        super().__init__()
        self.model = model
        check_fused(model.rnn, "tagger")
        if model.chars is not None:
            check_fused(model.chars.rnn, "tagger's character encoder")
        spelt = model.chars is not None
        self.inputs = ["words", *(["chars", "char_lengths"] if spelt else []), "lengths"]
        self.outputs = ["log_probs"]
        self.dynamic = {
            "words": {0: "batch", 1: "time"},
            "chars": {0: "batch", 1: "time", 2: "chars"},
            "char_lengths": {0: "batch", 1: "time"},
            "lengths": {0: "batch"},
            "log_probs": {0: "batch", 1: "time"},
        }

    def forward(self, words: Tensor, *rest: Tensor) -> Tensor:
        m = self.model
        lengths = rest[-1]
        x = m.embedding(words)  # (B, T, E)
        if m.pretrained is not None:
            x = x + torch.nn.functional.embedding(words, m.pretrained)
        if m.chars is not None:
            chars, char_lengths = rest[0], rest[1]
            B, T, C = chars.shape
            flat = chars.reshape(B * T, C)  # one row per word, padded words too
            n = char_lengths.reshape(B * T).clamp(min=1)  # (B·T,)
            h0 = zero_state(m.chars.rnn, x, flat.shape[0])
            _, state = m.chars.rnn(m.chars.embedding(flat), as_state(h0), lengths=n)
            h = as_parts(state)[0]  # (2, B·T, hidden): LSTM's h, not c
            spelt = torch.cat([h[0], h[1]], dim=1).reshape(B, T, -1)  # (B, T, 2·hidden)
            x = torch.cat([x, spelt], dim=2)
        h0 = zero_state(m.rnn, x, words.shape[0])
        out, _ = m.rnn(x, as_state(h0), lengths=lengths)  # (B, T, D·H)
        assert isinstance(out, Tensor)
        return torch.log_softmax(m.output(out).float(), dim=-1)

    def example(self, batch: int, time: int) -> tuple[Tensor, ...]:
        """Sentences of different lengths (so the traced graph keeps the padding path) and
        words of different spellings."""
        c = self.model.config
        lengths = torch.tensor([time - (b % time) for b in range(batch)])  # time, time−1, …
        words = (torch.arange(batch * time).view(batch, time) % (c.vocab_size - 2)) + 2
        if self.model.chars is None:
            return words, lengths
        C = 4
        chars = (torch.arange(batch * time * C).view(batch, time, C) % (c.char_vocab_size - 2)) + 2
        char_lengths = (torch.arange(batch * time).view(batch, time) % C) + 1
        return words, chars, char_lengths, lengths


class EncoderGraph(Graph):
    """src (batch, src_len), src_lengths (batch,) -> the decoder's first state and the memory:

    * ``h0`` [``c0``] (L, batch, H): s_0 (``plain``: h_S; else tanh(W_b [h→_S ; h←_1]));
    * ``attention``: ``feed0`` (batch, H) h̃_0 = 0, ``states`` (batch, src_len, 2H) the h_i,
      ``keys`` (batch, src_len, A) the attention's source part (U_a h_i, or W_a h_i);
    * ``conditioned``: ``summary`` (batch, H), c = h_S of the top layer.
    """

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model
        check_fused(model.encoder, "translation encoder")
        lstm = model.encoder.state_size == 2
        memory = {"plain": [], "conditioned": ["summary"], "attention": ["states", "keys"]}
        feed = ["feed0"] if model.kind == "attention" else []
        self.inputs = ["src", "src_lengths"]
        self.outputs = [*state_names(lstm, "0"), *feed, *memory[model.kind]]
        batch = {1: "batch"}
        self.dynamic = {
            "src": {0: "batch", 1: "src_len"},
            "src_lengths": {0: "batch"},
            "h0": batch,
            "c0": batch,
            "feed0": {0: "batch"},
            "states": {0: "batch", 1: "src_len"},
            "keys": {0: "batch", 1: "src_len"},
            "summary": {0: "batch"},
        }

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        h0 = zero_state(m.encoder, m.src_embedding.weight, src.shape[0])
        memory, state = m.encode(src, src_lengths, as_state(h0))
        out = [*as_parts(state.rnn)]
        if state.feed is not None:
            out.append(state.feed)
        for part in (memory.summary, memory.states, memory.keys):
            if part is not None:
                out.append(part)
        return tuple(out)

    def example(self, batch: int, src_len: int) -> tuple[Tensor, Tensor]:
        lengths = torch.tensor([src_len - (b % src_len) for b in range(batch)])
        src = (torch.arange(batch * src_len).view(batch, src_len) % 10) + 4
        return src, lengths


class DecoderStep(Graph):
    """One decoder step: prev (batch,) y_{t−1}, the state s_{t−1} [c] (L, batch, H), h̃_{t−1}
    ``feed`` (batch, H), and the memory -> log P(y_t | y_<t, x) (batch, V), s_t [c], h̃_t and
    the attention weights a_t (batch, src_len) (module docstring of elman.models.seq2seq)."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model
        lstm = model.decoder.state_size == 2
        kind = model.kind
        memory = {"plain": [], "conditioned": ["summary"]}.get(
            kind, ["states", "keys", "src_lengths"]
        )
        feed = ["feed"] if kind == "attention" else []
        self.inputs = ["prev", *state_names(lstm), *feed, *memory]
        self.outputs = [
            "log_probs",
            *state_names(lstm, "_out"),
            *[f + "_out" for f in feed],
            *(["attention"] if kind == "attention" else []),
        ]
        batch = {1: "batch"}
        self.dynamic = {
            "prev": {0: "batch"},
            "h": batch,
            "c": batch,
            "feed": {0: "batch"},
            "states": {0: "batch", 1: "src_len"},
            "keys": {0: "batch", 1: "src_len"},
            "src_lengths": {0: "batch"},
            "summary": {0: "batch"},
            "log_probs": {0: "batch"},
            "h_out": batch,
            "c_out": batch,
            "feed_out": {0: "batch"},
            "attention": {0: "batch", 1: "src_len"},
        }

    def forward(self, prev: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
        named = dict(zip(self.inputs[1:], inputs, strict=True))
        rnn = as_state(tuple(named[n] for n in ("h", "c") if n in named))
        state = DecoderState(rnn, named.get("feed"))
        memory = self.memory(named, prev)
        logits, state, weights = self.model.step(prev, state, memory)
        out = [torch.log_softmax(logits.float(), dim=-1), *as_parts(state.rnn)]
        if state.feed is not None:
            out.append(state.feed)
        if weights is not None:
            out.append(weights)
        return tuple(out)

    @staticmethod
    def memory(named: dict[str, Tensor], prev: Tensor) -> Memory:
        if "states" not in named:  # plain, conditioned: no attention, so no mask is read
            mask = prev.new_ones((prev.shape[0], 1), dtype=torch.bool)
            return Memory(mask, summary=named.get("summary"))
        S = named["states"].shape[1]
        steps = torch.arange(S, device=prev.device).unsqueeze(0)  # (1, S)
        mask = steps < named["src_lengths"].unsqueeze(1)  # (B, S)
        return Memory(mask, states=named["states"], keys=named["keys"])

    def example(self, encoded: tuple[Tensor, ...], src_lengths: Tensor) -> tuple[Tensor, ...]:
        """The step's inputs after ``<s>`` (id 2), from the encoder's outputs."""
        batch = src_lengths.shape[0]
        prev = torch.full((batch,), 2, dtype=torch.long)
        named: dict[str, Any] = dict(zip(EncoderGraph(self.model).outputs, encoded, strict=True))
        named.update(h=named.get("h0"), c=named.get("c0"), feed=named.get("feed0"))
        named["src_lengths"] = src_lengths
        return (prev, *(named[n] for n in self.inputs[1:]))
