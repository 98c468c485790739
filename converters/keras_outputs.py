"""A Keras model's outputs on parity samples, computed as the converted model computes.

The converted model runs one sample at a time (batch 1); some larq quantizers take
statistics over the batch (``magnitude_aware_sign`` as an input quantizer), so Keras
runs one sample per call as well.
"""

import numpy as np
import tensorflow as tf

__all__ = ["keras_outputs"]


def keras_outputs(model, inputs, batch_size=1):
    """``model``'s outputs (a list, one array per output, samples on axis 0) on ``inputs``
    (one array per model input), ``batch_size`` samples per call."""
    outputs = []
    for start in range(0, len(inputs[0]), batch_size):
        batch = [x[start : start + batch_size] for x in inputs]
        result = model(batch if len(batch) > 1 else batch[0], training=False)
        outputs.append([np.asarray(r) for r in tf.nest.flatten(result)])
    return [np.concatenate(parts) for parts in zip(*outputs)]
