"""``elman export CKPT --format onnx [--out FILE]``: a trained model for use without elman.

Writes the model as ONNX graph(s) with its vocabulary beside them, so that onnxruntime and
NumPy alone can run it (docs/export.md)::

    elman export runs/ptb-small-lstm --out ptb.onnx      # ptb.onnx, ptb.vocab.json
    elman export runs/ud-en-upos --out upos.onnx         # upos.onnx, upos.vocab.json
    elman export runs/multi30k-attention --out mt.onnx   # mt.encoder.onnx, mt.decoder.onnx,
                                                         # mt.vocab.json, mt.spm.model

An RNN LM is one step (a token and the state in; log-probabilities and the new state out), a
tagger the whole padded batch, a translation model an encoder and a decoder step. --out
defaults to CKPT with the suffix .onnx (a run folder: its model.onnx); every file is written
whole or not at all. Needs the onnx package: pip install 'elman[export]'.
"""

from __future__ import annotations

import argparse

from elman.cli.options import check_output

FORMATS = ("onnx",)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a trained model to ONNX, with its vocabulary", description=__doc__
    )
    p.add_argument("checkpoint", help="an lm, tagger or translation checkpoint (.pt) or run folder")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="the file format")
    p.add_argument("--out", help="the graph file to write (default: CKPT with suffix .onnx)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from elman.export.onnx import check_onnx, default_out, export_onnx

    check_onnx()  # before anything is read
    out = check_output(args.out or default_out(args.checkpoint), "--out")
    done = export_onnx(args.checkpoint, out)
    for path in done.files:
        print(f"wrote {path}")
    return 0
