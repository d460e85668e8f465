"""elman.nn: recurrent cells in the lecture's equations and the layer that runs them.

``ElmanCell``, ``LSTMCell``, ``GRUCell`` compute one time step; ``Recurrent`` runs one
of them over time, stacked and optionally bidirectional, in torch's fused kernel where
one computes the same cell, or unrolled in Python otherwise.
"""

from elman.nn.cells import ElmanCell, GRUCell, LSTMCell
from elman.nn.recurrent import CELLS, Recurrent

__all__ = ["CELLS", "ElmanCell", "GRUCell", "LSTMCell", "Recurrent"]
