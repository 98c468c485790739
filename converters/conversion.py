"""``convert``: a trained horq_keras / larq model to the fastest correct LCE model.

Steps: check the arguments and the output path (before any work), load the model,
refuse what LCE cannot run (HORQ's exact per-column beta form; int8 without QAT),
rewrite k-bit activations into binary bit planes (:mod:`.kbit`), fold the batch norm
after each HORQ convolution into it (:mod:`.batchnorm_fold`), convert with LCE,
attribute every ``LceBconv2d`` to its layer (:mod:`.lowering`), check parity with
Keras layer by layer (:mod:`.verification`), write the .tflite atomically, and return the report
(:mod:`.report`). An error at any step leaves no file behind.
"""

import os
import warnings

import larq_compute_engine as lce
from tqdm.auto import tqdm

from horq_keras.converters import TARGETS
from horq_keras.converters.batchnorm_fold import fold_horq_batch_norms
from horq_keras.converters.int8 import is_int8_prepared, require_int8_prepared
from horq_keras.converters.kbit import rewrite_bit_planes
from horq_keras.converters.loading import load_model
from horq_keras.converters.lowering import iter_layers, layer_lowering
from horq_keras.converters.parity_data import parity_data
from horq_keras.converters.report import build_report
from horq_keras.converters.verification import parity
from horq_keras.layers import HORQConv2D
from horq_keras.files import atomic_write_bytes
from horq_keras.tflite.graph import read_graph
from horq_keras.files import check_outputs

__all__ = ["TARGETS", "ConversionError", "convert", "convert_to_flatbuffer", "deployable"]


class ConversionError(RuntimeError):
    """LCE could not convert the model (its message says why)."""




def _check_convertible(model):
    column = [layer.name for layer in iter_layers(model)
              if isinstance(layer, HORQConv2D) and layer.beta_form == "column"]
    if column:
        raise ValueError(
            f"`model` {model.name!r} has HORQConv2D layers with beta_form='column' "
            f"({', '.join(column)}): the paper's exact per-im2col-column beta gives every "
            f"receptive field its own residual signs, which is no binary image LCE can "
            f"convolve (it would need ExtractImagePatches, which LCE's runtime cannot run). "
            f"Rebuild the model with beta_form='pixel' (or 'sample'), load these weights "
            f"(the shapes are the same) and fine-tune it before converting."
        )


def _zero_padding_notes(model, target):
    if target != "arm":
        return []
    return [
        f"{layer.name}: zero padding converts, but pad_values=1.0 is faster (LCE's "
        f"'same-one' padding keeps fusions and bitpacked outputs)"
        for layer in iter_layers(model)
        if getattr(layer, "padding", None) == "same"
        and getattr(layer, "pad_values", None) == 0.0
        and getattr(getattr(layer, "input_quantizer", None), "precision", None) == 1
    ]


def deployable(model, *, kbit=True):
    """The Keras model that LCE converts: binary-weight convs of k-bit activations as bit
    planes (:func:`rewrite_bit_planes`, ``kbit``), then the batch norm after each HORQ
    convolution folded into it (:func:`fold_horq_batch_norms`); computes what ``model`` does.

    Returns ``(deployed, bit_plane_layers, skipped, folded)``: the new model, the names of
    the rewritten layers, ``{layer name: why not rewritten}``, the folded pairs.
    """
    deployed, planes, skipped = rewrite_bit_planes(model) if kbit else (model, [], {})
    deployed, folded = fold_horq_batch_norms(deployed)
    return deployed, planes, skipped, folded


