"""N-best lists: the hypotheses a decoder kept for each sentence, with their scores.

Two formats are read (``elman rescore``, docs/translation.md):

**Moses** (also what ``elman translate --n-best K`` writes), one hypothesis a line::

    0 ||| a dog runs on the grass ||| score=-4.21 ||| -4.21
    0 ||| a dog is running on grass ||| score=-4.93 ||| -4.93
    1 ||| …

``id ||| hypothesis ||| features ||| total``. The features field is Moses's
``LM0= -12.3 TM0= -1.2 -3.4 Penalty0= -5`` (a name ending in ``=``, then one or more values)
or ``name=value`` (the value attached); a name with several values becomes ``name_0``,
``name_1`` …. The fourth field, when present, is the feature ``total`` (the decoder's own
score); later fields (Moses's word alignments) are ignored. A feature that one hypothesis of a
list lacks is 0 there (Moses's sparse features). An id is any word; the ids are kept in the
order they first appear (0, 1, 2 … as Moses and elman write them).

**Kaldi**: a text file of ``UTTERANCE-N word word …`` lines (N: the hypothesis' rank, as
``nbest-to-linear``'s ``text`` output names them), and one file per score, each
``UTTERANCE-N value`` (``--scores am=ac.scores lm=lm.scores``); every hypothesis needs a value in
every score file. Kaldi writes costs (−log p): with ``costs=True`` the values are negated as
they are read, so that for every feature, in either format, higher is better.

A malformed line is one :class:`~elman.errors.ElmanError` naming ``file:line`` and what was
expected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from elman.data.text import iter_lines, open_binary
from elman.errors import ElmanError

SEPARATOR = "|||"
TOTAL = "total"  # the name of the Moses fourth field


@dataclass(frozen=True)
class Hypothesis:
    """One entry of an n-best list."""

    text: str  # the hypothesis, as written (words separated by single spaces)
    features: dict[str, float]  # name -> value (higher is better)
    where: str  # file:line, for messages


@dataclass
class NbestList:
    """The hypotheses of every sentence, sentences in the order their ids first appear."""

    format: str  # "moses" or "kaldi"
    lists: dict[str, list[Hypothesis]] = field(default_factory=dict)  # id -> hypotheses

    @property
    def ids(self) -> list[str]:
        return list(self.lists)

    def feature_names(self) -> list[str]:
        """Every feature name, in the order first seen."""
        names: dict[str, None] = {}
        for hyps in self.lists.values():
            for h in hyps:
                names.update(dict.fromkeys(h.features))
        return list(names)

    def __len__(self) -> int:
        return len(self.lists)


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    with open_binary(path) as stream:
        yield from enumerate(iter_lines(stream, str(path)), start=1)


def _number(text: str, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ElmanError(f"{where}: {what}: expected a number, found {text!r}") from None
    if not math.isfinite(value):
        raise ElmanError(f"{where}: {what} is {text}, not a finite number")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_features(text: str, where: str) -> dict[str, float]:
    """Moses's features field: ``name= v1 v2 name2= v3`` or ``name=v`` (module docstring)."""
    values: dict[str, list[float]] = {}
    name: str | None = None
    for token in text.split():
        if "=" in token and not _is_number(token):
            name, _, rest = token.partition("=")
            if not name or name in values:
                what = "a feature without a name" if not name else f"feature {name} twice"
                raise ElmanError(f"{where}: {what} in {text.strip()!r}")
            values[name] = [_number(rest, where, f"feature {name}")] if rest else []
        elif name is None:
            raise ElmanError(f"{where}: value {token!r} before any feature name (name= value)")
        else:
            values[name].append(_number(token, where, f"feature {name}"))
    out: dict[str, float] = {}
    for key, vals in values.items():
        if not vals:
            raise ElmanError(f"{where}: feature {key} has no value")
        if len(vals) == 1:
            out[key] = vals[0]
        else:
            out.update({f"{key}_{i}": v for i, v in enumerate(vals)})
    return out


