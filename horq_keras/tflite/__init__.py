"""Keras-free TFLite tools: read, check and run converted flatbuffers.

Nothing here imports TensorFlow, Keras or larq (a test checks it), so the CLI, the
benchmark harness and the converters read and run models without TensorFlow's start-up.

Import from the modules (the package itself imports none of them, so that importing one
does not load the others, NumPy or LCE):

- :mod:`.graph` — :func:`~.graph.read_graph` (operators, tensors, buffers),
  :func:`~.graph.op_counts`;
- :mod:`.check` — the ``TFL3`` identifier, :func:`~.check.check_flatbuffer`,
  :func:`~.check.read_tflite` (structural checks of untrusted files);
- :mod:`.ops` — operator names (:data:`~.ops.BINARY_CONV`, ...) and binary shares;
- :mod:`.macs` — multiply-accumulates by kind (binary, float, int8);
- :mod:`.interpreter`, :mod:`.runner` — the one driver of LCE's interpreter
  (batching, optional child process, LCE's x86 flags): :func:`~.runner.run_tflite`.
"""
