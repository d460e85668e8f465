"""Factored output layers over a large vocabulary.

Both split P(w | h) through a cluster of words, so that training scores only the target's
cluster instead of all V words, and both still give the exact normalised distribution over all V
words (``log_prob``) for evaluation, mixing and sampling:

* ``adaptive_softmax`` builds Grave et al.'s (2017) adaptive softmax, torch's
  ``nn.AdaptiveLogSoftmaxWithLoss``: a head softmax over the ``cutoffs[0]`` most frequent words
  and one entry per tail cluster; cluster k (words cutoffs[k-1] .. cutoffs[k]) is a softmax
  behind a projection to features / div_value^k dimensions.
* :class:`ClassSoftmax` is Mikolov et al.'s (2011) class-based output layer of the RNNLM toolkit:

      P(w | h) = P(c(w) | h) · P(w | c(w), h)
      P(c | h) = softmax(U h + d)_c            over the C classes
      P(w | c, h) = softmax(W h + b)_w          over the words of class c only

  with frequency binning: the words, most frequent first, are cut into C runs that each hold
  about 1/C of the training tokens, so frequent words sit in small classes and rare ones share
  large ones. Training costs C + |c(w)| scores per token instead of V (C ≈ √V).

Word ids must run from the most to the least frequent (elman's vocabularies do), which is what
the cutoffs and the frequency bins assume.

For the full softmax, :func:`linear_cross_entropy` computes the training loss
Σ_t −log softmax(W_S h_t + b)_{w_t} block by block, forming each block's gradient
(ŷ − onehot) in the forward, so no (N, V) logits tensor lives until the backward.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def float32(x: Tensor) -> torch.autocast:
    """No autocast inside the block, on ``x``'s device: a factored output layer gets its
    features in the weights' dtype (torch's adaptive softmax cannot mix dtypes, and the
    factored layers are cheap anyway)."""
    return torch.autocast(x.device.type, enabled=False)


def adaptive_softmax(
    features: int, vocab_size: int, cutoffs: list[int] | None, div_value: float
) -> nn.AdaptiveLogSoftmaxWithLoss:
    """torch's adaptive softmax, with one-line errors for bad cutoffs and div_value."""
    cutoffs = list(cutoffs or [])
    if not cutoffs or cutoffs != sorted(set(cutoffs)) or cutoffs[0] <= 0:
        raise ValueError(f"adaptive_cutoffs {cutoffs}: give increasing word counts > 0")
    if cutoffs[-1] >= vocab_size:
        raise ValueError(
            f"adaptive_cutoffs {cutoffs}: each must be below the vocabulary size {vocab_size}"
        )
    if features // div_value ** len(cutoffs) < 1:
        raise ValueError(
            f"adaptive_div_value {div_value} leaves the last cluster of {features} features no "
            "dimension; lower it or use more units"
        )
    return nn.AdaptiveLogSoftmaxWithLoss(features, vocab_size, cutoffs, div_value=div_value)


