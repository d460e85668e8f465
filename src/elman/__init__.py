"""elman: faithful, fast recurrent and n-gram language models on PyTorch.

Layout, read top-down: ``errors``/``config``/``provenance`` -> ``data`` (corpora, vocabularies,
batches) -> ``nn`` (cells, recurrent layers, output layers) -> ``models`` -> ``train`` (the
engine: one trainer, optimisers, checkpoints, distributed, recipes) -> ``inference`` (generation,
beam search, tagging, translating) -> ``tasks`` (each kind of model's life cycle behind one
protocol) -> ``lab`` -> ``cli`` (docs/architecture.md).

The Python API::

    import elman

    lm = elman.load("runs/ptb-small-lstm")         # any checkpoint or run folder
    elman.evaluate(lm, "test").metrics["ppl"]
    lm.generate("the market", tokens=20, seed=1)

Both are imported on first use, so ``import elman`` (and the n-gram path) stays light. Training
is ``elman.tasks.training.train`` (``elman.train`` is the engine's package).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elman.tasks.evaluation import evaluate
    from elman.tasks.loading import load

# name -> the module that defines it (imported when the name is first used)
_LAZY = {
    "load": "elman.tasks.loading",
    "evaluate": "elman.tasks.evaluation",
}

__all__ = ["__version__", "evaluate", "load"]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata alone is a tenth of `elman ngram eval`'s start
        from elman.provenance import elman_version

        return elman_version()
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'elman' has no attribute {name!r}")
