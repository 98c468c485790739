"""Which layers meant to be binary became ``LceBconv2d`` ops, and why the others did not.

A layer is *meant to be binary* when its input or kernel quantizer is 1-bit (larq's
rule), or it is a HORQ or bit-plane layer. Each ``LceBconv2d`` of the converted graph
is attributed to the layer whose binary kernel it stores: LCE packs the kernel signs
little-endian along the input channels (bit 1 = negative), so the unpacked filter is
compared with the sign of each layer's quantized kernel. (Tensor names cannot do it:
LCE truncates them and names fused outputs after the next layer.) For a layer left in
float, :func:`float_reason` names the LCE rule it breaks.
"""

import hashlib
from dataclasses import dataclass

import larq as lq
import numpy as np
import tensorflow as tf

from horq_keras.converters.kbit import BitPlaneConv2D, bit_plane_precision
from horq_keras.layers import HORQConv2D, HORQDense
from horq_keras.tflite.macs import BINARY_CONV, bconv_input_channels

__all__ = ["LayerLowering", "expected_bconvs", "float_reason", "iter_layers", "layer_lowering"]

#: Input quantizers LCE lowers to ``LceQuantize`` (by larq's serialized name).
LOWERED_INPUT_QUANTIZERS = frozenset(
    {"ste_sign", "approx_sign", "swish_sign", "SteSign", "ApproxSign", "SwishSign",
     "ResidualSign"}
)
#: Kernel quantizers that fold to ±alpha per output channel.
LOWERED_KERNEL_QUANTIZERS = frozenset(
    {"ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign", "SteSign",
     "ApproxSign", "SwishSign", "MagnitudeAwareSign", "BinaryWeight"}  # + Group-Net's
)


@dataclass
class LayerLowering:
    """How one layer meant to be binary was converted."""

    name: str
    kind: str
    expected_bconvs: int  # LceBconv2d ops per call when it lowers (HORQ: its order)
    bconvs: int  # LceBconv2d ops of the converted graph that store its kernel
    reason: str = None  # why it stayed float; None when it lowered
    kernel_buffers: int = 0  # distinct flatbuffer buffers holding its binary kernel

    @property
    def lowered(self):
        return self.bconvs > 0

    def to_dict(self):
        return {"name": self.name, "kind": self.kind, "expected_bconvs": self.expected_bconvs,
                "bconvs": self.bconvs, "kernel_buffers": self.kernel_buffers,
                "reason": self.reason}


