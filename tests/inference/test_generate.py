"""Sampling: top-k, top-p, temperature 0, seeds, unknown prompt words, device changes."""

from __future__ import annotations

import pytest
import torch

from elman.data.vocabulary import Vocabulary
from elman.errors import ElmanError
from elman.inference.generate import decode_text, encode_prompt, filter_logits, sample
from elman.models.rnnlm import RNNLM, RNNLMConfig
from elman.tasks.loading import load
from elman.tasks.training import train
from elman.train.checkpoint import load_checkpoint


def generate(path, prompt: str, tokens: int, device: str = "auto", **sampling) -> str:
    return load(path, device).generate(prompt, tokens, **sampling)


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits)).flatten().tolist())


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_top_k_keeps_exactly_the_k_largest(k):
    logits = torch.randn(20, generator=torch.Generator().manual_seed(k))
    out = filter_logits(logits, top_k=k)
    assert kept(out) == set(torch.topk(logits, k).indices.tolist())
    assert torch.equal(out[torch.isfinite(out)], logits[torch.isfinite(out)])  # unchanged values
    assert torch.equal(filter_logits(logits, top_k=20), logits)  # k >= V: nothing removed


def minimal_nucleus(logits: torch.Tensor, p: float) -> set[int]:
    """The fewest most-probable tokens whose probability reaches p (float64, by brute force)."""
    probs = torch.softmax(logits.double(), -1)
    order = torch.argsort(probs, descending=True).tolist()
    chosen, mass = set(), 0.0
    for i in order:
        chosen.add(i)
        mass += probs[i].item()
        if mass >= p:
            return chosen
    return chosen


def test_top_p_keeps_the_minimal_nucleus():
    g = torch.Generator().manual_seed(0)
    for trial in range(50):
        logits = 2 * torch.randn(15, generator=g)
        p = float(torch.rand((), generator=g)) * 0.98 + 0.01
        assert kept(filter_logits(logits, top_p=p)) == minimal_nucleus(logits, p), trial
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    assert kept(filter_logits(logits, top_p=0.45)) == {0}
    assert kept(filter_logits(logits, top_p=0.7)) == {0, 1}
    assert kept(filter_logits(logits, top_p=0.9)) == {0, 1, 2}
    assert kept(filter_logits(logits, top_p=1.0)) == {0, 1, 2, 3}
    # top-k and top-p together: the nucleus of what top-k left
    assert kept(filter_logits(logits, top_k=2, top_p=0.9)) == {0, 1}


@pytest.fixture
def model() -> RNNLM:
    torch.manual_seed(0)
    return RNNLM(RNNLMConfig(vocab_size=30, embedding_dim=8, hidden_size=8, num_layers=1)).eval()


def test_temperature_zero_is_greedy_and_deterministic(model):
    out = sample(model, [1, 2], 12, temperature=0, seed=1)
    assert out == sample(model, [1, 2], 12, temperature=0, seed=99)
    # greedy by hand: argmax of the model's next-token distribution, fed back
    ids, state = [1, 2], None
    inputs = torch.tensor(ids).view(-1, 1)
    expected = []
    for _ in range(12):
        logits, state = model(inputs, state)
        nxt = int(logits[-1, 0].argmax())
        expected.append(nxt)
        inputs = torch.tensor([[nxt]])
    assert out == expected
    # top-k 1 is greedy too
    assert sample(model, [1, 2], 12, temperature=1.0, top_k=1, seed=5) == out


def test_same_seed_same_sample(model):
    a = sample(model, [3], 20, temperature=1.5, seed=7)
    assert a == sample(model, [3], 20, temperature=1.5, seed=7)
    assert a != sample(model, [3], 20, temperature=1.5, seed=8)
    torch.manual_seed(123)  # the global RNG plays no part
    assert a == sample(model, [3], 20, temperature=1.5, seed=7)


