"""The language-modelling task: evaluation convention, prompts, rebuilding from a checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from elman.data.datasets import resolve
from elman.data.vocabulary import Vocabulary
from elman.errors import ElmanError
from elman.models.rnnlm import RNNLM, RNNLMConfig
from elman.tasks import lm
from train.lmtoy import num_tokens


def stateless_model(vocab_size: int) -> RNNLM:
    """An Elman LM with W_hh = 0: h_t = tanh(W_hx x_t + b) ignores the carried state."""
    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig(vocab_size=vocab_size, cell="elman", embedding_dim=6, hidden_size=5))
    with torch.no_grad():
        for cell in model.recurrent.cells:
            cell.weight_hh.zero_()
    return model


@pytest.mark.parametrize("split", ["valid", "test"])
def test_evaluate_scores_every_token_once_for_any_batch_size(corpus, split):
    dataset = resolve(str(corpus))
    vocab = lm.build_vocab(dataset, lm.LMDataConfig(dataset=str(corpus)))
    model = stateless_model(len(vocab))
    expected = num_tokens(corpus / f"{split}.txt")  # words + one <eos> per line
    results = [
        lm.evaluate_model(model, vocab, dataset, split, bs, torch.device("cpu"), bptt)
        for bs, bptt in [(1, 35), (3, 35), (3, 4), (7, 1), (expected + 5, 2)]
    ]
    for r in results:
        assert r["tokens"] == expected
        assert r["loss"] == pytest.approx(results[0]["loss"], abs=1e-6)
        assert r["ppl"] == pytest.approx(math.exp(r["loss"]), rel=1e-9)
    # the same number by hand: one forward pass over the whole stream, starting after <eos>
    ids = vocab.encode(dataset.tokens(split))
    inputs = torch.cat([torch.tensor([vocab.eos_index]), ids[:-1]]).view(-1, 1)
    with torch.no_grad():
        logits, _ = model(inputs)
    by_hand = torch.nn.functional.cross_entropy(logits[:, 0].double(), ids).item()
    assert results[0]["loss"] == pytest.approx(by_hand, abs=1e-6)


def test_character_corpora_report_bits_per_character():
    m = lm.metrics_from_loss(math.log(2) * 1.5, 10, "char")
    assert m["bpc"] == pytest.approx(1.5) and m["ppl"] == pytest.approx(2**1.5)
    assert "bpc" not in lm.metrics_from_loss(1.0, 10, "word")


def test_load_rebuilds_the_model_and_names_a_mismatch(corpus):
    from elman.tasks.table import parse_recipe

    raw = {"data": {"dataset": str(corpus)}, "model": {"embedding_dim": 4, "hidden_size": 4}}
    recipe = parse_recipe(raw)
    parts = lm.TASK.prepare(recipe)
    meta = parts.checkpoint_meta("lm", recipe)
    payload = {**meta, "model": parts.model.state_dict(), "path": "x.pt"}
    loaded = lm.TASK.load(payload, torch.device("cpu"))
    assert loaded.task is lm.TASK and loaded.level == "word" and str(loaded.path) == "x.pt"
    for k, v in parts.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    payload["recipe"]["model"]["hidden_size"] = 5
    with pytest.raises(ElmanError, match="x.pt: its weights do not fit its recipe"):
        lm.TASK.load(payload, torch.device("cpu"))


def test_prepare_refuses_a_vocabulary_from_another_corpus(corpus):
    from elman.tasks.table import parse_recipe

    recipe = parse_recipe({"data": {"dataset": str(corpus)}})
    with pytest.raises(ElmanError, match="vocabulary .* does not match"):
        lm.TASK.prepare(recipe, vocab=Vocabulary(["<unk>", "<eos>", "zebra"]))


@pytest.mark.parametrize("level", ["word", "char"])
def test_a_language_model_on_one_text_file_of_your_own(tmp_path, level):
    from elman.tasks.training import train

    text = tmp_path / "mine.txt"
    text.write_text("".join(f"the cat sat on mat {i % 7}\n" for i in range(200)))
    recipe = tmp_path / "mine.toml"
    recipe.write_text(
        f'[recipe]\nname = "mine"\ntask = "lm"\naim = "a test"\n'
        f'[data]\ndataset = "{text}"\nlevel = "{level}"\nbatch_size = 4\nbptt = 8\n'
        "[model]\nembedding_dim = 8\nhidden_size = 8\nnum_layers = 1\n"
        "[train]\nepochs = 1\nprogress = false\n"
    )
    summary = train(recipe, out=tmp_path / "run")
    test = summary["results"]["metrics"]["test"]
    assert ("bpc" in test) == (level == "char")
    n = len(text.read_text())
    # the last 5%: 10 lines of 6 words + <eos>; or characters, the first of which has no
    # history to be predicted from (no <eos> in a character stream)
    expected = {"word": 10 * 7, "char": n - n * 95 // 100 - 1}
    assert test["tokens"] == expected[level]
    with pytest.raises(ElmanError, match="level 'bytes' unknown"):
        train(recipe, out=tmp_path / "x", overrides=["data.level=bytes"])
