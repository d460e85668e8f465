"""``elman score MODEL [MODEL …] [--mix-lambda auto|x] [--tune FILE] [FILE|-]``: the
log-probability of every line of FILE (standard input by default), each line one sentence.

MODEL is an ARPA n-gram file, an RNN LM or NPLM checkpoint or run folder; several MODELs are
mixed token by token, P = Σ w_i P_i: ``--mix-lambda x`` gives the first of two models weight x,
``--mix-lambda 0.5,0.3,0.2`` one weight per model; ``auto`` (the default) tunes them by EM on
``--tune FILE``, or without it weighs every model equally. The last argument is the input when
it is ``-`` or a file that is no model (not ARPA, not a checkpoint, not a folder).

Each line is scored on its own (the sentence convention, docs/lm.md): the model starts fresh
at the sentence start and predicts each word and then ``</s>``. Output, one line per input
line, in order, as each is done: tab-separated with a header line (``--format tsv``)

    line  logprob  log10prob  tokens  oovs  ppl  [per_token]

logprob is ln P(sentence), log10prob log10 P (KenLM's "Total"), tokens the words + 1 for
``</s>``, oovs the tokens scored as ``<unk>``, ppl exp(−logprob / tokens). ``--per-token`` adds
each token as ``TOKEN|LOGPROB|UNKNOWN`` (natural log; UNKNOWN 1 for an OOV), space-separated,
with a backslash, tab, newline or space in a token written ``\\\\``, ``\\t``, ``\\n``, ``\\s``.
``--format jsonl`` writes one JSON object per line with the same keys (``per_token``: a list
of {token, logprob, unknown}). A line of any length is scored whole; a line that is not UTF-8
stops with its line number. The totals over all lines go to standard error.

``--dynamic LR`` (neural models) is dynamic evaluation across the lines: each line is scored on
its own as always, then the model takes one SGD step of rate LR on it (``--dynamic-decay``
pulls the weights back toward the trained ones), so every line is scored by weights that have
seen the lines before it, in their order; lines are then scored one at a time.
``--dynamic-rule rms`` takes the paper's RMS step instead, each weight's step divided by the
RMS of its gradient over the first ``--dynamic-stats-tokens`` tokens of ``--dynamic-stats
FILE`` (training text, one sentence a line, each scored on its own as the input is).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from elman.cli.options import (
    add_device,
    add_dynamic,
    add_threads,
    check_device,
    check_output,
    integer,
    use_threads,
)
from elman.inference.limits import MAX_BATCH

FORMATS = ("tsv", "jsonl")
COLUMNS = ("line", "logprob", "log10prob", "tokens", "oovs", "ppl")
MAX_CHUNK = 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="log-probabilities of sentences under LMs and mixtures", description=__doc__
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="MODEL",
        help="ARPA files, LM/NPLM checkpoints or run folders; then the input FILE or - "
        "(default: standard input)",
    )
    p.add_argument(
        "--mix-lambda",
        default="auto",
        help="mixture weights: auto (tuned on --tune, else equal), x (the first of two "
        "models' weight) or w1,w2,… summing to 1",
    )
    p.add_argument(
        "--tune",
        metavar="FILE",
        help="tune the mixture weights by EM on these lines (default: none)",
    )
    p.add_argument("--per-token", action="store_true", help="add each token's log-probability")
    p.add_argument("--format", choices=FORMATS, default="tsv", help="tsv (with a header) or jsonl")
    p.add_argument(
        "--out", help="output file, written whole or not at all (default: standard output)"
    )
    p.add_argument(
        "--batch-size",
        type=integer(1, MAX_BATCH),
        default=64,
        help="neural models: sentences per batch",
    )
    p.add_argument(
        "--chunk-size",
        type=integer(1, MAX_CHUNK),
        default=1000,
        help="lines read and scored together (sorted by length within; 1 when the input is "
        "a terminal)",
    )
    add_dynamic(p, "neural models", "line", "--dynamic-stats")
    p.add_argument(
        "--dynamic-stats", metavar="FILE",
        help="with --dynamic-rule rms: training text, one sentence a line, whose gradients "
        "give each weight's RMS (default: none)",
    )  # fmt: skip
    add_device(p)
    add_threads(p)
    p.set_defaults(func=run)


def split_paths(paths: list[str]) -> tuple[list[str], str]:
    """The models and the input among the positional arguments (module docstring)."""
    from elman.errors import ElmanError
    from elman.tasks.scoring import is_model

    models, source = list(paths), "-"
    if models[-1] == "-" or (len(models) > 1 and not is_model(models[-1])):
        source = models.pop()
    if not models:
        raise ElmanError("elman score needs a MODEL before the input (see: elman score --help)")
    for m in models:
        if not is_model(m):
            why = "not a model" if Path(m).exists() else "no such file"
            raise ElmanError(f"{m}: {why}; a MODEL is an ARPA file, a checkpoint or a run folder")
    return models, source


def escape(token: str) -> str:
    """A token as one TSV field item: no tab, newline or space left in it."""
    return token.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace(" ", "\\s")


def number(x: float) -> str:
    return format(x, ".10g")


def tsv_line(score: Any, per_token: bool) -> str:
    """One sentence's TSV row (``score``: a :class:`~elman.tasks.scoring.SentenceScore`)."""
    fields = [
        str(score.line), number(score.logprob), number(score.log10prob),
        str(score.tokens), str(score.oovs), number(score.ppl),
    ]  # fmt: skip
    if per_token:
        t = score.per_token
        items = zip(t.tokens, t.logprobs.tolist(), t.unknown.tolist(), strict=True)
        fields.append(" ".join(f"{escape(tok)}|{number(lp)}|{int(u)}" for tok, lp, u in items))
    return "\t".join(fields)


