r"""k-bit activations on LCE as binary bit planes (an identity, not an approximation).

LCE has no multi-bit activation op. A uniform k-bit activation (larq's
``DoReFa(k, mode="activations")``, Group-Net's ``UniformActivation(bits, clip_value)``)
is

.. math::  q = \frac{v}{n}\, m,\qquad
           m = \mathrm{round}\Big(\frac{\mathrm{clip}(x, 0, v)}{v}\, n\Big)
             = \sum_{i<k} 2^i b_i,\qquad n = 2^k - 1,

with bits :math:`b_i \in \{0, 1\}` and clip value :math:`v` (1 for DoReFa). With the
±1 planes :math:`t_i = 1 - 2 b_i` (+1 where bit i is 0), :math:`q = v/2 - \sum_i c_i
t_i` with :math:`c_i = v\,2^i / (2n)`. Let :math:`\tilde t_i` be :math:`t_i` padded with
+1 (LCE's fast "same-one" padding) and :math:`Q` the layer's padded input (value
:math:`p` = ``pad_values`` on the border, mask :math:`M`). Inside the image
:math:`v/2 - \sum_i c_i \tilde t_i = q`, on the border it is 0, hence

.. math::  \mathrm{conv}(Q, W) = \frac{v}{2} S_W + p\,\mathrm{conv}(M, W)
           - \sum_{i<k} c_i\, \mathrm{conv}(\tilde t_i, W),

where :math:`S_W` is the per-output-channel sum of the (binary, ±alpha) kernel and
:math:`\mathrm{conv}(M, W)` is a constant border map (zero without padding or with
zero padding). Each :math:`\mathrm{conv}(\tilde t_i, W)` is one ``LceBconv2d``; its
scale :math:`-c_i` and the constant fold into the bconv's output transform. The plane
signs are :math:`t_i = \mathrm{sign}(2^i - \tfrac12 - (m \bmod 2^{i+1}))`, never at 0.

:func:`rewrite_bit_planes` replaces every eligible binary-weight ``QuantConv2D`` that
reads k-bit activations by a :class:`BitPlaneConv2D` computing the right-hand side,
before conversion.
"""

import larq as lq
import tensorflow as tf

from horq_keras.groupnet.quantizers import UniformActivation
from horq_keras.layers.bitplane import MAX_BITS, BitPlaneConv2D

__all__ = ["BitPlaneConv2D", "bit_plane_precision", "bit_plane_spec", "rewrite_bit_planes"]


def bit_plane_spec(quantizer):
    """``(bits, clip_value)`` of a uniform k-bit activation quantizer, else None.

    Recognised, with ``MAX_BITS`` of :mod:`horq_keras.layers.bitplane` as the most bits:
    ``lq.quantizers.DoReFa(k, mode="activations")`` with 1 <= k (levels {0, 1} at one
    bit; clip value 1) and Group-Net's ``UniformActivation(bits, clip_value)`` with
    2 <= bits (its 1-bit form is a scaled sign, not levels), by class or by class name
    with ``precision`` and ``clip_value`` attributes (the same quantizer defined
    elsewhere).
    """
    if isinstance(quantizer, lq.quantizers.DoReFa):
        if quantizer.mode != "activations":
            return None
        bits, clip_value = quantizer.precision, 1.0
    else:
        matches = isinstance(quantizer, UniformActivation) or (
            type(quantizer).__name__ == "UniformActivation"
        )
        if not matches or not hasattr(quantizer, "clip_value"):
            return None
        bits, clip_value = quantizer.precision, float(quantizer.clip_value)
        if bits == 1:  # Group-Net's 1-bit activation is a scaled sign, not {0, 1} levels
            return None
    if not isinstance(bits, int) or not 1 <= bits <= MAX_BITS or not clip_value > 0:
        return None
    return bits, clip_value


def bit_plane_precision(quantizer):
    """Bits of a uniform k-bit activation quantizer (see :func:`bit_plane_spec`), else None."""
    spec = bit_plane_spec(quantizer)
    return None if spec is None else spec[0]


def _eligibility(layer):
    """``(bits, clip_value)`` when ``layer`` can be rewritten, else a reason string."""
    if not isinstance(layer, lq.layers.QuantConv2D):
        return None
    spec = bit_plane_spec(layer.input_quantizer)
    if spec is None:
        return None
    if type(layer).call is not lq.layers.QuantConv2D.call:
        return f"{type(layer).__name__} overrides call(); only plain QuantConv2D is rewritten"
    kernel_quantizer = layer.kernel_quantizer
    if getattr(kernel_quantizer, "precision", None) != 1:
        return "the kernel is not binary"
    if layer.groups != 1:
        return f"groups={layer.groups}; the bit-plane rewrite needs groups=1"
    if layer.data_format != "channels_last":
        return "data_format must be 'channels_last'"
    return spec


def _replacement(layer, bits, clip_value):
    config = {k: v for k, v in layer.get_config().items() if k != "input_quantizer"}
    return BitPlaneConv2D(bits=bits, clip_value=clip_value, **config)


def rewrite_bit_planes(model):
    """Replace binary-weight convs that read k-bit activations by :class:`BitPlaneConv2D`.

    Returns ``(model, rewritten, skipped)``: the rewritten functional model (the
    input model when nothing is rewritten; other layers are shared with it), the
    names of the rewritten layers and ``{name: reason}`` for k-bit layers left as
    they are (they then stay float in the converted model).
    """
    rewritten, skipped, replacements = [], {}, {}
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            inner, inner_rewritten, inner_skipped = rewrite_bit_planes(layer)
            if inner is not layer:
                replacements[layer.name] = (layer, inner)
            rewritten += inner_rewritten
            skipped.update(inner_skipped)
            continue
        spec = _eligibility(layer)
        if isinstance(spec, str):
            skipped[layer.name] = spec
        elif spec is not None:
            replacements[layer.name] = (layer, _replacement(layer, *spec))
            rewritten.append(layer.name)
    if not replacements:
        return model, rewritten, skipped
    if not getattr(model, "_is_graph_network", False) and not isinstance(
        model, tf.keras.Sequential
    ):
        reason = "subclassed model: the bit-plane rewrite needs a functional or Sequential model"
        return model, [], {**skipped, **{name: reason for name in replacements}}

    def clone(layer):
        return replacements[layer.name][1] if layer.name in replacements else layer

    new_model = tf.keras.models.clone_model(model, clone_function=clone)
    for source, replacement in replacements.values():
        if isinstance(replacement, BitPlaneConv2D):
            replacement.set_weights(source.get_weights())
    return new_model, rewritten, skipped
