"""The inputs (and labels) of a parity check: the user's data, or inputs that reach every class.

:func:`parity_data` accepts what a user has at hand: an input array, a list of arrays
(multi-input models), an ``(inputs, labels)`` tuple, a finite ``tf.data.Dataset`` of
``(inputs, labels)`` (or inputs-only) batches, a :class:`ParityData`, or a number of
synthetic samples.

Synthetic inputs (no data given): :data:`SYNTHETIC_SAMPLES` samples drawn uniformly from
[0, 1] — the range of images scaled as :func:`horq_keras.datasets.scale_images` does,
which every model builder of this package expects — then, for a classifier, each sample
is pushed towards its own target class (sample i towards class i mod C) by
:data:`ASCENT_STEPS` signed-gradient steps on that class's logit, staying in [0, 1]. So
the check sees every class win on some samples (up to the number of samples), with
logits of a realistic scale, instead of a few saturated N(0, 1) samples on which every
model looks alike.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from horq_keras.converters.logits import keras_logits

__all__ = ["ASCENT_STEPS", "SYNTHETIC_SAMPLES", "ParityData", "parity_data", "synthetic_data"]

#: Synthetic samples used when no data is given.
SYNTHETIC_SAMPLES = 64
#: Signed-gradient steps (of :data:`ASCENT_STEP` each) towards each sample's class.
ASCENT_STEPS = 8
ASCENT_STEP = 0.1


@dataclass
class ParityData:
    """Inputs of a parity check (one array per model input, samples on axis 0), the
    labels (class ids, or None) and where they come from (for the report)."""

    inputs: list
    labels: np.ndarray = None
    source: str = "given data"

    @property
    def count(self):
        return len(self.inputs[0])


def input_shapes(model, argument="verify_data"):
    """The per-sample input shapes of ``model``; all dimensions must be known."""
    shapes = [tuple(tensor.shape[1:]) for tensor in model.inputs]
    if any(dim is None for shape in shapes for dim in shape):
        raise ValueError(
            f"`{argument}`: the model's input shapes {shapes} are not fully defined; "
            f"build the model with a fixed input shape before converting it."
        )
    return shapes


def _class_count(model):
    shape = model.outputs[0].shape
    return int(shape[1]) if len(model.outputs) == 1 and shape.rank == 2 and shape[1] > 1 else 0


def synthetic_data(model, count=SYNTHETIC_SAMPLES, *, seed=0):
    """:class:`ParityData` of ``count`` synthetic samples (see the module docstring)."""
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(0.0, 1.0, (count, *shape)).astype(np.float32)
              for shape in input_shapes(model)]
    classes = _class_count(model)
    if len(inputs) != 1 or not classes:
        return ParityData(inputs, None, "synthetic: uniform [0, 1]")
    score = keras_logits(model) or model
    targets = tf.constant(np.arange(count) % classes)
    x = tf.Variable(inputs[0])
    for _ in range(ASCENT_STEPS):
        with tf.GradientTape() as tape:
            logits = score(x, training=False)
            objective = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
        gradient = tape.gradient(objective, x)
        if gradient is None:
            break
        x.assign(tf.clip_by_value(x + ASCENT_STEP * tf.sign(gradient), 0.0, 1.0))
    reached = len(np.unique(np.argmax(np.asarray(score(x, training=False)), 1)))
    return ParityData(
        [x.numpy()], None,
        f"synthetic: uniform [0, 1] pushed towards each class, {reached} of {classes} classes "
        f"predicted",
    )


def _as_arrays(inputs, shapes, argument):
    arrays = list(inputs) if isinstance(inputs, list) else [inputs]
    if len(arrays) != len(shapes):
        raise ValueError(f"`{argument}` must hold {len(shapes)} input array(s); got {len(arrays)}.")
    result = []
    for array, shape in zip(arrays, shapes):
        try:
            array = np.asarray(array, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ValueError(f"`{argument}`: the inputs are not numeric arrays ({error}).") from None
        if array.shape[1:] != shape or len(array) < 1:
            raise ValueError(
                f"`{argument}` must have shape (samples, {', '.join(map(str, shape))}); "
                f"got {array.shape}."
            )
        result.append(array)
    return result


def _as_labels(labels, count, argument):
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        labels = labels.argmax(1)
    labels = labels.reshape(len(labels), -1)[:, 0] if labels.ndim == 2 else labels
    if labels.ndim != 1 or len(labels) != count or not np.issubdtype(labels.dtype, np.number):
        raise ValueError(
            f"`{argument}`: the labels must be {count} class ids (or one-hot rows), one per "
            f"input sample; got shape {labels.shape} of {labels.dtype}."
        )
    return labels.astype(np.int64)


def _from_dataset(dataset, argument):
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(f"`{argument}`: the tf.data.Dataset is infinite; use .take(N) batches.")
    inputs, labels = [], []
    for element in dataset.as_numpy_iterator():
        if isinstance(element, tuple) and len(element) == 2:
            inputs.append(element[0])
            labels.append(element[1])
        else:
            inputs.append(element)
    if not inputs:
        raise ValueError(f"`{argument}`: the tf.data.Dataset is empty.")
    if isinstance(inputs[0], (list, tuple)):
        joined = [np.concatenate(parts) for parts in zip(*inputs)]
    else:
        joined = np.concatenate(inputs)
    return joined, (np.concatenate(labels) if labels else None)


def parity_data(model, data=None, *, seed=0, argument="verify_data"):
    """The :class:`ParityData` of ``data`` for ``model`` (see the module docstring).

    Raises ``ValueError`` (naming ``argument``) for arrays of the wrong shape, labels
    that do not match the inputs, and infinite or empty datasets.
    """
    shapes = input_shapes(model, argument)
    if isinstance(data, ParityData):
        return ParityData(_as_arrays(data.inputs, shapes, argument),
                          None if data.labels is None else
                          _as_labels(data.labels, data.count, argument), data.source)
    if data is None or (isinstance(data, (int, np.integer)) and not isinstance(data, bool)):
        count = SYNTHETIC_SAMPLES if data is None else int(data)
        if count < 1:
            raise ValueError(f"`{argument}` must be >= 1 samples; got {count}.")
        return synthetic_data(model, count, seed=seed)
    if isinstance(data, tf.data.Dataset):
        inputs, labels = _from_dataset(data, argument)
        source = "given tf.data.Dataset"
    elif isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(f"`{argument}`: a tuple must be (inputs, labels); got {len(data)} "
                             f"items (pass several model inputs as a list).")
        inputs, labels = data
        source = "given (inputs, labels)"
    else:
        inputs, labels, source = data, None, "given inputs"
    inputs = _as_arrays(inputs, shapes, argument)
    if labels is not None:
        labels = _as_labels(labels, len(inputs[0]), argument)
    return ParityData(inputs, labels, source)
