"""Parity of a converted model with its Keras model on the same inputs.

The outputs compared are the pre-softmax logits when the model ends in a softmax
(:mod:`.logits`; probabilities saturate and hide real differences), the outputs
otherwise. The tolerance is relative to the scale of what is compared
(``atol + rtol * max|Keras logit|``); at least :data:`MIN_WITHIN` of the samples (and
never fewer than all but one: :func:`~horq_keras.converters.report.misses_allowed`) must
be within it and (float models) :data:`MIN_TOP1` must have the same top-1 class. When
too few are, the tolerance grows by the converted model's own rounding floor (see
:class:`~horq_keras.converters.report.Parity`) and a sample whose k-bit activation sits on
a rounding threshold is held to what crossing it does (:mod:`.ties`), unless
``rounding_floor=False``. With labels the report also gives both models' accuracy. The
inputs come from :mod:`.parity_data`: the user's data, or synthetic inputs that reach
every class.

The Keras model runs in this process; the flatbuffer runs in a child process with
LCE's interpreter (:mod:`horq_keras.tflite.runner`), so a damaged file cannot crash the caller.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from horq_keras.converters.loading import load_model
from horq_keras.converters.logits import flatbuffer_logits, keras_logits
from horq_keras.converters.parity_data import input_shapes, parity_data
from horq_keras.converters.report import FLOOR_FACTOR, TOLERANCES, Parity
from horq_keras.converters.ties import near_ties, nudged, tie_probe
from horq_keras.tflite.check import read_tflite
from horq_keras.tflite.interpreter import InterpreterOptions
from horq_keras.tflite.runner import run_tflite

__all__ = ["MIN_TOP1", "MIN_WITHIN", "TOLERANCES", "parity", "verify"]

#: Default least share of samples within the tolerance: float models, int8 models.
MIN_WITHIN = {False: 0.99, True: 0.9}
#: Default least top-1 agreement: float models, int8 models (tolerance only).
MIN_TOP1 = {False: 0.99, True: None}


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


def _compared(model, flatbuffer):
    """(Keras model, flatbuffer, what) to compare: logits when both end in a softmax."""
    logits_model = keras_logits(model)
    logits_flatbuffer = flatbuffer_logits(flatbuffer) if logits_model is not None else None
    if logits_flatbuffer is None:
        return model, flatbuffer, "outputs"
    return logits_model, logits_flatbuffer, "pre-softmax logits"


def _differences(actual, expected):
    """``|actual - expected|`` of every output, one row per sample."""
    return np.concatenate([np.abs(a.astype(np.float64) - e).reshape(len(e), -1)
                           for a, e in zip(actual, expected)], axis=1)


def _accuracy(outputs, labels):
    if labels is None or outputs.ndim != 2 or outputs.shape[1] < 2:
        return None
    return float(np.mean(np.argmax(outputs, 1) == labels))


def _rounding_floor(flatbuffer, inputs, actual, progress, source):
    """The largest difference float rounding alone makes in ``flatbuffer``'s outputs
    ``actual``: the same inputs through TFLite's built-in float kernels instead of
    XNNPACK's (same graph and weights, other summation orders)."""
    other = run_tflite(flatbuffer, inputs, options=InterpreterOptions(use_xnnpack=False),
                       progress=progress, source=source)
    return max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(actual, other))


