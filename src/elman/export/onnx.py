"""``export_onnx``: a checkpoint as ONNX graph file(s) and the vocabulary beside them.

    from elman.export import export_onnx
    export_onnx("runs/ptb-small-lstm", "ptb.onnx")   # ptb.onnx, ptb.vocab.json

One graph per task, or two for translation (the graphs in :mod:`elman.export.graphs`):

    lm           NAME.onnx           one step: w_t, h_{t−1} [c_{t−1}] -> log ŷ_t, h_t [c_t]
    tagger       NAME.onnx           padded sentences -> log ŷ (batch, time, K)
    translation  NAME.encoder.onnx   source pieces -> s_0 and the memory
                 NAME.decoder.onnx   one step: y_{t−1}, s_{t−1}, h̃_{t−1}, memory -> log P, s_t …

and ``NAME.vocab.json`` (:mod:`elman.export.vocab`). Graphs are traced by torch's TorchScript
exporter (``dynamo=False``: it handles the recurrent kernels and needs no onnxscript) at opset
:data:`OPSET`, with the batch and length axes left free; each is checked with
``onnx.checker`` and written atomically.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from elman.errors import ElmanError
from elman.export import vocab as vocab_files
from elman.export.graphs import DecoderStep, EncoderGraph, Graph, LMStep, TaggerGraph
from elman.files import write_bytes, write_json
from elman.tasks.loading import load

OPSET = 17
EXPORTABLE = ("lm", "tagger", "translation")
NEEDS = "elman export needs the onnx package: pip install 'elman[export]'"


@dataclass
class Exported:
    """What ``export_onnx`` wrote: the graph file(s) by role, and the vocabulary file."""

    task: str
    graphs: dict[str, Path] = field(default_factory=dict)
    vocab: Path | None = None
    extra: list[Path] = field(default_factory=list)  # sentencepiece models (translation)

    @property
    def files(self) -> list[Path]:
        return [*self.graphs.values(), *([self.vocab] if self.vocab else []), *self.extra]


def check_onnx() -> Any:
    """The ``onnx`` module, or one line saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ElmanError(NEEDS) from None
    return onnx


def default_out(checkpoint: str | Path) -> Path:
    """``runs/x/best.pt`` -> ``runs/x/best.onnx``; a run folder ``runs/x`` ->
    ``runs/x/model.onnx``."""
    path = Path(checkpoint)
    return path / "model.onnx" if path.is_dir() else path.with_suffix(".onnx")


def export_onnx(checkpoint: str | Path, out: str | Path | None = None) -> Exported:
    """Export the model in ``checkpoint`` (a ``.pt`` or a run folder) beside ``out``."""
    check_onnx()
    out = Path(out) if out is not None else default_out(checkpoint)
    loaded = load(checkpoint, device="cpu", command="elman export")
    if loaded.task.name not in EXPORTABLE:
        raise ElmanError(
            f"{loaded.path} is a {loaded.task.name!r} model; elman export writes "
            f"{', '.join(EXPORTABLE)} models to ONNX"
        )
    model = loaded.model.float().eval()
    done = Exported(loaded.task.name)
    if loaded.task.name == "translation":
        record = export_translation(model, out, done)
        task_record = vocab_files.translation_record(loaded, out)
        done.extra = [out.parent / task_record["src_model"], out.parent / task_record["tgt_model"]]
        done.extra = list(dict.fromkeys(done.extra))
    elif loaded.task.name == "tagger":
        tagger = TaggerGraph(model)
        record = {"tagger": write_graph(tagger, tagger.example(5, 6), out, done, "tagger")}
        task_record = vocab_files.tagger_record(loaded)
    else:
        lm = LMStep(model)
        record = {"step": write_graph(lm, lm.example(3), out, done, "step")}
        task_record = vocab_files.lm_record(loaded)
    done.vocab = vocab_files.sibling(out, ".vocab.json")
    files = {role: path.name for role, path in done.graphs.items()}
    head = {"format": vocab_files.FORMAT, "task": loaded.task.name, "files": files}
    write_json(done.vocab, {**head, "graphs": record, **task_record})
    return done


def export_translation(model: Any, out: Path, done: Exported) -> dict[str, Any]:
    """The encoder and the decoder step, each traced at one example and written."""
    encoder = EncoderGraph(model)
    example = encoder.example(3, 5)
    with torch.no_grad():
        encoded = encoder(*example)
    step = DecoderStep(model)
    step_example = step.example(encoded, example[1])
    return {
        "encoder": write_graph(encoder, example, sibling_graph(out, "encoder"), done, "encoder"),
        "decoder": write_graph(step, step_example, sibling_graph(out, "decoder"), done, "decoder"),
    }


def sibling_graph(out: Path, role: str) -> Path:
    return vocab_files.sibling(out, f".{role}.onnx")


def write_graph(
    graph: Graph, example: tuple[torch.Tensor, ...], path: Path, done: Exported, role: str
) -> dict[str, list[str]]:
    """Trace ``graph`` at ``example`` into ``path``; its input and output names."""
    data = trace(graph, example)
    write_bytes(path, data)
    done.graphs[role] = path
    return io_names(data)


def io_names(data: bytes) -> dict[str, list[str]]:
    """The input and output names of the graph as exported: an input it never reads (the
    ``plain`` decoder's ``prev``) is not one."""
    model = check_onnx().load_from_string(data)
    return {
        "inputs": [i.name for i in model.graph.input],
        "outputs": [o.name for o in model.graph.output],
    }


def trace(graph: Graph, example: tuple[torch.Tensor, ...]) -> bytes:
    """The ONNX bytes of ``graph`` traced at ``example``, checked by ``onnx.checker``."""
    onnx = check_onnx()
    names = [*graph.inputs, *graph.outputs]
    axes = {name: dict(a) for name, a in graph.dynamic.items() if name in names}
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "graph.onnx"
        with torch.no_grad(), warnings.catch_warnings(), quiet_stderr():
            # the tracer's warnings (a Python int from a tensor in a shape check) are about
            # checks that only read the example, not about the graph; the exporter's C++ log
            # lines ("shape inference of prim::PackPadded is missing") about nodes it then
            # folds into the RNN operators' sequence_lens
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, example, file, input_names=list(graph.inputs),
                output_names=list(graph.outputs), dynamic_axes=axes, opset_version=OPSET,
                dynamo=False,
            )  # fmt: skip
        data = file.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null meanwhile: C++ log lines bypass ``sys.stderr``."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 to silence
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
