"""Model configs refuse nonsense when the recipe is parsed: one line naming the key and its
valid range (a negative init_range, a size of 0 or 10**7, NaN), long before a model is built."""

from __future__ import annotations

import pytest

from elman.errors import ElmanError
from elman.models.limits import MAX_LAYERS, MAX_SIZE
from elman.tasks.table import parse_recipe

BASES = {
    task: {"recipe": {"name": "x", "task": task}, "data": {"dataset": "d"}}
    for task in ("lm", "nplm", "tagger", "translation")
}
SIZES = {
    "lm": ["embedding_dim", "hidden_size"],
    "nplm": ["embedding_dim", "hidden_size"],
    "tagger": ["embedding_dim", "hidden_size", "char_hidden_size"],
    "translation": ["embedding_dim", "hidden_size", "attention_size"],
}
BAD_SIZES = [(task, key, v) for task, keys in SIZES.items() for key in keys for v in (0, 10**7)]


def refused(task: str, overrides: list[str], *match: str) -> str:
    with pytest.raises(ElmanError) as err:
        parse_recipe(BASES[task], overrides)
    message = str(err.value)
    assert "\n" not in message and message.startswith("[model]")
    for m in match:
        assert m in message, message
    return message


@pytest.mark.parametrize("task, key, value", BAD_SIZES)
def test_sizes_out_of_range_are_refused(task, key, value):
    refused(task, [f"model.{key}={value}"], f"{key} must be at least 1 and at most {MAX_SIZE}")


@pytest.mark.parametrize("task", ["lm", "tagger", "translation"])
@pytest.mark.parametrize("value", [0, MAX_LAYERS + 1])
def test_layers_out_of_range_are_refused(task, value):
    refused(task, [f"model.num_layers={value}"], "num_layers must be at least 1 and at most")


def test_nplm_context_and_char_embedding_ranges():
    refused("nplm", ["model.context_size=100000"], "context_size must be at least 1")
    refused("tagger", ["model.char_embedding_dim=-1"], "char_embedding_dim must be at least 0")
    parse_recipe(BASES["tagger"], ["model.char_embedding_dim=0", "model.char_hidden_size=0"])


@pytest.mark.parametrize("task", ["lm", "nplm"])
@pytest.mark.parametrize("value", ["-0.1", "0.0"])
def test_init_range_must_be_positive(task, value):
    refused(task, [f"model.init_range={value}"], "init_range = ", "must be a finite number > 0")


def test_recurrent_init_range_and_div_value():
    refused("lm", ["model.recurrent_init_range=-1.0"], "recurrent_init_range = -1.0: must be")
    refused("nplm", ["model.adaptive_div_value=0.5"], "adaptive_div_value = 0.5: must be", ">= 1")


@pytest.mark.parametrize(
    "task, key",
    [
        ("lm", "init_range"),
        ("lm", "recurrent_init_range"),
        ("nplm", "adaptive_div_value"),
        ("lm", "weight_dropout"),
        ("nplm", "dropout_hidden"),
        ("tagger", "dropout_words"),
        ("translation", "label_smoothing"),
    ],
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_values_are_refused(task, key, value):
    # elman.config refuses a non-finite float for any key; the config's own check is the
    # second line of defence (a config built in Python)
    refused(task, [f"model.{key}={value}"], f"{key} = {value}")


def test_sensible_values_still_parse():
    r = parse_recipe(BASES["lm"], ["model.init_range=0.05", "model.hidden_size=1500"])
    assert r.model.init_range == 0.05 and r.model.hidden_size == 1500
    assert parse_recipe(BASES["lm"]).model.init_range == 0.1


def test_configs_built_in_python_check_too():
    from elman.models.rnnlm import RNNLMConfig

    for kwargs in ({"init_range": float("nan")}, {"weight_dropout": float("nan")}):
        with pytest.raises(ValueError, match="must be"):
            RNNLMConfig(**kwargs)