def iter_layers(model):
    """All layers of ``model``, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def _quantizer_name(quantizer):
    if quantizer is None:
        return None
    serialized = lq.quantizers.serialize(quantizer)
    return serialized["class_name"] if isinstance(serialized, dict) else str(serialized)


def _is_one_bit(quantizer):
    """A quantizer whose outputs LCE can lower to bits: larq's public ``precision``
    attribute is 1, and it is not a ``NoOp`` (which only tags a variable's precision and
    leaves its values float, so there is no sign for LCE to find)."""
    return getattr(quantizer, "precision", None) == 1 and not isinstance(
        quantizer, lq.quantizers.NoOp)


def _weight_quantizer(layer):
    for attribute in ("kernel_quantizer", "depthwise_quantizer"):
        if hasattr(layer, attribute):
            return getattr(layer, attribute)
    return None


def expected_bconvs(layer):
    """``LceBconv2d`` ops per call of ``layer`` when lowered; None if not meant binary."""
    if isinstance(layer, (HORQConv2D, HORQDense)):
        return layer.order
    if isinstance(layer, BitPlaneConv2D):
        return layer.bits
    input_quantizer = getattr(layer, "input_quantizer", None)
    if not isinstance(layer, lq.layers_base.BaseLayer):
        return None
    if _is_one_bit(input_quantizer) or _is_one_bit(_weight_quantizer(layer)):
        return 1
    return None


def float_reason(layer, target="arm"):
    """Why LCE keeps ``layer`` (meant to be binary) in float, as one sentence."""
    kind = type(layer).__name__
    input_quantizer = getattr(layer, "input_quantizer", None)
    weight_quantizer = _weight_quantizer(layer)
    if isinstance(layer, (lq.layers.QuantDense, HORQDense)):
        return (f"{kind}: LCE keeps dense layers in float (FULLY_CONNECTED); use a 1x1 "
                f"QuantConv2D (or a HORQConv2D whose kernel covers the input) instead")
    if isinstance(layer, (lq.layers.QuantDepthwiseConv2D, lq.layers.QuantSeparableConv2D)):
        return f"{kind}: depthwise convolution, LCE has no binary depthwise op"
    if isinstance(layer, lq.layers.QuantConv2DTranspose):
        return f"{kind}: LCE has no binary transpose convolution"
    if not isinstance(layer, lq.layers.QuantConv2D):
        return f"{kind}: LCE lowers only 2D convolutions to LceBconv2d"
    groups = getattr(layer, "groups", 1)
    channels = layer.kernel.shape[2]
    if groups > 1 and channels % 32:
        return (f"grouped convolution with {channels} input channels per group, "
                f"not a multiple of 32")
    if target == "xcore" and layer.padding == "same" and layer.pad_values == 0.0:
        return "zero padding (pad_values=0) is not lowered for target 'xcore'; use pad_values=1.0"
    if input_quantizer is None and not isinstance(layer, BitPlaneConv2D):
        return "float inputs (no input_quantizer): LCE's binary conv needs binary inputs"
    precision = bit_plane_precision(input_quantizer)
    if precision is not None:
        return (f"{precision}-bit input quantizer {_quantizer_name(input_quantizer)}: LCE has "
                f"no multi-bit op; convert with bit planes (kbit=True) for a functional "
                f"model with groups=1")
    input_name = _quantizer_name(input_quantizer)
    if input_name is not None and input_name not in LOWERED_INPUT_QUANTIZERS:
        return (f"input quantizer {input_name} is not lowered by LCE (it lowers "
                f"ste_sign, approx_sign, swish_sign)")
    if not _is_one_bit(weight_quantizer):
        return (f"kernel is not binary (kernel_quantizer="
                f"{_quantizer_name(weight_quantizer)})")
    kernel_name = _quantizer_name(weight_quantizer)
    if kernel_name not in LOWERED_KERNEL_QUANTIZERS:
        return (f"kernel quantizer {kernel_name} does not fold to ±alpha per output "
                f"channel")
    return "LCE did not lower it (no known rule applies)"


def _sign_key(negative):
    negative = np.ascontiguousarray(negative, dtype=bool)
    return negative.shape, hashlib.sha1(np.packbits(negative).tobytes()).hexdigest()


def _layer_sign_key(layer):
    with lq.context.quantized_scope(True):
        kernel = tf.convert_to_tensor(layer.kernel).numpy()
    # Keras (k_h, k_w, c_in, out) -> LCE (out, k_h, k_w, c_in)
    return _sign_key(np.transpose(kernel, (3, 0, 1, 2)) < 0)


def _bconv_sign_key(op, graph):
    filters = op.inputs[1]
    data = graph.model.buffers[filters.buffer].data
    words = np.frombuffer(bytes(bytearray(data)), dtype="<i4").reshape(filters.shape)
    bits = np.unpackbits(words.view(np.uint8).reshape(*filters.shape[:3], -1),
                         axis=-1, bitorder="little").astype(bool)
    return _sign_key(bits[..., : bconv_input_channels(op)])


def layer_lowering(model, graph, target="arm"):
    """:class:`LayerLowering` of every layer of ``model`` meant to be binary.

    Returns ``(lowerings, unattributed)``: ``unattributed`` counts the ``LceBconv2d``
    ops whose kernel matches no layer's.
    """
    candidates = [(layer, expected_bconvs(layer)) for layer in iter_layers(model)]
    candidates = [(layer, n) for layer, n in candidates if n is not None]
    by_key = {}
    for layer, _ in candidates:
        if getattr(layer, "kernel", None) is not None and len(layer.kernel.shape) == 4:
            by_key.setdefault(_layer_sign_key(layer), layer.name)
    found = {layer.name: [] for layer, _ in candidates}  # filter buffer of each bconv
    unattributed = 0
    for op in graph.operators:
        if op.name == BINARY_CONV and op.inputs[1].constant:
            name = by_key.get(_bconv_sign_key(op, graph))
            if name is None:
                unattributed += 1
            else:
                found[name].append(op.inputs[1].buffer)
    lowerings = [
        LayerLowering(
            name=layer.name,
            kind=type(layer).__name__,
            expected_bconvs=n,
            bconvs=len(found[layer.name]),
            reason=None if found[layer.name] else float_reason(layer, target),
            kernel_buffers=len(set(found[layer.name])),
        )
        for layer, n in candidates
    ]
    return lowerings, unattributed
