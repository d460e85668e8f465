"""elman.tasks: each kind of model's life cycle behind one protocol, and the public API.

- :mod:`elman.tasks.protocol`: the ``Task`` protocol, ``Prepared``, ``Loaded``, ``Capabilities``.
- :mod:`elman.tasks.lm`, :mod:`~elman.tasks.nplm`, :mod:`~elman.tasks.tagger`,
  :mod:`~elman.tasks.translation`: the four tasks.
- :mod:`elman.tasks.table`: the table of tasks and recipe parsing by task.
- :mod:`elman.tasks.loading`: ``elman.load``. :mod:`elman.tasks.evaluation`: ``elman.evaluate``
  and mixtures with n-gram models. :mod:`elman.tasks.training`: ``elman.train``.
- :mod:`elman.tasks.results`: results records. :mod:`elman.tasks.tagging_metrics`: accuracy,
  per-tag P/R/F1.
"""
