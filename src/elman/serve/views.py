"""The models ``elman serve`` holds, each behind the questions the API asks it.

A :class:`LanguageModelView` scores a sentence token by token and says, at every position, what
it expected there: the per-token log-probability log P(w_t | w_<t) and surprisal −log2 P (the
sentence convention of ``elman score``: fresh at the sentence start, each word, then ``</s>``),
and the top-k of the whole next-token distribution ŷ_t at that position. A
:class:`TaggerView` gives every word's tag distribution ŷ_t, a :class:`TranslatorView` the n-best
list and the attention a_ti of the best translation.

**Identical batched and alone.** Requests that arrive together are scored together
(:mod:`elman.serve.batching`), and a response must not depend on its company. Floating-point
sums do depend on the shape of a batch (a (T, B) product is blocked by its size), so a neural
LM scores every sentence in a grid of fixed shape: ``ROWS`` sentence slots and a length bucket
(the next power of two ≥ 16 of the sentence's own length); sentences share a grid only with
sentences of the same bucket, and unused slots are filled with padding. Each slot's numbers
then come out the same whatever the other slots hold, and so the same as alone (a test). The
n-gram model's lookups are exact anyway.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from elman.errors import ElmanError
from elman.inference.generate import MAX_SEED, check_sampling
from elman.inference.search import DecodeConfig
from elman.inference.tagging import tag_distributions
from elman.inference.translate import attention_map, encode_sources, nbest_ids
from elman.models.ngram import NgramLM, read_model
from elman.tasks.loading import load
from elman.tasks.protocol import Loaded
from elman.tasks.scoring import END, NeuralScorer, NgramScorer, is_arpa, is_model, words_of
from elman.tasks.translation import members

ROWS = 8  # sentence slots of a neural LM's scoring grid
MIN_BUCKET = 16  # the shortest grid, in tokens


@dataclass(frozen=True)
class Alternative:
    token: str
    prob: float


@dataclass(frozen=True)
class ScoredToken:
    """One predicted token: ln P, surprisal in bits, OOV or not, and the top-k expected."""

    token: str
    logprob: float
    unknown: bool
    top: list[Alternative] = field(default_factory=list)

    @property
    def surprisal(self) -> float:
        return -self.logprob / math.log(2.0)


@dataclass(frozen=True)
class ScoredSentence:
    tokens: list[ScoredToken]
    dists: list[np.ndarray] = field(default_factory=list, repr=False)  # ŷ_t, for mixtures

    @property
    def logprob(self) -> float:
        return float(sum(t.logprob for t in self.tokens))

    @property
    def ppl(self) -> float:
        return math.exp(min(-self.logprob / len(self.tokens), 700.0))

    @property
    def oovs(self) -> int:
        return sum(t.unknown for t in self.tokens)


def bucket(length: int) -> int:
    """The grid length of a sentence of ``length`` tokens: a power of two ≥ MIN_BUCKET."""
    return max(MIN_BUCKET, 1 << (length - 1).bit_length())


def top_of(probs: np.ndarray, k: int, itos: Sequence[str]) -> list[Alternative]:
    """The k most probable entries of ``probs`` (V,), best first (ties: the lower id)."""
    if k <= 0:
        return []
    k = min(k, len(probs))
    idx = np.argpartition(-probs, k - 1)[:k]
    idx = idx[np.lexsort((idx, -probs[idx]))]
    return [Alternative(itos[i], float(probs[i])) for i in idx]


class LanguageModelView:
    """An ARPA n-gram model, an RNN LM or an NPLM: score, next tokens, generate."""

    def __init__(self, name: str, path: str, loaded: Loaded | None = None) -> None:
        self.name, self.path = name, path
        self.loaded = loaded
        self.ngram: NgramLM | None = None
        if loaded is None:
            self.ngram = read_model(path)
            self.kind, self.level = "ngram", "word"
            self.scorer: NgramScorer | NeuralScorer = NgramScorer(self.ngram, path)
            self.itos = [END if w == "</s>" else w for w in self.ngram.vocab]
        else:
            self.kind, self.level = loaded.task.name, loaded.level
            self.scorer = NeuralScorer(loaded)
            vocab = loaded.vocab
            self.itos = [END if i == self.scorer.end else t for i, t in enumerate(vocab.itos)]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @property
    def abilities(self) -> list[str]:
        return ["score", "next"] + (["generate"] if self.kind in ("lm", "nplm") else [])

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name, "kind": self.kind, "path": self.path, "level": self.level,
            "abilities": self.abilities, "vocab_size": len(self.itos),
        }  # fmt: skip
        if self.ngram is not None:
            out["order"] = self.ngram.order
        return out

    def tokens(self, text: str) -> list[str]:
        return words_of(text) if self.ngram is not None else self.scorer.tokens(text)  # type: ignore[union-attr]

    # --- scoring ------------------------------------------------------------------------------
    def score(
        self, texts: Sequence[str], top_k: int, keep_dists: bool = False
    ) -> list[ScoredSentence]:
        """Every text as one sentence, each position with its top-k (module docstring)."""
        if self.ngram is not None:
            return [self._score_ngram(t, top_k, keep_dists) for t in texts]
        return self._score_neural(texts, top_k, keep_dists)

    def _score_ngram(self, text: str, top_k: int, keep: bool) -> ScoredSentence:
        assert self.ngram is not None
        scores = self.scorer.score([text])[0]
        lm = self.ngram
        history = [lm.bos_id]
        out, dists = [], []
        for token, lp, unk in zip(scores.tokens, scores.logprobs, scores.unknown, strict=True):
            probs = lm.next_probs(history)
            out.append(ScoredToken(token, float(lp), bool(unk), top_of(probs, top_k, self.itos)))
            if keep:
                dists.append(probs)
            history.append(lm.index.get(token, lm.unk_id))
        return ScoredSentence(out, dists)

    def _score_neural(self, texts: Sequence[str], top_k: int, keep: bool) -> list[ScoredSentence]:
        scorer = self.scorer
        assert isinstance(scorer, NeuralScorer) and self.loaded is not None
        tokens = [scorer.tokens(t) for t in texts]
        known = [scorer._known(t) for t in tokens]
        unk = self.loaded.vocab.unk_index
        ids = [[unk if i is None else i for i in k] + [scorer.end] for k in known]
        groups: dict[int, list[int]] = {}
        for n, sentence in enumerate(ids):
            groups.setdefault(bucket(len(sentence)), []).append(n)
        out: list[ScoredSentence] = [ScoredSentence([])] * len(texts)
        for length, members_ in groups.items():
            for at in range(0, len(members_), ROWS):
                chunk = members_[at : at + ROWS]
                grid = self._grid([ids[n] for n in chunk], length)  # (ROWS, length, V)
                for b, n in enumerate(chunk):
                    out[n] = self._read(grid[b, : len(ids[n])], tokens[n], known[n], ids[n],
                                        top_k, keep)  # fmt: skip
        return out

    def _read(
        self,
        logp: torch.Tensor,
        tokens: list[str],
        known: list[int | None],
        ids: list[int],
        top_k: int,
        keep: bool,
    ) -> ScoredSentence:
        """One sentence's scores from its rows of a grid, ``logp`` (len(ids), V)."""
        target = logp.gather(1, torch.tensor(ids)[:, None]).squeeze(1).double().tolist()
        tops: list[list[Alternative]] = [[] for _ in ids]
        if top_k > 0:  # torch.topk: sorted, best first
            values, index = logp.topk(min(top_k, logp.shape[1]), dim=1)
            for row, (v, i) in enumerate(zip(values.double().exp().tolist(), index.tolist(),
                                             strict=True)):  # fmt: skip
                tops[row] = [Alternative(self.itos[j], p) for j, p in zip(i, v, strict=True)]
        scored = [
            ScoredToken(tok, lp, i is None, top)
            for tok, i, lp, top in zip([*tokens, END], [*known, 0], target, tops, strict=True)
        ]
        return ScoredSentence(scored, list(logp.double().exp().numpy()) if keep else [])

    @torch.no_grad()
    def _grid(self, sentences: list[list[int]], length: int) -> torch.Tensor:
        """log P(· | history) at every position of every sentence: (ROWS, length, V), from a
        grid of fixed shape (module docstring)."""
        assert self.loaded is not None
        model, start = self.loaded.model, self.scorer.end  # type: ignore[union-attr]
        model.eval()
        if self.kind == "nplm":
            n = model.context_size
            windows = torch.full((ROWS * length, n), start, dtype=torch.long)
            for b, s in enumerate(sentences):
                padded = torch.tensor([start] * n + s[:-1], dtype=torch.long)
                windows[b * length : b * length + len(s)] = padded.unfold(0, n, 1)[: len(s)]
            logits = model(windows.to(self.loaded.device))
            return torch.log_softmax(logits.float(), dim=-1).view(ROWS, length, -1).cpu()
        inputs = torch.full((length, ROWS), start, dtype=torch.long)
        for b, s in enumerate(sentences):
            inputs[1 : len(s), b] = torch.tensor(s[:-1], dtype=torch.long)
        logits, _ = model(inputs.to(self.loaded.device), None)  # (length, ROWS, V)
        return torch.log_softmax(logits.float(), dim=-1).transpose(0, 1).cpu()

    def prob_of(self, probs: np.ndarray, token: str) -> float:
        """P(token) in a distribution of this model (a token it lacks: its <unk>'s, else 0)."""
        i = self.stoi.get(token, self.stoi.get("<unk>"))
        return 0.0 if i is None else float(probs[i])

    # --- next tokens and generation -----------------------------------------------------------
    def next(self, prefix: str, k: int) -> tuple[list[str], list[Alternative]]:
        """The k most probable tokens after ``prefix`` (read from the sentence start)."""
        tokens = self.tokens(prefix)
        scored = self.score([" ".join(tokens) if self.level == "word" else prefix], k)[0]
        return tokens, scored.tokens[-1].top  # the position of </s>: what follows the prefix

    def generate(
        self,
        prompt: str,
        tokens: int,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        seed: int | None,
    ) -> tuple[str, int]:
        if self.loaded is None:
            raise ElmanError(f"model {self.name!r} is an n-gram model; it cannot generate here")
        seed = secrets.randbelow(MAX_SEED) if seed is None else seed
        check_sampling(tokens, temperature, top_k, top_p, seed)
        text = self.loaded.generate(
            prompt, tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
        )
        return text, seed


