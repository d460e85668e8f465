"""The special tokens of elman's token convention: ``<unk>`` and ``<eos>``.

Kept apart from :mod:`elman.data.vocabulary` (which needs torch) so that the torch-free
paths, the dataset table and the n-gram models among them, can name them.
"""

UNK = "<unk>"  # a token outside the vocabulary
EOS = "<eos>"  # the end of a line (sentence)
