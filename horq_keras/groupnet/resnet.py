"""Group-Net ResNets (Zhuang et al., §3.2–3.3), larq-zoo-style keyword-only builders.

Structure::

    full-precision stem        ImageNet-size input: Conv 7x7/2 -> BN -> ReLU -> MaxPool 3x3/2
                               side <= 64 px (MNIST, CIFAR): Conv 3x3/1 -> BN -> ReLU
    binary body                residual blocks cut into groups by ``partition``;
                               each group = sum_i lambda_i H_i(x) over ``num_bases`` branches
    head                       BN -> GlobalAveragePooling -> Dense (full precision) -> softmax

Every convolution of the body is ``BN -> quantize -> binary conv`` (BN before each
quantizer, no bias). A residual block keeps its skip connection, and its downsampling
shortcut (a binary 1x1 convolution) when the stride or width changes, inside its branch;
there is no nonlinearity before the classifier. With ``num_bases=1`` every partition
gives the directly binarized ResNet.
"""

import functools

import tensorflow as tf

from horq_keras.groupnet._common import (
    check_input_shape,
    check_positive_int,
    finish_model,
    float_stem,
    is_small_input,
    model_name,
)
from horq_keras.groupnet.branches import check_num_bases
from horq_keras.groupnet.quantizers import check_activation_bits

__all__ = [
    "basic_block",
    "binary_resnet18",
    "bottleneck_block",
    "groupnet_resnet",
    "groupnet_resnet18",
    "groupnet_resnet34",
    "groupnet_resnet50",
    "layerwise_resnet18",
]


def _shortcut(x, conv, name, filters, strides):
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv(x, filters, 1, strides=strides, name=f"{name}_downsample")


def basic_block(x, conv, name, *, filters, strides):
    """ResNet-18/34 block: two 3x3 binary convolutions and the skip connection."""
    shortcut = _shortcut(x, conv, name, filters, strides)
    h = conv(x, filters, 3, strides=strides, name=f"{name}_conv1")
    h = conv(h, filters, 3, name=f"{name}_conv2")
    return tf.keras.layers.Add(name=f"{name}_add")([h, shortcut])


def bottleneck_block(x, conv, name, *, filters, strides):
    """ResNet-50 block: 1x1, 3x3 (strided), 1x1 to ``4 * filters``, and the skip."""
    shortcut = _shortcut(x, conv, name, 4 * filters, strides)
    h = conv(x, filters, 1, name=f"{name}_conv1")
    h = conv(h, filters, 3, strides=strides, name=f"{name}_conv2")
    h = conv(h, 4 * filters, 1, name=f"{name}_conv3")
    return tf.keras.layers.Add(name=f"{name}_add")([h, shortcut])


