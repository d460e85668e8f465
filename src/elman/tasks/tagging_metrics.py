"""Tagging metrics: token accuracy (overall and on unseen words), per-tag P/R/F1, confusions.

Over N words with gold tags y_i and predictions ŷ_i:

    accuracy         = #{i : ŷ_i = y_i} / N
    unseen accuracy  = the same over the words whose form is not in the training vocabulary
    precision(k)     = #{ŷ_i = y_i = k} / #{ŷ_i = k}
    recall(k)        = #{ŷ_i = y_i = k} / #{y_i = k}
    F1(k)            = 2 P R / (P + R)          (0 when P + R = 0)

A gold tag the tagger never saw in training counts as an error like any other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Sequence
from typing import Any


def accuracy(
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    forms: Sequence[Sequence[str]],
    known: Container[str],
) -> dict[str, float]:
    """Token accuracy overall and on words not in ``known`` (the training forms)."""
    right = total = unseen_right = unseen = 0
    for g_s, p_s, f_s in zip(gold, predicted, forms, strict=True):
        for g, p, f in zip(g_s, p_s, f_s, strict=True):
            total += 1
            right += g == p
            if f not in known:
                unseen += 1
                unseen_right += g == p
    return {
        "accuracy": right / max(total, 1),
        "unseen_accuracy": unseen_right / unseen if unseen else float("nan"),
        "words": total,
        "unseen_words": unseen,
    }


def report(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Per-tag precision, recall, F1 and support, and the confusion counts gold -> predicted."""
    confusion: Counter[tuple[str, str]] = Counter()
    for g_s, p_s in zip(gold, predicted, strict=True):
        confusion.update(zip(g_s, p_s, strict=True))
    gold_n: Counter[str] = Counter()
    pred_n: Counter[str] = Counter()
    for (gold, pred), n in confusion.items():
        gold_n[gold] += n
        pred_n[pred] += n
    per_tag = {}
    for tag in sorted(set(gold_n) | set(pred_n)):
        hit = confusion[(tag, tag)]
        p = hit / pred_n[tag] if pred_n[tag] else 0.0
        r = hit / gold_n[tag] if gold_n[tag] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_tag[tag] = {"precision": p, "recall": r, "f1": f1, "support": gold_n[tag]}
    return {
        "per_tag": per_tag,
        "confusion": {f"{g} -> {p}": n for (g, p), n in sorted(confusion.items())},
    }


def format_report(rep: dict[str, Any], top: int = 15) -> str:
    """The per-tag table, the confusion matrix over the tags, and the most frequent errors."""
    per_tag = rep["per_tag"]
    tags = list(per_tag)
    lines = [f"{'tag':10s} {'P':>7s} {'R':>7s} {'F1':>7s} {'support':>8s}"]
    for tag, m in per_tag.items():
        lines.append(
            f"{tag:10s} {100 * m['precision']:7.2f} {100 * m['recall']:7.2f} "
            f"{100 * m['f1']:7.2f} {m['support']:8d}"
        )
    counts = {tuple(k.split(" -> ")): n for k, n in rep["confusion"].items()}
    width = max(6, *(len(t) + 1 for t in tags))
    lines += ["", "confusion (rows: gold, columns: predicted)"]
    lines.append(" " * width + "".join(f"{t:>{width}s}" for t in tags))
    for g in tags:
        cells = "".join(f"{counts.get((g, p), 0) or '.':>{width}}" for p in tags)
        lines.append(f"{g:<{width}s}{cells}")
    errors = sorted(((n, k) for k, n in counts.items() if k[0] != k[1]), reverse=True)[:top]
    if errors:
        lines += ["", "most frequent errors (gold -> predicted)"]
        lines += [f"{n:6d}  {g} -> {p}" for n, (g, p) in errors]
    return "\n".join(lines)
