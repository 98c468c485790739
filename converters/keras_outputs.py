"""A Keras model's outputs on parity samples, computed as the converted model computes.

The converted model runs one sample at a time (batch 1); some larq quantizers take
statistics over the batch (``magnitude_aware_sign`` as an input quantizer), so Keras
runs one sample per call as well, through one traced graph (``tf.function``): a deep
model called eagerly sample by sample spends most of a parity check in Python.
"""

import functools

import numpy as np
import tensorflow as tf

__all__ = ["keras_outputs", "traced"]


def traced(model):
    """``model`` in inference mode as one ``tf.function``, traced on its first call."""
    return tf.function(functools.partial(model, training=False), reduce_retracing=True)


def keras_outputs(model, inputs, batch_size=1, *, call=None):
    """``model``'s outputs (a list, one array per output, samples on axis 0) on ``inputs``
    (one array per model input), ``batch_size`` samples per call; ``call``:
    :func:`traced` of ``model``, to trace it once for several calls of this function."""
    outputs = []
    call = traced(model) if call is None else call
    for start in range(0, len(inputs[0]), batch_size):
        batch = [x[start : start + batch_size] for x in inputs]
        result = call(batch if len(batch) > 1 else batch[0])
        outputs.append([np.asarray(r) for r in tf.nest.flatten(result)])
    return [np.concatenate(parts) for parts in zip(*outputs)]
