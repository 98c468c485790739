"""HORQ layers: order-K residual-binarized inputs, per-output-channel binary weights.

Weights (eq. 18–19): ``W ≈ alpha * B`` with ``B = sign(W)`` and ``alpha = mean|W|`` per
output channel (larq's ``magnitude_aware_sign``), kept in [-1, 1] by ``weight_clip``.
Inputs: order-K residual binarization (eq. 16–17, :mod:`horq_keras.quantizers`).

Cost: a HORQ layer of order K runs K binary convolutions (or K binary matrix products)
with one shared binary kernel; ``horq_keras.summary`` counts K times the binary MACs of
one base, ``lq.models.summary`` counts one base.
"""

import larq as lq
import tensorflow as tf

from horq_keras._checks import (
    BETA_FORMS,
    check_beta_form,
    check_pad_values,
    check_padding,
)
from horq_keras.quantizers import ResidualSign, check_clip_value, check_order
from horq_keras.serialization import register

__all__ = ["BETA_FORMS", "HORQConv2D", "HORQDense", "check_float32"]

_DEPLOYABLE_AXES = {"pixel": -1, "sample": (1, 2, 3)}


def check_float32(dtype, layer):
    """Refuse a per-layer ``dtype`` whose compute type is not float32.

    The binary bases, their betas and LCE's binary ops are float32; a float16 layer
    would fail inside TensorFlow with a dtype mismatch.
    """
    if dtype is None:
        return
    name = getattr(dtype, "name", dtype)
    if isinstance(name, dict):  # a serialized policy
        name = name.get("config", {}).get("name")
    try:
        compute = tf.keras.mixed_precision.Policy(name).compute_dtype
    except (TypeError, ValueError):
        return  # not a dtype: Keras says so
    if compute != "float32":
        raise ValueError(
            f"`dtype` of {layer} must be float32 (or None); got {dtype!r}. Binary layers "
            f"compute in float32; keep mixed precision to the full-precision layers."
        )


def add_bias_and_activation(layer, outputs):
    """The end of a conv layer's ``call``: ``layer.activation(outputs + layer.bias)``."""
    if layer.use_bias:
        outputs = tf.nn.bias_add(outputs, layer.bias)
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


def _horq_config(config, order, clip_value):
    """Layer config without the derived input quantizer, with the HORQ arguments."""
    config = dict(config)
    config.pop("input_quantizer", None)
    return {**config, "order": order, "clip_value": clip_value}


