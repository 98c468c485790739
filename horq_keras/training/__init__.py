"""``horq-keras train``: the command and its pieces.

- :mod:`.cli` — the command's options (no TensorFlow: ``--help`` answers at once);
- :mod:`.train` — the run: data -> model -> recipe -> ``Model.fit`` -> LCE -> verified
  .tflite;
- :mod:`.callbacks` — per-epoch checkpoint, ``history.csv``, the end of a stage;
- :mod:`.registry` — model name -> builder, ``--model-arg key=value`` typed from the
  builder's keyword-only signature;
- :mod:`.recipes`, :mod:`.optimizers` — the papers' training recipes (optimizer,
  schedule, stages);
- :mod:`.distill` — knowledge distillation from a float teacher;
- :mod:`.mixed_precision` — ``mixed_float16`` and the float32 copy LCE converts;
- :mod:`.cluster`, :mod:`.distribute`, :mod:`.local_cluster` — ``tf.distribute``
  strategies and multi-worker clusters;
- :mod:`.rundir` — the output folder: staging, resume, atomic publication.

The data (``--data``) comes from :mod:`horq_keras.datasets`.
"""
