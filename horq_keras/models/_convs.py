"""The quantized convolution of the HORQ model builders, by model variant."""

import larq as lq
import tensorflow as tf

from horq_keras.layers import HORQConv2D

__all__ = ["VARIANTS", "check_variant", "quantized_conv"]

#: ``float``: no quantization; ``binary_weights``: BinaryConnect-like alpha*sign(W)
#: with float inputs; ``horq``: HORQ inputs of ``order`` K (K = 1 is XNOR-Net).
#: The three variants have the same layers and weight shapes, so the weights of one
#: initialise another (a float model first, then its binary counterpart).
VARIANTS = ("float", "binary_weights", "horq")


def check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}; got {variant!r}.")
    return variant


def quantized_conv(variant, filters, kernel_size, *, order, beta_form, name, strides=1,
                   padding="valid"):
    """A convolution without bias whose weights/inputs are quantized as ``variant`` says.

    ``padding="same"`` pads binary inputs with +1 (LCE's fast "same-one" padding).
    """
    if variant == "horq":
        return HORQConv2D(filters, kernel_size, order=order, beta_form=beta_form,
                          strides=strides, padding=padding, pad_values=1.0, name=name)
    if variant == "binary_weights":
        return lq.layers.QuantConv2D(
            filters, kernel_size, strides=strides, padding=padding,
            kernel_quantizer="magnitude_aware_sign", kernel_constraint="weight_clip",
            use_bias=False, name=name,
        )
    return tf.keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                                  use_bias=False, name=name)
