"""The pieces of ``horq-keras train``: model registry, data sources and recipes.

- :mod:`.registry` — model name -> builder, ``--model-arg key=value`` typed from the
  builder's keyword-only signature.
- :mod:`.data` — ``mnist | idx:DIR | folder:DIR | tfds:NAME`` as ``tf.data`` pipelines.
- :mod:`.recipes` — the papers' training recipes (optimizer, schedule, stages).
- :mod:`.runstate` — the output folder: staging, resume, atomic publication.
"""
