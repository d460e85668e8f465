"""elman: faithful, fast recurrent and n-gram language models on PyTorch.

Layout, read top-down: ``data`` (corpora, vocabularies, batches) -> ``nn`` (cells,
recurrent layers, output layers) -> ``models`` -> ``train`` (one trainer, checkpoints,
metrics) -> ``inference`` (generation, beam search, tagging) -> ``cli``.
"""

__version__ = "0.1.0"
