"""CoNLL-U files: reading, checking and writing them back, with the ``conllu`` library.

A CoNLL-U file is a sequence of sentences separated by blank lines; a sentence is ``#`` comment
lines followed by one line per node, ten tab-separated columns::

    # text = I don't know
    1      I      I      PRON   ...          word 1
    2-3    don't  _      _      ...          multi-word token: the surface form of words 2-3
    2      do     do     AUX    ...          word 2
    3      n't    not    PART   ...          word 3
    4      know   know   VERB   ...          word 4
    4.1    knows  know   VERB   ...          empty node (enhanced graphs only)

As UD specifies, only the *words* (integer IDs) carry the morphosyntactic annotation a tagger
predicts: a multi-word-token line (``2-3``) is the surface form, its UPOS and XPOS are ``_``; an
empty node (``4.1``) belongs to the enhanced dependency graph, not to the word sequence (the
CoNLL 2018 evaluation script skips them). :meth:`Sentence.words` is therefore the integer-ID
lines, in order; the other lines are kept and written back untouched.

Reading checks every line and reports the first bad one as ``FILE:LINE: what was expected``.
Writing changes only the column asked for (:meth:`Sentence.set_column`); every other column and
every comment line is written back as it was read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import conllu
from conllu.exceptions import ParseException
from conllu.parser import parse_id_value
from conllu.serializer import serialize_field

from elman.data.text import read_text
from elman.errors import ElmanError

# The ten columns of CoNLL-U, in order (conllu's names).
FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
TAG_COLUMNS = ("upos", "xpos")
EMPTY = "_"  # an unset column


@dataclass
class Sentence:
    """One sentence: its comment lines (verbatim) and every node line as a ``conllu.Token``.

    Every column of a token is kept as the string read (``"_"`` when unset) except ``id``,
    which conllu parses into an int (word), ``(a, "-", b)`` (multi-word token) or
    ``(a, ".", b)`` (empty node).

    Attributes:
        comments: the ``#`` lines, without their newline.
        tokens: every node line, in file order.
        source: where the sentence was read, ``FILE:LINE`` of its first line (for messages).
    """

    comments: list[str]
    tokens: conllu.TokenList
    source: str = "?"

    def words(self) -> list[conllu.Token]:
        """The syntactic words: lines with an integer ID (no multi-word tokens, no empty nodes)."""
        return [t for t in self.tokens if isinstance(t["id"], int)]

    def forms(self) -> list[str]:
        return [t["form"] for t in self.words()]

    def column(self, name: str) -> list[str]:
        """The values of column ``name`` for every word (``"_"`` where unset)."""
        _check_column(name, FIELDS)
        return [t[name] for t in self.words()]

    def set_column(self, name: str, values: list[str]) -> None:
        """Write ``values`` into column ``name`` of the words; nothing else changes."""
        _check_column(name, FIELDS[1:])
        words = self.words()
        if len(values) != len(words):
            raise ValueError(f"{len(values)} values for the {len(words)} words of {self.source}")
        for token, value in zip(words, values, strict=True):
            token[name] = value

    def serialize(self) -> str:
        """The sentence as CoNLL-U text, ending in the blank line that closes it."""
        lines = list(self.comments)
        lines += ["\t".join(serialize_field(t[f]) for f in FIELDS) for t in self.tokens]
        return "\n".join(lines) + "\n\n"


def _check_column(name: str, accepted: tuple[str, ...]) -> None:
    if name not in accepted:
        raise ValueError(f"column {name!r} unknown; accepted: {', '.join(accepted)}")


def _parse_node(line: str, where: str, expected_word: int) -> conllu.Token:
    """One node line -> Token; anything malformed is an ElmanError naming ``where``."""
    columns = line.split("\t")
    if len(columns) != len(FIELDS):
        raise ElmanError(
            f"{where}: expected 10 tab-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD "
            f"DEPREL DEPS MISC), found {len(columns)}"
        )
    try:
        node_id = parse_id_value(columns[0])
    except ParseException:
        node_id = None
    if node_id is None:
        raise ElmanError(
            f"{where}: expected an ID in the first column (a word number like 3, a multi-word "
            f"range like 3-4 or an empty node like 3.1), found {columns[0]!r}"
        )
    if isinstance(node_id, int) and node_id != expected_word:
        raise ElmanError(
            f"{where}: expected word ID {expected_word} (word IDs count 1, 2, 3, … in each "
            f"sentence), found {node_id}"
        )
    empty = [f for f, v in zip(FIELDS, columns, strict=True) if v == ""]
    if empty:
        raise ElmanError(f"{where}: column {empty[0].upper()} is empty; write _ for an unset value")
    return conllu.Token(zip(FIELDS, [node_id, *columns[1:]], strict=True))


def check_ranges(nodes: list[conllu.Token], where: str) -> None:
    """Every multi-word token ``a-b`` (b > a) comes right before word a, covers words a … b that
    follow it, and overlaps no other range; else its surface form would stand for other words."""
    words = sum(isinstance(t["id"], int) for t in nodes)
    covered = 0  # the last word a range before covers
    for k, token in enumerate(nodes):
        node_id = token["id"]
        if not (isinstance(node_id, tuple) and node_id[1] == "-"):
            continue
        a, _, b = node_id
        after = next((t["id"] for t in nodes[k + 1 :] if isinstance(t["id"], int)), None)
        problem = (
            "its end is not after its start" if b <= a
            else f"the sentence has {words} words" if b > words
            else f"the next word is {after}, not {a}" if after != a
            else f"it overlaps the range ending at word {covered}" if a <= covered
            else None
        )  # fmt: skip
        if problem:
            raise ElmanError(
                f"{where}: multi-word token {a}-{b} must cover the words {a} to {b} that follow "
                f"it, but {problem}; fix the range or the word IDs"
            )
        covered = b


def parse_conllu(text: str, name: str = "<string>") -> list[Sentence]:
    """The sentences of CoNLL-U ``text``; ``name`` is the file named in error messages."""
    sentences: list[Sentence] = []
    comments: list[str] = []
    nodes: list[conllu.Token] = []
    start = 0

    def close() -> None:
        if nodes:
            check_ranges(nodes, f"{name}:{start}")
            sentences.append(Sentence(comments, conllu.TokenList(nodes), f"{name}:{start}"))
        elif comments:
            raise ElmanError(
                f"{name}:{start}: expected node lines after the comments of a sentence, found "
                "a blank line or the end of the file"
            )

    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            close()
            comments, nodes = [], []
            continue
        if not comments and not nodes:
            start = number
        if line.startswith("#"):
            if nodes:
                raise ElmanError(
                    f"{name}:{number}: expected a node line or a blank line; comment lines "
                    "come before a sentence's nodes"
                )
            comments.append(line)
            continue
        expected = 1 + sum(isinstance(t["id"], int) for t in nodes)
        nodes.append(_parse_node(line, f"{name}:{number}", expected))
    close()
    return sentences


def read_conllu(path: str | Path) -> list[Sentence]:
    """The sentences of a CoNLL-U file (strict UTF-8); a malformed line is an ElmanError."""
    sentences = parse_conllu(read_text(path), str(path))
    if not sentences:
        raise ElmanError(f"{path}: no sentences; expected CoNLL-U (10 tab-separated columns)")
    return sentences


def write_conllu(sentences: Iterable[Sentence], out: TextIO) -> None:
    """Write ``sentences`` as CoNLL-U to the text stream ``out``."""
    for sentence in sentences:
        out.write(sentence.serialize())
