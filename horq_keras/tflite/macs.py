"""Multiply-accumulates of a converted model, from its operators' tensor shapes.

A convolution's MACs are ``batch * out_h * out_w * out_channels * k_h * k_w *
in_channels_per_group``; a fully connected layer's ``rows * units * in_features``.
``LceBconv2d`` ops are binary MACs (their input channels per group are
:func:`bconv_input_channels`), the others are float or int8 by their input's dtype.
"""

from dataclasses import dataclass

import numpy as np

from horq_keras.tflite.ops import BINARY_CONV, MAC_OPS

__all__ = ["BINARY_CONV", "MAC_OPS", "MacCount", "bconv_input_channels", "count_macs",
           "operator_macs"]


@dataclass
class MacCount:
    """MACs by kind: ``binary`` (LceBconv2d), ``float`` and ``int8``."""

    binary: int = 0
    float: int = 0
    int8: int = 0

    @property
    def total(self):
        return self.binary + self.float + self.int8

    @property
    def binary_fraction(self):
        """Fraction of all MACs computed by binary ops (0 for a model without MACs)."""
        return self.binary / self.total if self.total else 0.0


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def bconv_input_channels(op):
    """Input channels per group of an ``LceBconv2d`` op.

    Its filter is ``(out, k_h, k_w, words)`` of 32 packed bits each; the op's
    ``channels_in`` option says how many of the ``32 * words`` bits are channels (the
    rest is padding). Without the option, every bit is a channel.
    """
    packed = int(op.inputs[1].shape[-1]) * 32
    return min(int(op.custom_options.get("channels_in", packed)), packed)


def _bconv_macs(op):
    out_channels, k_h, k_w, _ = op.inputs[1].shape
    batch, out_h, out_w = op.outputs[0].shape[:3]
    return batch * out_h * out_w * out_channels * k_h * k_w * bconv_input_channels(op)


def operator_macs(op):
    """``(kind, macs)`` of one :class:`~horq_keras.tflite.graph.Operator`.

    ``kind`` is ``"binary"``, ``"float"`` or ``"int8"``; ``(None, 0)`` for an
    operator that does no multiply-accumulates.
    """
    if op.name == BINARY_CONV:
        return "binary", _bconv_macs(op)
    if op.name not in MAC_OPS:
        return None, 0
    if op.name == "TRANSPOSE_CONV":
        weights, data = op.inputs[1], op.inputs[2]
        out_channels, k_h, k_w, in_channels = weights.shape
        macs = _size(data.shape[:3]) * in_channels * k_h * k_w * out_channels
    else:
        data, weights = op.inputs[0], op.inputs[1]
        output = op.outputs[0].shape
        if op.name == "CONV_2D":
            out_channels, k_h, k_w, per_group = weights.shape
            macs = _size(output) * k_h * k_w * per_group
        elif op.name == "DEPTHWISE_CONV_2D":
            _, k_h, k_w, _ = weights.shape
            macs = _size(output) * k_h * k_w
        else:  # FULLY_CONNECTED: weights (units, in_features)
            macs = _size(output) * weights.shape[-1]
    return ("int8" if "int8" in (data.dtype, weights.dtype) else "float"), macs


def count_macs(graph):
    """:class:`MacCount` of a :class:`~horq_keras.tflite.graph.Graph`."""
    count = MacCount()
    for op in graph.operators:
        kind, macs = operator_macs(op)
        if kind is not None:
            setattr(count, kind, getattr(count, kind) + macs)
    return count