def mixture(
    views: Sequence[LanguageModelView],
    scored: Sequence[ScoredSentence],
    weights: Sequence[float],
    top_k: int,
) -> ScoredSentence:
    """P(w) = Σ_i λ_i P_i(w) at every position (the members scored the same tokens), its top-k
    over the union of the members' vocabularies."""
    out = []
    first = scored[0]
    for t, token in enumerate(first.tokens):
        p = sum(w * math.exp(s.tokens[t].logprob) for w, s in zip(weights, scored, strict=True))
        unknown = any(s.tokens[t].unknown for s in scored)
        candidates = {a.token for s in scored for a in s.tokens[t].top}
        mixed = {
            c: sum(
                w * v.prob_of(s.dists[t], c) for w, v, s in zip(weights, views, scored, strict=True)
            )
            for c in candidates
        }
        best = sorted(mixed.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        out.append(
            ScoredToken(
                token.token,
                math.log(p) if p > 0 else -math.inf,
                unknown,
                [Alternative(c, q) for c, q in best],
            )  # fmt: skip
        )
    return ScoredSentence(out)


class TaggerView:
    """A tagger (or a tagger ensemble): each word's tag distribution ŷ_t."""

    kind = "tagger"
    abilities = ["tag"]

    def __init__(self, name: str, loaded: Loaded) -> None:
        self.name, self.loaded, self.path = name, loaded, str(loaded.path)
        self.tags = list(loaded.vocab.tags.itos)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "path": self.path,
                "abilities": self.abilities, "tags": self.tags}  # fmt: skip

    def tag(self, sentences: Sequence[Sequence[str]], top_k: int = 3) -> list[list[dict]]:
        loaded = self.loaded
        ensemble = [(loaded.model, loaded.vocab)] + [(m.model, m.vocab) for m in loaded.ensemble]
        # batches of 8 sentences of similar length: a long sentence pads few short ones
        dists = tag_distributions(ensemble, sentences, 8, loaded.device)
        words = loaded.vocab.words
        out = []
        for sentence, probs in zip(sentences, dists, strict=True):
            rows = []
            for word, p in zip(sentence, probs.double().numpy(), strict=True):
                top = top_of(p, top_k, self.tags)
                rows.append({
                    "word": word, "tag": top[0].token, "prob": top[0].prob,
                    "unknown": word not in words.stoi,
                    "top": [{"tag": a.token, "prob": a.prob} for a in top],
                })  # fmt: skip
            out.append(rows)
        return out


