"""Group-Net's quantizers (Zhuang et al., CVPR 2019, §3.1, eq. 1–2).

Weights (eq. 1): a filter ``w`` is approximated by ``alpha * sign(w)`` with
``alpha = mean|w|`` (XNOR-Net's binary-weight approximation). :class:`BinaryWeight`
takes ``alpha`` per output channel (the default: each output channel is one of the
paper's filters ``w``) or once per layer.

Activations (eq. 2): ``k``-bit uniform quantization of ``clip(x, 0, a)`` with a fixed
clipping value ``a`` (:class:`UniformActivation`); ``k = 1`` is XNOR-Net's scaled sign
``beta * sign(x)``; ``k = 32`` leaves activations in full precision.

All gradients are straight-through: the rounding and the sign pass the gradient where
the input lies inside the clipping range and block it outside.
"""

import numbers

import larq as lq
import numpy as np
import tensorflow as tf

from horq_keras._checks import positive_number
from horq_keras.quantizers import check_clip_value, residual_bases
from horq_keras.serialization import register

__all__ = ["ACTIVATION_BITS", "BinaryWeight", "UniformActivation", "check_activation_bits"]

#: Allowed activation bit widths: 1 (binary), 2–8 (uniform), 32 (full precision).
ACTIVATION_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)


def check_activation_bits(bits, argument="activation_bits"):
    """Validate an activation bit width (an integer, NumPy's too; not 2.0); the error
    names ``argument``."""
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, numbers.Integral) or (
        bits not in ACTIVATION_BITS
    ):
        raise ValueError(
            f"`{argument}` must be one of {ACTIVATION_BITS} (1 = binary, 32 = full "
            f"precision); got {bits!r}."
        )
    return int(bits)


@register
class BinaryWeight(lq.quantizers.Quantizer):
    r"""Binary weights ``alpha * sign(W)``, ``alpha = mean|W|`` (eq. 1).

    ``per_channel=True`` (default) takes one ``alpha`` per output channel (the last
    axis of a kernel), which is the paper's definition — ``w`` is one filter — and the
    form that LCE folds into the output multiplier of ``LceBconv2d`` at no cost.
    ``per_channel=False`` takes one ``alpha`` for the whole layer.

    Gradients: ``alpha`` is held constant (``stop_gradient``) and ``sign`` is larq's
    ``ste_sign``: the gradient passes where ``|W| <= clip_value``.
    """

    precision = 1

    def __init__(self, per_channel=True, clip_value=1.0, **kwargs):
        if not isinstance(per_channel, bool):
            raise TypeError(f"`per_channel` must be True or False; got {per_channel!r}.")
        self.per_channel = per_channel
        self.clip_value = check_clip_value(clip_value)
        super().__init__(**kwargs)

    def call(self, inputs):
        rank = inputs.shape.rank
        axes = list(range(rank - 1)) if self.per_channel else list(range(rank))
        alpha = tf.stop_gradient(tf.reduce_mean(tf.abs(inputs), axis=axes))
        return alpha * lq.quantizers.ste_sign(inputs, clip_value=self.clip_value)

    def get_config(self):
        return {
            **super().get_config(),
            "per_channel": self.per_channel,
            "clip_value": self.clip_value,
        }


def _uniform_quantize(x, clip_value, bits):
    """``a * round(clip(x, 0, a) / a * n) / n``, ``n = 2**bits - 1``, straight-through."""
    levels = float(2**bits - 1)

    @tf.custom_gradient
    def quantize(x):
        unit = tf.clip_by_value(x, 0.0, clip_value) / clip_value
        outputs = clip_value * tf.round(unit * levels) / levels

        def grad(dy):
            inside = tf.logical_and(x >= 0.0, x <= clip_value)
            return tf.where(inside, dy, tf.zeros_like(dy))

        return outputs, grad

    return quantize(x)


@register
class UniformActivation(lq.quantizers.Quantizer):
    r"""``bits``-bit activation quantizer of Group-Net (eq. 2).

    - ``2 <= bits <= 8``: with ``n = 2**bits - 1`` levels above zero,
      ``q(x) = a * round(clip(x, 0, a) / a * n) / n``, ``a = clip_value`` (fixed, not
      learned). ``round`` is TensorFlow's (and NumPy's) round-half-to-even. The
      gradient is straight-through: 1 for ``0 <= x <= a``, 0 elsewhere.
    - ``bits == 1``: XNOR-Net's scaled sign ``q(x) = beta * sign(x)`` with ``beta`` the
      mean of ``|x|`` over each sample (all axes but the batch axis); the sign is
      larq's ``ste_sign`` with gradient window ``|x| <= clip_value``, ``beta`` is
      differentiated exactly. Because ``beta`` is one number per sample, a
      convolution of ``q(x)`` equals ``beta`` times the convolution of ``sign(x)``: the
      Group-Net layers apply ``beta`` after the binary convolution
      (``HORQConv2D(order=1, beta_form="sample")``), which keeps the sign of the
      input in the shape LCE lowers to ``LceBconv2d``.
    - ``bits == 32``: identity (full-precision activations).

    Args:
        bits: one of :data:`ACTIVATION_BITS`.
        clip_value: ``a > 0``, the upper clipping value (``bits`` 2–8) or the
            straight-through window of the sign (``bits == 1``).
    """

    def __init__(self, bits, clip_value=1.0, **kwargs):
        self.precision = check_activation_bits(bits, argument="bits")
        self.clip_value = positive_number(clip_value, "clip_value", "the largest level for "
                                          "2-8 bits, the sign's window for 1 bit")
        super().__init__(**kwargs)

    @property
    def bits(self):
        return self.precision

    def call(self, inputs):
        if self.precision == 32:
            return inputs
        if self.precision == 1:
            sample_axes = list(range(1, inputs.shape.rank))
            ((beta, sign),) = residual_bases(inputs, 1, sample_axes, self.clip_value)
            return beta * sign
        return _uniform_quantize(inputs, self.clip_value, self.precision)

    def get_config(self):
        return {**super().get_config(), "bits": self.precision, "clip_value": self.clip_value}
