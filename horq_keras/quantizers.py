"""HORQ's order-K residual binarization (Li et al., ICCV 2017, eq. 16–17, Algorithm 2).

An input X is approximated by K binary tensors::

    R_0 = X
    H_i = sign(R_{i-1})                       (eq. 16)
    beta_i = mean(|R_{i-1}|)                  (eq. 17, over the reduction axes)
    R_i = R_{i-1} - beta_i * H_i
    X ≈ sum_{i=1..K} beta_i * H_i

Order 1 is XNOR-Net's input binarization. By eq. 15 the residual norm never grows
with the order: ||R_i|| <= ||R_{i-1}||.

Gradients (straight-through, as larq's ``ste_sign``): every sign passes the gradient
where ``|R_{i-1}| <= clip_value`` and blocks it elsewhere; ``beta_i`` and the residual
update are differentiated exactly. The default ``clip_value=1.0`` is XNOR-Net's and
larq's choice: HORQ inputs come out of batch normalisation, so ``|x| > 1`` are the
tails where the saturated sign carries no signal; the higher-order residuals are
smaller than ``beta_1`` and are rarely clipped. ``clip_value=None`` disables clipping.
"""

import larq as lq
import tensorflow as tf

from horq_keras._checks import positive_integer, positive_number
from horq_keras.serialization import register

__all__ = ["ResidualSign", "check_clip_value", "check_order", "mean_abs", "residual_bases"]


def check_clip_value(clip_value):
    """Validate the straight-through window of the signs: a finite number > 0, or None."""
    return positive_number(clip_value, "clip_value", "the straight-through window of each "
                           "sign; None: no clipping", allow_none=True)


def check_order(order):
    """Validate the HORQ order K: an integer >= 1 (1 is XNOR-Net)."""
    return positive_integer(order, "order", "1 = XNOR-Net, 2, 3, 4, ...")


def mean_abs(x, axis):
    """``mean |x|`` over ``axis``, keeping the reduced axes with size 1 (eq. 17).

    Over axes (1, 2, 3) of a rank-4 tensor it is taken as a mean over height and width,
    then over the channels: the same value, and TFLite runs a height-width mean in
    XNNPACK but a mean over three axes in its slower reference kernel.
    """
    magnitude = tf.abs(x)
    if x.shape.rank == 4 and isinstance(axis, (list, tuple)) and tuple(axis) == (1, 2, 3):
        magnitude, axis = tf.reduce_mean(magnitude, axis=(1, 2), keepdims=True), -1
    return tf.reduce_mean(magnitude, axis=axis, keepdims=True)


def residual_bases(x, order, axis=-1, clip_value=1.0, sign=lq.quantizers.ste_sign):
    """Order-K residual binarization of ``x`` (eq. 16–17).

    Args:
        x: float tensor.
        order: K, the number of binary bases.
        axis: axis or axes over which each ``beta_i = mean|R_{i-1}|`` is taken
            (for example the im2col column, eq. 20–21, or the channels of a pixel).
        clip_value: straight-through clipping threshold of each sign.
        sign: the sign of each residual, ``H_i = sign(R_{i-1}, clip_value=clip_value)``.

    Returns:
        A list of K pairs ``(beta_i, H_i)``; ``beta_i`` keeps the reduced axes with
        size 1, ``H_i`` is a ±1 tensor shaped like ``x`` made by larq's ``ste_sign``
        (so LCE lowers it to a bitpacked tensor).
    """
    check_order(order)
    residual = x
    bases = []
    for i in range(order):
        beta = mean_abs(residual, axis)
        binary = sign(residual, clip_value=clip_value)
        bases.append((beta, binary))
        if i + 1 < order:
            residual = residual - beta * binary
    return bases


@register
class ResidualSign(lq.quantizers.Quantizer):
    r"""Order-K residual sign quantizer: ``q(x) = sum_i beta_i * H_i`` (eq. 16–17).

    ``beta_i`` is taken over ``axis`` (default: the last axis, which is the feature
    vector of a dense layer or the im2col column of a convolution's patches, the
    paper's exact form). Each base is 1 bit, so ``precision`` is 1 and
    ``lq.models.summary`` counts binary MACs; a layer using it runs ``order`` binary
    products (``horq_keras.summary`` shows that cost).

    Args:
        order: K >= 1. Order 1 is XNOR-Net's scaled sign.
        clip_value: straight-through clipping of each sign (``None``: no clipping).
        axis: reduction axis or axes for ``beta_i``.
    """

    precision = 1
    #: The sign of each residual (larq's straight-through sign); the converters' tie
    #: analysis replaces it on a copy to move every residual by a rounding step.
    sign = staticmethod(lq.quantizers.ste_sign)

    def __init__(self, order=2, clip_value=1.0, axis=-1, **kwargs):
        self.order = check_order(order)
        self.clip_value = check_clip_value(clip_value)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        super().__init__(**kwargs)

    def bases(self, inputs, axis=None):
        """The K pairs ``(beta_i, H_i)`` of ``inputs``, ``beta_i`` over ``axis`` (default:
        the quantizer's); see :func:`residual_bases`."""
        axis = self.axis if axis is None else axis
        return residual_bases(inputs, self.order, axis, self.clip_value, self.sign)

    def call(self, inputs):
        return tf.add_n([beta * sign for beta, sign in self.bases(inputs)])

    def get_config(self):
        return {
            **super().get_config(),
            "order": self.order,
            "clip_value": self.clip_value,
            "axis": self.axis,
        }