class _LinearCrossEntropy(torch.autograd.Function):
    """Σ −log softmax(h Wᵀ + b)[target] over rows with target ≥ 0; gradients made in forward.

    Per block of rows: z = h Wᵀ + b, p = softmax(z), loss = log Σ exp(z) − z_target, and
    ∂loss/∂z = p − onehot(target), from which ∂h = (p − onehot) W, ∂W += (p − onehot)ᵀ h and
    ∂b += Σ (p − onehot) follow at once, while the block is still in cache. The backward only
    scales them by the incoming gradient (so it runs once: no retain_graph).
    """

    @staticmethod
    def forward(
        ctx: Any, h: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, rows: int
    ) -> Tensor:
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros_like(weight)
        grad_b = None if bias is None else torch.zeros_like(bias)
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        for s in range(0, h.shape[0], rows):
            hb, tb = h[s : s + rows], target[s : s + rows]
            real = (tb >= 0).to(h.dtype)[:, None]  # ignore_index rows add nothing
            t = tb.clamp(min=0)[:, None]
            z = hb @ weight.t() if bias is None else torch.addmm(bias, hb, weight.t())
            z_target, top = z.gather(1, t), z.amax(1, keepdim=True)
            z.sub_(top).exp_()  # exp(z − max), in place
            norm = z.sum(1, keepdim=True)
            total += ((norm.log() + top - z_target) * real).sum()  # log Σ exp(z) − z_target
            z.div_(norm).scatter_add_(1, t, -real).mul_(real)  # p − onehot, 0 on padding
            torch.mm(z, weight, out=grad_h[s : s + rows])
            grad_w.addmm_(z.t(), hb)
            if grad_b is not None:
                grad_b.add_(z.sum(0))
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return total.to(h.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_h, grad_w, grad_b = ctx.saved_tensors
        grad_b = None if grad_b is None else grad_b.mul_(grad)
        return grad_h.mul_(grad), grad_w.mul_(grad), grad_b, None, None


def linear_cross_entropy(
    h: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, rows: int = 256
) -> Tensor:
    """``F.cross_entropy(F.linear(h, weight, bias), target, reduction="sum")`` (ignore_index
    −100), computed ``rows`` rows at a time without keeping the logits; h: (N, H), target: (N,);
    ``bias`` None for an output layer without one.

    Only for training steps (it spends the backward's products in the forward): under no_grad
    use the plain expression.
    """
    return _LinearCrossEntropy.apply(h, weight, bias, target, rows)


class _InClassLogProb(torch.autograd.Function):
    """log P(w | c(w), h) = log softmax(W_c h + b_c)[w] for rows sorted by class.

    ``sizes[c]`` rows belong to class c, whose words are ``starts[c]`` … ``starts[c+1]`` − 1;
    ``local`` is each target's place in its class. Written out (not through autograd's slices)
    so that the backward fills one V × H gradient in place: ∂/∂z = g · (onehot − p) per class.
    """

    @staticmethod
    def forward(
        ctx: Any,
        h: Tensor,
        weight: Tensor,
        bias: Tensor,
        local: Tensor,
        sizes: list[int],
        starts: list[int],
    ) -> Tensor:
        out = h.new_empty(h.shape[0])
        probs = []
        row = 0
        for c, n in enumerate(sizes):
            if n:
                s, e = starts[c], starts[c + 1]
                logp = torch.log_softmax(
                    torch.addmm(bias[s:e], h[row : row + n], weight[s:e].t()), 1
                )
                out[row : row + n] = logp.gather(1, local[row : row + n, None]).squeeze(1)
                probs.append(logp.exp_())
            row += n
        ctx.save_for_backward(h, weight, local, *probs)
        ctx.sizes, ctx.starts = sizes, starts
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        h, weight, local, *probs = ctx.saved_tensors
        grad_h = torch.zeros_like(h)
        grad_w, grad_b = torch.zeros_like(weight), weight.new_zeros(weight.shape[0])
        row, k = 0, 0
        for c, n in enumerate(ctx.sizes):
            if n:
                s, e, rows = ctx.starts[c], ctx.starts[c + 1], slice(row, row + n)
                g = grad[rows, None]
                gz = (probs[k] * -g).scatter_add_(1, local[rows, None], g)  # g(onehot − p)
                torch.mm(gz, weight[s:e], out=grad_h[rows])
                grad_w[s:e].addmm_(gz.t(), h[rows])
                grad_b[s:e] += gz.sum(0)
                k += 1
            row += n
        return grad_h, grad_w, grad_b, None, None, None


class FactoredOutput(NamedTuple):
    """What a factored layer's forward gives, as torch's adaptive softmax does."""

    output: Tensor  # log P(target | h) per row, (N,)
    loss: Tensor  # their negative mean


def frequency_bins(counts: Tensor, num_classes: int) -> Tensor:
    """Class starts (C + 1,) cutting ids 0 … V-1 into C runs of about equal token mass.

    Run k ends at the first word whose cumulative share of the tokens reaches (k + 1) / C; a
    word more frequent than 1/C (e.g. "the") fills its class alone and the runs after it each
    keep at least one word.
    """
    V, C = counts.numel(), num_classes
    mass = counts.double().clamp(min=0).cumsum(0)
    mass = mass / mass[-1] if mass[-1] > 0 else torch.arange(1, V + 1, dtype=torch.double) / V
    ends = torch.searchsorted(mass, torch.arange(1, C, dtype=torch.double) / C) + 1
    starts = [0] + ends.tolist() + [V]
    for k in range(1, C):  # strictly increasing: no empty class …
        starts[k] = max(starts[k], starts[k - 1] + 1)
    for k in range(C - 1, 0, -1):  # … and room for one word in each class after k
        starts[k] = min(starts[k], starts[k + 1] - 1)
    return torch.tensor(starts, dtype=torch.long)


class ClassSoftmax(nn.Module):
    """Mikolov's class-factored softmax: log P(w | h) = log P(c(w) | h) + log P(w | c(w), h).

    ``classes`` is U, d (``classes.weight``, ``classes.bias``); ``words`` is W, b, one row per
    word as in a full softmax. The class boundaries ``starts`` are a buffer saved with the
    weights; without ``counts`` (a model about to load a checkpoint) they start as equal runs.
    """

    starts: Tensor  # (C + 1,) the buffer of class starts

    def __init__(
        self, features: int, vocab_size: int, num_classes: int, counts: Tensor | None = None
    ) -> None:
        super().__init__()
        if not 1 <= num_classes <= vocab_size:
            raise ValueError(
                f"output_classes {num_classes}: give 1 … the vocabulary size {vocab_size}"
            )
        self.vocab_size = vocab_size
        self.classes = nn.Linear(features, num_classes)  # U, d
        self.words = nn.Linear(features, vocab_size)  # W, b
        if counts is None:
            # Equal runs, computed on the CPU even when the model is built on the meta device
            # (elman.train.checkpoint compares a checkpoint's shapes that way before allocating).
            with torch.device("cpu"):
                starts = frequency_bins(torch.ones(vocab_size), num_classes)
            starts = starts.to(self.words.weight.device)
        elif counts.numel() != vocab_size:
            raise ValueError(f"counts has {counts.numel()} entries for {vocab_size} words")
        else:
            starts = frequency_bins(counts, num_classes)
        self.register_buffer("starts", starts)

    @property
    def num_classes(self) -> int:
        return self.starts.numel() - 1

    def word_class(self, words: Tensor) -> Tensor:
        """c(w) for each word id."""
        return torch.bucketize(words, self.starts[1:], right=True)

    def forward(self, h: Tensor, target: Tensor) -> FactoredOutput:
        """log P(target | h) for each row of h (N, features): only the target's class is scored."""
        cls = self.word_class(target)
        logp = F.log_softmax(self.classes(h), dim=-1).gather(1, cls[:, None]).squeeze(1)
        if target.numel() == 0:
            return FactoredOutput(logp, -logp.sum())
        # Rows sorted by class, one matrix product per class present in the batch.
        order = torch.argsort(cls)
        sizes = torch.bincount(cls, minlength=self.num_classes).tolist()
        starts = self.starts.tolist()
        local = target[order] - self.starts[cls[order]]  # the target's place in its class
        in_class = _InClassLogProb.apply(
            h[order], self.words.weight, self.words.bias, local, sizes, starts
        )
        output = logp + torch.empty_like(logp).index_copy(0, order, in_class)
        return FactoredOutput(output, -output.mean())

    def log_prob(self, h: Tensor) -> Tensor:
        """The normalised log P(w | h) of all V words, (N, V)."""
        class_logp = F.log_softmax(self.classes(h), dim=-1)
        scores = self.words(h)
        starts = self.starts.tolist()
        return torch.cat(
            [
                F.log_softmax(scores[:, s:e], dim=-1) + class_logp[:, c : c + 1]
                for c, (s, e) in enumerate(pairwise(starts))
            ],
            dim=1,
        )


def default_classes(vocab_size: int) -> int:
    """C = ⌈√V⌉, the RNNLM toolkit's usual choice (it balances C against the class sizes)."""
    return math.ceil(math.sqrt(vocab_size))


OUTPUTS = ("softmax", "adaptive", "class")

# what ``output = "adaptive"`` or ``"class"`` builds: both have ``forward(h, target)`` ->
# (output, loss) and ``log_prob(h)`` -> the (N, V) log-probabilities
FactoredLayer = nn.AdaptiveLogSoftmaxWithLoss | ClassSoftmax


def factored_output(
    kind: str,
    features: int,
    vocab_size: int,
    *,
    adaptive_cutoffs: list[int] | None = None,
    adaptive_div_value: float = 4.0,
    output_classes: int = 0,
    counts: Tensor | None = None,
) -> FactoredLayer | None:
    """The output layer a model's ``output`` names: None for the full softmax (the model's own
    V-way linear layer), else the adaptive or the class softmax over ``features``."""
    if kind == "adaptive":
        return adaptive_softmax(features, vocab_size, adaptive_cutoffs, adaptive_div_value)
    if kind == "class":
        return ClassSoftmax(
            features, vocab_size, output_classes or default_classes(vocab_size), counts
        )
    if kind != "softmax":
        raise ValueError(f"output {kind!r} unknown; valid: {', '.join(OUTPUTS)}")
    return None
