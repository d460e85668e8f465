"""The largest decoding settings elman accepts, and why (torch-free: the command line reads them).

A setting past these is refused in one line with the limit, by :class:`DecodeConfig` (recipes,
checkpoints, the Python API) and by ``elman translate`` while it reads its options.
"""

# Beam search keeps K prefixes per sentence and ranks K x vocabulary extensions a step: the time
# grows with K, the BLEU gain stops after a few dozen (Koehn & Knowles 2017: it falls beyond
# ~30). A beam of 100,000 decoded 20 lines in 358 s (issue #16); 100 is a wide research setting.
MAX_BEAM = 100

# lp(Y) = ((5 + |Y|) / 6)^α: GNMT tunes α in [0.6, 1]; past 10 the ranking is by length alone.
MAX_LENGTH_PENALTY = 10.0

# An output of ratio x source pieces + extra: 1.5 x + 10 by default; a model that never writes
# </s> runs to this length, so it must stay a length a sentence can have.
MAX_LEN_RATIO = 10.0
MAX_LEN_EXTRA = 1000
MAX_SOURCE_LEN = 100_000

# Blocking repeated n-grams (fairseq uses 2-4): an n longer than any output blocks nothing, and
# each step compares every earlier n-gram of a prefix, so a bound keeps a typo cheap.
MAX_NO_REPEAT_NGRAM = 100

# Sentences (or BPTT columns) decoded or scored at once by eval, tag and translate. A batch
# holds a state per row: --batch-size 10**9 asked for gigabytes and was killed for memory.
MAX_BATCH = 100_000
