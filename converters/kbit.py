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

from horq_keras.layers.horq import add_bias_and_activation

__all__ = ["BitPlaneConv2D", "bit_plane_precision", "bit_plane_spec", "rewrite_bit_planes"]

#: Bit widths the rewrite handles (LCE ops per layer = bits).
MAX_BITS = 8


def _uniform_activation_class():
    try:
        from horq_keras.groupnet.quantizers import UniformActivation
    except ImportError:
        return None
    return UniformActivation


def bit_plane_spec(quantizer):
    """``(bits, clip_value)`` of a uniform k-bit activation quantizer, else None.

    Recognised: ``lq.quantizers.DoReFa(k, mode="activations")`` (clip value 1) and
    Group-Net's ``UniformActivation(bits, clip_value)`` with 2 <= bits <= 8 (by class,
    or by class name with ``precision`` and ``clip_value`` attributes: the same
    quantizer defined elsewhere).
    """
    if isinstance(quantizer, lq.quantizers.DoReFa):
        if quantizer.mode != "activations":
            return None
        bits, clip_value = quantizer.precision, 1.0
    else:
        uniform = _uniform_activation_class()
        matches = (uniform is not None and isinstance(quantizer, uniform)) or (
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


@tf.keras.utils.register_keras_serializable(package="horq_keras")
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
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise ValueError(f"`bits` must be an integer in 1..{MAX_BITS}; got {bits!r}.")
        if not clip_value > 0:
            raise ValueError(f"`clip_value` must be > 0; got {clip_value!r}.")
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
            low_bits = m if i == self.bits - 1 else tf.math.floormod(m, 2.0 ** (i + 1))
            plane = lq.quantizers.ste_sign(2.0**i - 0.5 - low_bits)
            scale = -self.clip_value * 2.0**i / (2.0 * levels)
            terms.append(self._plane_conv(plane, kernel) * scale)
        return add_bias_and_activation(self, tf.add_n(terms) + self._constant(inputs, kernel))

    def get_config(self):
        config = super().get_config()
        config.pop("input_quantizer", None)
        return {**config, "bits": self.bits, "clip_value": self.clip_value}


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
