r"""Binary-weight convolution of k-bit activations as k binary convolutions of bit planes.

The identity (see :mod:`horq_keras.converters.kbit`, which builds these layers for LCE
conversion): a uniform k-bit activation ``q = (v/n) m`` with ``m = sum_i 2^i b_i``,
``n = 2^k - 1``, is ``v/2 - sum_i c_i t_i`` with the ±1 planes ``t_i = 1 - 2 b_i`` and
``c_i = v 2^i / (2n)``, so ``conv(q, W)`` is a constant plus k ``LceBconv2d``.
"""

import larq as lq
import tensorflow as tf

from horq_keras._checks import check_padding, finite_number, is_positive_integer, positive_number
from horq_keras.layers.horq import add_bias_and_activation, check_float32
from horq_keras.serialization import register

__all__ = ["MAX_BITS", "BitPlaneConv2D"]

#: Bit widths the rewrite handles (LCE ops per layer = bits).
MAX_BITS = 8


@register
class BitPlaneConv2D(lq.layers.QuantConv2D):
    """Inference form of a binary-weight conv reading k-bit activations: k bconvs.

    Computes exactly what ``QuantConv2D(input_quantizer=<k-bit uniform>,
    kernel_quantizer=<binary>)`` computes, as ``bits`` binary convolutions of the
    activation's bit planes plus a constant (module docstring). It is built by
    :func:`rewrite_bit_planes` for conversion; it is not meant for training.

    Args:
        filters, kernel_size, ...: as ``QuantConv2D`` (``groups`` must be 1).
        bits: k, the activation's bit width (1..8).
        clip_value: the activation's clip value v (1.0 for DoReFa).
    """

    def __init__(self, filters, kernel_size, bits=2, clip_value=1.0, **kwargs):
        if not is_positive_integer(bits) or bits > MAX_BITS:
            raise ValueError(f"`bits` must be an integer in 1..{MAX_BITS} (the activation's "
                             f"bit width); got {bits!r}.")
        bits = int(bits)
        clip_value = positive_number(clip_value, "clip_value", "the activation's largest level")
        check_float32(kwargs.get("dtype"), "BitPlaneConv2D")
        check_padding(kwargs.get("padding", "valid"))
        finite_number(kwargs.get("pad_values", 0.0), "pad_values", "the value of padded inputs")
        if kwargs.get("groups", 1) != 1:
            raise ValueError(f"`groups` must be 1 for BitPlaneConv2D; got {kwargs['groups']!r}.")
        kwargs.pop("input_quantizer", None)
        self.bits = bits
        self.clip_value = float(clip_value)
        super().__init__(filters, kernel_size, **kwargs)

    def _plane_conv(self, plane, kernel):
        """One ±1 plane, padded with +1 for ``padding="same"``, convolved (a bconv)."""
        padding = self.padding.upper()
        if self.padding == "same":
            plane = tf.pad(plane, self._get_padding_same(plane), constant_values=1.0)
            padding = "VALID"
        return tf.nn.convolution(plane, kernel, strides=self.strides, padding=padding,
                                 dilations=self.dilation_rate)

    def _constant(self, inputs, kernel):
        """(v/2) S_W + p conv(M, W): per channel, or a border map when p != 0."""
        half = self.clip_value / 2.0
        if self.padding != "same" or self.pad_values == 0.0:
            return half * tf.reduce_sum(kernel, axis=(0, 1, 2))
        shape = tf.concat([[1], tf.shape(inputs)[1:]], axis=0)
        if inputs.shape[1:].is_fully_defined():
            shape = [1, *inputs.shape[1:]]
        image = tf.fill(shape, tf.cast(half, kernel.dtype))
        padded = tf.pad(image, self._get_padding_same(image),
                        constant_values=half + self.pad_values)
        return tf.nn.convolution(padded, kernel, strides=self.strides, padding="VALID",
                                 dilations=self.dilation_rate)

    def call(self, inputs):
        with lq.context.quantized_scope(True):
            kernel = tf.convert_to_tensor(self.kernel)
        levels = 2**self.bits - 1
        clipped = tf.clip_by_value(inputs, 0.0, self.clip_value)
        m = tf.round(clipped / self.clip_value * levels)
        terms = []
        for i in range(self.bits):
            # m mod 2^(i+1), exact for the integer-valued m, as FLOOR and elementwise ops that
            # TFLite runs in XNNPACK (its FLOOR_MOD is a slow reference kernel; the ARM counts
            # of benchmarks/arm_emulated.py show what it costs).
            period = 2.0 ** (i + 1)
            low_bits = m if i == self.bits - 1 else m - period * tf.floor(m * (1.0 / period))
            plane = lq.quantizers.ste_sign(2.0**i - 0.5 - low_bits)
            scale = -self.clip_value * 2.0**i / (2.0 * levels)
            terms.append(self._plane_conv(plane, kernel) * scale)
        return add_bias_and_activation(self, tf.add_n(terms) + self._constant(inputs, kernel))

    def get_config(self):
        config = super().get_config()
        config.pop("input_quantizer", None)
        return {**config, "bits": self.bits, "clip_value": self.clip_value}
