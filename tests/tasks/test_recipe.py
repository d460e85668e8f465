"""Recipes: every shipped TOML parses; unknown names are errors listing the valid ones; --set."""

from __future__ import annotations

import json
import shlex
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


# --- every committed command still parses ---------------------------------------------
RESULTS = sorted((ROOT / "results").glob("*.json"))


def commands(path: Path) -> list[str]:
    """The commands a results file records: the first, every resume, each part of an `&&`."""
    record = json.loads(path.read_text())
    lines = [record["command"], *(s["command"] for s in record.get("sessions", [])[1:])]
    return [part.strip() for line in lines for part in line.split("&&")]


def script_accepts(script: Path, args: list[str]) -> None:
    """``script`` exists, its --help runs, and it lists every option ``args`` use."""
    import subprocess
    import sys

    assert script.is_file(), script
    shown = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert all(a.split("=")[0] in shown for a in args if a.startswith("--")), (script, args)


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_every_results_command_still_parses(path):
    from elman.cli import build_parser

    for command in commands(path):
        argv = shlex.split(command)
        if argv[0] == "python":  # a committed script (benchmarks/…): it runs, takes the options
            script_accepts(ROOT / argv[1], argv[2:])
            continue
        assert argv[0] == "elman", command
        args = build_parser().parse_args(argv[1:])  # argparse exits on an unknown option
        if args.command == "train" and args.recipe is not None:
            recipe = parse_recipe(read_toml(ROOT / args.recipe), args.overrides)
            assert recipe.info.name in path.stem or path.stem.startswith(recipe.info.name)
        elif args.command == "train":  # a resume: its overrides must be [train] keys
            assert all(o.startswith("train.") for o in args.overrides), command


# --- renamed keys ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "task, key, value, message",
    [
        (
            "nplm",
            "dropout",
            0.5,
            r"\[model\] dropout was renamed; write model.dropout_hidden = 0.5 ",
        ),
        (
            "nplm",
            "train_dtype",
            "bfloat16",
            r'\[model\] train_dtype was renamed; write train.autocast = "bfloat16"',
        ),
        ("nplm", "train_dtype", "float32", r"train_dtype is gone .* delete the key"),
        ("tagger", "word_dim", 50, r"write model.embedding_dim = 50"),
        ("tagger", "char_hidden", 8, r"write model.char_hidden_size = 8"),
        ("tagger", "word_dropout", 0.1, r"write model.dropout_words = 0.1"),
        (
            "tagger",
            "dropout",
            0.33,
            r"write model.dropout_embedding = 0.33, model.dropout_hidden = 0.33, "
            r"model.dropout_output = 0.33 instead",
        ),
        ("translation", "dropout", 0.3, r"write model.dropout_embedding = 0.3, .*output = 0.3"),
    ],
)
def test_an_old_key_names_its_new_name(task, key, value, message):
    raw = {"recipe": {"task": task}, "model": {key: value}}
    with pytest.raises(ElmanError, match=message) as err:
        parse_recipe(raw)
    assert "\n" not in str(err.value)
    with pytest.raises(ElmanError, match=message):  # the same through --set
        parse_recipe({"recipe": {"task": task}}, [f"model.{key}={value}"])


def test_an_old_checkpoints_recipe_is_read_with_the_new_names():
    stored = {
        "recipe": {"name": "old", "task": "tagger", "aim": ""},
        "model": {"word_dim": 50, "char_dim": 0, "dropout": 0.25, "word_dropout": 0.1},
        "train": {"autocast": None},
    }
    model = parse_recipe(stored, upgrade=True).model
    assert (model.embedding_dim, model.char_embedding_dim, model.dropout_words) == (50, 0, 0.1)
    assert model.dropout_embedding == model.dropout_hidden == model.dropout_output == 0.25
    nplm = {"recipe": {"task": "nplm"}, "model": {"dropout": 0.5, "train_dtype": "bfloat16"}}
    stored_nplm = parse_recipe({**nplm, "train": {"autocast": None}}, upgrade=True)
    assert stored_nplm.model.dropout_hidden == 0.5
    assert stored_nplm.train.autocast == "bfloat16"
    assert "train_dtype" not in stored_nplm.raw["model"]


def test_an_empty_recipe_is_refused_not_trained_on_the_defaults(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ElmanError, match="empty.toml is empty"):
        read_toml(empty)


def test_an_optional_key_is_unset_with_none():
    raw = {"recipe": {"task": "tagger"}, "data": {"vectors": "wiki.vec"}}
    assert parse_recipe(raw).data.vectors == "wiki.vec"
    assert parse_recipe(raw, ["data.vectors=none"]).data.vectors is None
    with pytest.raises(ElmanError, match="expected int"):  # a required key stays required
        parse_recipe({"recipe": {"task": "lm"}}, ["data.bptt=none"])


def test_a_recipe_run_on_other_data_takes_another_name_and_no_aim(tmp_path, corpus, recipe):
    from elman.tasks.table import read_recipe
    from elman.tasks.training import retitle_for_other_data

    own = read_recipe(recipe)
    other = tmp_path / "my corpus"
    moved = read_recipe(recipe, [f"data.dataset={other}"])
    retitle_for_other_data(moved, own, [f"data.dataset={other}"])
    assert moved.info.name == f"{own.info.name}-on-my-corpus"
    assert moved.info.aim.startswith("none stated") and moved.raw["recipe"]["aim"] == moved.info.aim
    named = read_recipe(recipe, [f"data.dataset={other}", "recipe.name=mine"])
    retitle_for_other_data(named, own, [f"data.dataset={other}", "recipe.name=mine"])
    assert named.info.name == "mine" and named.info.aim.startswith("none stated")
    same = read_recipe(recipe)
    retitle_for_other_data(same, own, [])
    assert (same.info.name, same.info.aim) == (own.info.name, own.info.aim)
