"""``train.autocast = "bfloat16"``: every task's training steps under autocast move the weights
as float32 steps do, and the weights, checkpoints and evaluation stay float32; a CPU without
bfloat16 kernels trains in float32 with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elman.config import read_toml
from elman.errors import ElmanError
from elman.tasks.table import get_task, parse_recipe
from elman.tasks.training import train
from elman.train import trainer
from elman.train.checkpoint import load_checkpoint
from train.lmtoy import write_recipe
from train.test_distributed import TASKS


def lm_recipe(tmp_path: Path, corpus: Path) -> Path:
    return write_recipe(tmp_path / "tiny.toml", corpus)


def initial_weights(recipe: Path, overrides: list[str]) -> dict[str, torch.Tensor]:
    parsed = parse_recipe(read_toml(recipe), overrides)
    torch.manual_seed(parsed.train.seed)  # as elman.tasks.training does before prepare
    model = get_task(parsed.info.task).prepare(parsed).model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


CASES = {**TASKS, "lm": (lm_recipe, []), "lm-class": (lm_recipe, ["model.output=class"])}


@pytest.mark.skipif(
    not trainer.cpu_has_bfloat16(), reason="this CPU has no bfloat16 kernels (no AVX-512)"
)
@pytest.mark.parametrize("task", CASES)
def test_bfloat16_steps_move_the_weights_as_float32_steps_do(
    tmp_path: Path, corpus: Path, task: str
) -> None:
    write, overrides = CASES[task]
    recipe = write(tmp_path, corpus)
    overrides = [*overrides, "train.max_steps=3"]
    w0 = initial_weights(recipe, overrides)
    train(recipe, overrides=overrides, out=tmp_path / "fp32")
    train(recipe, overrides=[*overrides, "train.autocast=bfloat16"], out=tmp_path / "bf16")
    w32 = load_checkpoint(tmp_path / "fp32" / "last.pt")["model"]
    w16 = load_checkpoint(tmp_path / "bf16" / "last.pt")["model"]
    moved = [k for k in w0 if w0[k].is_floating_point() and not torch.equal(w32[k], w0[k])]
    assert moved
    for k in moved:
        assert w16[k].dtype == torch.float32, k
        step32, step16 = (w32[k] - w0[k]).flatten(), (w16[k] - w0[k]).flatten()
        # bfloat16 keeps ~3 significant digits: the steps point the same way, as far
        assert torch.cosine_similarity(step16, step32, dim=0) > 0.95, k
        assert 0.8 < step16.norm() / step32.norm() < 1.25, k


def test_an_unknown_autocast_dtype_is_one_clear_error(tmp_path: Path, corpus: Path) -> None:
    with pytest.raises(ElmanError, match="autocast 'float8' unknown"):
        train(lm_recipe(tmp_path, corpus), overrides=["train.autocast=float8"], out=tmp_path / "x")


def test_a_cpu_without_bfloat16_kernels_trains_in_float32_with_a_warning(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: on an AVX2 CPU torch's fused LSTM under a bfloat16 autocast raised a oneDNN
    RuntimeError at the first step, and every other product ran many times slower than float32."""
    recipe = lm_recipe(tmp_path, corpus)
    overrides = ["train.max_steps=3"]
    train(recipe, overrides=overrides, out=tmp_path / "fp32")
    monkeypatch.setattr(trainer, "cpu_has_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="no bfloat16 kernels; training in float32"):
        train(recipe, overrides=[*overrides, "train.autocast=bfloat16"], out=tmp_path / "asked")
    w32 = load_checkpoint(tmp_path / "fp32" / "last.pt")["model"]
    asked = load_checkpoint(tmp_path / "asked" / "last.pt")["model"]
    for k in w32:
        assert torch.equal(asked[k], w32[k]), k  # the same float32 steps, bit for bit