def score(
    paths: list[str],
    *,
    mix_lambda: str = "auto",
    tune: str | None = None,
    per_token: bool = False,
    format: str = "tsv",
    out: str | None = None,
    batch_size: int = 64,
    chunk_size: int = 1000,
    device: str = "auto",
    dynamic: float | None = None,
    dynamic_decay: float = 0.0,
    dynamic_rule: str = "sgd",
    dynamic_stats: str | None = None,
    dynamic_stats_tokens: int = 100_000,
) -> int:
    """The command as a function: score the input named among ``paths`` into ``out``/stdout."""
    from elman.data.text import iter_lines, open_binary
    from elman.errors import ElmanError
    from elman.files import atomic_open
    from elman.tasks.scoring import build_scorer, parse_mix_lambda

    models, source = split_paths(paths)
    parse_mix_lambda(mix_lambda, len(models))  # a bad value stops before any model is read
    if out:
        check_output(out, "--out")
    if dynamic_stats and (dynamic is None or dynamic_rule != "rms"):
        raise ElmanError("--dynamic-stats is the RMS rule's text: use it with --dynamic-rule rms")
    tune_stream = open_binary(tune) if tune else None
    stats_stream = open_binary(dynamic_stats) if dynamic_stats else None
    stream = sys.stdin.buffer if source == "-" else open_binary(source)
    try:
        tune_lines = iter_lines(tune_stream, tune) if tune_stream and tune else None
        stats_lines = (
            iter_lines(stats_stream, dynamic_stats) if stats_stream and dynamic_stats else None
        )
        from elman.inference.dynamic import DynamicSettings

        adapt = None
        if dynamic is not None:
            adapt = DynamicSettings(
                dynamic, dynamic_decay, rule=dynamic_rule, stats_tokens=dynamic_stats_tokens
            )
        scorer = build_scorer(
            models, device=device, batch_size=batch_size, mix_lambda=mix_lambda, tune=tune_lines,
            dynamic=adapt, dynamic_stats=stats_lines, dynamic_stats_name=dynamic_stats or "",
        )  # fmt: skip
        tell_weights(scorer, tune)
        if source == "-" and sys.stdin.isatty():
            chunk_size = 1  # someone typing: a line in, a line out
        lines = iter_lines(stream, "<stdin>" if source == "-" else source)
        if out:
            with atomic_open(out) as sink:  # a run stopped halfway leaves the old file
                totals = write_scores(sink, scorer, lines, format, per_token, chunk_size)
        else:
            totals = write_scores(sys.stdout, scorer, lines, format, per_token, chunk_size)
    finally:
        for s in (tune_stream, stats_stream, stream):
            if s is not None and s is not sys.stdin.buffer:
                s.close()
    print(totals.summary(), file=sys.stderr)
    return 0


def tell_weights(scorer: Any, tune: str | None) -> None:
    """A mixture's weights on standard error, and where they come from."""
    from elman.tasks.scoring import MixtureScorer

    if isinstance(scorer, MixtureScorer):
        how = f"tuned by EM on {tune}" if tune else "given or equal"
        shown = ", ".join(
            f"{w:.4f} {m.name}" for w, m in zip(scorer.weights, scorer.members, strict=True)
        )
        print(f"elman: mixture weights ({how}): {shown}", file=sys.stderr)


class Totals:
    """The sums over every scored line: the corpus score under the sentence convention."""

    def __init__(self) -> None:
        self.sentences = self.tokens = self.oovs = 0
        self.logprob = 0.0

    def add(self, s: Any) -> None:
        self.sentences += 1
        self.tokens += s.tokens
        self.oovs += s.oovs
        self.logprob += s.logprob

    def summary(self) -> str:
        ppl = math.exp(-self.logprob / self.tokens) if self.tokens else float("nan")
        shown = f"{ppl:.2f}" if math.isfinite(ppl) else "-"
        return (
            f"elman: {self.sentences} sentences, {self.tokens} tokens, {self.oovs} OOVs: "
            f"log10 P = {self.logprob / math.log(10):.2f}, ppl {shown} (each line on its own)"
        )


def write_scores(
    sink: IO[str], scorer: Any, lines: Iterator[str], format: str, per_token: bool, chunk: int
) -> Totals:
    """Score ``lines`` into ``sink`` one line each, flushed after every chunk."""
    from elman.files import dumps
    from elman.tasks.scoring import score_lines

    totals = Totals()
    if format == "tsv":
        sink.write("\t".join(COLUMNS + (("per_token",) if per_token else ())) + "\n")
    for s in score_lines(scorer, lines, chunk_size=chunk):
        totals.add(s)
        row = dumps(s.to_dict(per_token)) if format == "jsonl" else tsv_line(s, per_token)
        sink.write(row + "\n")
        if s.line % chunk == 0:
            sink.flush()
    sink.flush()
    return totals


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    check_device(args.device)
    try:
        return score(
            args.paths, mix_lambda=args.mix_lambda, tune=args.tune, per_token=args.per_token,
            format=args.format, out=args.out, batch_size=args.batch_size,
            chunk_size=args.chunk_size, device=args.device, dynamic=args.dynamic,
            dynamic_decay=args.dynamic_decay, dynamic_rule=args.dynamic_rule,
            dynamic_stats=args.dynamic_stats, dynamic_stats_tokens=args.dynamic_stats_tokens,
        )  # fmt: skip
    except BrokenPipeError:  # `elman score … | head`: the reader has all it wants
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- silence the flush at exit
        return 0
