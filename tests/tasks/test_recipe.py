"""Recipes: every shipped TOML parses; unknown names are errors listing the valid ones; --set."""

from __future__ import annotations

from pathlib import Path

import pytest

from elman.config import apply_overrides, parse_override, read_toml
from elman.errors import ElmanError
from elman.tasks.table import parse_recipe

ROOT = Path(__file__).resolve().parents[2]
# recipes/ and the demo's recipe, shipped inside the package
RECIPES = [*sorted((ROOT / "recipes").glob("*.toml")), ROOT / "src/elman/cli/demo.toml"]


def test_there_are_recipes():
    assert len(RECIPES) >= 2


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_parses(path):
    recipe = parse_recipe(read_toml(path))
    assert recipe.info.name == path.stem  # runs/NAME and results/NAME.json follow the file
    assert recipe.info.aim  # each recipe states what it aims at
    if recipe.info.task == "lm":
        assert recipe.data.dataset and recipe.model.cell in ("elman", "lstm", "gru")


BASE = {"recipe": {"name": "x", "task": "lm"}, "data": {"dataset": "ptb"}}


def test_defaults_and_types():
    recipe = parse_recipe(BASE)
    assert recipe.train.optimizer == "sgd" and recipe.data.bptt == 35
    assert recipe.raw["train"]["lr"] == 1.0  # the resolved recipe holds every key
    r = parse_recipe({**BASE, "train": {"lr": 2}})
    assert isinstance(r.train.lr, float) and r.train.lr == 2.0


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {**BASE, "train": {"learning_rate": 1.0}},
            r"learning_rate in \[train\]; valid keys: .*lr",
        ),
        ({**BASE, "modle": {}}, r"unknown section\(s\) modle; valid: recipe, data, model, train"),
        ({"recipe": {"task": "translate"}}, r"task = 'translate' unknown; valid: lm"),
        ({**BASE, "train": {"lr": "fast"}}, r"\[train\] lr = 'fast': expected float"),
        ({**BASE, "train": {"epochs": True}}, r"expected int"),
        ({**BASE, "train": {"optimizer": "rmsprop"}}, r"valid: sgd, adam, adamw"),
        ({**BASE, "train": {"schedule": "cosine"}}, r"valid: plateau, newbob, fixed, constant"),
        ({**BASE, "train": {"device": "tpu"}}, r"valid: auto, cpu"),
        ({**BASE, "data": {"bptt": 0}}, r"\[data\]: bptt must be at least 1"),
        ({**BASE, "model": {"dropout_hidden": 1.0}}, r"\[model\]: dropout_hidden"),
        ({**BASE, "model": {"cell_options": 3}}, r"cell_options: expected a table"),
        ({**BASE, "data": 3}, r"\[data\] must be a table"),
        ({**BASE, "train": {"lr": -1.0}}, r"lr must be >= 0"),
        ({**BASE, "train": {"clip_norm": 0.0}}, r"clip_norm must be > 0"),
        ({**BASE, "model": {"embedding_dim": -1}}, r"embedding_dim must be at least 1"),
    ],
)
def test_bad_recipes_are_one_line_errors(raw, message):
    with pytest.raises(ElmanError, match=message) as err:
        parse_recipe(raw)
    assert "\n" not in str(err.value)


def test_overrides():
    assert parse_override("train.lr=0.5") == (["train", "lr"], 0.5)
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    assert parse_override('recipe.name="a b"') == (["recipe", "name"], "a b")
    assert parse_override("train.optimizer=adam") == (["train", "optimizer"], "adam")
    assert parse_override("data.dataset=/tmp/my corpus") == (["data", "dataset"], "/tmp/my corpus")
    assert parse_override("train.tensorboard=true") == (["train", "tensorboard"], True)
    raw = apply_overrides(BASE, ["model.cell_options.nonlinearity=sigmoid", "model.cell=elman"])
    assert raw["model"] == {"cell_options": {"nonlinearity": "sigmoid"}, "cell": "elman"}
    assert "model" not in BASE  # the original is not modified
    recipe = parse_recipe(BASE, ["model.cell_options.nonlinearity=sigmoid", "train.lr=0.1"])
    assert recipe.model.cell_options == {"nonlinearity": "sigmoid"} and recipe.train.lr == 0.1
    assert recipe.raw["model"]["cell_options"] == {"nonlinearity": "sigmoid"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr", "expected SECTION.KEY=VALUE"),
        ("lr=0.5", "needs its section"),
        ("train.lr.x=1", "lr is not a section"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ElmanError, match=message):
        parse_recipe({**BASE, "train": {"lr": 1.0}}, [override])


def test_an_override_with_an_unknown_key_lists_the_valid_ones():
    with pytest.raises(ElmanError, match=r"unknown key\(s\) lrr in \[train\]"):
        parse_recipe(BASE, ["train.lrr=0.5"])


def test_read_toml_errors_name_the_file(tmp_path):
    with pytest.raises(ElmanError, match=f"recipe {tmp_path / 'no.toml'} not found"):
        read_toml(tmp_path / "no.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = 1\n")
    with pytest.raises(ElmanError, match=f"recipe {bad} is not valid TOML"):
        read_toml(bad)
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[recipe]\nname = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ElmanError, match=f"recipe {latin} is not valid TOML"):
        read_toml(latin)