def convert_to_flatbuffer(model, *, target="arm"):
    """``lce.convert_keras_model`` with a clear error; returns the flatbuffer bytes.

    LCE's notice that it retries a failed SavedModel conversion from a GraphDef is
    silenced: the retry's result (or its error, below) is what counts.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Saved-model conversion failed", UserWarning)
            return lce.convert_keras_model(model, target=target)
    except Exception as error:
        raise ConversionError(f"LCE could not convert {model.name!r}: {error}") from error


def convert(model_or_path, output_path, *, target="arm", int8=False, verify_data=None,
            atol=None, rtol=None, kbit=True, custom_objects=None, progress=False):
    """Convert a Keras model with LCE, write ``output_path`` atomically, return a report.

    Args:
        model_or_path: a ``tf.keras.Model`` or the path of a saved one (.keras, .h5,
            SavedModel directory).
        output_path: the .tflite to write (replaced atomically; nothing is written on
            error).
        target: ``"arm"`` or ``"xcore"``.
        int8: the model was prepared with :func:`~horq_keras.converters.prepare_int8`
            and fine-tuned; its full-precision ends become int8.
        verify_data: parity inputs: an input array (a list of arrays for several
            inputs), an ``(inputs, labels)`` tuple, a finite ``tf.data.Dataset`` of
            ``(inputs, labels)`` batches, an int N (N synthetic samples that reach
            every class; None: 64, see :mod:`.parity_data`), or False (no check).
        atol, rtol: each layer's parity tolerance, ``atol + rtol * max|Keras output|``
            (default: ``verification.LAYER_TOLERANCES``; see ``verification.parity``).
        kbit: rewrite binary-weight convs that read k-bit activations into bit planes.
        custom_objects: extra ``{name: class}`` to load a saved model.
        progress: show the steps (and the parity samples) as progress bars.

    Returns:
        A :class:`~horq_keras.converters.report.ConversionReport`.

    Raises:
        TypeError: ``int8`` is not a bool.
        ValueError: bad arguments, a .tflite or unloadable model, HORQ column form,
            int8 without QAT, parity inputs of the wrong shape.
        FileNotFoundError, PermissionError: missing model, unwritable output directory.
        ConversionError: LCE failed to convert the model (a ``RuntimeError``).
    """
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {TARGETS}; got {target!r}.")
    if not isinstance(int8, bool):
        raise TypeError(f"`int8` must be True or False; got {int8!r}.")
    if not isinstance(output_path, (str, os.PathLike)):
        raise TypeError(f"`output_path` must be a file path; got {output_path!r}.")
    source = model_or_path if isinstance(model_or_path, (str, os.PathLike)) else None
    output_path = check_outputs({"output_path": output_path},
                                {"model_or_path": source})["output_path"]
    steps = tqdm(total=6 if verify_data is not False else 5, desc="convert", unit="step",
                 disable=not progress)
    with steps:
        steps.set_postfix_str("loading the model")
        model = load_model(model_or_path, custom_objects=custom_objects)
        _check_convertible(model)
        if int8:
            require_int8_prepared(model)
        if verify_data is not False:
            verify_data = parity_data(model, verify_data)  # bad inputs fail before converting
        steps.update()

        steps.set_postfix_str("bit planes, batch-norm folding")
        deployed, planes, skipped, folded = deployable(model, kbit=kbit)
        steps.update()

        steps.set_postfix_str("LCE conversion")
        flatbuffer = convert_to_flatbuffer(deployed, target=target)
        graph = read_graph(flatbuffer)
        steps.update()

        steps.set_postfix_str("attributing binary ops")
        lowerings, unattributed = layer_lowering(deployed, graph, target)
        for lowering in lowerings:
            if lowering.name in skipped and not lowering.lowered:
                lowering.reason = f"{lowering.reason} ({skipped[lowering.name]})"
        notes = _zero_padding_notes(deployed, target)
        if folded:
            notes.append(f"batch norms folded into the HORQ layers {', '.join(folded)} "
                         f"(their scale fused into LceBconv2d)")
        if not int8 and is_int8_prepared(model):
            notes.append("the model holds QAT fake-quantization: its quantized layers "
                         "converted to int8 although int8=False")
        steps.update()

        result = None
        if verify_data is not False:
            steps.set_postfix_str("parity with Keras")
            result = parity(model, flatbuffer, verify_data, int8=int8 or is_int8_prepared(model),
                            atol=atol, rtol=rtol, progress=progress)
            steps.update()

        steps.set_postfix_str("writing")
        atomic_write_bytes(output_path, flatbuffer)
        steps.update()
    return build_report(
        model=model, flatbuffer=flatbuffer, graph=graph, lowerings=lowerings,
        unattributed=unattributed, target=target, int8=int8, output_path=output_path,
        bit_plane_layers=planes, notes=notes, parity=result,
    )
