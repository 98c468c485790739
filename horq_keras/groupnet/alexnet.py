"""Group-Net AlexNet (Zhuang et al., §4): two consecutive binary layers per group.

Structure (widths of Krizhevsky et al., without the two-GPU filter groups)::

    conv1 96 (full precision) -> BN -> ReLU -> MaxPool       ImageNet: 11x11/4, pool 3x3/2
                                                             side <= 64 px: 3x3/1, pool 2x2
    conv2 256 @ 5x5 -> MaxPool                              \\
    conv3 384 @ 3x3                                          |  the six binary layers
    conv4 384 @ 3x3                                          |  ("units"), each
    conv5 256 @ 3x3 -> MaxPool                               |  BN -> quantize -> binary conv
    fc6 fc_units (a conv over the whole map)                 |
    fc7 fc_units (1x1 conv)                                 /
    BN -> Flatten -> Dense num_classes (full precision) -> softmax

The default ``partition="v2"`` makes the paper's AlexNet groups (conv2–3, conv4–5,
fc6–7); a max pool that follows a layer belongs to that layer's unit, so it sits inside
the branches of a group-wise decomposition and after the scaled sum of a layer-wise one.
The fully connected layers are convolutions so that LCE lowers them to ``LceBconv2d``
(a binary dense layer would stay in float).
"""

import functools

import tensorflow as tf

from horq_keras.groupnet._common import (
    check_input_shape,
    check_positive_int,
    finish_model,
    float_stem,
    is_small_input,
)
from horq_keras.groupnet.branches import check_num_bases
from horq_keras.groupnet.quantizers import check_activation_bits

__all__ = ["binary_alexnet", "groupnet_alexnet", "layerwise_alexnet"]


def _conv_layer(x, conv, name, *, filters, kernel_size, pool):
    x = conv(x, filters, kernel_size, name=name)
    return pool(name=f"{name}_pool")(x) if pool is not None else x


def _fc_layer(x, conv, name, *, units, whole_map):
    kernel_size = tuple(x.shape[1:3]) if whole_map else 1
    return conv(x, units, kernel_size, padding="valid", name=name)


def groupnet_alexnet(
    *,
    num_bases=5,
    activation_bits=1,
    partition="v2",
    per_channel_weights=True,
    fc_units=4096,
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    recompute_branches=False,
    name=None,
):
    """Group-Net AlexNet (see the module docstring).

    Args:
        num_bases: K >= 1 binary branches per group.
        activation_bits: 1 (binary), 2–8 or 32.
        partition: ``"v2"`` (default: two consecutive layers per group, the paper's
            AlexNet), ``"layerwise"``, ``"v1"`` (one layer and its pool per group),
            ``"v3"`` (ensemble) or group sizes in binary layers summing to 6.
        per_channel_weights: weight scale per output channel (default) or per layer.
        fc_units: width of fc6 and fc7.
        input_shape: ``(height, width, channels)``; a side <= 64 selects the small stem.
            Inputs need a side of at least 8 pixels.
        num_classes: classifier outputs.
        include_top: with ``False`` the model ends at the head's BN.
        recompute_branches: recompute every branch in the backward pass of training
            (:mod:`~horq_keras.groupnet.recompute`): the activation memory of a step no
            longer grows with ``num_bases`` for the price of a second forward pass of the
            body; inference and conversion are unchanged.
        name: model name (default like ``groupnet_alexnet_v2_k5_w1a1``).
    """
    check_num_bases(num_bases)
    check_activation_bits(activation_bits)
    check_positive_int(fc_units, "fc_units")
    input_shape = check_input_shape(input_shape)
    settings = {"partition": partition, "num_bases": num_bases,
                "activation_bits": activation_bits, "per_channel_weights": per_channel_weights,
                "include_top": include_top, "num_classes": num_classes, "name": name,
                "recompute_branches": recompute_branches}
    if is_small_input(input_shape):
        stem = {"kernel_size": 3, "strides": 1}
        pool = functools.partial(tf.keras.layers.MaxPool2D, 2)
    else:
        stem = {"kernel_size": 11, "strides": 4}
        pool = functools.partial(tf.keras.layers.MaxPool2D, 3, strides=2)

    units = [
        ("conv2", functools.partial(_conv_layer, filters=256, kernel_size=5, pool=pool)),
        ("conv3", functools.partial(_conv_layer, filters=384, kernel_size=3, pool=None)),
        ("conv4", functools.partial(_conv_layer, filters=384, kernel_size=3, pool=None)),
        ("conv5", functools.partial(_conv_layer, filters=256, kernel_size=3, pool=pool)),
        ("fc6", functools.partial(_fc_layer, units=fc_units, whole_map=True)),
        ("fc7", functools.partial(_fc_layer, units=fc_units, whole_map=False)),
    ]

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = float_stem(inputs, 96, **stem)
    x = pool(name="stem_pool")(x)
    if min(x.shape[1:3]) < 4:
        raise ValueError(
            f"`input_shape` {input_shape} is too small for AlexNet: the map after the "
            f"first layer is {tuple(x.shape[1:3])}; use inputs of at least 8x8 pixels."
        )
    return finish_model(inputs, x, units, family="groupnet_alexnet", unit="binary layer",
                        pooling="flatten", settings=settings)


def layerwise_alexnet(*, num_bases=5, **kwargs):
    """Baseline: AlexNet with every binary layer decomposed alone (eq. 3)."""
    return groupnet_alexnet(num_bases=num_bases, partition="layerwise", **kwargs)


def binary_alexnet(**kwargs):
    """Baseline: directly binarized AlexNet (one base, no branch scales)."""
    return groupnet_alexnet(num_bases=1, **kwargs)