@register
class HORQConv2D(lq.layers.QuantConv2D):
    r"""2D convolution with order-K HORQ inputs and binary weights (eq. 16–21).

    ``beta_form`` chooses where each ``beta_i`` is taken:

    - ``"column"`` — the paper's exact form (eq. 20–21): the input is padded with
      ``pad_values``, unfolded into im2col columns of length ``k_h * k_w * c_in``, and
      each column ``x`` gets its own bases, ``x ≈ sum_i beta_i(x) H_i(x)``; the output
      is ``y = sum_i beta_i(x) (H_i(x) · alpha B)``. Its residual signs differ per
      receptive field, so it is no single binary image and LCE cannot lower it: it is
      the reference for training studies, not for deployment.
    - ``"pixel"`` (deployable, default) — ``beta_i`` is a map over pixels, the mean of
      ``|R_{i-1}|`` over channels; each ``H_i`` is one binary image convolved with the
      binary kernel, and the output is scaled by the receptive-field average of the map,
      XNOR-Net's ``K = A * k`` (box filter of ``1/(k_h k_w)``, zero padding, same
      strides and dilation): ``y = sum_i (H_i ⊛ alpha B) ⊙ (beta_i ⊛ k)``.
    - ``"sample"`` (deployable) — one ``beta_i`` per sample, the mean of ``|R_{i-1}|``
      over height, width and channels: ``y = sum_i beta_i (H_i ⊛ alpha B)``. In training
      (``training=True``) it is computed as the equal ``(sum_i beta_i H_i) ⊛ alpha B``,
      one convolution instead of ``order``.

    The deployable forms convert with LCE to exactly ``order`` ``LceBconv2d`` ops that
    read one stored kernel; padded positions of every ``H_i`` take ``pad_values``
    (1.0: LCE's fast "same-one" padding); ``horq_keras.converters.convert`` folds a
    batch norm that follows into them (its scale fused with alpha, one ``ADD`` of its
    shift left). With ``order=1`` the pixel form is
    XNOR-Net (binary weights with alpha, binary inputs scaled by K).

    Cost: ``order`` binary convolutions per call (``horq_keras.summary`` counts them).

    Args:
        filters, kernel_size, strides, padding, dilation_rate: as ``Conv2D``.
        order: K >= 1, the number of binary input bases.
        beta_form: ``"column"``, ``"pixel"`` or ``"sample"``.
        pad_values: value of padded positions for ``padding="same"`` (see above).
        clip_value: straight-through clipping of the input signs.
        kernel_quantizer, kernel_constraint, use_bias, ...: as larq's ``QuantConv2D``;
            the defaults implement eq. 18–19 without bias.

    Raises:
        ValueError: for an invalid ``order``, ``beta_form``, ``groups`` or
            ``data_format``, and for inputs that are not rank 4.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        order=2,
        beta_form="pixel",
        strides=(1, 1),
        padding="valid",
        pad_values=1.0,
        dilation_rate=(1, 1),
        clip_value=1.0,
        kernel_quantizer="magnitude_aware_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        **kwargs,
    ):
        self.order = check_order(order)
        self.beta_form = check_beta_form(beta_form)
        self.clip_value = check_clip_value(clip_value)
        check_float32(kwargs.get("dtype"), "HORQConv2D")
        if kwargs.get("groups", 1) != 1:
            raise ValueError(f"`groups` must be 1 for HORQConv2D; got {kwargs['groups']!r}.")
        if kwargs.get("data_format") not in (None, "channels_last"):
            raise ValueError(
                "`data_format` must be 'channels_last' (or None) for HORQConv2D; "
                f"got {kwargs['data_format']!r}."
            )
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=check_padding(padding),
            pad_values=check_pad_values(pad_values),
            dilation_rate=dilation_rate,
            input_quantizer=ResidualSign(order, clip_value=clip_value, axis=-1),
            kernel_quantizer=kernel_quantizer,
            kernel_constraint=kernel_constraint,
            use_bias=use_bias,
            **kwargs,
        )
        self.input_spec = None  # the rank is checked in build(), with a clear message

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4:
            raise ValueError(
                f"`inputs` of {self.name} must be rank 4 (batch, height, width, "
                f"channels); got shape {input_shape}."
            )
        super().build(input_shape)
        self.input_quantizer.build(input_shape)  # serialised with the layer in every form

    def _pad(self, x, value):
        """Pad for ``padding="same"`` with ``value``: a number, or one per sample."""
        if self.padding != "same":
            return x
        if tf.is_tensor(value):  # per-sample value, shaped (batch, 1, 1, 1)
            return tf.pad(x - value, self._get_padding_same(x)) + value
        return tf.pad(x, self._get_padding_same(x), constant_values=value)

    def _binary_conv(self, x, kernel, pad_value=None):
        """Convolve with the binary kernel (a binary base ``x``: what LCE lowers).

        Padded positions take ``pad_value`` (default ``pad_values``).
        """
        if self._is_native_padding:
            padding = self.padding.upper()
        else:
            pad_value = self.pad_values if pad_value is None else pad_value
            x, padding = self._pad(x, pad_value), "VALID"
        return tf.nn.convolution(
            x, kernel, strides=self.strides, padding=padding, dilations=self.dilation_rate,
        )

    def _receptive_field_mean(self, beta):
        """XNOR-Net's K = A ⊛ k: mean of a one-channel map over each receptive field."""
        k_h, k_w = self.kernel_size
        box = tf.fill([k_h, k_w, 1, 1], tf.cast(1.0 / (k_h * k_w), beta.dtype))
        return tf.nn.convolution(
            beta, box, strides=self.strides, padding=self.padding.upper(),
            dilations=self.dilation_rate,
        )

    def _column_output(self, inputs, kernel):
        """eq. 20–21: residual-binarize every im2col column, then multiply."""
        patches = tf.image.extract_patches(
            self._pad(inputs, self.pad_values),
            sizes=[1, *self.kernel_size, 1],
            strides=[1, *self.strides, 1],
            rates=[1, *self.dilation_rate, 1],
            padding="VALID",
        )
        columns = self.input_quantizer(patches)
        return tf.tensordot(columns, tf.reshape(kernel, [-1, self.filters]), axes=1)

    def _deployable_output(self, inputs, kernel, channel_scale=None):
        """``sum_i (H_i ⊛ B) * (alpha * channel_scale) * beta_i`` (pixel or sample form).

        The per-channel constant ``alpha * channel_scale`` multiplies each binary
        convolution before the data-dependent ``beta_i``, so LCE folds it into the
        ``LceBconv2d`` output transform (``channel_scale``: a folded batch norm's scale,
        see ``horq_keras.converters.batchnorm_fold``). The terms are summed by pairwise
        additions: TFLite runs ADD in XNNPACK with the multiplies, ADD_N in its own kernel.
        """
        # Convolve with the ±1 kernel B and scale by alpha afterwards (eq. 18–19): the
        # binary sum is then an exact integer, as in LCE's popcount, so a zero output
        # stays exactly zero and the next layer's sign agrees with the converted model.
        alpha = tf.reduce_max(tf.abs(kernel), axis=[0, 1, 2])
        signs_kernel = tf.math.divide_no_nan(kernel, alpha)
        scale = alpha if channel_scale is None else alpha * channel_scale
        axis = _DEPLOYABLE_AXES[self.beta_form]
        outputs = []
        for beta, sign in self.input_quantizer.bases(inputs, axis):
            if self.beta_form == "pixel":
                beta = self._receptive_field_mean(beta)
            outputs.append(self._binary_conv(sign, signs_kernel) * scale * beta)
        return sum(outputs[1:], outputs[0])

    def _merged_sample_output(self, inputs, kernel):
        """Training path of the sample form: one convolution instead of ``order``.

        With one ``beta_i`` per sample, ``sum_i beta_i (H_i ⊛ B) = (sum_i beta_i H_i) ⊛ B``
        (linearity), padded positions taking ``pad_values * sum_i beta_i``: the same
        function and gradients as :meth:`_deployable_output`, which inference and LCE use.
        """
        bases = self.input_quantizer.bases(inputs, _DEPLOYABLE_AXES["sample"])
        approximation = tf.add_n([beta * sign for beta, sign in bases])
        pad_value = self.pad_values * tf.add_n([beta for beta, _ in bases])
        return self._binary_conv(approximation, kernel, pad_value)

    def _quantized_kernel(self):
        """``alpha * sign(W)``: the kernel through ``kernel_quantizer`` (eq. 18–19)."""
        with lq.context.quantized_scope(True):
            return tf.convert_to_tensor(self.kernel)

    def call(self, inputs, training=None):
        kernel = self._quantized_kernel()
        if self.beta_form == "column":
            outputs = self._column_output(inputs, kernel)
        elif self.beta_form == "sample" and training:
            outputs = self._merged_sample_output(inputs, kernel)
        else:
            outputs = self._deployable_output(inputs, kernel)
        return add_bias_and_activation(self, outputs)

    def get_config(self):
        return {
            **_horq_config(super().get_config(), self.order, self.clip_value),
            "beta_form": self.beta_form,
        }


