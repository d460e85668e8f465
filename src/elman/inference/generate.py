"""Sampling text from a language model: temperature, top-k and nucleus (top-p) sampling.

At each step the model's distribution ŷ_t = softmax(z_t / τ) is restricted to the k most probable
tokens (top-k) and/or to the smallest set whose probability reaches p (top-p, Holtzman et al.
2020), renormalised, and sampled with a seeded generator.

Text and ids: a prompt is read as the corpus was (words split at spaces, or characters, PTB-char
writing a space as ``_``) and starts after an ``<eos>``, as a new sentence; generated ids become
text with ``<eos>`` as a line break (:func:`encode_prompt`, :func:`decode_text`).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

from elman.data.vocabulary import Vocabulary
from elman.errors import ElmanError

MAX_SEED = 2**32 - 1  # as the recipes' train.seed


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set the logits outside the top-k / top-p set to -inf. logits: shape (V,)."""
    if top_k is not None and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the mass before it already reaches p; the first always stays.
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def sample(
    model: nn.Module,
    prompt_ids: list[int],
    num_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> list[int]:
    """Continue ``prompt_ids`` by ``num_tokens`` sampled ids (temperature 0 means greedy).

    ``model(inputs (T, B), state) -> (logits (T, B, V), state)`` is the language-model contract.
    """
    if not prompt_ids:
        raise ValueError("prompt_ids must hold at least one id (e.g. the <eos> id)")
    if not (math.isfinite(temperature) and temperature >= 0):  # NaN fails every comparison
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    generator = torch.Generator(device="cpu")
    if seed is not None:
        generator.manual_seed(seed)
    model.eval()
    inputs = torch.tensor(prompt_ids, dtype=torch.long, device=device).view(-1, 1)  # (T, 1)
    logits, state = model(inputs, None)
    out: list[int] = []
    for _ in range(num_tokens):
        z = logits[-1, 0].float().cpu()  # (V,)
        if temperature == 0:
            next_id = int(z.argmax())
        else:
            z = filter_logits(z / temperature, top_k, top_p)
            next_id = int(torch.multinomial(torch.softmax(z, -1), 1, generator=generator))
        out.append(next_id)
        step = torch.tensor([[next_id]], dtype=torch.long, device=device)  # (1, 1)
        logits, state = model(step, state)
    return out


def encode_prompt(text: str, vocab: Vocabulary, level: str) -> tuple[list[int], list[str]]:
    """Prompt text → ids, starting after an <eos> when the vocabulary has one; also the unknowns."""
    if level == "word":
        tokens = text.split()
    else:
        # PTB-char writes a word boundary as "_"; raw character corpora keep the space.
        tokens = [("_" if c == " " and " " not in vocab and "_" in vocab else c) for c in text]
    start = [vocab.eos_index] if vocab.eos_index is not None else []
    if not tokens and not start:
        tokens = ["\n"] if "\n" in vocab else [vocab[len(vocab) - 1]]
    unknown = [t for t in tokens if t not in vocab]
    return start + vocab.encode(tokens).tolist(), unknown


def decode_text(ids: list[int], vocab: Vocabulary, level: str) -> str:
    """Generated ids → text: <eos> becomes a line break; PTB-char's "_" a space."""
    tokens = vocab.decode(ids)
    if level == "word":
        return " ".join(tokens).replace(" <eos> ", "\n").replace("<eos>", "\n")
    text = "".join("\n" if t == "<eos>" else t for t in tokens)
    return text.replace("_", " ") if " " not in vocab and "_" in vocab else text


def check_sampling(
    tokens: int, temperature: float, top_k: int | None, top_p: float | None, seed: int | None
) -> None:
    """Refuse, in one line naming the option, what would crash or sample from NaN later
    (a NaN passes every ``<`` test, so each check asks for the valid range instead)."""
    if tokens < 0:
        raise ElmanError(f"--tokens must be >= 0, got {tokens}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ElmanError(
            f"--temperature must be a finite number >= 0 (0: greedy), got {temperature}"
        )
    if top_k is not None and top_k < 1:
        raise ElmanError(f"--top-k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ElmanError(f"--top-p must be in (0, 1], got {top_p}")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ElmanError(f"--seed must be in 0 … {MAX_SEED} (2**32 - 1), got {seed}")


def generate_text(
    model: nn.Module,
    vocab: Vocabulary,
    level: str,
    prompt: str = "",
    tokens: int = 50,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> str:
    """The prompt followed by ``tokens`` sampled tokens, as text (prompt words the vocabulary
    lacks are read as ``<unk>``, with a warning)."""
    check_sampling(tokens, temperature, top_k, top_p, seed)
    ids, unknown = encode_prompt(prompt, vocab, level)
    if unknown:
        warnings.warn(
            f"prompt words not in the vocabulary, read as <unk>: {' '.join(unknown)}", stacklevel=2
        )
    new = sample(
        model, ids, tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
        device=device,
    )  # fmt: skip
    sep = " " if level == "word" and prompt else ""
    return prompt + sep + decode_text(new, vocab, level)
