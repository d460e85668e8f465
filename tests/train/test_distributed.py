"""Two CPU processes (torchrun, gloo on loopback) train what one process trains.

The tiny LM recipe (B = 4 columns) runs 3 steps under ``torchrun --nproc-per-node 2``, stops
mid-epoch, and resumes to the end; one process does the same. The weights must agree (up to
float summation order), the two ranks must hold the same weights, and only rank 0 writes.
The tiny NPLM, tagger and translation recipes run 3 steps each the same way, with global
batches that split unevenly over the two ranks (and, for the NPLM, one a single row long).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from elman.config import read_toml
from elman.data import pair_batches, tagging
from elman.data.batching import BPTTStream
from elman.data.windows import ContextWindows
from elman.errors import ElmanError
from elman.tasks.table import get_task, parse_recipe
from elman.tasks.training import train
from elman.train import distributed
from elman.train.checkpoint import load_checkpoint
from tasks.test_nplm import RECIPE as NPLM_RECIPE
from train.mttoy import write_parallel_corpus, write_translation_recipe
from train.tagtoy import write_tagged_corpus, write_tagger_recipe

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

# torchrun runs this script in each process: elman's CLI, plus a dump of the rank's weights
# after training (only rank 0 writes checkpoints, so the others are otherwise invisible) and of
# the tokens its share of one epoch's batches scores.
WORKER = """\
import os, sys
import torch
from elman.train import trainer

fit = trainer.Trainer.fit
dump = sys.argv[1]

def fit_and_dump(self):
    summary = fit(self)
    state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
    torch.save(state, os.path.join(dump, f"rank{os.environ['RANK']}.pt"))
    tokens = sum(b.num_tokens for b in self.train_data.iter_from(0))
    with open(os.path.join(dump, f"rank{os.environ['RANK']}.tokens"), "w") as f:
        f.write(str(tokens))
    return summary

