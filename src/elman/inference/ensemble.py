"""Several translation models decoding as one: the mean of their next-piece distributions.

:class:`EnsembleModel` is a :class:`~elman.inference.search.SearchModel` like any one model, so
greedy and beam search (and n-best lists, blocking, length limits) run unchanged::

    memory, state = ensemble.encode(src, lengths)     every member encodes: a list of each
    logp, state, _ = ensemble.step(prev, state, memory)

At every step each member m gives its distribution over the shared target pieces, with the
pieces never written masked and renormalised as a single model's search does
(:func:`~elman.inference.search.next_log_probs`), and the ensemble's is their mean::

    P(y | y_<t, x) = (1/M) Σ_m P_m(y | y_<t, x)
    log P = max_m log P_m + log( (1/M) Σ_m exp(log P_m − max_m log P_m) )

**Why the mean of the probabilities** (as fairseq's ``EnsembleModel``, and elman's tagger
ensembles and n-gram mixtures) rather than the mean of the log-probabilities (OpenNMT-py's
default; its ``-avg_raw_probs`` switches to probabilities): the mean of distributions is a
distribution, so a hypothesis' summed log P is the log-probability of a model (the equal-weight
mixture), comparable with a single model's in an n-best list and as a feature for rescoring;
and a piece one member finds likely is not vetoed by another that finds it unlikely. The mean
of log-probabilities is the log of an unnormalised geometric mean.

The second form above subtracts the largest member's value first, so nothing overflows, and an
ensemble of a model with itself computes exactly that model's numbers (exp(0) = 1, mean 1,
log 1 = 0), so it translates exactly as the model alone (tested).

The members must share the source and target vocabularies (the task checks the sentencepiece
models before an ensemble is built); they may differ in kind, cell and size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elman.data.batching import IGNORE_INDEX
from elman.data.pair_batches import PairBatch
from elman.inference.search import next_log_probs
from elman.models.seq2seq import Seq2Seq


@dataclass
class EnsembleMemory:
    """Each member's memory of the source batch."""

    members: list[Any]

    def repeat(self, k: int) -> EnsembleMemory:
        return EnsembleMemory([m.repeat(k) for m in self.members])


@dataclass
class EnsembleState:
    """Each member's decoder state."""

    members: list[Any]

    def select(self, index: Tensor) -> EnsembleState:
        return EnsembleState([s.select(index) for s in self.members])


def mean_of_probabilities(log_probs: Sequence[Tensor]) -> Tensor:
    """log( (1/M) Σ_m exp(log_probs[m]) ), elementwise, computed from the largest (module
    docstring): M tensors of one shape -> that shape. −inf everywhere stays −inf."""
    stacked = torch.stack(list(log_probs))  # (M, …)
    top = stacked.max(dim=0).values
    safe = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # -inf - -inf is NaN
    return safe + torch.log(torch.exp(stacked - safe).mean(dim=0))


class EnsembleModel(nn.Module):
    """M translation models as one :class:`~elman.inference.search.SearchModel` (module
    docstring); ``step`` returns the ensemble's log-probabilities as its logits."""

    def __init__(self, members: Sequence[Seq2Seq]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(members)  # registered: eval() and to() reach every member
        self.models = list(members)  # the same modules, typed
        # The ensemble's own flag follows its members (nn.Module starts in training mode):
        # decoding saves it and restores it with train(flag), which reaches every member, so a
        # True here would turn evaluated members' dropout on after the first translation.
        self.training = all(m.training for m in self.models)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[EnsembleMemory, EnsembleState]:
        """src (B, S), src_lengths (B,) -> every member's memory and initial state."""
        encoded = [m.encode(src, src_lengths) for m in self.models]
        return EnsembleMemory([e[0] for e in encoded]), EnsembleState([e[1] for e in encoded])

    def step(
        self, prev: Tensor, state: EnsembleState, memory: EnsembleMemory
    ) -> tuple[Tensor, EnsembleState, None]:
        """prev (N,) -> log P (N, V) of the mean distribution, every member's new state, no
        attention weights (each member has its own)."""
        log_probs, states = [], []
        for model, s, mem in zip(self.models, state.members, memory.members, strict=True):
            logp, s = next_log_probs(model, prev, s, mem)  # (N, V), writable pieces only
            log_probs.append(logp)
            states.append(s)
        return mean_of_probabilities(log_probs), EnsembleState(states), None

    def loss(self, batch: PairBatch, state: None = None) -> tuple[Tensor, int, None]:
        """The ensemble's teacher-forced cross entropy, summed over the real target pieces:
        −Σ_t log (1/M) Σ_m P_m(y_t | y_<t, x), each P_m over the whole vocabulary as
        ``Seq2Seq.loss`` has it in evaluation (no label smoothing), so one member gives that
        model's loss (tested). For ``elman eval --ensemble``'s ``loss`` and ``ppl``."""
        real = batch.tgt_out != IGNORE_INDEX  # (B, T)
        log_probs = []
        for model in self.models:
            logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
            log_probs.append(F.log_softmax(logits[real].float(), dim=-1))  # (N, V)
        mean = mean_of_probabilities(log_probs)
        loss_sum = -mean.gather(1, batch.tgt_out[real].unsqueeze(1)).sum()
        return loss_sum, batch.num_tokens, None
