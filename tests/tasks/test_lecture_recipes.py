"""The lecture's own models as recipes (issue #19): ptb-rnn-lecture with its ablation arms,
multi30k-plain-lecture, the bias-free LSTM; each parses, builds the lecture's parameters and
trains a few steps on the toy corpora; checkpoints written before the switches still load."""

from __future__ import annotations

from pathlib import Path

import pytest

import elman
from elman.tasks.table import read_recipe
from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint, save_checkpoint
from train.mttoy import write_parallel_corpus, write_translation_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TINY_RUN = ["train.max_steps=2", "train.device=cpu", "train.threads=1", "train.progress=false",
            "train.log_every=1", "train.save_every=none"]  # fmt: skip
# The ablation from the lecture's model toward ptb-rnn, one change at a time (recipe header,
# docs/lm.md); every arm adds its --set lines to the ones before it.
LM_ARMS = {
    "tanh": ["model.cell_options.nonlinearity=tanh"],
    "biases": ["model.cell_options.bias=true", "model.output_bias=true"],
    "tied": ["model.tie_weights=true"],
    "dropout": [
        "model.dropout_embedding=0.4",
        "model.dropout_output=0.4",
        "model.weight_dropout=0.4",
    ],  # fmt: skip
}


def lm_arm_overrides(arm: str) -> list[str]:
    names = list(LM_ARMS)
    return [o for name in names[: names.index(arm) + 1] for o in LM_ARMS[name]]


def test_ptb_rnn_lecture_is_the_lectures_equations():
    model = read_recipe(RECIPES / "ptb-rnn-lecture.toml").model
    assert (model.cell, model.num_layers, model.output_bias, model.tie_weights) == (
        "elman", 1, False, False)  # fmt: skip
    assert model.cell_options == {"nonlinearity": "sigmoid", "bias": False}
    assert model.dropout_embedding == model.dropout_output == model.weight_dropout == 0.0
    train_cfg = read_recipe(RECIPES / "ptb-rnn-lecture.toml").train
    assert train_cfg.optimizer == "sgd" and train_cfg.momentum == 0.0


@pytest.mark.parametrize("arm", [None, *LM_ARMS])
def test_ptb_rnn_lecture_and_each_ablation_arm_train(tmp_path, corpus, arm):
    small = [f"data.dataset={corpus}", "model.embedding_dim=8", "model.hidden_size=8",
             "data.batch_size=4", "data.bptt=5", *TINY_RUN]  # fmt: skip
    arms = [] if arm is None else lm_arm_overrides(arm)
    summary = train(RECIPES / "ptb-rnn-lecture.toml", out=tmp_path / "run",
                    overrides=small + arms)  # fmt: skip
    assert summary["interrupted"]  # stopped by max_steps, resumably
    weights = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    has_bias = any("bias" in name for name in weights)
    assert has_bias == (arm not in (None, "tanh"))


def test_the_optimiser_arm_is_ptb_rnns_training(tmp_path):
    """The last arm takes ptb-rnn's [train] optimiser settings on top of the dropout arm."""
    rnn = read_recipe(RECIPES / "ptb-rnn.toml")
    arm = read_recipe(
        RECIPES / "ptb-rnn-lecture.toml",
        [*lm_arm_overrides("dropout"), "train.optimizer=adam", "train.lr=0.001",
         "train.average_start=plateau"],
    )  # fmt: skip
    assert arm.model.cell_options == rnn.model.cell_options | {"bias": True}
    for key in ("tie_weights", "dropout_embedding", "dropout_output", "weight_dropout",
                "output_bias"):  # fmt: skip
        assert getattr(arm.model, key) == getattr(rnn.model, key), key
    for key in ("optimizer", "lr", "schedule", "average_start", "clip_norm"):
        assert getattr(arm.train, key) == getattr(rnn.train, key), key


def test_the_lstm_without_biases_is_an_override_of_ptb_small_lstm(tmp_path, corpus):
    overrides = ["model.cell_options.bias=false", "model.output_bias=false"]
    recipe = read_recipe(RECIPES / "ptb-small-lstm.toml", overrides)
    assert recipe.model.cell_options == {"forget_bias": 0.0, "bias": False}
    small = [f"data.dataset={corpus}", "model.embedding_dim=8", "model.hidden_size=8",
             "data.batch_size=4", "data.bptt=5", *TINY_RUN]  # fmt: skip
    train(RECIPES / "ptb-small-lstm.toml", out=tmp_path / "run", overrides=small + overrides)
    weights = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    assert not [name for name in weights if "bias" in name]


def test_multi30k_plain_lecture_trains_without_decoder_input_or_biases(tmp_path):
    corpus = write_parallel_corpus(tmp_path / "c", sizes=(60, 8, 8))
    small = [f"data.dataset={corpus}", "data.vocab_size=40", "data.max_tokens=200",
             "model.embedding_dim=8", "model.hidden_size=8", *TINY_RUN]  # fmt: skip
    model = read_recipe(RECIPES / "multi30k-plain-lecture.toml").model
    assert (model.kind, model.cell, model.decoder_input_matrix, model.output_bias) == (
        "plain", "elman", False, False)  # fmt: skip
    assert model.cell_options == {"nonlinearity": "tanh", "bias": False}
    train(RECIPES / "multi30k-plain-lecture.toml", out=tmp_path / "run", overrides=small)
    weights = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    assert not [name for name in weights if "bias" in name]
    assert weights["decoder.cells.0.weight_ih"].shape == (8, 0)  # W_hx' holds nothing
    # no W_hx' at all: only the decoder's W_hh' between the encoder and W_S
    assert sorted(n for n in weights if n.startswith("decoder.")) == [
        "decoder.cells.0.weight_hh", "decoder.cells.0.weight_ih"]  # fmt: skip


def _without(path: Path, out: Path, keys: tuple[str, ...]) -> Path:
    """``path``'s checkpoint as an elman before these model keys wrote it."""
    content = load_checkpoint(path)
    for key in ("path", "format", "version", "checksum"):
        content.pop(key)
    for key in keys:
        content["recipe"]["model"].pop(key)
    return save_checkpoint(content, out)


def test_an_lm_checkpoint_without_output_bias_loads_with_its_bias(tmp_path, recipe):
    train(recipe, out=tmp_path / "run", overrides=TINY_RUN)
    old = _without(tmp_path / "run" / "last.pt", tmp_path / "old.pt", ("output_bias",))
    loaded = elman.load(old, "cpu")
    assert loaded.recipe.model.output_bias is True
    assert loaded.model.decoder.bias is not None


def test_a_plain_checkpoint_without_the_new_keys_loads_in_its_old_form(tmp_path):
    corpus = write_parallel_corpus(tmp_path / "c", sizes=(60, 8, 8))
    recipe = write_translation_recipe(tmp_path / "t.toml", corpus, kind="plain")
    train(recipe, out=tmp_path / "run", overrides=TINY_RUN)
    old = _without(tmp_path / "run" / "last.pt", tmp_path / "old.pt",
                   ("output_bias", "decoder_input_matrix"))  # fmt: skip
    loaded = elman.load(old, "cpu")
    assert loaded.model.decoder.input_size == 1 and loaded.model.output.bias is not None