def groupnet_resnet(
    *,
    stage_blocks,
    stage_filters=(64, 128, 256, 512),
    bottleneck=False,
    num_bases=5,
    activation_bits=1,
    partition="v1",
    per_channel_weights=True,
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    recompute_branches=False,
    name=None,
):
    """A Group-Net ResNet of any depth and width (see the module docstring).

    Args:
        stage_blocks: residual blocks per stage, for example ``(2, 2, 2, 2)``.
        stage_filters: width of each stage (bottleneck blocks output 4x this); the
            first stage has stride 1, every later one starts with stride 2.
        bottleneck: bottleneck blocks (ResNet-50) instead of basic blocks.
        num_bases: K >= 1 binary branches per group.
        activation_bits: 1 (binary), 2–8 or 32 (full-precision activations).
        partition: ``"layerwise"``, ``"v1"`` (one block per group), ``"v2"`` (two),
            ``"v3"`` (whole body, an ensemble) or group sizes in residual blocks,
            summing to ``sum(stage_blocks)``.
        per_channel_weights: weight scale ``alpha`` per output channel (default) or
            per layer (eq. 1).
        input_shape: ``(height, width, channels)``; a side <= 64 selects the small stem.
        num_classes: classifier outputs.
        include_top: with ``False`` the model ends at the head's BN (a feature map).
        recompute_branches: recompute every branch in the backward pass of training
            (:mod:`~horq_keras.groupnet.recompute`): the activation memory of a step no
            longer grows with ``num_bases`` for the price of a second forward pass of the
            body; inference and conversion are unchanged.
        name: model name (default like ``groupnet_resnet_v1_k5_w1a1``).

    Raises:
        ValueError: naming the argument, for any invalid argument.
    """
    check_num_bases(num_bases)
    check_activation_bits(activation_bits)
    input_shape = check_input_shape(input_shape)
    stage_blocks, stage_filters = tuple(stage_blocks), tuple(stage_filters)
    for argument, values in (("stage_blocks", stage_blocks), ("stage_filters", stage_filters)):
        if not values:
            raise ValueError(f"`{argument}` must be a non-empty sequence; got {values!r}.")
        for value in values:
            check_positive_int(value, argument)
    if len(stage_blocks) != len(stage_filters):
        raise ValueError(
            f"`stage_blocks` and `stage_filters` must have one entry per stage; got "
            f"{len(stage_blocks)} and {len(stage_filters)}."
        )
    settings = {"partition": partition, "num_bases": num_bases,
                "activation_bits": activation_bits, "per_channel_weights": per_channel_weights,
                "include_top": include_top, "num_classes": num_classes, "name": name,
                "recompute_branches": recompute_branches}

    block = bottleneck_block if bottleneck else basic_block
    units = []
    for stage, (blocks, filters) in enumerate(zip(stage_blocks, stage_filters), start=1):
        for index in range(blocks):
            strides = 2 if stage > 1 and index == 0 else 1
            units.append((
                f"stage{stage}_block{index + 1}",
                functools.partial(block, filters=filters, strides=strides),
            ))

    inputs = tf.keras.Input(shape=input_shape, name="image")
    if is_small_input(input_shape):
        x = float_stem(inputs, stage_filters[0], 3, strides=1)
    else:
        x = float_stem(inputs, 64, 7, strides=2)
        x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
    return finish_model(inputs, x, units, family="groupnet_resnet", unit="residual block",
                        pooling="avg", settings=settings)


def _standard_resnet(depth, stage_blocks, bottleneck, num_bases, activation_bits, partition,
                     name, kwargs):
    if name is None:
        name = model_name(f"groupnet_resnet{depth}", partition, num_bases, activation_bits)
    return groupnet_resnet(
        stage_blocks=stage_blocks, bottleneck=bottleneck, num_bases=num_bases,
        activation_bits=activation_bits, partition=partition, name=name, **kwargs,
    )


def groupnet_resnet18(*, num_bases=5, activation_bits=1, partition="v1", name=None, **kwargs):
    """Group-Net ResNet-18: basic blocks (2, 2, 2, 2), widths 64–512, 8 residual blocks.

    Other keyword arguments (``per_channel_weights``, ``input_shape``, ``num_classes``,
    ``include_top``, ``recompute_branches``) as :func:`groupnet_resnet`.
    """
    return _standard_resnet(18, (2, 2, 2, 2), False, num_bases, activation_bits, partition,
                            name, kwargs)


def groupnet_resnet34(*, num_bases=5, activation_bits=1, partition="v1", name=None, **kwargs):
    """Group-Net ResNet-34: basic blocks (3, 4, 6, 3), 16 residual blocks (see resnet18)."""
    return _standard_resnet(34, (3, 4, 6, 3), False, num_bases, activation_bits, partition,
                            name, kwargs)


def groupnet_resnet50(*, num_bases=5, activation_bits=1, partition="v1", name=None, **kwargs):
    """Group-Net ResNet-50: bottleneck blocks (3, 4, 6, 3), 16 residual blocks."""
    return _standard_resnet(50, (3, 4, 6, 3), True, num_bases, activation_bits, partition,
                            name, kwargs)


def layerwise_resnet18(*, num_bases=5, **kwargs):
    """Baseline: ResNet-18 with every binary convolution decomposed alone (eq. 3)."""
    return groupnet_resnet18(num_bases=num_bases, partition="layerwise", **kwargs)


def binary_resnet18(**kwargs):
    """Baseline: directly binarized ResNet-18 (one base, no branch scales)."""
    return groupnet_resnet18(num_bases=1, **kwargs)
