"""Output layers over a large vocabulary.

``adaptive_softmax`` builds Grave et al.'s (2017) adaptive softmax, torch's
``nn.AdaptiveLogSoftmaxWithLoss``: a head softmax over the ``cutoffs[0]`` most frequent words and
one entry per tail cluster; cluster k (words cutoffs[k-1] .. cutoffs[k]) is a softmax behind a
projection to features / div_value^k dimensions. The word ids must run from the most to the least
frequent (elman's vocabularies do). ``log_prob`` gives the normalised log-probabilities of all V
words, so a model using it evaluates and samples exactly like one with a full softmax; training
computes only the target's head entry and cluster.
"""

from __future__ import annotations

from torch import nn


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