class TranslatorView:
    """A translation model: the n-best list and the attention of the best translation."""

    kind = "translation"
    abilities = ["translate"]

    def __init__(self, name: str, loaded: Loaded) -> None:
        self.name, self.loaded, self.path = name, loaded, str(loaded.path)
        self.has_attention = loaded.recipe.model.kind == "attention"

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "path": self.path,
                "abilities": self.abilities, "attention": self.has_attention}  # fmt: skip

    def translate(self, text: str, beam: int, n_best: int, attention: bool) -> dict[str, object]:
        loaded = self.loaded
        recipe = loaded.recipe.decode
        decode = DecodeConfig(**{**vars(recipe), "beam": beam})
        vocab = loaded.vocab
        if not text.strip():
            raise ElmanError("text: there is nothing to translate; give a sentence")
        source = encode_sources(vocab, [text], decode.max_source_len)[0]
        hyps = nbest_ids(members(loaded), [source], decode, n_best, 1, loaded.device, what="")[0]
        answer: dict[str, object] = {
            "model": self.name,
            "source_pieces": vocab.src.pieces(source) + ["</s>"],
            "translations": [
                {
                    "text": vocab.tgt.decode(h.tokens),
                    "logprob": h.log_prob,
                    "score": h.score,
                    "pieces": vocab.tgt.pieces(h.tokens) + ["</s>"],
                }  # fmt: skip
                for h in hyps
            ],
        }
        if attention and self.has_attention and hyps:
            weights = attention_map(loaded.model, source, hyps[0].tokens, loaded.device)
            answer["attention"] = weights.double().numpy().tolist()
        return answer


View = LanguageModelView | TaggerView | TranslatorView


def load_view(name: str, path: str, device: str | torch.device = "cpu") -> View:
    """The model in ``path`` under ``name``; any problem is one line naming the file."""
    if not is_model(path):
        why = "not a model" if Path(path).exists() else "no such file"
        raise ElmanError(f"{name}={path}: {why}; give a run folder, a checkpoint or an ARPA file")
    if is_arpa(path):
        return LanguageModelView(name, path)
    loaded = load(path, device, command="elman serve")
    task = loaded.task.name
    if task in ("lm", "nplm"):
        return LanguageModelView(name, path, loaded)
    if task == "tagger":
        return TaggerView(name, loaded)
    if task == "translation":
        return TranslatorView(name, loaded)
    raise ElmanError(
        f"{name}={path}: a {task!r} model; elman serve holds LMs, taggers and translators"
    )