def parity(model, flatbuffer, data=None, *, int8=False, atol=None, rtol=None, min_within=None,
           min_top1=None, rounding_floor=True, progress=False, source="the converted model",
           argument="verify_data"):
    """:class:`~horq_keras.converters.report.Parity` of ``flatbuffer`` vs ``model``.

    ``data``: see :func:`~horq_keras.converters.parity_data.parity_data`.
    ``atol``/``rtol``, ``min_within`` and ``min_top1`` default to :data:`TOLERANCES`,
    :data:`MIN_WITHIN` and :data:`MIN_TOP1` (looser for int8 models). Raises
    ``ValueError`` when the flatbuffer's inputs or outputs do not match the model's, or
    when LCE's interpreter cannot run it.
    """
    checked = parity_data(model, data, argument=argument)
    keras_model, tflite_model, what = _compared(model, flatbuffer)
    expected = _keras_outputs(keras_model, checked.inputs)
    actual = run_tflite(tflite_model, checked.inputs, progress=progress, source=source)
    if len(actual) != len(expected) or any(
        a.shape != e.shape for a, e in zip(actual, expected)
    ):
        raise ValueError(
            f"{source} does not match the Keras model: its outputs have shapes "
            f"{[a.shape for a in actual]}, the model's {[e.shape for e in expected]}."
        )
    diff = _differences(actual, expected)
    reference = max(float(np.max(np.abs(e))) for e in expected)
    atol = TOLERANCES[bool(int8)][0] if atol is None else atol
    rtol = TOLERANCES[bool(int8)][1] if rtol is None else rtol
    top1 = None
    if expected[0].ndim == 2 and expected[0].shape[1] > 1:
        top1 = float(np.mean(np.argmax(actual[0], 1) == np.argmax(expected[0], 1)))
    result = Parity(
        samples=checked.count, max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
        reference_max_abs=reference, top1_agreement=top1, atol=atol, rtol=rtol,
        samples_within=float(np.mean(diff.max(1) <= atol + rtol * reference)),
        min_within=MIN_WITHIN[bool(int8)] if min_within is None else min_within,
        min_top1=MIN_TOP1[bool(int8)] if min_top1 is None else min_top1,
        inputs=checked.source, compared=what,
        keras_accuracy=_accuracy(expected[0], checked.labels),
        tflite_accuracy=_accuracy(actual[0], checked.labels),
    )
    if result.ok or not rounding_floor:
        return result
    floor = _rounding_floor(tflite_model, checked.inputs, actual, progress, source)
    widened = dataclasses.replace(result, rounding_floor=floor,
                                  strict_within=result.samples_within)
    largest = diff.max(1)
    over = largest > widened.tolerance
    ties = _tie_reach(model, checked.inputs, expected, what)
    if ties is not None:
        tied, reach = ties
        excused = over & tied & (largest <= widened.tolerance + FLOOR_FACTOR * reach)
        widened = dataclasses.replace(widened, tie_samples=int(tied.sum()),
                                      tie_excused=int(excused.sum()))
        over &= ~excused
    return dataclasses.replace(widened, samples_within=float(1.0 - np.mean(over)))


def _tie_reach(model, inputs, expected, what):
    """``(tied, reach)`` per sample: whether a k-bit activation input of ``model`` sits on
    a rounding threshold (:mod:`.ties`), and how far crossing those thresholds (all up, or
    all down) moves the compared outputs; None when the model has no k-bit activations."""
    probe = tie_probe(model)
    if probe is None:
        return None
    probe_model, specs = probe
    tied = near_ties(_keras_outputs(probe_model, inputs), specs)
    reach = np.zeros(len(tied))
    if tied.any():
        subset = [x[tied] for x in inputs]
        for direction in (1, -1):
            moved = nudged(model, direction)
            moved = keras_logits(moved) if what == "pre-softmax logits" else moved
            shifted = _differences(_keras_outputs(moved, subset), [e[tied] for e in expected])
            reach[tied] = np.maximum(reach[tied], shifted.max(1))
    return tied, reach


def _is_int8(graph):
    return any(t.dtype == "int8" for t in graph.tensors)


def verify(model_or_path, tflite_path, *, data=None, atol=None, rtol=None, min_within=None,
           min_top1=None, rounding_floor=True, custom_objects=None, progress=False):
    """Parity of an existing (Keras model, .tflite) pair; see :func:`parity`.

    ``data``: an input array, an ``(inputs, labels)`` tuple, a finite ``tf.data.Dataset``
    of ``(inputs, labels)`` batches, a :class:`~.parity_data.ParityData`, or a number of
    synthetic samples (None: :data:`~.parity_data.SYNTHETIC_SAMPLES`).

    The .tflite is checked before it is run: a missing, truncated or corrupt file,
    or one that does not belong to the model, raises ``ValueError`` (or
    ``FileNotFoundError``) with a message naming it.
    """
    flatbuffer, graph = read_tflite(tflite_path, argument="tflite")
    model = load_model(model_or_path, custom_objects=custom_objects)
    model_shapes = input_shapes(model, "data")
    file_shapes = [tuple(t.shape[1:]) for t in graph.inputs]
    if file_shapes != model_shapes:
        raise ValueError(
            f"`tflite` ({str(tflite_path)!r}) does not belong to the model: its inputs have "
            f"shapes {file_shapes}, the model's {model_shapes}."
        )
    return parity(model, flatbuffer, data, int8=_is_int8(graph), atol=atol, rtol=rtol,
                  min_within=min_within, min_top1=min_top1, rounding_floor=rounding_floor,
                  progress=progress, source=f"`tflite` ({str(tflite_path)!r})", argument="data")
