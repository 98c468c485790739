r"""Samples whose k-bit activations sit on a rounding threshold (Group-Net eq. 2).

A k-bit activation rounds :math:`u = \mathrm{clip}(x, 0, v)/v \cdot n`, :math:`n = 2^k - 1`,
to an integer level. The converted model reaches the same :math:`x` by another
arithmetic: a bit-plane convolution (:mod:`.kbit`) sums exact integer popcounts and
applies a fused scale, Keras sums floats. Both are right up to float rounding, so a
:math:`u` within that rounding of a half-integer threshold may round to adjacent levels in
the two models, and that one level moves the sample's logits by far more than the parity
tolerance. On the W1A2 Group-Net ResNets of ``benchmarks/groupnet_mnist_trainer.py``
every sample over the tolerance had a k-bit input within 1.5e-6 levels of a threshold;
:data:`TIE_EPSILON` is wider by a margin. How far such a tie can move a sample is measured
in Keras itself (:func:`nudged`): the same model with every k-bit input moved by
:data:`TIE_EPSILON` levels up (then down) crosses exactly the thresholds it sat on and
nothing else, since the quantizer is constant between thresholds. Parity
(``verification.parity``) excuses a tied sample whose difference stays within that reach,
when its strict check fails and the rounding floor is on.
"""

import functools

import numpy as np
import tensorflow as tf

from horq_keras.converters.kbit import bit_plane_spec

__all__ = ["TIE_EPSILON", "near_ties", "nudged", "tie_probe"]

#: How close (in levels) to a rounding threshold a k-bit input counts as a tie: 16
#: float32 ulps of the threshold 2.5 of a 2-bit activation, 2.7 x the largest
#: Keras-vs-LCE disagreement measured (1.5e-6).
TIE_EPSILON = 4e-6


def tie_probe(model):
    """``(probe, specs)``: a model returning the inputs of ``model``'s k-bit activation
    quantizers (its own layers with an ``input_quantizer`` that :func:`.kbit.bit_plane_spec`
    recognises) and their ``(bits, clip_value)``; None when it has none."""
    specs = {layer: bit_plane_spec(getattr(layer, "input_quantizer", None))
             for layer in model.layers}
    kbit = [layer for layer, spec in specs.items() if spec is not None]
    if not kbit:
        return None
    probe = tf.keras.Model(model.inputs, [layer.input for layer in kbit],
                           name=f"{model.name}_kbit_inputs")
    return probe, [specs[layer] for layer in kbit]


def near_ties(values, specs, epsilon=TIE_EPSILON):
    """Per sample (axis 0), True when some value lies within ``epsilon`` levels of a
    rounding threshold of its quantizer: ``|u - floor(u) - 1/2| < epsilon`` with
    ``u = clip(x, 0, v) / v * (2**bits - 1)``.

    ``values``: one array per quantizer, samples on axis 0; ``specs``: their
    ``(bits, clip_value)``.
    """
    ties = np.zeros(len(values[0]), dtype=bool)
    for x, (bits, clip_value) in zip(values, specs):
        u = np.clip(np.asarray(x, np.float64), 0.0, clip_value) / clip_value * (2**bits - 1)
        distance = np.abs(u - np.floor(u) - 0.5).reshape(len(u), -1).min(axis=1)
        ties |= distance < epsilon
    return ties


def _shifted(quantizer, shift, inputs):
    return quantizer(inputs + shift)


def nudged(model, direction, epsilon=TIE_EPSILON):
    """A copy of the functional or Sequential ``model`` (same weights) whose k-bit
    activation quantizers read their input moved by ``direction * epsilon`` levels
    (``direction`` +1 or -1): an input within ``epsilon`` levels below (above) a rounding
    threshold rounds to the next level up (down); every other output is unchanged."""

    def clone(layer):
        copy = type(layer).from_config(layer.get_config())
        spec = bit_plane_spec(getattr(layer, "input_quantizer", None))
        if spec is not None:
            bits, clip_value = spec
            shift = direction * epsilon * clip_value / (2**bits - 1)
            copy.input_quantizer = functools.partial(_shifted, copy.input_quantizer, shift)
        return copy

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