def test_sample_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="at least one id"):
        sample(model, [], 3)
    with pytest.raises(ValueError, match="temperature"):
        sample(model, [1], 3, temperature=-1)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0, got nan"):
        sample(model, [1], 3, temperature=float("nan"))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"temperature": float("nan")}, "--temperature must be a finite number >= 0"),
        ({"temperature": float("inf")}, "--temperature must be a finite number >= 0"),
        ({"top_p": float("nan")}, r"--top-p must be in \(0, 1\], got nan"),
        ({"top_k": 0}, "--top-k must be >= 1"),
        ({"seed": 2**64}, r"--seed must be in 0 … 4294967295"),
        ({"tokens": -1}, "--tokens must be >= 0"),
    ],
)
def test_generate_refuses_what_would_sample_from_nan(run_dir, options, message):
    options = {"prompt": "the", "tokens": 3, **options}
    with pytest.raises(ElmanError, match=message):
        generate(str(run_dir), **options)


@pytest.fixture
def run_dir(recipe, tmp_path):
    out = tmp_path / "run"
    train(recipe, overrides=["train.epochs=1"], out=out)
    return out


def test_generate_from_a_checkpoint(run_dir):
    text = generate(str(run_dir), prompt="the cat", tokens=15, temperature=0.8, seed=3)
    assert text.startswith("the cat ")
    assert text == generate(str(run_dir), prompt="the cat", tokens=15, temperature=0.8, seed=3)
    new = text[len("the cat ") :]
    assert len(new.split()) + new.count("\n") == 15  # <eos> is written as a line break
    greedy = generate(str(run_dir), prompt="the", tokens=10, temperature=0, device="cpu")
    assert greedy == generate(str(run_dir), prompt="the", tokens=10, temperature=0, seed=1)


def test_unknown_prompt_words_warn_and_read_as_unk(run_dir):
    with pytest.warns(UserWarning, match="read as <unk>: zebra"):
        text = generate(str(run_dir), prompt="the zebra", tokens=3, seed=1)
    assert text.startswith("the zebra ")


def test_a_checkpoint_saved_on_another_device_loads_on_cpu(run_dir, tmp_path, monkeypatch):
    """Re-save every storage tagged as on cuda:0, as a GPU run writes it; then sample on CPU."""
    payload = torch.load(run_dir / "best.pt", weights_only=True)
    registry = list(torch.serialization._package_registry)
    monkeypatch.setattr(
        torch.serialization,
        "_package_registry",
        [(0, lambda storage: "cuda:0", lambda storage, loc: None), *registry],
    )
    gpu = tmp_path / "gpu.pt"
    torch.save(payload, gpu)
    monkeypatch.setattr(torch.serialization, "_package_registry", registry)
    if not torch.cuda.is_available():  # the file really asks for CUDA
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(gpu, weights_only=True)
    loaded = load_checkpoint(gpu, map_location="cpu")
    assert loaded["model"]["decoder.weight"].device.type == "cpu"
    text = generate(str(gpu), prompt="the", tokens=5, temperature=0, device="cpu")
    assert text == generate(str(run_dir), prompt="the", tokens=5, temperature=0, device="cpu")


def test_prompt_encoding_and_decoding():
    vocab = Vocabulary(["<unk>", "<eos>", "the", "cat"])
    ids, unknown = encode_prompt("the dog cat", vocab, "word")
    assert ids == [1, 2, 0, 3] and unknown == ["dog"]  # starts after <eos>
    assert decode_text([2, 3, 1, 2], vocab, "word") == "the cat\nthe"
    chars = Vocabulary(["<unk>", "<eos>", "a", "b", "_"])
    ids, unknown = encode_prompt("ab a", chars, "char")
    assert ids == [1, 2, 3, 4, 2] and unknown == []  # PTB-char writes a space as "_"
    assert decode_text([2, 4, 3, 1], chars, "char") == "a b\n"
