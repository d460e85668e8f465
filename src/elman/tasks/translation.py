"""The translation task: a parallel corpus, subword vocabularies, token batches and a Seq2Seq.

Trained with the shared trainer (the model's ``loss`` is the summed cross entropy over the real
target pieces of a batch, teacher-forced; no state between batches). After every epoch the
trainer scores the validation split's cross entropy (cheap: one teacher-forced pass, no
decoding), which picks ``best.pt`` and drives the schedule and early stopping.

Reported (``evaluate``, ``elman eval``, ``results.json``): sacreBLEU BLEU (13a tokenization,
cased) and chrF of the detokenized 1-best outputs (greedy or beam search as the recipe's
``[decode]`` says) against the raw reference lines, with sacreBLEU's signatures, and the
teacher-forced cross entropy per target piece (``loss``, ``ppl``; subword pieces, so not
comparable with word-level perplexities). For ``multi30k`` the splits ``valid`` and ``test`` are
``val`` and ``test_2016_flickr``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from elman.data.pair_batches import TokenBatches
from elman.data.parallel import ParallelCorpus, parse_direction, resolve_parallel
from elman.data.subword import MODEL_TYPES, UNK_ID, SubwordVocab
from elman.errors import ElmanError
from elman.inference.search import DecodeConfig
from elman.inference.translate import (
    Decoder,
    Translation,
    decoder,
    translate_lines,
    translate_nbest,
)
from elman.models.seq2seq import Seq2Seq, Seq2SeqConfig, build_seq2seq
from elman.progress import Counted, Progress
from elman.tasks.finetuning import VocabReport, check_same, share, vocab_source
from elman.tasks.protocol import Capabilities, Loaded, Metrics, Prepared, Task, rebuild
from elman.train import distributed
from elman.train.recipe import DROPOUTS, Recipe, Renamed
from elman.train.trainer import evaluate_loss, pick_device

EVAL_MAX_TOKENS = 8000  # padded tokens per batch when scoring a split's cross entropy


@dataclass
class TranslationDataConfig:
    dataset: str = "multi30k"  # a name (`elman data list`) or a folder of train/valid/test.SRC|TGT
    direction: str = "de-en"  # SRC-TGT (multi30k: de-en or en-de)
    subword: str = "bpe"  # bpe | unigram (sentencepiece)
    joint: bool = True  # one vocabulary for both languages, else one per side
    vocab_size: int = 8000  # pieces per sentencepiece model (an upper bound for tiny corpora)
    character_coverage: float = 1.0  # keep every training character
    max_tokens: int = 4000  # a training batch: B · max(S, T) <= max_tokens padded pieces
    max_train_len: int = 100  # training pairs with a longer side (in pieces) are left out
    eval_batch_size: int = 64  # sentences per decoding batch (any size gives the same output)
    # another run's subword models (a checkpoint or run folder; --init-from sets it): kept, the
    # new text cut into their pieces (then subword, joint, vocab_size, character_coverage
    # are not read); a sentencepiece model cannot be extended, so extend_vocab must be false
    vocab_from: str | None = None
    extend_vocab: bool = False

    def __post_init__(self) -> None:
        if self.extend_vocab:
            raise ValueError(
                "extend_vocab = true: a sentencepiece model cannot take new pieces; with "
                "vocab_from (or --init-from) the checkpoint's subword model is kept and the new "
                "text is cut into its pieces (an unknown character reads as <unk>)"
            )
        for name in ("vocab_size", "max_tokens", "max_train_len", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.subword not in MODEL_TYPES:
            raise ValueError(f"subword = {self.subword!r} unknown; valid: {', '.join(MODEL_TYPES)}")
        if not 0.0 < self.character_coverage <= 1.0:
            raise ValueError(f"character_coverage must be in (0, 1], got {self.character_coverage}")
        try:
            parse_direction(self.direction)
        except ElmanError as err:
            raise ValueError(str(err)) from None


@dataclass
class TranslationRecipe(Recipe):
    data: TranslationDataConfig
    model: Seq2SeqConfig
    decode: DecodeConfig


def build_model(recipe: TranslationRecipe, vocab: SubwordVocab) -> Seq2Seq:
    """The recipe's Seq2Seq, sized to the vocabularies."""
    cfg = recipe.model
    cfg.src_vocab_size, cfg.tgt_vocab_size = len(vocab.src), len(vocab.tgt)
    try:
        return build_seq2seq(cfg)
    except ValueError as err:
        raise ElmanError(f"[model]: {err}") from None


