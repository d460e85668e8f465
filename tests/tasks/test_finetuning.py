"""Fine-tuning on new data (``--init-from``) and another run's vocabulary (``data.vocab_from``),
for every task: the start is exactly the checkpoint's weights with a fresh optimiser, the model
must match, the vocabulary is kept (OOV rate reported) or extended (new rows at the mean of the
old ones), and a fine-tuned run resumes exactly."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from elman.data.datasets import resolve
from elman.errors import ElmanError
from elman.tasks.finetuning import MAY_DIFFER, init_source, model_differences
from elman.tasks.table import get_task, read_recipe
from elman.tasks.training import start_run, train
from elman.train.checkpoint import load_checkpoint
from train.lmtoy import NPLM_RECIPE, write_corpus, write_recipe
from train.mttoy import write_parallel_corpus, write_translation_recipe
from train.tagtoy import write_tagged_corpus, write_tagger_recipe
from train.test_resume import assert_identical, batches_per_epoch

NEW_WORDS = ("zebra", "moon", "sky")  # not in train.lmtoy.WORDS; "z" not in any toy word


def write_lm_target(folder: Path) -> Path:
    """Another word corpus: half of the toy words and three new ones."""
    folder.mkdir(parents=True)
    words = ["the", "cat", "sat", "on", "a", "mat", *NEW_WORDS]
    for split, seed, n in (("train", 4, 40), ("valid", 5, 8), ("test", 6, 8)):
        rng = random.Random(seed)
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))) for _ in range(n)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def write_tag_target(folder: Path, new_tag: bool = False) -> Path:
    """The toy treebank with other sentences, "zebra" for "cat" (and SYM for PUNCT)."""
    write_tagged_corpus(folder, sizes=(20, 6, 6))
    for path in folder.iterdir():
        text = path.read_text().replace("\tcat\tcat\t", "\tzebra\tzebra\t")
        if new_tag:
            text = text.replace("\tPUNCT\tpunct\t", "\tSYM\tsym\t")
        path.write_text(text)
    return folder


def write_mt_target(folder: Path) -> Path:
    """Digit reversal again, with an "x" for every 7 on both sides: a character the source
    corpus never had."""
    write_parallel_corpus(folder, sizes=(60, 10, 10))
    for path in folder.iterdir():
        path.write_text(path.read_text().replace("7", "x"))
    return folder


@dataclass
class Case:
    """A trained source run of one task, and new data to fine-tune it on."""

    task: str
    recipe: Path  # the source's recipe; the fine-tuning run reads it on the new data
    run: Path
    target: Path
    overrides: list[str]

    def recipe_on_target(self, *more: str):
        return read_recipe(self.recipe, [f"data.dataset={self.target}", *self.overrides, *more])

    def start(self, out: Path, *more: str):
        """A fine-tuning run's task, prepared parts and trainer before its first step."""
        recipe = self.recipe_on_target(*more)
        task = get_task(recipe.info.task)
        kind = dict(recipe_type=task.recipe_type, renamed=task.renamed)
        source = init_source(str(self.run), recipe, **kind)
        out.mkdir()
        return start_run(recipe, out, source=source)

    def checkpoint(self) -> dict:
        return load_checkpoint(self.run / "best.pt")


def build_lm(d: Path) -> Case:
    recipe = write_recipe(d / "lm.toml", write_corpus(d / "src"))
    overrides = ["train.optimizer=adam", "train.lr=0.01", "train.epochs=1"]
    return Case("lm", recipe, d / "run", write_lm_target(d / "tgt"), overrides)


def build_nplm(d: Path) -> Case:
    corpus = write_corpus(d / "src")
    (d / "nplm.toml").write_text(NPLM_RECIPE.format(corpus=corpus.as_posix()))
    return Case("nplm", d / "nplm.toml", d / "run", write_lm_target(d / "tgt"), [])


def build_tagger(d: Path) -> Case:
    recipe = write_tagger_recipe(d / "tagger.toml", write_tagged_corpus(d / "src"))
    return Case("tagger", recipe, d / "run", write_tag_target(d / "tgt"), ["train.epochs=1"])


def build_translation(d: Path) -> Case:
    corpus = write_parallel_corpus(d / "src", sizes=(200, 20, 20))
    recipe = write_translation_recipe(d / "mt.toml", corpus)
    return Case("translation", recipe, d / "run", write_mt_target(d / "tgt"), ["train.epochs=1"])


