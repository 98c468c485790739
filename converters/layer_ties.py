"""What a quantizer input on its threshold can change in one layer's output, per element.

Inside one layer (or a group the converter fused), the converted operators and Keras may
round a quantizer input that lies within float rounding of its threshold to different
sides: a sign input within rounding of 0, a k-bit input within rounding of a level's
half-way point (:mod:`.ties`). Such a flip moves exactly the outputs whose receptive
field holds that input, by what crossing the threshold does. :class:`CrossingReach`
measures that in Keras: the group's layers run on their Keras inputs with every
quantizer's input moved by a rounding step up, then down (only the quantizer sees the
move; in a HORQ quantizer, every residual ``R_{i-1}`` its sign ``H_i`` reads, eq. 17).
An input further than that step from its threshold quantizes the same way, so
only the outputs a near-threshold input reaches change, and by what its flip does.
"""

import functools

import larq as lq
import numpy as np
import tensorflow as tf

from horq_keras.converters.kbit import bit_plane_spec
from horq_keras.converters.ties import TIE_EPSILON
from horq_keras.quantizers import ResidualSign

__all__ = ["SIGN_EPSILON", "CrossingReach"]

#: The rounding step of a sign input, relative to the largest ``|input|`` of its sample:
#: 8 float32 ulps of that scale.
SIGN_EPSILON = 1e-6


def _shifted(quantizer, step, inputs):
    return quantizer(inputs + step)


def _moved(relative, inputs):
    """``inputs`` moved by ``relative`` times the largest ``|input|`` of each sample."""
    axes = list(range(1, inputs.shape.rank))
    return inputs + relative * tf.reduce_max(tf.abs(inputs), axis=axes, keepdims=True)


def _scaled_shift(quantizer, relative, inputs):
    return quantizer(_moved(relative, inputs))


def _moved_sign(relative, residual, clip_value):
    return lq.quantizers.ste_sign(_moved(relative, residual), clip_value=clip_value)


def _nudged(layer, direction):
    """A copy of ``layer`` (same weights) whose input quantizer reads its input (each
    residual of a HORQ quantizer) moved by one rounding step in ``direction`` (+1 or -1);
    ``layer`` itself when it has none."""
    quantizer = getattr(layer, "input_quantizer", None)
    if quantizer is None:
        return layer
    copy = type(layer).from_config(layer.get_config())
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    spec = bit_plane_spec(quantizer)
    if isinstance(quantizer, ResidualSign):
        copy.input_quantizer.sign = functools.partial(_moved_sign, direction * SIGN_EPSILON)
    elif spec is not None:
        bits, clip_value = spec
        step = direction * TIE_EPSILON * clip_value / (2**bits - 1)
        copy.input_quantizer = functools.partial(_shifted, copy.input_quantizer, step)
    else:
        copy.input_quantizer = functools.partial(_scaled_shift, copy.input_quantizer,
                                                 direction * SIGN_EPSILON)
    return copy


class CrossingReach:
    """Per output element of a group of Keras layers, how far crossing the thresholds its
    quantizer inputs sit on (up to rounding) moves it.

    ``layers``: the group, in the model's order, its output last; ``inbound``: ``{layer
    name: names of the layers it reads}`` (:func:`.layer_map.layer_inputs`).
    """

    def __init__(self, layers, inbound):
        self.layers, self.inbound = list(layers), inbound
        self.quantized = any(getattr(layer, "input_quantizer", None) is not None
                             for layer in self.layers)
        self._copies = {}

    def _run(self, values, rows, direction):
        computed = {}
        for layer in self.layers:
            if direction and (layer.name, direction) not in self._copies:
                self._copies[layer.name, direction] = _nudged(layer, direction)
            target = self._copies[layer.name, direction] if direction else layer
            args = [computed[name] if name in computed else values[name][rows]
                    for name in self.inbound[layer.name]]
            computed[layer.name] = np.asarray(
                target(args if len(args) > 1 else args[0], training=False), np.float64)
        return computed[self.layers[-1].name]

    def __call__(self, values, rows):
        """The reach on samples ``rows``: ``values`` holds the Keras value (samples on
        axis 0) of every layer the group reads; None when no layer of it quantizes."""
        if not self.quantized:
            return None
        plain = self._run(values, rows, 0)
        return np.maximum(np.abs(self._run(values, rows, 1) - plain),
                          np.abs(self._run(values, rows, -1) - plain))