def read_moses(path: str | Path) -> NbestList:
    """A Moses-format n-best file (module docstring)."""
    nbest = NbestList("moses")
    for number, line in _lines(path):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(SEPARATOR)]
        if len(fields) < 3 or len(fields[0].split()) != 1:
            raise ElmanError(
                f"{where}: expected 'id ||| hypothesis ||| features [||| total]', found "
                f"{line.strip()[:60]!r}"
            )
        features = parse_features(fields[2], where)
        if len(fields) > 3 and fields[3]:
            if TOTAL in features:
                raise ElmanError(f"{where}: a feature is named {TOTAL}, the fourth field's name")
            features[TOTAL] = _number(fields[3], where, "the total score (fourth field)")
        text = " ".join(fields[1].split())
        nbest.lists.setdefault(fields[0], []).append(Hypothesis(text, features, where))
    return nbest


def _kaldi_key(key: str, where: str) -> str:
    """``UTTERANCE-N`` -> ``UTTERANCE``."""
    utt, dash, rank = key.rpartition("-")
    if not (utt and dash and rank.isdigit()):
        raise ElmanError(f"{where}: expected UTTERANCE-N (N: the hypothesis' rank), found {key!r}")
    return utt


def read_score_file(path: str | Path, name: str, costs: bool) -> dict[str, float]:
    """``KEY value`` lines -> {KEY: value} (negated when ``costs``)."""
    out: dict[str, float] = {}
    for number, line in _lines(path):
        where = f"{path}:{number}"
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ElmanError(f"{where}: expected 'UTTERANCE-N value', found {line.strip()[:60]!r}")
        if parts[0] in out:
            raise ElmanError(f"{where}: {parts[0]} has a second {name} score")
        value = _number(parts[1], where, f"score {name}")
        out[parts[0]] = -value if costs else value
    return out


def read_kaldi(
    text: str | Path, scores: Mapping[str, str | Path], *, costs: bool = False
) -> NbestList:
    """A Kaldi-style n-best list: ``text`` and one score file per feature (module docstring)."""
    tables = {name: read_score_file(path, name, costs) for name, path in scores.items()}
    nbest = NbestList("kaldi")
    seen: set[str] = set()
    for number, line in _lines(text):
        where = f"{text}:{number}"
        if not line.strip():
            continue
        key, _, words = line.strip().partition(" ")
        utt = _kaldi_key(key, where)
        if key in seen:
            raise ElmanError(f"{where}: hypothesis {key} a second time")
        seen.add(key)
        features = {}
        for name, table in tables.items():
            if key not in table:
                raise ElmanError(f"{scores[name]}: no {name} score for {key} ({where})")
            features[name] = table[key]
        nbest.lists.setdefault(utt, []).append(Hypothesis(" ".join(words.split()), features, where))
    for name, table in tables.items():
        extra = next((k for k in table if k not in seen), None)
        if extra is not None:
            raise ElmanError(f"{scores[name]}: {extra} is not a hypothesis of {text}")
    return nbest


def read_references(path: str | Path, nbest: NbestList) -> list[str]:
    """One reference per id of ``nbest``, in its order: for Moses lists the k-th line is the
    k-th id's; for Kaldi lists the lines are ``UTTERANCE words …`` (Kaldi's ``text``)."""
    lines = list(_lines(path))
    if nbest.format == "moses":
        if len(lines) != len(nbest):
            raise ElmanError(
                f"{path}: {len(lines)} reference lines for the {len(nbest)} sentences of the "
                "n-best list; line k is the reference of the k-th id"
            )
        return [" ".join(line.split()) for _, line in lines]
    refs: dict[str, str] = {}
    for _, line in lines:
        key, _, words = line.strip().partition(" ")
        if key:
            refs[key] = " ".join(words.split())
    missing = next((utt for utt in nbest.ids if utt not in refs), None)
    if missing is not None:
        raise ElmanError(f"{path}: no reference for utterance {missing}")
    return [refs[utt] for utt in nbest.ids]
