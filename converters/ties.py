r"""How close to a rounding threshold a k-bit activation input counts as a tie.

A k-bit activation rounds :math:`u = \mathrm{clip}(x, 0, v)/v \cdot n`, :math:`n = 2^k - 1`,
to an integer level. The converted model reaches the same :math:`x` by another
arithmetic: a bit-plane convolution (:mod:`.kbit`) sums exact integer popcounts and
applies a fused scale, Keras sums floats. Both are right up to float rounding, so a
:math:`u` within that rounding of a half-integer threshold may round to adjacent levels in
the two models. On the W1A2 Group-Net ResNets of ``benchmarks/groupnet_mnist_trainer.py``
every value over the end-to-end tolerance came from a k-bit input within 1.5e-6 levels of
a threshold; :data:`TIE_EPSILON` is wider by a margin. The layer-wise check
(:mod:`.layer_ties`) moves k-bit inputs by this many levels to measure what such a tie can
change.
"""

__all__ = ["TIE_EPSILON"]

#: How close (in levels) to a rounding threshold a k-bit input counts as a tie: 16
#: float32 ulps of the threshold 2.5 of a 2-bit activation, 2.7 x the largest
#: Keras-vs-LCE disagreement measured (1.5e-6).
TIE_EPSILON = 4e-6