BUILDERS: dict[str, Callable[[Path], Case]] = {
    "lm": build_lm,
    "nplm": build_nplm,
    "tagger": build_tagger,
    "translation": build_translation,
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Callable[[str], Case]:
    """Each task's source run, trained once for the module (on first use)."""
    made: dict[str, Case] = {}

    def get(task: str) -> Case:
        if task not in made:
            case = BUILDERS[task](tmp_path_factory.mktemp(task))
            train(case.recipe, out=case.run, overrides=case.overrides)
            made[task] = case
        return made[task]

    return get


# ------------------------------------------------------------------ the start
@pytest.mark.parametrize("task", list(BUILDERS))
def test_init_from_starts_at_the_checkpoints_weights_with_a_fresh_optimiser(
    sources, tmp_path, task
):
    case = sources(task)
    source = case.checkpoint()
    _, prepared, trainer = case.start(tmp_path / "ft")
    state = trainer.model.state_dict()
    assert state.keys() == source["model"].keys()
    for name, weight in source["model"].items():
        assert torch.equal(state[name], weight), name
    assert prepared.vocab == get_task(task).vocab_from_dict(source["vocab"])
    assert trainer.optimizer.state_dict()["state"] == {}  # no moments, no step counts
    assert trainer.global_step == 0 and trainer.history == [] and trainer.best_valid == math.inf
    assert trainer.schedule.lr == case.recipe_on_target().train.lr
    assert trainer.meta["init_from"] == {
        "path": str(case.run / "best.pt"),
        "checksum": source["checksum"],
        "commit": source["trainer"]["sessions"][0]["commit"],
        "recipe": source["recipe"]["recipe"]["name"],
        "step": source["trainer"]["global_step"],
    }
    assert trainer.meta["recipe"]["data"]["vocab_from"] == str(case.run / "best.pt")


def test_the_rng_is_the_runs_own_seed_not_the_checkpoints(sources, tmp_path):
    case = sources("lm")
    case.start(tmp_path / "ft")
    after_init = torch.get_rng_state()
    # the same recipe from scratch on the same vocabulary: the same seed, the same draws
    recipe = case.recipe_on_target(f"data.vocab_from={case.run}")
    (tmp_path / "scratch").mkdir()
    _, _, trainer = start_run(recipe, tmp_path / "scratch")
    assert torch.equal(torch.get_rng_state(), after_init)
    weights = case.checkpoint()["model"]["embedding.weight"]
    assert not torch.equal(trainer.model.state_dict()["embedding.weight"], weights)


def test_a_model_that_differs_is_one_line_listing_each_key(sources, tmp_path):
    case = sources("lm")
    changed = ["model.cell=gru", "model.hidden_size=10"]
    with pytest.raises(ElmanError) as err:
        case.start(tmp_path / "ft", *changed)
    message = str(err.value)
    assert "\n" not in message and str(case.run) in message
    assert "cell ('lstm' -> 'gru'), hidden_size (8 -> 10)" in message
    assert not (tmp_path / "ft").exists()
    # what acts only while training, or on initial weights the checkpoint replaces, may differ
    same = ["model.impl=unrolled", "model.dropout_output=0.5", "model.init_range=0.2"]
    case.start(tmp_path / "ok", *same)


def test_model_differences_skip_the_sizes_and_the_keys_that_may_differ():
    old = {"vocab_size": 10, "hidden_size": 8, "impl": "auto", "dropout_hidden": 0.0}
    new = {"vocab_size": 20, "hidden_size": 8, "impl": "fused", "dropout_hidden": 0.5, "x": 1}
    assert model_differences(old, new) == ["x (None -> 1)"]
    assert {"impl", "dropout_words", "label_smoothing", "weight_dropout"} <= MAY_DIFFER


def test_a_checkpoint_of_another_task_or_none_is_one_line(sources, tmp_path):
    lm, tagger = sources("lm"), sources("tagger")
    recipe = lm.recipe_on_target()
    task = get_task("lm")
    kind = dict(recipe_type=task.recipe_type, renamed=task.renamed)
    with pytest.raises(ElmanError, match="is a 'tagger' model; this recipe trains a 'lm' model"):
        init_source(str(tagger.run), recipe, **kind)
    with pytest.raises(ElmanError, match=r"--init-from .*nowhere: checkpoint .* not found"):
        init_source(str(tmp_path / "nowhere"), recipe, **kind)
    other = lm.recipe_on_target(f"data.vocab_from={tagger.run}")
    with pytest.raises(ElmanError, match="names another checkpoint; drop data.vocab_from"):
        init_source(str(lm.run), other, **kind)
    same = lm.recipe_on_target(f"data.vocab_from={lm.run}")  # the same checkpoint: fine
    assert init_source(str(lm.run), same, **kind).path == str(lm.run / "best.pt")


def test_init_from_beside_resume_is_refused(sources, tmp_path):
    case = sources("lm")
    with pytest.raises(ElmanError, match="starts a new one from other weights; give one of them"):
        train(resume=case.run, init_from=case.run)


# ------------------------------------------------------------------ the vocabulary, kept
@pytest.mark.filterwarnings("ignore:.*not in the model's vocabulary")  # what is measured here
def test_the_oov_rate_of_the_new_data_is_printed_and_recorded(sources, tmp_path, capsys):
    case = sources("lm")
    summary = train(
        case.recipe,
        out=tmp_path / "ft",
        overrides=[f"data.dataset={case.target}", *case.overrides],
        init_from=case.run,
    )
    vocab = get_task("lm").vocab_from_dict(case.checkpoint()["vocab"])
    data = resolve(str(case.target))
    rates = {}
    for split in ("train", "valid", "test"):
        tokens = data.tokens(split)
        rates[split] = sum(t not in vocab for t in tokens) / len(tokens)
    assert rates["train"] > 0.1  # the three new words
    report = summary["results"]["vocabulary"]
    assert report["extended"] is False and report["added"] == {"words": 0}
    assert report["oov_before"] == pytest.approx(rates["train"])
    assert report["oov"] == pytest.approx(rates)
    assert report["train_tokens"] == len(data.tokens("train"))
    stored = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert stored["vocabulary"] == report and stored["init_from"]["path"] == str(
        case.run / "best.pt"
    )
    assert load_checkpoint(tmp_path / "ft" / "last.pt")["vocabulary"] == report
    out = capsys.readouterr().out
    assert f"initialised from {case.run / 'best.pt'} (step " in out
    assert f"{rates['train']:.2%} of the {len(data.tokens('train')):,} training words" in out


def test_vocab_from_trains_from_scratch_on_another_runs_vocabulary(sources, tmp_path):
    lm, nplm = sources("lm"), sources("nplm")
    for source in (lm, nplm):  # an NPLM's word vocabulary serves an RNN LM as well
        recipe = lm.recipe_on_target(f"data.vocab_from={source.run}")
        prepared = get_task("lm").prepare(recipe)
        assert prepared.vocab == get_task("lm").vocab_from_dict(source.checkpoint()["vocab"])
        assert prepared.vocab_report is not None and prepared.vocab_report.oov_before > 0.1
    with pytest.raises(ElmanError, match="is a 'tagger' model; a 'lm' run takes the vocabulary"):
        get_task("lm").prepare(lm.recipe_on_target(f"data.vocab_from={sources('tagger').run}"))


def test_a_vocabulary_of_another_level_is_refused(sources, tmp_path):
    case = sources("lm")
    recipe = case.recipe_on_target(f"data.vocab_from={case.run}", "data.level=char")
    with pytest.raises(ElmanError, match="trained with level = 'word', this recipe has 'char'"):
        get_task("lm").prepare(recipe)


def test_extend_vocab_needs_another_checkpoint(sources):
    case = sources("lm")
    with pytest.raises(ElmanError, match="extends the vocabulary of another checkpoint; give"):
        get_task("lm").prepare(case.recipe_on_target("data.extend_vocab=true"))


# ------------------------------------------------------------------ the vocabulary, extended
GROWN = {
    "lm": {"embedding.weight", "decoder.weight", "decoder.bias"},
    "nplm": {"embedding.weight", "output.weight", "output.bias", "direct.weight"},
    "tagger": {"embedding.weight", "chars.embedding.weight"},  # "zebra" brings its "z"
}


@pytest.mark.parametrize("task", list(GROWN))
def test_extension_keeps_the_old_rows_and_starts_new_ones_at_their_mean(sources, tmp_path, task):
    case = sources(task)
    source = case.checkpoint()
    old = get_task(task).vocab_from_dict(source["vocab"])
    _, prepared, trainer = case.start(tmp_path / "ft", "data.extend_vocab=true")
    words = prepared.vocab if task != "tagger" else prepared.vocab.words
    old_words = old if task != "tagger" else old.words
    assert words.itos[: len(old_words)] == old_words.itos
    assert set(words.itos[len(old_words) :]) == {"zebra", "moon", "sky"} & set(words.itos)
    assert len(words) > len(old_words)
    state = trainer.model.state_dict()
    grown = set()
    for name, weight in source["model"].items():
        if state[name].shape == weight.shape:
            assert torch.equal(state[name], weight), name
            continue
        grown.add(name)
        n = weight.shape[0]
        assert torch.equal(state[name][:n], weight), name
        mean = weight.double().mean(dim=0).to(weight.dtype)
        assert all(torch.equal(row, mean) for row in state[name][n:]), name
    assert grown == GROWN[task]
    report = prepared.vocab_report
    assert report is not None and report.extended and report.oov["train"] == 0.0
    assert report.added["words"] == len(words) - len(old_words) and report.oov_before > 0


def test_extension_orders_new_words_by_frequency_within_max_size(sources):
    case = sources("lm")
    recipe = case.recipe_on_target(f"data.vocab_from={case.run}", "data.extend_vocab=true")
    counts = {w: resolve(str(case.target)).tokens("train").count(w) for w in NEW_WORDS}
    ranked = sorted(NEW_WORDS, key=lambda w: (-counts[w], w))
    vocab = get_task("lm").prepare(recipe).vocab
    assert vocab.itos[-3:] == ranked
    size = len(vocab) - 2  # room for the two most frequent only
    capped = get_task("lm").prepare(case.recipe_on_target(
        f"data.vocab_from={case.run}", "data.extend_vocab=true", f"data.max_size={size}"
    )).vocab  # fmt: skip
    assert capped.itos == vocab.itos[:size]


@pytest.mark.parametrize("output", ["class", "adaptive"])
def test_extension_of_a_factored_softmax_is_refused_in_one_line(sources, output):
    case = sources("lm")
    recipe = case.recipe_on_target(
        f"data.vocab_from={case.run}", "data.extend_vocab=true", f"model.output={output}",
        "model.adaptive_cutoffs=[4]",
    )  # fmt: skip
    with pytest.raises(ElmanError, match=f'needs model.output = "softmax": the {output} softmax'):
        get_task("lm").prepare(recipe)


# ------------------------------------------------------------------ tagger and translation
def test_a_tagger_refuses_a_new_tag_when_kept_and_adds_its_row_when_extended(sources, tmp_path):
    case = dataclasses.replace(sources("tagger"), target=write_tag_target(tmp_path / "sym", True))
    with pytest.raises(ElmanError, match=r"tags that the tag set of .* lacks \(SYM\); set data"):
        case.start(tmp_path / "kept")
    source = case.checkpoint()
    _, prepared, trainer = case.start(tmp_path / "ext", "data.extend_vocab=true")
    tags = prepared.vocab.tags
    assert tags.itos[-1] == "SYM" and len(tags) == source["model"]["output.bias"].shape[0] + 1
    weight = source["model"]["output.weight"]
    assert torch.equal(trainer.model.output.weight[:-1].detach(), weight)
    assert torch.equal(trainer.model.output.weight[-1].detach(), weight.double().mean(0).float())
    assert prepared.vocab_report.added == {"words": 1, "chars": 1, "tags": 1}


def test_a_taggers_vocabulary_fits_its_tag_column_only(sources):
    case = sources("tagger")
    recipe = case.recipe_on_target(f"data.vocab_from={case.run}", "data.column=xpos")
    with pytest.raises(ElmanError, match="data.column = 'upos', this recipe has 'xpos'"):
        get_task("tagger").prepare(recipe)


def test_translation_keeps_the_subword_model_and_counts_unknown_pieces(sources, tmp_path):
    case = sources("translation")
    source = case.checkpoint()
    _, prepared, _ = case.start(tmp_path / "ft")
    assert prepared.vocab.to_dict() == source["vocab"]
    report = prepared.vocab_report
    assert report.unit == "pieces" and not report.extended and report.added == {}
    src = (case.target / "train.de").read_text()
    assert src.count("x") > 0 and report.oov["train"] > 0  # "x" is no piece of the model
    with pytest.raises(ElmanError, match="a sentencepiece model cannot take new pieces"):
        case.recipe_on_target("data.extend_vocab=true")
    recipe = case.recipe_on_target(f"data.vocab_from={case.run}", "data.direction=en-de")
    with pytest.raises(ElmanError, match="data.direction = 'de-en', this recipe has 'en-de'"):
        get_task("translation").prepare(recipe)


# ------------------------------------------------------------------ resume
@pytest.mark.parametrize(("task", "extra"), [("lm", ["data.extend_vocab=true"]), ("tagger", [])])
def test_a_fine_tuned_run_resumes_exactly(sources, tmp_path, task, extra):
    case = sources(task)
    overrides = [f"data.dataset={case.target}", *case.overrides, *extra, "train.epochs=2"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    first = train(case.recipe, out=straight, overrides=overrides, init_from=case.run)
    half = batches_per_epoch(straight) + 1  # into the second epoch
    train(case.recipe, out=split, overrides=[*overrides, f"train.max_steps={half}"],
          init_from=case.run)  # fmt: skip
    resumed = train(resume=split)
    assert_identical(straight, split)
    for key in ("vocabulary", "init_from"):
        assert resumed["results"][key] == first["results"][key]
    assert first["results"]["vocabulary"]["added"]["words"] == (3 if extra else 0)
