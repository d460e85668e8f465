"""Exporting trained models for use without elman: ONNX graphs and their vocabularies.

``export_onnx(checkpoint, out)`` (:mod:`elman.export.onnx`) writes the graphs of
:mod:`elman.export.graphs` and the JSON of :mod:`elman.export.vocab`; ``elman export`` is its
command, docs/export.md the format. Needs ``pip install 'elman[export]'`` (onnx, onnxruntime).
"""

from __future__ import annotations

from elman.export.onnx import Exported, export_onnx

__all__ = ["Exported", "export_onnx"]