@register
class HORQDense(lq.layers.QuantDense):
    r"""Dense layer with order-K HORQ inputs and binary weights (eq. 16–19).

    Each sample's feature vector ``x`` (the dense layer's im2col column) is
    approximated as ``x ≈ sum_i beta_i H_i``; the kernel is ``alpha * sign(W)`` per
    output unit. ``y = sum_i beta_i (H_i · alpha B)``: ``order`` binary matrix
    products per call. LCE keeps dense layers in float; for a binary dense layer in a
    converted model use a :class:`HORQConv2D` whose kernel covers the whole input.

    Args:
        units: output size.
        order: K >= 1.
        clip_value: straight-through clipping of the input signs.
        kernel_quantizer, kernel_constraint, use_bias, ...: as larq's ``QuantDense``.
    """

    def __init__(
        self,
        units,
        order=2,
        clip_value=1.0,
        kernel_quantizer="magnitude_aware_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        **kwargs,
    ):
        self.order = check_order(order)
        self.clip_value = check_clip_value(clip_value)
        check_float32(kwargs.get("dtype"), "HORQDense")
        super().__init__(
            units,
            input_quantizer=ResidualSign(order, clip_value=clip_value, axis=-1),
            kernel_quantizer=kernel_quantizer,
            kernel_constraint=kernel_constraint,
            use_bias=use_bias,
            **kwargs,
        )

    def get_config(self):
        return _horq_config(super().get_config(), self.order, self.clip_value)
