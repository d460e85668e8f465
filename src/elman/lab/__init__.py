"""elman.lab: vanishing and exploding gradients, shown and cured.

- :mod:`elman.lab.cells`: the named cells of the experiments (``rnn-tanh``, ``irnn``, ``lstm``...).
- :mod:`elman.lab.gradients`: ‖∂J_T/∂h_t‖ and ‖∂h_T/∂h_t‖ against the distance T − t.
- :mod:`elman.lab.depth`: ‖∂J/∂θ_l‖ per layer of a deep (bidirectional) stack.
- :mod:`elman.lab.exploding`: an Elman LM with W_hh scaled up, trained with and without clipping.
- :mod:`elman.lab.tasks`: the adding problem and the copy-memory task, and their models.
- :mod:`elman.lab.longrange`: training on those tasks with the one trainer; steps to solve.
- :mod:`elman.lab.plots`: matplotlib, imported lazily.
"""
