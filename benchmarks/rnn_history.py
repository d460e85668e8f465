"""An RNN uses more than an n-gram's window: perplexity as its history is cut (issue #19).

    python benchmarks/rnn_history.py --model runs/lecture-demo-lstm --k 1 2 5 10 20 50 \
        --out results/ptb-lstm-history.json

For each k the LM reads only the k tokens before each target, from a zero state
(``elman.inference.scoring.rnn_history_logprobs``), and the test perplexity is reported; "all"
is the same model reading the whole test stream in one column (every earlier token of the
split). Beside it, the n-gram orders' curve (benchmarks/ngram_orders.py) shows where a window
of k − 1 words stops paying for a count-based model.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="an RNN LM run folder or checkpoint")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 5, 10, 20, 50])
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True, help="the results file to write")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from elman.files import check_writable, write_json
    from elman.inference.scoring import rnn_history_logprobs
    from elman.provenance import command_line, provenance
    from elman.tasks.lm import encode_split
    from elman.tasks.loading import load

    check_writable(args.out, "results file")
    torch.set_num_threads(1)
    start = time.perf_counter()
    lm = load(args.model, "cpu", need="generate", command="rnn_history.py")
    eos = lm.vocab.eos_index
    ids = encode_split(lm.vocab, lm.dataset(), args.split).tolist()
    stream = [eos, *ids]  # as elman eval reads a split: after an <eos>
    history: dict[str, dict[str, float]] = {}
    for k in sorted(args.k):
        logp = rnn_history_logprobs(lm.model, stream, k, eos, lm.device)
        history[str(k)] = {"ppl": math.exp(-float(logp.mean())), "tokens": len(logp)}
        print(f"k = {k:3}: {args.split} perplexity {history[str(k)]['ppl']:.2f}", flush=True)
    whole = lm.evaluate(args.split, batch_size=1)  # one column: every earlier token
    history["all"] = {"ppl": whole["ppl"], "tokens": whole["tokens"]}
    print(f"k = all: {args.split} perplexity {whole['ppl']:.2f}")
    record = {
        "recipe": f"{lm.recipe.info.name}-history",
        "aim": "the RNN LM's perplexity as its history is cut to the last k tokens (issue #19)",
        "task": "lm-history",
        "dataset": lm.recipe.data.dataset,
        "model": args.model,
        "metrics": {args.split: {"ppl": whole["ppl"]}},
        "history": history,
        "wall_time_s": round(time.perf_counter() - start, 1),
        **provenance("cpu", command_line(prog="python benchmarks/rnn_history.py")),
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
