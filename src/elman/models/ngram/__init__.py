"""n-gram language models in NumPy: counting, smoothing (ML, add-k, absolute
discounting, Kneser-Ney, modified Kneser-Ney), ARPA and binary files, scoring and sampling.

    from elman.models.ngram import NgramConfig, NgramLM, read_model, write_binary
    lm = NgramLM.build(lines, NgramConfig(order=5, smoothing="mkn"))
    lm.perplexity(test_lines).perplexity
    write_binary(lm, "m.bin"); read_model("m.bin")  # read_model: binary or ARPA
"""

from elman.models.ngram.arpa import read_arpa, write_arpa
from elman.models.ngram.binary import read_binary, read_model, write_binary
from elman.models.ngram.model import NgramConfig, NgramLM, Perplexity
from elman.models.ngram.smoothing import SMOOTHINGS

__all__ = [
    "NgramConfig",
    "NgramLM",
    "Perplexity",
    "SMOOTHINGS",
    "read_arpa",
    "read_binary",
    "read_model",
    "write_arpa",
    "write_binary",
]
