"""Vocabulary: the map between tokens and integer ids, built from the training split only.

Ordering is deterministic: the special tokens first (default ``<unk>``, ``<eos>``), then
the other tokens by descending training frequency, ties broken alphabetically.  A token
outside the vocabulary (rarer than ``min_count``, beyond ``max_size``, or never seen in
training) is encoded as ``<unk>``.  The vocabulary is saved inside every checkpoint as the
plain dictionary of :meth:`Vocabulary.to_dict`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from elman.data.specials import EOS, UNK
from elman.errors import ElmanError

_FORMAT = 1  # version of the to_dict() layout


class Vocabulary:
    """Tokens ``itos[i]`` and their ids ``i``.

    Build one with :meth:`build` from the training tokens; ``Vocabulary(itos)`` wraps an
    explicit token list.  ``unk_index`` / ``eos_index`` are the ids of ``<unk>`` /
    ``<eos>``, or None when the vocabulary has no such token.
    """

    def __init__(self, itos: Sequence[str]) -> None:
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dup = Counter(self.itos).most_common(1)[0][0]
            raise ValueError(f"itos: token {dup!r} occurs more than once")
        self.unk_index: int | None = self.stoi.get(UNK)
        self.eos_index: int | None = self.stoi.get(EOS)

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (UNK, EOS),
    ) -> Vocabulary:
        """The vocabulary of ``tokens`` (pass the training split only).

        Args:
            tokens: the training token stream (or any iterable of tokens).
            min_count: tokens seen fewer times are left out (they will encode as ``<unk>``).
            max_size: at most this many entries in total, specials included; the rarest
                tokens are left out first.  None: no limit.
            specials: tokens placed first, in this order, whether or not they occur.
                Character corpora without ``<eos>`` pass ``specials=("<unk>",)``.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < len(specials):
            raise ValueError(
                f"max_size must be >= the number of specials ({len(specials)}), got {max_size}"
            )
        counts = Counter(tokens)
        special_set = set(specials)
        # Descending count, ties alphabetical: the same corpus gives the same ids everywhere.
        ranked = sorted(
            (tok for tok, c in counts.items() if c >= min_count and tok not in special_set),
            key=lambda tok: (-counts[tok], tok),
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(specials)]
        return cls([*specials, *ranked])

    # --- lookups -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __getitem__(self, index: int) -> str:
        return self.itos[index]

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.itos == other.itos

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.itos[:5])
        return f"Vocabulary(size={len(self)}, itos=[{head}{', ...' if len(self) > 5 else ''}])"

    def index(self, token: str) -> int:
        """The id of ``token``; an unknown token gives ``unk_index``."""
        i = self.stoi.get(token, self.unk_index)
        if i is None:
            raise ElmanError(f"token {token!r} is not in the vocabulary, which has no {UNK}")
        return i

    def encode(self, tokens: Iterable[str]) -> torch.Tensor:
        """The ids of ``tokens`` as a LongTensor of shape (N,); unknown tokens -> ``unk_index``."""
        if self.unk_index is None:
            try:
                ids = [self.stoi[t] for t in tokens]
            except KeyError as err:
                raise ElmanError(
                    f"token {err.args[0]!r} is not in the vocabulary, which has no {UNK}"
                ) from None
        else:
            get, unk = self.stoi.get, self.unk_index
            ids = [get(t, unk) for t in tokens]
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """The tokens of ``ids`` (a 1-D tensor or any iterable of ints)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        itos = self.itos
        return [itos[i] for i in ids]

    # --- (de)serialisation -----------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-serialisable dictionary; :meth:`from_dict` rebuilds the same vocabulary."""
        return {"format": _FORMAT, "itos": list(self.itos)}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        """The vocabulary saved by :meth:`to_dict`; a malformed dictionary is an ElmanError."""
        if not isinstance(d, dict) or not isinstance(d.get("itos"), list):
            raise ElmanError("vocabulary: expected a dictionary with a list 'itos' (from to_dict)")
        if d.get("format", _FORMAT) != _FORMAT:
            raise ElmanError(
                f"vocabulary: format {d.get('format')!r} is not supported (expected {_FORMAT})"
            )
        itos = d["itos"]
        if not all(isinstance(t, str) for t in itos):
            raise ElmanError("vocabulary: every entry of 'itos' must be a string")
        try:
            return cls(itos)
        except ValueError as err:
            raise ElmanError(f"vocabulary: {err}") from None
