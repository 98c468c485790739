"""Parity of a converted model with its Keras model on the same inputs.

The verdict comes from the layers (:mod:`.layerwise`): every Keras layer output that
the converted graph holds is computed by the converted operators from exactly the
Keras input of that layer and held to float rounding of its own scale
(``atol + rtol * max|Keras output|``); the first layer over it fails the check and is
named. The end-to-end outputs are compared as well, for the report: the pre-softmax
logits when the model ends in a softmax (:mod:`.logits`), the outputs otherwise, with
both models' accuracy when there are labels. Only top-1 agreement is gated there
(:data:`MIN_TOP1`, coarse): a sign within rounding of 0 may flip end to end and move
a deep binary network's logits while every layer is right. A NaN or infinite value on
either side fails the check. The inputs come from :mod:`.parity_data`: the user's
data, or synthetic inputs that reach every class.

The Keras model runs in this process; the flatbuffer runs in child processes with
LCE's interpreter (:mod:`horq_keras.tflite.runner`), so a damaged file cannot crash the
caller.
"""

import numpy as np

from horq_keras.converters.layerwise import LAYER_TOLERANCES, layer_parity
from horq_keras.converters.loading import load_model
from horq_keras.converters.logits import flatbuffer_logits, keras_logits
from horq_keras.converters.parity_data import input_shapes, parity_data
from horq_keras.converters.report import Parity
from horq_keras.tflite.check import read_tflite
from horq_keras.tflite.runner import run_tflite

__all__ = ["LAYER_TOLERANCES", "MIN_TOP1", "parity", "verify"]

#: Default least end-to-end top-1 agreement: float models, int8 models (not gated).
MIN_TOP1 = {False: 0.9, True: None}


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


def _nonfinite(outputs):
    return sum(int(np.sum(~np.isfinite(o))) for o in outputs)


def parity(model, flatbuffer, data=None, *, int8=False, atol=None, rtol=None, min_top1=None,
           progress=False, source="the converted model", argument="verify_data"):
    """:class:`~horq_keras.converters.report.Parity` of ``flatbuffer`` vs ``model``.

    ``data``: see :func:`~horq_keras.converters.parity_data.parity_data`.
    ``atol``/``rtol`` (each layer's tolerance) and ``min_top1`` default to
    :data:`LAYER_TOLERANCES` and :data:`MIN_TOP1` (looser for int8 models). Raises
    ``ValueError`` when the flatbuffer's inputs or outputs do not match the model's, or
    when LCE's interpreter cannot run it.
    """
    checked = parity_data(model, data, argument=argument)
    keras_model, tflite_model, what = _compared(model, flatbuffer)
    atol = LAYER_TOLERANCES[bool(int8)][0] if atol is None else atol
    rtol = LAYER_TOLERANCES[bool(int8)][1] if rtol is None else rtol
    actual = run_tflite(tflite_model, checked.inputs, progress=progress, source=source)
    if len(actual) != len(keras_model.outputs) or any(
        a.shape[1:] != tuple(e.shape[1:]) for a, e in zip(actual, keras_model.outputs)
    ):
        raise ValueError(
            f"{source} does not match the Keras model: its outputs have shapes "
            f"{[a.shape[1:] for a in actual]}, the model's "
            f"{[tuple(e.shape[1:]) for e in keras_model.outputs]}."
        )
    layers, expected = layer_parity(model, flatbuffer, checked.inputs, atol=atol, rtol=rtol,
                                    outputs=keras_model.outputs, source=source,
                                    progress=progress)
    diff = _differences(actual, expected)
    finite = diff[np.isfinite(diff)]
    top1 = None
    if expected[0].ndim == 2 and expected[0].shape[1] > 1:
        top1 = float(np.mean(np.argmax(actual[0], 1) == np.argmax(expected[0], 1)))
    return Parity(
        samples=checked.count, layers=layers,
        max_abs_diff=float(finite.max()) if finite.size else float("nan"),
        mean_abs_diff=float(finite.mean()) if finite.size else float("nan"),
        reference_max_abs=float(max(np.max(np.abs(e)) for e in expected)),
        top1_agreement=top1, atol=atol, rtol=rtol,
        min_top1=MIN_TOP1[bool(int8)] if min_top1 is None else min_top1,
        inputs=checked.source, compared=what,
        keras_nonfinite=_nonfinite(expected), tflite_nonfinite=_nonfinite(actual),
        keras_accuracy=_accuracy(expected[0], checked.labels),
        tflite_accuracy=_accuracy(actual[0], checked.labels),
    )


def _is_int8(graph):
    return any(t.dtype == "int8" for t in graph.tensors)


def verify(model_or_path, tflite_path, *, data=None, atol=None, rtol=None, min_top1=None,
           custom_objects=None, progress=False):
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
                  min_top1=min_top1, progress=progress,
                  source=f"`tflite` ({str(tflite_path)!r})", argument="data")
