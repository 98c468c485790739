"""LeNet-style MNIST network of the HORQ paper's MNIST experiment (Li et al., §4.1).

Architecture (first and last layers full precision, batch norm before every quantizer,
no biases in quantized layers)::

    input 28x28x1
    Conv2D 32 @ 5x5 (float) -> BN -> MaxPool 2x2            # 24x24 -> 12x12
    HORQConv2D 64 @ 5x5, order K -> BN -> MaxPool 2x2       # 8x8 -> 4x4
    HORQConv2D 512 @ 4x4, order K -> BN                     # the 512-unit "fc" as a conv
    Flatten -> Dense num_classes (float) -> softmax

The 512-unit fully connected layer is a 4x4 convolution over the whole 4x4 map, which
is the same product but lowers to LCE's binary convolution (a dense layer stays float).
"""

import tensorflow as tf

from horq_keras.models._convs import VARIANTS, check_variant, quantized_conv
from horq_keras.quantizers import check_order

__all__ = ["horq_lenet", "VARIANTS"]


def horq_lenet(
    *,
    variant="horq",
    order=2,
    beta_form="pixel",
    input_shape=(28, 28, 1),
    num_classes=10,
    name=None,
):
    """Build the MNIST LeNet (see module docstring) as a functional Keras model.

    Args:
        variant: one of :data:`VARIANTS`.
        order: HORQ order K >= 1 (used by ``variant="horq"``).
        beta_form: ``"column"``, ``"pixel"`` or ``"sample"`` (see ``HORQConv2D``).
        input_shape: input image shape, at least 16x16.
        num_classes: number of output classes.
        name: model name (default ``horq_lenet_<variant>[_order<K>]``).
    """
    check_variant(variant)
    check_order(order)
    if name is None:
        name = f"horq_lenet_{variant}" + (f"_order{order}" if variant == "horq" else "")

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = tf.keras.layers.Conv2D(32, 5, use_bias=False, name="conv1_float")(inputs)
    x = tf.keras.layers.BatchNormalization(momentum=0.9, name="bn1")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool1")(x)
    x = quantized_conv(variant, 64, 5, order=order, beta_form=beta_form, name="conv2")(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9, name="bn2")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool2")(x)
    x = quantized_conv(variant, 512, tuple(x.shape[1:3]), order=order, beta_form=beta_form,
                       name="fc3")(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9, name="bn3")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = tf.keras.layers.Dense(num_classes, name="logits_float")(x)
    outputs = tf.keras.layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return tf.keras.Model(inputs, outputs, name=name)
