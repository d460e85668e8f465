"""`elman score`: TSV and JSON lines, one line per input line, bad input in one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from elman.cli import main
from elman.cli.score import escape
from inference.test_dynamic import rms_step_by_hand
from tasks.test_scoring import ARPA, BY_HAND


@pytest.fixture
def hand_arpa(tmp_path: Path) -> Path:
    path = tmp_path / "hand.arpa"
    path.write_text(ARPA)
    return path


@pytest.fixture
def lm_run(tmp_path: Path, recipe: Path) -> Path:
    run = tmp_path / "lm-run"
    assert main(["train", str(recipe), "--out", str(run), "--set", "train.progress=false"]) == 0
    return run


def strict(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_tsv_has_a_header_and_one_row_per_line(tmp_path, hand_arpa, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(BY_HAND) + "\n")
    assert main(["score", str(hand_arpa), str(source)]) == 0
    out, err = capsys.readouterr()
    rows = [line.split("\t") for line in out.splitlines()]
    assert rows[0] == ["line", "logprob", "log10prob", "tokens", "oovs", "ppl"]
    assert len(rows) == 1 + len(BY_HAND)
    for row, (log10, tokens, oovs) in zip(rows[1:], BY_HAND.values(), strict=True):
        assert float(row[2]) == pytest.approx(log10, abs=1e-9)
        assert float(row[1]) == pytest.approx(log10 * math.log(10), abs=1e-8)
        assert (int(row[3]), int(row[4])) == (tokens, oovs)
    assert "6 sentences, 15 tokens, 1 OOVs" in err


def test_jsonl_is_strict_and_per_token(tmp_path, hand_arpa, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_text("zz a\n\n")
    assert main(["score", "--format", "jsonl", "--per-token", str(hand_arpa), str(source)]) == 0
    records = [strict(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in records] == [1, 2]
    assert set(records[0]) == {"line", "logprob", "log10prob", "tokens", "oovs", "ppl", "per_token"}
    assert [t["token"] for t in records[0]["per_token"]] == ["zz", "a", "</s>"]
    assert [t["unknown"] for t in records[0]["per_token"]] == [True, False, False]
    assert records[1]["tokens"] == 1  # an empty line is </s> alone


def test_per_token_tsv_escapes_whitespace(tmp_path, hand_arpa, capsys) -> None:
    assert escape("a b\tc\\d\n") == "a\\sb\\tc\\\\d\\n"
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    assert main(["score", str(hand_arpa), str(source), "--per-token"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split("\t")
    items = [item.rsplit("|", 2) for item in row[6].split(" ")]
    assert [i[0] for i in items] == ["a", "b", "</s>"] and [i[2] for i in items] == ["0"] * 3
    assert sum(float(i[1]) for i in items) == pytest.approx(float(row[1]))


def test_standard_input_and_out_file(tmp_path, hand_arpa, lm_run) -> None:
    out = tmp_path / "scores.tsv"
    cmd = [sys.executable, "-m", "elman", "score", str(lm_run), str(hand_arpa), "-"]
    done = subprocess.run(
        [*cmd, "--mix-lambda", "0.3", "--out", str(out), "--device", "cpu"],
        input=b"a b\nthe cat\n", capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 3
    assert b"mixture weights (given or equal): 0.3000" in done.stderr


@pytest.mark.parametrize(
    "data, message",
    [
        (b"a b\n\xff\xfe x\n", "<stdin>: line 2, byte 1 of the line: not valid UTF-8"),
    ],
)
def test_non_utf8_is_one_line_naming_the_line(hand_arpa, data, message) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "elman", "score", str(hand_arpa)],
        input=data, capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    err = done.stderr.decode().strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_100000_character_line_is_scored_whole(tmp_path, hand_arpa, lm_run, capsys) -> None:
    source = tmp_path / "long.txt"
    source.write_text("a b " * 25_000 + "\n")
    assert main(["score", str(hand_arpa), str(lm_run), str(source), "--device", "cpu"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split("\t")
    assert int(row[3]) == 50_001 and math.isfinite(float(row[1]))


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.arpa"], "no such ARPA file"),
        (["{text}"], "not a model"),
        (["{arpa}", "{arpa}", "--mix-lambda", "7"], "--mix-lambda 7"),
        (["{arpa}", "--tune", "{text}"], "give two or more models"),
        (["{arpa}", "{arpa}", "--tune", "{text}", "--mix-lambda", "0.5"], "give one of them"),
        (["{arpa}", "{arpa}", "--tune", "missing.txt"], "missing.txt: no such file"),
        (["{arpa}", "missing.txt"], "missing.txt: no such file"),
        (["{arpa}", "--chunk-size", "0"], "--chunk-size"),
        (["{arpa}", "{text}", "--out", "/proc/nope/x.tsv"], "--out"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, hand_arpa, capsys, args, message) -> None:
    text = tmp_path / "text.txt"
    text.write_text("a b\n")
    args = [a.format(arpa=hand_arpa, text=text) for a in args]
    assert main(["score", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_tuned_mixture_reports_its_weights(tmp_path, hand_arpa, lm_run, corpus, capsys) -> None:
    args = [str(lm_run), str(hand_arpa), "--tune", str(corpus / "valid.txt")]
    assert main(["score", *args, str(corpus / "test.txt"), "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "mixture weights (tuned by EM on" in err
    assert len(out.splitlines()) == 1 + len((corpus / "test.txt").read_text().splitlines())


def scores_of(capsys) -> list[float]:
    return [float(r.split("\t")[1]) for r in capsys.readouterr().out.splitlines()[1:]]


def test_dynamic_scoring_learns_from_the_lines_before(tmp_path, hand_arpa, lm_run, capsys) -> None:
    """Rate 0 gives the static scores; a rate > 0 leaves the first line's score as it was and
    lowers the later copies of a repeated line; with an ARPA member only the LM adapts."""
    import torch

    from elman.inference.dynamic import DynamicSettings
    from elman.tasks.scoring import DynamicScorer, NeuralScorer, build_scorer

    source = tmp_path / "repeat.txt"
    source.write_text("the cat sat on the mat\n" * 6)
    argv = ["score", str(lm_run), str(source), "--device", "cpu"]
    assert main(argv) == 0
    static = scores_of(capsys)
    assert main([*argv, "--dynamic", "0"]) == 0
    assert scores_of(capsys) == pytest.approx(static, rel=1e-5)
    assert main([*argv, "--dynamic", "0.5", "--dynamic-decay", "0.01"]) == 0
    dynamic = scores_of(capsys)
    assert dynamic[0] == pytest.approx(static[0], rel=1e-5)  # nothing learnt before line 1
    assert dynamic[-1] > dynamic[1] > static[1]  # each copy more likely than the last
    scorer = build_scorer([lm_run, hand_arpa], device="cpu", dynamic=DynamicSettings(0.5))
    members = scorer.members  # type: ignore[attr-defined]
    assert isinstance(members[0], DynamicScorer) and not isinstance(members[1], NeuralScorer)
    before = [p.detach().clone() for p in members[0].base.loaded.model.parameters()]
    members[0].score(["the cat sat"])
    members[0].restore()
    after = list(members[0].base.loaded.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def rms_dynamic_by_hand(model, stats, lines, lr, decay, eps=1e-3) -> list[float]:
    """Krause et al.'s RMS rule written out: √MS_g from each stats line's mean cross entropy,
    then per scored line ln P (each from a zero state) and the step
    θ ← θ − η g / (√MS_g + ε) + λ r (θ_0 − θ), r = min(√MS_g / mean √MS_g, 1/λ)."""
    import torch

    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    theta0 = [p.detach().clone() for p in params]

    def logprobs(ids):
        x = torch.tensor([ids[-1], *ids[:-1]]).view(-1, 1)  # starts after an <eos>
        h, _ = model.hidden(x)
        logp = torch.log_softmax(model.output(h).float(), dim=-1)[:, 0]
        return logp[torch.arange(len(ids)), torch.tensor(ids)]

    squares = [torch.zeros_like(p) for p in params]
    for ids in stats:
        model.zero_grad()
        (-logprobs(ids).mean()).backward()
        for sq, p in zip(squares, params, strict=True):
            sq += p.grad**2
    rms = [(sq / len(stats)).sqrt() for sq in squares]
    out = []
    for ids in lines:
        model.zero_grad()
        picked = logprobs(ids)
        out.append(picked.sum().item())
        (-picked.mean()).backward()
        rms_step_by_hand(params, theta0, rms, lr, decay, eps)
    with torch.no_grad():
        for p, p0 in zip(params, theta0, strict=True):
            p.copy_(p0)
    return out


def test_rms_dynamic_scoring_follows_the_rule_by_hand(tmp_path, lm_run, capsys) -> None:
    """--dynamic-rule rms: statistics from --dynamic-stats, read up to --dynamic-stats-tokens
    (the third line is past the 10 tokens), each line from a zero state, as written out above."""
    from elman import load

    stats = tmp_path / "train.txt"
    stats.write_text("the cat sat on a mat\na dog ran to the big red house\nred red red\n")
    source = tmp_path / "in.txt"
    lines = ["the cat sat on the mat", "a big dog", "the cat sat on the mat"]
    source.write_text("\n".join(lines) + "\n")
    argv = ["score", str(lm_run), str(source), "--device", "cpu", "--dynamic", "0.01"]
    rms = ["--dynamic-rule", "rms", "--dynamic-stats", str(stats), "--dynamic-stats-tokens", "10"]
    assert main([*argv, *rms, "--dynamic-decay", "0.02"]) == 0
    got = scores_of(capsys)
    loaded = load(lm_run, "cpu")
    stoi, eos = loaded.vocab.stoi, loaded.vocab.stoi["<eos>"]

    def ids(line: str) -> list[int]:
        return [stoi[w] for w in line.split()] + [eos]

    stats_ids = [ids(line) for line in stats.read_text().splitlines()[:2]]
    want = rms_dynamic_by_hand(loaded.model, stats_ids, [ids(x) for x in lines], 0.01, 0.02)
    assert got == pytest.approx(want, rel=1e-5)
    assert got[2] > got[0]  # the repeated line gained from the first
    assert main([*argv, "--dynamic-rule", "sgd"]) == 0
    assert scores_of(capsys) != pytest.approx(got, rel=1e-3)  # a different rule


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dynamic", "0.1", "--tune", "{text}"], "--dynamic with --tune"),
        (["--dynamic", "-1"], "--dynamic"),
        (["--dynamic", "0.1", "--dynamic-rule", "rms"], "give it with --dynamic-stats FILE"),
        (["--dynamic", "0.1", "--dynamic-stats", "{text}"], "use it with --dynamic-rule rms"),
        (["--dynamic", "0.1", "--dynamic-rule", "rms", "--dynamic-stats", "{empty}"], "empty.txt"),
        (["--dynamic", "0.1", "--dynamic-rule", "rms", "--dynamic-stats", "{nofile}"], "nofile"),
    ],
)
def test_bad_dynamic_scoring_is_one_line(tmp_path, hand_arpa, lm_run, capsys, extra, message):
    text = tmp_path / "t.txt"
    text.write_text("a b\n")
    (tmp_path / "empty.txt").write_text("")
    files = {"{text}": text, "{empty}": tmp_path / "empty.txt", "{nofile}": tmp_path / "nofile"}
    extra = [str(files.get(e, e)) for e in extra]
    rc = main(["score", str(lm_run), str(hand_arpa), str(text), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert rc != 0 and message in err and "Traceback" not in err
    rc = main(["score", str(hand_arpa), str(text), "--dynamic", "0.1"])
    assert rc != 0 and "--dynamic adapts neural models" in capsys.readouterr().err
