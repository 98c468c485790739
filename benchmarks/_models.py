"""Networks the benchmarks share, and their conversion as ``convert`` makes it.

- :func:`stack_model` — 4 x (3x3 conv -> BN), the operator-level stack;
- :func:`resnet18` — ResNet-18 (basic blocks, 7x7 float stem, average-pool + 1x1
  shortcut where the shape changes, 1000-way float classifier) whose 3x3 block convs
  are of one kind;
- :func:`convert` — batch norms given trained-looking statistics, folded into the HORQ
  layers, converted with LCE, the ``LceBconv2d`` count checked against the kind.

Kinds: ``"float"``, ``"bconv"`` (larq's ``QuantConv2D`` with ``ste_sign`` inputs and a
±α kernel), ``"horq<K>"`` (HORQ order K, β of the given form) and ``"horq<K>-sample"``.
"""

import horq_keras  # noqa: F401  (selects Keras 2 for larq before TensorFlow is used)
import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

from horq_keras.converters.batchnorm_fold import fold_horq_batch_norms
from horq_keras.layers import HORQConv2D
from horq_keras.tflite.graph import read_graph

__all__ = ["binary_convs_per_layer", "convert", "resnet18", "stack_model"]


def _binary_conv(kind, filters, kernel_size, strides=1, beta_form="pixel"):
    """The 3x3 conv of ``kind``: "float", "bconv", "horq<K>" (of ``beta_form``) or
    "horq<K>-sample"."""
    if kind == "float":
        return tf.keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                                      use_bias=False)
    if kind == "bconv":
        return lq.layers.QuantConv2D(
            filters, kernel_size, strides=strides, padding="same", pad_values=1.0,
            use_bias=False, input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign",
            kernel_constraint="weight_clip",
        )
    order, _, form = kind[4:].partition("-")
    return HORQConv2D(filters, kernel_size, order=int(order), beta_form=form or beta_form,
                      strides=strides, padding="same", pad_values=1.0)


def binary_convs_per_layer(kind):
    """Binary convolutions per layer of ``kind``."""
    if kind in ("float", "bconv"):
        return int(kind == "bconv")
    return int(kind[4:].partition("-")[0])


def stack_model(kind, size, channels, beta_form="pixel"):
    """4 x (3x3 conv -> BN) on ``size`` x ``size`` x ``channels``."""
    inputs = x = tf.keras.Input((size, size, channels))
    for _ in range(4):
        x = tf.keras.layers.BatchNormalization()(
            _binary_conv(kind, channels, 3, beta_form=beta_form)(x))
    return tf.keras.Model(inputs, x, name=f"stack_{kind}")


def _basic_block(x, kind, filters, strides, beta_form):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = tf.keras.layers.AveragePooling2D(strides)(shortcut) if strides != 1 else x
        shortcut = tf.keras.layers.Conv2D(filters, 1, use_bias=False)(shortcut)
        shortcut = tf.keras.layers.BatchNormalization()(shortcut)
    x = tf.keras.layers.BatchNormalization()(
        _binary_conv(kind, filters, 3, strides, beta_form)(x))
    if kind == "float":
        x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.BatchNormalization()(
        _binary_conv(kind, filters, 3, beta_form=beta_form)(x))
    x = tf.keras.layers.Add()([x, shortcut])
    return tf.keras.layers.ReLU()(x) if kind == "float" else x


def resnet18(kind, size, width, beta_form="pixel"):
    """ResNet-18 (see the module docstring) whose 3x3 block convs are ``kind``."""
    inputs = tf.keras.Input((size, size, 3))
    x = tf.keras.layers.Conv2D(width, 7, strides=2, padding="same", use_bias=False)(inputs)
    x = tf.keras.layers.ReLU()(tf.keras.layers.BatchNormalization()(x))
    x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same")(x)
    for stage in range(4):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, kind, width * 2**stage, strides, beta_form)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(1000)(x)
    return tf.keras.Model(inputs, outputs, name=f"resnet18_{kind}")


def _randomize_batch_norms(model, rng):
    """Trained-looking BN statistics (fresh ones are identities that fold away)."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.5, 2, n)])


def convert(model, kind, fold=True):
    """Convert as ``horq_keras.converters.convert`` does (batch norms folded into the
    HORQ layers; ``fold=False``: as before that rewrite); check the number of binary
    convolutions against the kind."""
    _randomize_batch_norms(model, np.random.default_rng(0))
    if fold:
        model, _ = fold_horq_batch_norms(model)
    flatbuffer = lce.convert_keras_model(model)
    names = [op.name for op in read_graph(flatbuffer).operators]
    binary_layers = sum(isinstance(layer, (HORQConv2D, lq.layers.QuantConv2D))
                        for layer in model.layers)
    per_layer = binary_convs_per_layer(kind)
    if names.count("LceBconv2d") != per_layer * binary_layers:
        raise RuntimeError(f"{model.name}: {names.count('LceBconv2d')} LceBconv2d ops, "
                           f"expected {per_layer * binary_layers}")
    return flatbuffer
