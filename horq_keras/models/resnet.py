"""HORQ ResNet-18: a ResNet-18 whose binary body is made of ``HORQConv2D`` of order K.

Structure (larq-zoo's binary ResNets, Bi-Real-Net style, with HORQ inputs)::

    full-precision stem   ImageNet-size input: Conv 7x7/2 -> BN -> ReLU -> MaxPool 3x3/2
                          side <= 64 px (MNIST, CIFAR): Conv 3x3/1 -> BN -> ReLU
    binary body           4 stages x 2 basic blocks, widths (1, 2, 4, 8) x ``width``;
                          each block is two "binary units" with a skip around each:
                              y = HORQConv2D_K(BN(x)) + shortcut(x)
    head                  BN -> GlobalAveragePooling -> Dense (full precision) -> softmax

Choices, and why:

- **BN before every quantizer**: each ``HORQConv2D`` binarizes its input with the
  residual signs of eq. 16–17, whose straight-through window is |x| <= 1; a batch norm
  right before it centres and scales that input (as in the HORQ paper and larq-zoo).
- **A skip connection around every binary convolution** (Bi-Real-Net, larq-zoo's
  ``BinaryResNetE18``) instead of one per two convolutions: it carries the
  full-precision signal past each binarization, which binary ResNets need to train.
- **Full-precision shortcuts where they downsample**: ``AvgPool 2x2/2 -> Conv 1x1 ->
  BN`` in float (larq-zoo's choice). These 1x1 convolutions hold few MACs, and a binary
  one would lose the very information the skip connection is for.
- **Float stem and classifier**: the first and last layers stay full precision (HORQ
  §4, XNOR-Net, larq-zoo), no nonlinearity before the classifier.
- ``padding="same"`` convolutions pad their binary input with +1, which LCE runs
  as its fast "same-one" padding; ``variant="float"`` and ``"binary_weights"`` build
  the same network with the same weights in full precision or with binary weights
  only — the float counterpart that initialises a binary model (two-stage training).

A HORQ layer of order K runs K binary convolutions with one shared kernel; LCE lowers
it to K ``LceBconv2d`` (``beta_form`` ``"pixel"`` or ``"sample"``).
"""

import tensorflow as tf

from horq_keras.groupnet._common import check_input_shape, classifier, float_stem, is_small_input
from horq_keras.models._convs import check_variant, quantized_conv
from horq_keras.quantizers import check_order

__all__ = ["horq_resnet18"]


def _shortcut(x, filters, strides, name):
    """Identity, or the float ``AvgPool -> Conv 1x1 -> BN`` where the block downsamples."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    if strides != 1:
        x = tf.keras.layers.AveragePooling2D(strides, name=f"{name}_shortcut_pool")(x)
    x = tf.keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_shortcut_float")(x)
    return tf.keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_shortcut_bn")(x)


def _binary_unit(x, conv, filters, strides, name):
    """``conv(BN(x)) + shortcut(x)``: one binary convolution with its skip connection."""
    h = tf.keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    h = conv(filters, 3, strides=strides, padding="same", name=name)(h)
    return tf.keras.layers.Add(name=f"{name}_add")([h, _shortcut(x, filters, strides, name)])


def horq_resnet18(
    *,
    variant="horq",
    order=2,
    beta_form="pixel",
    width=64,
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    name=None,
):
    """HORQ ResNet-18 (see the module docstring), a larq-zoo-style keyword-only builder.

    Args:
        variant: ``"horq"`` (HORQ inputs of ``order``, binary weights), ``"binary_weights"``
            or ``"float"``: same layers and weights, less quantization.
        order: HORQ order K >= 1 (1 is XNOR-Net).
        beta_form: ``"pixel"`` (default) or ``"sample"`` (both convert to LCE) or
            ``"column"`` (the paper's exact form; trains, does not convert).
        width: channels of the first stage (64 in ResNet-18); stages use 1, 2, 4, 8 x.
        input_shape: ``(height, width, channels)``; a side <= 64 selects the small stem.
        num_classes: classifier outputs.
        include_top: with ``False`` the model ends at the head's BN (a feature map).
        name: model name (default ``horq_resnet18_<variant>[_order<K>]``).

    Raises:
        ValueError: naming the argument, for any invalid argument.
    """
    check_variant(variant)
    check_order(order)
    input_shape = check_input_shape(input_shape)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be an integer >= 1; got {width!r}.")
    if name is None:
        name = f"horq_resnet18_{variant}" + (f"_order{order}" if variant == "horq" else "")

    def conv(filters, kernel_size, **kwargs):
        return quantized_conv(variant, filters, kernel_size, order=order, beta_form=beta_form,
                              **kwargs)

    inputs = tf.keras.Input(shape=input_shape, name="image")
    if is_small_input(input_shape):
        x = float_stem(inputs, width, 3, strides=1)
    else:
        x = float_stem(inputs, width, 7, strides=2)
        x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage in range(4):
        filters = width * 2**stage
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            prefix = f"stage{stage + 1}_block{block + 1}"
            x = _binary_unit(x, conv, filters, strides, f"{prefix}_conv1")
            x = _binary_unit(x, conv, filters, 1, f"{prefix}_conv2")
    x = tf.keras.layers.BatchNormalization(momentum=0.9, name="head_bn")(x)
    if include_top:
        x = classifier(x, num_classes, pooling="avg")
    return tf.keras.Model(inputs, x, name=name)
