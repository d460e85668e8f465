"""ONNX graphs computed by onnxruntime equal the PyTorch models, at any batch size and length."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import elman
from elman.data.pair_batches import pad_sources
from elman.data.tagging import make_batch
from elman.export import export_onnx

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TOL = 1e-5


def session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def close(got: np.ndarray, want: torch.Tensor) -> None:
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=TOL)


@pytest.fixture(scope="module")
def exported_lm(lm_runs, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("lm-onnx")
    return {cell: export_onnx(lm_runs[cell], out / f"{cell}.onnx").graphs["step"]
            for cell in ("lstm", "gru")}  # fmt: skip


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_lm_step_equals_the_model_at_two_batch_sizes(lm_runs, exported_lm, cell):
    lm = elman.load(lm_runs[cell], device="cpu")
    step = session(exported_lm[cell])
    lstm = cell == "lstm"
    assert [i.name for i in step.get_inputs()] == ["tokens", "h", "c"][: 3 if lstm else 2]
    torch.manual_seed(0)
    for B in (1, 5):
        tokens = torch.randint(len(lm.vocab), (B,))
        state = tuple(torch.randn(2, B, 8) for _ in range(2 if lstm else 1))
        with torch.no_grad():
            logits, new = lm.model(tokens.unsqueeze(0), state if lstm else state[0])
        got = step.run(
            None,
            {"tokens": tokens.numpy(), **dict(zip("hc", (s.numpy() for s in state), strict=False))},
        )
        close(got[0], torch.log_softmax(logits[0], -1))
        for g, want in zip(got[1:], new if lstm else (new,), strict=True):
            close(g, want)


def test_lm_steps_fed_their_state_score_a_text_as_the_model(lm_runs, exported_lm):
    lm = elman.load(lm_runs["lstm"], device="cpu")
    vocab = json.loads(exported_lm["lstm"].with_name("lstm.vocab.json").read_text())
    assert vocab["tokens"] == lm.vocab.itos and vocab["eos_id"] == lm.vocab.eos_index
    step = session(exported_lm["lstm"])
    text = torch.tensor([[vocab["eos_id"], 3, 5, 4], [vocab["eos_id"], 6, 2, 7]]).T  # (T=4, B=2)
    with torch.no_grad():
        want = torch.log_softmax(lm.model(text)[0], -1)  # (T, B, V)
    h = c = np.zeros((2, 2, 8), np.float32)
    for t in range(text.shape[0]):
        logp, h, c = step.run(None, {"tokens": text[t].numpy(), "h": h, "c": c})
        close(logp, want[t])


def tagger_feeds(sentences: list[list[str]], vocab: dict) -> dict[str, np.ndarray]:
    """The graph's inputs, built from the vocabulary file as docs/export.md says."""
    words, chars = vocab["words"], vocab["chars"]
    wid, cid = {w: i for i, w in enumerate(words)}, {c: i for i, c in enumerate(chars)}
    B, T = len(sentences), max(map(len, sentences))
    C = max(len(w) for s in sentences for w in s)
    feeds = {"words": np.zeros((B, T), np.int64), "chars": np.zeros((B, T, C), np.int64),
             "char_lengths": np.zeros((B, T), np.int64),
             "lengths": np.array([len(s) for s in sentences], np.int64)}  # fmt: skip
    for b, sentence in enumerate(sentences):
        for t, word in enumerate(sentence):
            feeds["words"][b, t] = wid.get(word, vocab["unk_id"])
            feeds["char_lengths"][b, t] = len(word)
            feeds["chars"][b, t, : len(word)] = [cid.get(ch, vocab["unk_id"]) for ch in word]
    return feeds


def test_tagger_equals_the_model_on_padded_batches(tagger_run, tmp_path):
    tagger = elman.load(tagger_run, device="cpu")
    done = export_onnx(tagger_run, tmp_path / "tagger.onnx")
    vocab = json.loads(done.vocab.read_text()) if done.vocab else {}
    assert vocab["tags"] == tagger.vocab.tags.itos and vocab["uses_chars"]
    graph = session(done.graphs["tagger"])
    batches = [
        [["the", "big", "cat", "sat", "."], ["a", "dog", "ran", "."]],
        [["every", "zorblax", "slept", "."], ["the", "cat", "."], ["a", "red", "house", "slept",
         "in", "the", "old", "house", "."]],
    ]  # fmt: skip
    for sentences in batches:
        with torch.no_grad():
            want = torch.log_softmax(tagger.model(make_batch(sentences, tagger.vocab)), -1)
        got = graph.run(None, tagger_feeds(sentences, vocab))[0]
        assert got.shape == tuple(want.shape)
        for b, sentence in enumerate(sentences):  # past a sentence's end: not predictions
            close(got[b, : len(sentence)], want[b, : len(sentence)])