def pair_batches(
    vocab: SubwordVocab, corpus: ParallelCorpus, split: str, max_tokens: int, **kw: Any
) -> TokenBatches:
    src, tgt = corpus.pairs(split)
    return TokenBatches(vocab.src.encode(src), vocab.tgt.encode(tgt), max_tokens, **kw)


def evaluate_model(
    model: Decoder,
    vocab: SubwordVocab,
    dataset: ParallelCorpus,
    split: str,
    batch_size: int,
    device: torch.device,
    decode: DecodeConfig,
) -> Metrics:
    """BLEU, chrF (sacreBLEU, with signatures) and cross entropy of ``model`` (one, or an
    ensemble decoding as one) on one split."""
    import sacrebleu  # imported here: only translation needs it

    start = time.perf_counter()
    sources, references = dataset.pairs(split)
    batches = pair_batches(vocab, dataset, split, EVAL_MAX_TOKENS)
    name = f"{dataset.name}/{dataset.split_name(split)}"
    with Progress(f"scoring {name}", len(batches), unit="batches") as progress:
        scored = evaluate_loss(model, Counted(batches, progress), device)
    what = f"translating {name} (beam {decode.beam})"
    hypotheses = translate_lines(model, vocab, sources, decode, batch_size, device, what=what)
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    return {
        "split": dataset.split_name(split),
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "loss": scored["loss"],
        "ppl": math.exp(min(scored["loss"], 700)),
        "sentences": len(sources),
        "tokens": scored["tokens"],
        "beam": decode.beam,
        "length_penalty": decode.length_penalty,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "seconds": time.perf_counter() - start,
    }


def inherited_vocab(
    corpus: ParallelCorpus, cfg: TranslationDataConfig, vocab: SubwordVocab | None
) -> tuple[SubwordVocab, VocabReport]:
    """The subword models of ``cfg.vocab_from`` (or ``vocab``, a resume's), kept, and the share
    of the pieces of each split (source and target together) that read as ``<unk>``: unknown
    characters, and target pieces the checkpoint's target side does not keep."""
    if vocab is None:  # a new run: the other checkpoint's (a resume passes the run's own)
        payload = vocab_source(cfg.vocab_from or "", "translation")
        direction = payload["recipe"].get("data", {}).get("direction")
        check_same("data.vocab_from", cfg.vocab_from, direction, cfg.direction, "data.direction")
        vocab = SubwordVocab.from_dict(payload["vocab"])
    counts = {}
    for split in ("train", "valid", "test"):
        src, tgt = corpus.pairs(split)
        ids = [*vocab.src.encode(src), *vocab.tgt.encode(tgt)]
        counts[split] = (sum(map(len, ids)), sum(row.count(UNK_ID) for row in ids))
    oov = {split: share(unknown, n) for split, (n, unknown) in counts.items()}
    report = VocabReport(
        cfg.vocab_from or "", False, len(vocab.tgt), {}, "pieces", counts["train"][0],
        oov["train"], oov,
    )  # fmt: skip
    return vocab, report


