"""Pieces shared by the Group-Net model builders: input checks, stems and the classifier."""

import tensorflow as tf

from horq_keras._checks import is_positive_integer, positive_integer

#: Inputs with a side of at most this many pixels get the small (CIFAR/MNIST) stem.
SMALL_INPUT_MAX_SIDE = 64


def check_input_shape(input_shape):
    """``(height, width, channels)`` of positive integers, as a tuple."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(map(is_positive_integer, shape)):
        raise ValueError(
            f"`input_shape` must be (height, width, channels) of positive integers, for "
            f"example (224, 224, 3) or (28, 28, 1); got {input_shape!r}."
        )
    return shape


def check_positive_int(value, argument):
    """An integer >= 1 (a size or a count)."""
    return positive_integer(value, argument, "a size or count")


def is_small_input(input_shape):
    """Whether ``input_shape`` gets the small stem (no early downsampling)."""
    return min(input_shape[:2]) <= SMALL_INPUT_MAX_SIDE


def float_stem(x, filters, kernel_size, strides):
    """The full-precision first layer: ``Conv2D -> BN -> ReLU``."""
    x = tf.keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                               use_bias=False, name="stem_conv_float")(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    return tf.keras.layers.Activation("relu", name="stem_relu")(x)


def classifier(x, num_classes, pooling):
    """The full-precision last layer, with no nonlinearity before it.

    ``pooling`` reduces the feature map to a vector: ``"avg"`` (ResNets) or
    ``"flatten"`` (AlexNet, whose map is 1x1 after fc7).
    """
    check_positive_int(num_classes, "num_classes")
    if pooling == "avg":
        x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = tf.keras.layers.Flatten(name="flatten")(x)
    x = tf.keras.layers.Dense(num_classes, name="logits_float")(x)
    return tf.keras.layers.Activation("softmax", dtype="float32", name="softmax")(x)


def finish_model(inputs, x, units, *, family, unit, pooling, settings):
    """The binary body of ``units`` (:func:`~horq_keras.groupnet.partition.binary_body`),
    BN, then (``include_top``) the float classifier: the model.

    ``settings`` holds the builder's ``partition``, ``num_bases``, ``activation_bits``,
    ``per_channel_weights``, ``include_top``, ``num_classes``, ``name`` (default:
    :func:`model_name` of ``family``) and ``recompute_branches``: with True the model is
    a :class:`~horq_keras.groupnet.recompute.RecomputedBranchesModel` that recomputes
    every branch in the backward pass of training.
    """
    from horq_keras.groupnet.partition import binary_body  # partition builds on this module
    from horq_keras.groupnet.recompute import (
        RecomputedBranchesModel,
        check_recompute_branches,
    )

    recompute = check_recompute_branches(settings["recompute_branches"])
    branches = []
    x = binary_body(
        x, units, partition=settings["partition"], num_bases=settings["num_bases"],
        activation_bits=settings["activation_bits"],
        per_channel_weights=settings["per_channel_weights"], unit=unit, branches=branches,
    )
    name = settings["name"] or model_name(family, settings["partition"], settings["num_bases"],
                                          settings["activation_bits"])
    include_top, num_classes = settings["include_top"], settings["num_classes"]
    x = tf.keras.layers.BatchNormalization(momentum=0.9, name="head_bn")(x)
    if include_top:
        x = classifier(x, num_classes, pooling=pooling)
    if recompute:
        return RecomputedBranchesModel(inputs, x, name=name, recomputed_branches=branches)
    return tf.keras.Model(inputs, x, name=name)


def model_name(family, partition, num_bases, activation_bits):
    """Default model name, for example ``groupnet_resnet18_v1_k5_w1a1``."""
    if num_bases == 1:
        decomposition = "direct"
    elif isinstance(partition, str):
        decomposition = partition
    else:
        decomposition = "p" + "-".join(str(size) for size in partition)
    return f"{family}_{decomposition}_k{num_bases}_w1a{activation_bits}"
