"""Keras layers of horq-keras (larq layer classes, registered as ``horq_keras>...``).

HORQ (Li et al., "Performance guaranteed network acceleration via high-order residual
quantization", ICCV 2017): its equations, each with the code that implements it.

- eq. 15 — the residual of a binary approximation never grows (``||R_i|| <= ||R_{i-1}||``):
  checked by the tests of :func:`horq_keras.quantizers.residual_bases`.
- eq. 16 — ``H_i = sign(R_{i-1})``, ``R_i = R_{i-1} - beta_i H_i``;
- eq. 17 — ``beta_i = mean|R_{i-1}|`` and ``X ≈ sum_i beta_i H_i``:
  :func:`horq_keras.quantizers.residual_bases` (the order-K recursion, Algorithm 2) and
  the quantizer :class:`horq_keras.quantizers.ResidualSign`.
- eq. 18–19 — weights ``W ≈ alpha·sign(W)``, ``alpha = mean|W|`` per output channel:
  larq's ``magnitude_aware_sign`` with ``weight_clip``, the defaults of
  :class:`HORQConv2D` and :class:`HORQDense`.
- eq. 20–21 — the convolution as K binary products of residual-binarized im2col columns
  with the binary kernel, one ``beta_i`` per column: ``HORQConv2D(beta_form="column")``
  (``HORQConv2D._column_output``). The deployable forms (``beta_form="pixel"`` and
  ``"sample"``, ``HORQConv2D._deployable_output`` and ``_merged_sample_output``) take
  ``beta_i`` per pixel or per sample so that LCE runs each order as one ``LceBconv2d``;
  :class:`HORQDense` is eq. 16–19 on a fully connected layer.
"""

from horq_keras.layers.bitplane import BitPlaneConv2D
from horq_keras.layers.horq import BETA_FORMS, HORQConv2D, HORQDense

__all__ = ["BETA_FORMS", "BitPlaneConv2D", "HORQConv2D", "HORQDense"]