class TranslationTask(Task):
    """RNN encoder-decoders: plain, conditioned (Cho et al. 2014) and attention."""

    name: ClassVar[str] = "translation"
    recipe_type: ClassVar[type[Recipe]] = TranslationRecipe
    capabilities: ClassVar[Capabilities] = Capabilities(translate=True, ensemble=True)
    renamed: ClassVar[Renamed] = {
        "model.dropout": lambda p: {f"model.dropout_{w}": p for w in DROPOUTS},
    }

    def prepare(self, recipe: TranslationRecipe, vocab: SubwordVocab | None = None) -> Prepared:
        """The subword model is learned from the training split (or taken from the checkpoint
        on resume: the same pieces, so the same batches and weights)."""
        cfg = recipe.data
        corpus = resolve_parallel(cfg.dataset, cfg.direction)
        for split in ("valid", "test"):  # unequal or unreadable files stop the run now
            corpus.pairs(split)
        src, tgt = corpus.pairs("train")
        report = None
        if cfg.vocab_from is not None:
            vocab, report = inherited_vocab(corpus, cfg, vocab)
        elif vocab is None:
            vocab = SubwordVocab.build(
                src, tgt, vocab_size=cfg.vocab_size, model_type=cfg.subword, joint=cfg.joint,
                character_coverage=cfg.character_coverage,
            )  # fmt: skip
        src_ids, tgt_ids = vocab.src.encode(src), vocab.tgt.encode(tgt)
        keep = [
            k
            for k in range(len(src_ids))
            if max(len(src_ids[k]), len(tgt_ids[k])) <= cfg.max_train_len
        ]
        if not keep:
            raise ElmanError(f"[data] max_train_len = {cfg.max_train_len} leaves no training pair")
        train_data = TokenBatches(
            [src_ids[k] for k in keep], [tgt_ids[k] for k in keep], cfg.max_tokens,
            shuffle=True, seed=recipe.train.seed,
        )  # fmt: skip
        valid_data = pair_batches(vocab, corpus, "valid", EVAL_MAX_TOKENS)
        valid_device = pick_device(recipe.train.device, "train.device")
        model = build_model(recipe, vocab)

        def validate(m: torch.nn.Module) -> dict[str, float]:
            out = evaluate_loss(m, valid_data, valid_device)
            return {"loss": out["loss"], "ppl": math.exp(min(out["loss"], 700))}

        # under torchrun each process trains on its own pairs of every global batch
        train_data = distributed.shard_rows(train_data)
        return Prepared(model, train_data, validate, corpus, vocab, vocab_report=report)

    def vocab_from_dict(self, d: dict[str, Any]) -> SubwordVocab:
        return SubwordVocab.from_dict(d)

    def load(self, payload: dict[str, Any], device: torch.device) -> Loaded:
        return rebuild(self, payload, device, build_model)

    def dataset(self, name: str, recipe: Any) -> ParallelCorpus:
        """The corpus ``name`` in the direction the model was trained on."""
        return resolve_parallel(name, recipe.data.direction)

    def evaluate(
        self,
        loaded: Loaded,
        dataset: Any,
        split: str,
        *,
        batch_size: int | None = None,
        decode: DecodeConfig | None = None,
    ) -> Metrics:
        """With ``decode`` (default: the recipe's ``[decode]``) for the BLEU and chrF outputs."""
        bs = batch_size or loaded.recipe.data.eval_batch_size
        decode = decode or loaded.recipe.decode
        return evaluate_model(
            members(loaded), loaded.vocab, dataset, split, bs, loaded.device, decode
        )

    def summary(self, metrics: Metrics) -> str:
        m = metrics
        return (
            f"BLEU {m['bleu']:.2f} | chrF {m['chrf']:.2f} | loss {m['loss']:.4f} "
            f"(ppl {m['ppl']:.2f} per piece) | {m['sentences']} sentences, beam {m['beam']}"
        )

    def notes(self, metrics: Metrics) -> list[str]:
        return [f"sacreBLEU {metrics['bleu_signature']}", f"sacreBLEU {metrics['chrf_signature']}"]

    def translate(
        self,
        loaded: Loaded,
        lines: Sequence[str],
        *,
        decode: DecodeConfig | None = None,
        batch_size: int = 64,
    ) -> list[str]:
        decode = decode or loaded.recipe.decode
        return translate_lines(
            members(loaded), loaded.vocab, lines, decode, batch_size, loaded.device
        )

    def translate_nbest(
        self,
        loaded: Loaded,
        lines: Sequence[str],
        n_best: int,
        *,
        decode: DecodeConfig | None = None,
        batch_size: int = 64,
    ) -> list[list[Translation]]:
        decode = decode or loaded.recipe.decode
        model, vocab, device = members(loaded), loaded.vocab, loaded.device
        return translate_nbest(model, vocab, lines, decode, n_best, batch_size, device)

    def check_ensemble(self, loaded: Loaded, member: Loaded) -> None:
        """Every member must read and write the same subword pieces as the first model: the
        same sentencepiece model(s), byte for byte, and the same kept target pieces."""
        mine, theirs = loaded.vocab, member.vocab
        sides = {"source": (mine.src, theirs.src), "target": (mine.tgt, theirs.tgt)}
        side = next((name for name, (a, b) in sides.items() if a != b), None)
        if side is not None:
            raise ElmanError(
                f"--ensemble {member.path}: its {side} subword vocabulary differs from that of "
                f"{loaded.path}; ensemble models trained on the same data and subword model"
            )


def members(loaded: Loaded) -> Decoder:
    """``loaded``'s model, or an ensemble of it and ``loaded.ensemble``'s models."""
    return decoder(loaded.model, [m.model for m in loaded.ensemble])


TASK = TranslationTask()