@pytest.fixture(scope="module")
def exported_mt(translation_run, tmp_path_factory):
    return export_onnx(translation_run, tmp_path_factory.mktemp("mt") / "mt.onnx")


def test_translation_encoder_and_step_equal_the_model(translation_run, exported_mt):
    mt = elman.load(translation_run, device="cpu")
    encoder, decoder = (session(exported_mt.graphs[r]) for r in ("encoder", "decoder"))
    for lines in (["1 2 3", "4 5 6 7 8 9"], ["1", "2 3", "4 5 6 7 8 9 0 1"]):
        src, n = pad_sources(mt.vocab.src.encode(lines))
        prev = torch.full((len(lines),), 2)
        with torch.no_grad():
            memory, state = mt.model.encode(src, n)
            logits, new, weights = mt.model.step(prev, state, memory)
        h, feed, states, keys = encoder.run(None, {"src": src.numpy(), "src_lengths": n.numpy()})
        close(h, state.rnn)
        close(states, memory.states)
        close(keys, memory.keys)
        feeds = {"prev": prev.numpy(), "h": h, "feed": feed, "states": states, "keys": keys,
                 "src_lengths": n.numpy()}  # fmt: skip
        logp, h1, feed1, attention = decoder.run(None, feeds)
        close(logp, torch.log_softmax(logits, -1))
        close(h1, new.rnn)
        close(feed1, new.feed)
        close(attention, weights)


def onnx_greedy(exported, line: str) -> str:
    """Greedy search with onnxruntime, sentencepiece and the vocabulary file only."""
    import sentencepiece

    vocab = json.loads(exported.vocab.read_text())
    folder = exported.vocab.parent
    sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / vocab["src_model"]))
    encoder, decoder = (session(folder / vocab["files"][r]) for r in ("encoder", "decoder"))
    ids = [*sp.encode(line), vocab["eos_id"]]
    src, n = np.array([ids], np.int64), np.array([len(ids)], np.int64)
    h, feed, states, keys = encoder.run(None, {"src": src, "src_lengths": n})
    prev, out = np.array([vocab["bos_id"]], np.int64), []
    for _ in range(max(1, int(vocab["max_len_ratio"] * (len(ids) - 1) + vocab["max_len_extra"]))):
        feeds = {"prev": prev, "h": h, "feed": feed, "states": states, "keys": keys,
                 "src_lengths": n}  # fmt: skip
        logp, h, feed, _ = decoder.run(None, feeds)
        logp[:, vocab["never_written"]] = -np.inf
        prev = logp.argmax(1)
        if int(prev[0]) == vocab["eos_id"]:
            break
        out.append(int(prev[0]))
    return "".join(vocab["tgt_pieces"][i] for i in out).replace("\u2581", " ").strip()


def test_greedy_decoding_with_onnx_equals_elmans(translation_run, exported_mt):
    mt = elman.load(translation_run, device="cpu")
    lines = ["1 2 3", "4 5 6 7", "9 8 0 0 3"]
    want = mt.translate(lines, decode=replace(mt.recipe.decode, beam=1))
    assert [onnx_greedy(exported_mt, line) for line in lines] == want


@pytest.mark.parametrize("kind", ["plain", "conditioned"])
def test_the_other_translation_kinds_export_their_own_inputs(kind, tmp_path):
    from elman.tasks.training import train
    from train.mttoy import write_parallel_corpus, write_translation_recipe

    corpus = write_parallel_corpus(tmp_path / "toy", sizes=(100, 10, 10))
    recipe = write_translation_recipe(tmp_path / "t.toml", corpus, kind=kind)
    train(recipe, out=tmp_path / "run", overrides=["train.epochs=1"])
    mt = elman.load(tmp_path / "run", device="cpu")
    done = export_onnx(tmp_path / "run", tmp_path / "mt.onnx")
    graphs = json.loads(done.vocab.read_text())["graphs"] if done.vocab else {}
    encoder, decoder = (session(done.graphs[r]) for r in ("encoder", "decoder"))
    assert [i.name for i in decoder.get_inputs()] == graphs["decoder"]["inputs"]
    src, n = pad_sources(mt.vocab.src.encode(["1 2 3", "4 5"]))
    encoded = dict(zip(graphs["encoder"]["outputs"], encoder.run(None, {"src": src.numpy(),
                   "src_lengths": n.numpy()}), strict=True))  # fmt: skip
    prev = torch.tensor([2, 2])
    with torch.no_grad():
        memory, state = mt.model.encode(src, n)
        logits, _, _ = mt.model.step(prev, state, memory)
    feeds = {"prev": prev.numpy(), "h": encoded["h0"], "summary": encoded.get("summary")}
    got = decoder.run(None, {name: feeds[name] for name in graphs["decoder"]["inputs"]})
    close(got[0], torch.log_softmax(logits, -1))
