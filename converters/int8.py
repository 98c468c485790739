"""int8 first and last layers: quantization-aware training, then LCE's int8 + binary.

A binary network keeps its first and last layers in full precision. With
tensorflow-model-optimization's quantization-aware training (QAT) those layers learn
with fake-quantized int8 weights and activations; LCE then converts them to int8
``CONV_2D`` / ``FULLY_CONNECTED`` around the ``LceBconv2d`` ops. Workflow::

    qat_model = prepare_int8(model)          # annotate the float ends, apply QAT
    qat_model.compile(...); qat_model.fit(...)  # fine-tune (an epoch or so)
    convert(qat_model, "model.tflite", int8=True)

Save a QAT model as .h5 to convert it later (``horq-keras convert qat.h5 -o m.tflite
--int8``): tensorflow-model-optimization 0.8 cannot reload its quantize layers from the
.keras format.
"""

import sys

import larq as lq
import tensorflow as tf

from horq_keras.converters.lowering import iter_layers

__all__ = [
    "INT8_LAYER_TYPES",
    "full_precision_ends",
    "is_int8_prepared",
    "prepare_int8",
    "require_int8_prepared",
]

#: Full-precision layer types QAT quantizes (larq's quantized subclasses excluded).
INT8_LAYER_TYPES = (tf.keras.layers.Conv2D, tf.keras.layers.Dense,
                    tf.keras.layers.DepthwiseConv2D)

_HOW_TO_PREPARE = (
    "Prepare it with quantization-aware training: `qat_model = "
    "horq_keras.converters.prepare_int8(model)`, fine-tune `qat_model` (compile and fit, "
    "an epoch is usually enough), then convert `qat_model` with int8=True (CLI: save it "
    "and run `horq-keras convert QAT_MODEL -o OUT.tflite --int8`). Or convert without "
    "int8."
)


def _is_full_precision(layer):
    return isinstance(layer, INT8_LAYER_TYPES) and not isinstance(layer, lq.layers_base.BaseLayer)


def full_precision_ends(model):
    """Names of the first and last full-precision conv/dense layers (one if they coincide)."""
    names = [layer.name for layer in model.layers if _is_full_precision(layer)]
    if not names:
        return []
    return sorted({names[0], names[-1]}, key=names.index)


def is_int8_prepared(model):
    """True when ``model`` holds QAT fake-quantization (tfmot's ``QuantizeWrapper``)."""
    if "tensorflow_model_optimization" not in sys.modules:
        return False  # no tfmot layer can exist before tfmot is imported (saves seconds)
    import tensorflow_model_optimization as tfmot

    return any(isinstance(layer, tfmot.quantization.keras.QuantizeWrapper)
               for layer in iter_layers(model))


def require_int8_prepared(model):
    """Raise ``ValueError`` saying how to prepare ``model`` unless it is QAT-prepared."""
    if not is_int8_prepared(model):
        raise ValueError(
            f"`int8=True` needs a model prepared for int8, but {model.name!r} has no "
            f"quantization-aware-training layers. {_HOW_TO_PREPARE}"
        )


def _inbound_layers(layer):
    return [inbound for node in layer.inbound_nodes
            for inbound in tf.nest.flatten(node.inbound_layers)]


def _is_builtin(layer):
    """A plain Keras layer (not an input, a model, or a larq / horq_keras layer)."""
    return (type(layer).__module__.startswith("tf_keras.")
            and not isinstance(layer, (tf.keras.layers.InputLayer, tf.keras.Model)))


def prepare_int8(model, *, layers=None, prefix="int8_"):
    """Annotate full-precision layers for int8 QAT and apply tfmot's default 8-bit scheme.

    Args:
        model: a functional or Sequential ``tf.keras.Model`` (not modified).
        layers: names of the layers to quantize (default: :func:`full_precision_ends`,
            the float first and last conv/dense layers).
        prefix: name prefix of the QAT wrappers; it must not produce a name already in
            the model (tfmot's default ``quant_`` collides with larq's default names).

    A plain Keras layer feeding one of ``layers`` (a Flatten, a BatchNorm, a pool)
    also gets its output fake-quantized: tfmot quantizes only a model input by itself,
    and an int8 ``FULLY_CONNECTED`` / ``CONV_2D`` needs an int8 input.

    Returns:
        A new model with fake-quantized ``layers``, to fine-tune and then convert with
        ``int8=True``. Its weights start as ``model``'s.

    Raises:
        ValueError: for a subclassed model, unknown layer names, layers QAT cannot
            quantize, no full-precision layer, or a name collision.
    """
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as tfmot_configs,  # in tfmot's quantize_scope
    )

    if not getattr(model, "_is_graph_network", False) and not isinstance(
        model, tf.keras.Sequential
    ):
        raise ValueError("`model` must be a functional or Sequential model for int8 QAT; "
                         f"{model.name!r} is a subclassed model.")
    names = list(full_precision_ends(model) if layers is None else layers)
    by_name = {layer.name: layer for layer in model.layers}
    if not names:
        raise ValueError(f"`model` {model.name!r} has no full-precision Conv2D, "
                         f"DepthwiseConv2D or Dense layer to quantize to int8.")
    for name in names:
        if name not in by_name:
            raise ValueError(f"`layers`: no layer named {name!r} in {model.name!r}.")
        if not _is_full_precision(by_name[name]):
            raise ValueError(
                f"`layers`: {name!r} is a {type(by_name[name]).__name__}; int8 QAT takes "
                f"full-precision Conv2D, DepthwiseConv2D or Dense layers."
            )
    clashes = sorted(f"{prefix}{name}" for name in names if f"{prefix}{name}" in by_name)
    if clashes:
        raise ValueError(f"`prefix` {prefix!r} gives names already in the model: {clashes}.")
    configs = {name: None for name in names}  # None: tfmot's default 8-bit config
    for name in names:
        for inbound in _inbound_layers(by_name[name]):
            if inbound.name not in configs and _is_builtin(inbound):
                configs[inbound.name] = tfmot_configs.Default8BitOutputQuantizeConfig()
    quantize = tfmot.quantization.keras
    annotated = tf.keras.models.clone_model(
        model,
        clone_function=lambda layer: (
            quantize.quantize_annotate_layer(layer, quantize_config=configs[layer.name])
            if layer.name in configs else layer
        ),
    )
    with quantize.quantize_scope():
        return quantize.quantize_apply(annotated, quantized_layer_name_prefix=prefix)
