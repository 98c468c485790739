"""Group-Net's building block: K homogeneous binary branches with learnable scales.

A group ``G`` of the network is approximated by ``K`` binary branches ``H_i`` of the
same structure and independent weights, summed with learnable scalars ``lambda_i``::

    G(x) ≈ sum_{i=1..K} lambda_i H_i(x)            (eq. 3, 5, 6)

``H_i`` is any complete quantized unit: one layer (layer-wise decomposition, eq. 3),
one residual block (Group-Net, eq. 5), two blocks (eq. 6) or the whole binary body
(an ensemble). :func:`binary_group` builds the sum for a given branch builder;
:func:`conv_unit` is the quantized layer every branch is made of: batch normalization
right before the activation quantizer, then a binary convolution without bias.
"""

import larq as lq
import tensorflow as tf

from horq_keras._checks import positive_integer
from horq_keras.groupnet.quantizers import (
    BinaryWeight,
    UniformActivation,
    check_activation_bits,
)
from horq_keras.layers import HORQConv2D
from horq_keras.serialization import register

__all__ = ["BranchScales", "binary_conv", "binary_group", "check_num_bases", "conv_unit"]


def check_num_bases(num_bases):
    """Validate K, the number of binary branches (bases): an integer >= 1."""
    return positive_integer(
        num_bases, "num_bases", "1 = direct binarization, the paper uses 1–5"
    )


@register
class BranchScales(tf.keras.layers.Layer):
    r"""``sum_i lambda_i y_i`` over a list of K branch outputs (eq. 3, 5, 6).

    One learnable scalar ``lambda_i`` per branch, initialised to ``1/K`` so that the
    sum starts as the branches' mean (a skip connection inside every branch then
    passes ``x`` with weight 1). After LCE conversion of a W1A1 model each
    ``lambda_i`` is one scalar float ``MUL`` on its branch, before the ``ADD``\ s of
    the sum: the binary convolution's output is first multiplied by XNOR-Net's
    data-dependent ``beta``, so LCE has no constant multiply to fold into the
    ``LceBconv2d`` (a scalar ``lambda_i`` directly after a binary convolution would
    be folded into it).
    """

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2:
            raise ValueError(
                f"`inputs` of {self.name} must be a list of at least 2 branch outputs; "
                f"got {input_shape!r}."
            )
        shapes = [tf.TensorShape(shape).as_list()[1:] for shape in input_shape]
        if any(shape != shapes[0] for shape in shapes):
            raise ValueError(
                f"All branch outputs of {self.name} must have the same shape; got {shapes}."
            )
        num_bases = len(input_shape)
        self.scales = self.add_weight(
            name="lambda",
            shape=(num_bases,),
            initializer=tf.keras.initializers.Constant(1.0 / num_bases),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, inputs):
        return tf.add_n([self.scales[i] * branch for i, branch in enumerate(inputs)])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[0])


def binary_conv(
    filters,
    kernel_size,
    *,
    strides=1,
    padding="same",
    activation_bits=1,
    per_channel_weights=True,
    name=None,
):
    """A convolution with binary weights (eq. 1) and ``activation_bits`` inputs (eq. 2).

    - 1 bit: ``HORQConv2D(order=1, beta_form="sample")``: XNOR-Net's scaled sign, the
      per-sample ``beta`` applied after the convolution of ``sign(x)`` — exactly the
      convolution of ``UniformActivation(1)(x)`` — and ``padding="same"`` padded with
      +1 (LCE's fast "same-one" padding). LCE lowers it to one ``LceBconv2d``.
    - 2–8 bits: larq ``QuantConv2D`` with ``UniformActivation(bits)`` inputs, zero
      padding (zero is the quantizer's lowest level).
    - 32 bits: binary weights, full-precision inputs.

    No bias; latent weights are clipped to [-1, 1] (larq's ``weight_clip``).
    """
    bits = check_activation_bits(activation_bits)
    common = {
        "strides": strides,
        "padding": padding,
        "kernel_quantizer": BinaryWeight(per_channel=per_channel_weights),
        "kernel_constraint": "weight_clip",
        "use_bias": False,
        "name": name,
    }
    if bits == 1:
        return HORQConv2D(filters, kernel_size, order=1, beta_form="sample", pad_values=1.0,
                          **common)
    return lq.layers.QuantConv2D(
        filters, kernel_size, input_quantizer=UniformActivation(bits), pad_values=0.0, **common
    )


def conv_unit(x, filters, kernel_size, *, strides=1, padding="same", activation_bits=1,
              per_channel_weights=True, name):
    """One quantized layer: ``BN -> quantize -> binary conv`` (BN before each quantizer)."""
    x = tf.keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    conv = binary_conv(
        filters, kernel_size, strides=strides, padding=padding,
        activation_bits=activation_bits, per_channel_weights=per_channel_weights, name=name,
    )
    return conv(x)


def binary_group(x, branch, *, num_bases, name, branches=None):
    """``sum_i lambda_i H_i(x)`` (eq. 3, 5, 6) over ``num_bases`` branches.

    Args:
        x: the group's input tensor (full precision).
        branch: ``branch(x, prefix) -> tensor`` builds one complete quantized branch
            ``H_i`` whose layer names start with ``prefix``; it is called once per base
            with ``prefix = f"{name}_base{i}"``, so branches share structure, not weights.
        num_bases: K >= 1. With K = 1 the group is its single branch, without a scale
            (direct binarization).
        name: prefix of the group's layers; the scales layer is ``f"{name}_scales"``.
        branches: a list to which the prefix of every branch built is appended (the
            branches a :class:`~horq_keras.groupnet.recompute.RecomputedBranchesModel`
            recomputes), or None.
    """
    check_num_bases(num_bases)
    prefixes = [f"{name}_base{i}" for i in range(1, num_bases + 1)]
    if branches is not None:
        branches.extend(prefixes)
    outputs = [branch(x, prefix) for prefix in prefixes]
    if num_bases == 1:
        return outputs[0]
    return BranchScales(name=f"{name}_scales")(outputs)