trainer.Trainer.fit = fit_and_dump
from elman.cli import main
sys.argv = ["elman"] + sys.argv[2:]
raise SystemExit(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path: Path, dump: Path, *args: str) -> subprocess.CompletedProcess:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    dump.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd += ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    cmd += [str(worker), str(dump), "train", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


@pytest.mark.distributed
def test_two_processes_train_what_one_process_trains(tmp_path: Path, recipe: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    train(recipe, overrides=["train.max_steps=3"], out=one)
    one_at_3 = load_checkpoint(one / "last.pt")["model"]
    train(resume=one)
    one_end = load_checkpoint(one / "last.pt")["model"]

    dump = tmp_path / "dump"
    out = torchrun(
        tmp_path, dump / "a", str(recipe), "--out", str(two), "--set", "train.max_steps=3"
    )
    assert out.stdout.count("stopped after step 3") == 1  # rank 0 alone prints
    two_at_3 = load_checkpoint(two / "last.pt")["model"]
    assert_close(two_at_3, one_at_3, atol=1e-5)
    assert_close(torch.load(dump / "a" / "rank1.pt"), torch.load(dump / "a" / "rank0.pt"), 0)

    # mid-epoch resume: every rank takes its columns of the gathered carried state back
    torchrun(tmp_path, dump / "b", "--resume", str(two))
    assert_close(load_checkpoint(two / "last.pt")["model"], one_end, atol=1e-4)
    assert_close(torch.load(dump / "b" / "rank1.pt"), torch.load(dump / "b" / "rank0.pt"), 0)

    # another world size: stopped under 2 processes, resumed as 1 (the carried state is saved
    # in the one-process layout)
    three = tmp_path / "three"
    torchrun(tmp_path, dump / "c", str(recipe), "--out", str(three), "--set", "train.max_steps=3")
    train(resume=three)
    assert_close(load_checkpoint(three / "last.pt")["model"], one_end, atol=1e-4)

    # one writer: the same records as one process, a single results.json, no stray files
    def records(run: Path) -> list[tuple]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [(r["kind"], r["epoch"], r["step"]) for r in map(json.loads, lines)]

    assert records(two) == records(one)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    valid_one = [json.loads(line) for line in (one / "metrics.jsonl").read_text().splitlines()]
    valid_two = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(valid_one, valid_two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)  # global-batch train loss


def write_nplm(tmp_path: Path, corpus: Path) -> Path:
    path = tmp_path / "nplm.toml"
    path.write_text(NPLM_RECIPE.format(corpus=corpus.as_posix()))
    return path


def write_tagger(tmp_path: Path, corpus: Path) -> Path:
    return write_tagger_recipe(tmp_path / "tagger.toml", write_tagged_corpus(tmp_path / "ud"))


def write_translation(tmp_path: Path, corpus: Path) -> Path:
    folder = write_parallel_corpus(tmp_path / "mt", sizes=(120, 10, 10))
    return write_translation_recipe(tmp_path / "mt.toml", folder)


# task -> (recipe writer, overrides); dropout off: each rank draws its own masks
TASKS = {
    # windows 15, 15, 1: slices of 8 and 7, then a rank stepping on a stand-in
    "nplm": (write_nplm, ["model.dropout_hidden=0", "data.batch_size=15", "data.epoch_size=31"]),
    "tagger": (write_tagger, ["data.batch_size=7"]),  # 4 + 3 sentences a step
    "translation": (write_translation, []),  # a budget of tokens: any number of pairs
}


@pytest.mark.distributed
@pytest.mark.parametrize("task", TASKS)
def test_every_task_trains_on_two_processes_what_one_trains(
    tmp_path: Path, corpus: Path, task: str
) -> None:
    write, overrides = TASKS[task]
    recipe = write(tmp_path, corpus)
    overrides = [*overrides, "train.max_steps=3"]
    one, two, dump = tmp_path / "one", tmp_path / "two", tmp_path / "dump"
    train(recipe, overrides=overrides, out=one)
    sets = [a for o in overrides for a in ("--set", o)]
    out = torchrun(tmp_path, dump, str(recipe), "--out", str(two), *sets)
    assert out.stdout.count("stopped after step 3") == 1  # rank 0 alone prints
    one_w, two_w = (
        load_checkpoint(one / "last.pt")["model"],
        load_checkpoint(two / "last.pt")["model"],
    )
    assert_close(two_w, one_w, atol=1e-5)
    assert_close(torch.load(dump / "rank1.pt"), torch.load(dump / "rank0.pt"), 0)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    # each rank scored its own share of the batches: together, once every token of the epoch
    parts = get_task(task).prepare(parse_recipe(read_toml(recipe), overrides))
    total = sum(b.num_tokens for b in parts.train_data.iter_from(0))
    shares = [int((dump / f"rank{r}.tokens").read_text()) for r in (0, 1)]
    assert sum(shares) == total and min(shares) > 0
    lines = [(run / "metrics.jsonl").read_text().splitlines() for run in (one, two)]
    for a, b in zip(*(map(json.loads, x) for x in lines), strict=True):
        assert (b["kind"], b["step"]) == (a["kind"], a["step"])
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5)  # the global batch's loss
    # --resume with the same number of processes continues mid-epoch like one process does
    train(resume=one)
    torchrun(tmp_path, tmp_path / "dump-resumed", "--resume", str(two))
    assert load_checkpoint(two / "last.pt")["trainer"]["global_step"] > 3
    assert_close(
        load_checkpoint(two / "last.pt")["model"], load_checkpoint(one / "last.pt")["model"], 1e-4
    )


def shares(data, world: int, monkeypatch: pytest.MonkeyPatch) -> list[list]:
    """The batches every rank of ``world`` takes from ``data``, rank by rank."""
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    out = []
    for r in range(world):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        out.append(list(distributed.shard_rows(data)))
    return out


def test_row_span_is_tensor_splits_rule() -> None:
    for n in range(7):
        for w in (1, 2, 3, 4):
            sizes = [len(part) for part in torch.arange(n).tensor_split(w)]
            spans = [distributed.row_span(n, r, w) for r in range(w)]
            assert [end - start for start, end in spans] == sizes
            assert [s for s, _ in spans[1:]] == [e for _, e in spans[:-1]]  # consecutive


def test_window_rows_and_the_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    data = ContextWindows(torch.arange(1, 12), 2, 5, 0, shuffle=True, seed=3)  # 5, 5, 1
    ranks = shares(data, 2, monkeypatch)
    for i, whole in enumerate(data):
        left, right = ranks[0][i], ranks[1][i]
        if len(whole) == 1:  # rank 1 steps on the last row, scoring nothing
            assert torch.equal(right.contexts, whole.contexts) and right.num_tokens == 0
            right = left.rows(0, 0)
        assert torch.equal(torch.cat([left.contexts, right.contexts]), whole.contexts)
        assert torch.equal(torch.cat([left.targets, right.targets]), whole.targets)
        assert left.num_tokens + right.num_tokens == whole.num_tokens


def test_tag_rows_keep_each_sentences_words_and_spellings(tmp_path: Path) -> None:
    sentences = tagging.resolve_tagging(str(write_tagged_corpus(tmp_path))).sentences("train")
    vocab = tagging.TaggerVocab.build(sentences)
    whole = tagging.make_batch(
        [s.forms for s in sentences[:5]], vocab, [s.tags for s in sentences[:5]]
    )
    parts = [whole.rows(0, 3), whole.rows(3, 5)]
    assert sum(p.num_tokens for p in parts) == whole.num_tokens
    for part, start in zip(parts, (0, 3), strict=True):
        for b, n in enumerate(part.lengths.tolist()):
            row = start + b
            assert part.words.size(1) == int(part.lengths.max())  # trimmed
            assert torch.equal(part.words[b, :n], whole.words[row, :n])
            assert torch.equal(part.tags[b, :n], whole.tags[row, :n])
            spelt = part.chars[part.forms[b, :n]]
            assert torch.equal(spelt, whole.chars[whole.forms[row, :n], : spelt.size(1)])
        distinct = {f for s in sentences[start : start + len(part)] for f in s.forms}
        assert part.chars.size(0) == len(distinct)  # only the forms these sentences spell


def test_pair_rows_drop_the_padding_of_the_chosen_pairs() -> None:
    whole = pair_batches.make_batch([[5, 6, 7, 8], [5], [6, 7]], [[9], [9, 9, 9], [4]])
    part = whole.rows(2, 3)  # source 6 7 </s>, target 4 </s>
    assert part.src.size(1) == 3 and part.tgt_in.size(1) == 2 and part.num_tokens == 2
    assert torch.equal(part.tgt_out, whole.tgt_out[2:, :2]) and part.index.tolist() == [2]
    both = [whole.rows(0, 2), part]
    assert sum(p.num_tokens for p in both) == whole.num_tokens


def test_a_fixed_batch_must_give_every_process_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    with pytest.raises(ElmanError, match=r"data.batch_size = 3 .* world size 4"):
        distributed.shard_rows([], batch_size=3)


def test_columns_are_the_one_process_layout() -> None:
    stream = BPTTStream(torch.arange(1, 24), batch_size=4, bptt=3, start_id=0)
    left, right = stream.columns(0, 2), stream.columns(2, 4)
    assert torch.equal(torch.cat([left.inputs, right.inputs], dim=1), stream.inputs)
    assert torch.equal(torch.cat([left.targets, right.targets], dim=1), stream.targets)
    assert len(left) == len(right) == len(stream)
    for i in range(len(stream)):
        assert left.batch(i).num_tokens + right.batch(i).num_tokens == stream.batch(i).num_tokens
    assert left.total_tokens + right.total_tokens == stream.total_tokens


def test_batch_size_must_split_over_the_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = BPTTStream(torch.arange(1, 24), batch_size=3, bptt=3, start_id=0)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    with pytest.raises(ElmanError, match=r"data.batch_size = 3 .* world size 2"):
        distributed.shard_columns(stream)


def test_one_process_is_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init_from_env("cpu")
    assert not distributed.active() and distributed.is_main()
    stream = BPTTStream(torch.arange(1, 24), batch_size=3, bptt=3, start_id=0)
    assert distributed.shard_columns(stream) is stream
    assert distributed.shard_rows(stream, batch_size=1) is stream
    assert distributed.broadcast_float(1.5) == 1.5


def test_a_finished_run_meets_the_others_before_leaving(monkeypatch: pytest.MonkeyPatch) -> None:
    # regression: one CI run's rank 1 aborted at exit ("terminate called without an active
    # exception") after tearing the gloo group down while rank 0 was still writing
    calls: list[str] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: calls.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda *a, **k: calls.append("destroy"))
    distributed.cleanup(finished=True)
    assert calls == ["barrier", "destroy"]
    calls.clear()
    distributed.cleanup(finished=False)  # after an error the others may never arrive
    assert calls == ["destroy"]


@pytest.mark.parametrize("fails", [False, True])
def test_train_tells_cleanup_how_the_run_ended(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recipe: Path, fails: bool
) -> None:
    import elman.tasks.training as training

    ended: list[bool] = []

    def fake_train(*args: object) -> dict:
        if fails:
            raise ElmanError("a rank failed")
        return {"done": True}

    monkeypatch.setattr(distributed, "init_from_env", lambda device="auto": True)
    monkeypatch.setattr(distributed, "cleanup", lambda finished=True: ended.append(finished))
    monkeypatch.setattr(training, "_train", fake_train)
    if fails:
        with pytest.raises(ElmanError, match="a rank failed"):
            train(recipe, out=tmp_path / "run")
    else:
        assert train(recipe, out=tmp_path / "run") == {"done": True}
    assert ended == [not fails]
