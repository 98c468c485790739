"""Parity of a converted model with its Keras model on the same sample inputs.

The Keras model runs in this process; the flatbuffer runs in a child process with
LCE's interpreter (:mod:`.runner`), so a damaged file cannot crash the caller.
"""

import numpy as np
import tensorflow as tf

from horq_keras.converters.loading import load_model
from horq_keras.converters.report import Parity
from horq_keras.tflite.check import read_tflite
from horq_keras.tflite.runner import run_tflite

__all__ = ["DEFAULT_SAMPLES", "TOLERANCES", "parity", "sample_inputs", "verify"]

#: Random samples used when no data is given.
DEFAULT_SAMPLES = 8
#: Default ``(atol, rtol)`` of the parity check: float models, int8 models.
TOLERANCES = {False: (1e-4, 1e-3), True: (1e-2, 0.1)}


def _input_shapes(model):
    return [tuple(tensor.shape[1:]) for tensor in model.inputs]


def sample_inputs(model, data=None, *, seed=0, argument="verify_data"):
    """The inputs of a parity check, one array per model input, samples on axis 0.

    ``data`` is None (:data:`DEFAULT_SAMPLES` random samples), an int N (N random
    samples drawn from N(0, 1) with ``seed``), an array (one-input models) or a list
    of arrays. Returns ``(inputs, description)``.
    """
    shapes = _input_shapes(model)
    if any(dim is None for shape in shapes for dim in shape):
        raise ValueError(
            f"`{argument}`: the model's input shapes {shapes} are not fully defined; "
            f"build the model with a fixed input shape before converting it."
        )
    if data is None or (isinstance(data, int) and not isinstance(data, bool)):
        count = DEFAULT_SAMPLES if data is None else data
        if count < 1:
            raise ValueError(f"`{argument}` must be >= 1 samples; got {count}.")
        rng = np.random.default_rng(seed)
        inputs = [rng.standard_normal((count, *shape)).astype(np.float32) for shape in shapes]
        return inputs, "random N(0, 1)"
    arrays = list(data) if isinstance(data, (list, tuple)) else [data]
    if len(arrays) != len(shapes):
        raise ValueError(f"`{argument}` must hold {len(shapes)} input array(s); got {len(arrays)}.")
    inputs = []
    for array, shape in zip(arrays, shapes):
        array = np.asarray(array, dtype=np.float32)
        if array.shape[1:] != shape or len(array) < 1:
            raise ValueError(
                f"`{argument}` must have shape (samples, {', '.join(map(str, shape))}); "
                f"got {array.shape}."
            )
        inputs.append(array)
    return inputs, "given data"


def _keras_outputs(model, inputs, batch_size=1):
    """Keras outputs, one sample per call like the converted model (batch 1): some larq
    quantizers take statistics over the batch (``magnitude_aware_sign`` as an input
    quantizer), so larger Keras batches would compute something else."""
    outputs = []
    for start in range(0, len(inputs[0]), batch_size):
        batch = [x[start : start + batch_size] for x in inputs]
        result = model(batch if len(batch) > 1 else batch[0], training=False)
        outputs.append([np.asarray(r) for r in tf.nest.flatten(result)])
    return [np.concatenate(parts) for parts in zip(*outputs)]


def parity(model, flatbuffer, data=None, *, int8=False, atol=None, rtol=None, progress=False,
           source="the converted model", argument="verify_data"):
    """:class:`~horq_keras.converters.report.Parity` of ``flatbuffer`` vs ``model``.

    ``atol``/``rtol`` default to :data:`TOLERANCES` (looser for int8 models).
    Raises ``ValueError`` when the flatbuffer's inputs or outputs do not match the
    model's, or when LCE's interpreter cannot run it.
    """
    default_atol, default_rtol = TOLERANCES[bool(int8)]
    inputs, description = sample_inputs(model, data, argument=argument)
    expected = _keras_outputs(model, inputs)
    actual = run_tflite(flatbuffer, inputs, progress=progress, source=source)
    if len(actual) != len(expected) or any(
        a.shape != e.shape for a, e in zip(actual, expected)
    ):
        raise ValueError(
            f"{source} does not match the Keras model: its outputs have shapes "
            f"{[a.shape for a in actual]}, the model's {[e.shape for e in expected]}."
        )
    diff = np.concatenate([np.abs(a.astype(np.float64) - e).ravel()
                           for a, e in zip(actual, expected)])
    reference = max(float(np.max(np.abs(e))) for e in expected)
    top1 = None
    if expected[0].ndim == 2 and expected[0].shape[1] > 1:
        top1 = float(np.mean(np.argmax(actual[0], 1) == np.argmax(expected[0], 1)))
    return Parity(
        samples=len(inputs[0]), max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
        reference_max_abs=reference, top1_agreement=top1,
        atol=default_atol if atol is None else atol, rtol=default_rtol if rtol is None else rtol,
        inputs=description,
    )


def _is_int8(graph):
    return any(t.dtype == "int8" for t in graph.tensors)


def verify(model_or_path, tflite_path, *, data=None, atol=None, rtol=None, custom_objects=None,
           progress=False):
    """Parity of an existing (Keras model, .tflite) pair; see :func:`parity`.

    The .tflite is checked before it is run: a missing, truncated or corrupt file,
    or one that does not belong to the model, raises ``ValueError`` (or
    ``FileNotFoundError``) with a message naming it.
    """
    flatbuffer, graph = read_tflite(tflite_path, argument="tflite")
    model = load_model(model_or_path, custom_objects=custom_objects)
    model_shapes = _input_shapes(model)
    file_shapes = [tuple(t.shape[1:]) for t in graph.inputs]
    if file_shapes != model_shapes:
        raise ValueError(
            f"`tflite` ({str(tflite_path)!r}) does not belong to the model: its inputs have "
            f"shapes {file_shapes}, the model's {model_shapes}."
        )
    return parity(model, flatbuffer, data, int8=_is_int8(graph), atol=atol, rtol=rtol,
                  progress=progress, source=f"`tflite` ({str(tflite_path)!r})", argument="data")
