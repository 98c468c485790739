r"""Export-time rewrite: a HORQ convolution and the batch norm after it as one layer.

A deployable :class:`~horq_keras.layers.HORQConv2D` (pixel or sample beta form, eq.
16–19) computes :math:`x = \sum_i \beta_i \odot (H_i \circledast \alpha B)`; the batch
normalization after it (inference statistics) computes :math:`y = s\,x + t` per output
channel, :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon}`, :math:`t = \beta_{BN} - s\mu`.
Per-channel constants commute with the data-dependent :math:`\beta_i`:

.. math::  y = \sum_i \beta_i \odot \big(H_i \circledast (s\,\alpha) B\big) + t,

so the constant :math:`s\alpha` multiplies each binary convolution *before*
:math:`\beta_i` and LCE folds it into the ``LceBconv2d`` output transform: per layer
the converted graph loses the batch norm's ``MUL`` and keeps one ``ADD`` of :math:`t`
(a bias of the HORQ layer folds into :math:`t`).

:func:`fold_horq_batch_norms` rewrites a model this way for conversion (``convert``
calls it); training keeps the two layers.
"""

import tensorflow as tf

from horq_keras.layers import HORQConv2D
from horq_keras.serialization import register

__all__ = ["FoldedHORQConv2D", "fold_horq_batch_norms"]


@register
class FoldedHORQConv2D(HORQConv2D):
    """Inference form of ``HORQConv2D -> BatchNormalization`` (module docstring).

    Computes ``sum_i beta_i * (H_i ⊛ B) * (alpha * output_scale) + output_shift`` with
    the deployable beta form, whatever ``training`` is; built by
    :func:`fold_horq_batch_norms` for conversion, not meant for training.
    """

    def __init__(self, filters, kernel_size, beta_form="pixel", **kwargs):
        if beta_form not in ("pixel", "sample"):
            raise ValueError(
                f"`beta_form` must be 'pixel' or 'sample' for FoldedHORQConv2D; got "
                f"{beta_form!r}."
            )
        super().__init__(filters, kernel_size, beta_form=beta_form, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.output_scale = self.add_weight(
            name="output_scale", shape=(self.filters,), initializer="ones", trainable=False)
        self.output_shift = self.add_weight(
            name="output_shift", shape=(self.filters,), initializer="zeros", trainable=False)

    def call(self, inputs, training=None):
        kernel = self._quantized_kernel()
        outputs = self._deployable_output(inputs, kernel, self.output_scale)
        return outputs + self.output_shift


def _batch_norm_affine(batch_norm):
    """``(s, t)`` of an inference-mode batch norm: ``y = s * x + t`` per channel."""
    inverse = tf.math.rsqrt(batch_norm.moving_variance + batch_norm.epsilon)
    scale = inverse * batch_norm.gamma if batch_norm.scale else inverse
    shift = -batch_norm.moving_mean * scale
    if batch_norm.center:
        shift = shift + batch_norm.beta
    return scale.numpy(), shift.numpy()


def _consumers(config):
    """``{layer name: [consuming layer names]}`` of a functional or Sequential config;
    a model output counts as a consumer ``None``."""
    layers = config["layers"]
    if "input_layers" not in config:  # Sequential: a chain
        names = [layer["config"]["name"] for layer in layers]
        return {name: [after] for name, after in zip(names, names[1:] + [None])}
    consumers = {layer["name"]: [] for layer in layers}
    for layer in layers:
        for node in layer["inbound_nodes"]:  # each node: [[name, node, tensor, kwargs], ...]
            for name in {inbound[0] for inbound in node}:
                consumers[name].append(layer["name"])
    for output in config["output_layers"]:
        consumers[output[0]].append(None)
    return consumers


def _foldable(layer, after):
    """``after`` is a batch norm over the channels of ``layer``, a deployable HORQ conv."""
    return (
        type(layer) is HORQConv2D
        and layer.beta_form in ("pixel", "sample")
        and layer.activation in (None, tf.keras.activations.linear)
        and isinstance(after, tf.keras.layers.BatchNormalization)
        and list(after.axis) in ([3], [-1])
        and len(layer.inbound_nodes) == 1
        and len(after.inbound_nodes) == 1
    )


def _folded(layer, batch_norm):
    config = {**layer.get_config(), "use_bias": False, "activation": None}
    folded = FoldedHORQConv2D.from_config(config)
    folded.build(layer.input_shape)
    scale, shift = _batch_norm_affine(batch_norm)
    if layer.use_bias:
        shift = shift + scale * layer.bias.numpy()
    folded.kernel.assign(layer.kernel)
    folded.output_scale.assign(scale)
    folded.output_shift.assign(shift)
    return folded


def fold_horq_batch_norms(model):
    """Fold each batch norm that directly follows a deployable ``HORQConv2D`` into it.

    A pair folds when the HORQ layer (pixel or sample form, no activation, called
    once) has the batch norm (over the channel axis, called once) as its only
    consumer. The HORQ layer becomes a :class:`FoldedHORQConv2D` of the same name and
    the batch norm a linear ``Activation`` of the same name (no op after conversion).

    Returns:
        ``(model, folded)``: the rewritten functional or Sequential model (``model``
        itself when nothing folds; other layers are shared with it) and the names of
        the folded HORQ layers.
    """
    replacements, folded = {}, []
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            inner, inner_folded = fold_horq_batch_norms(layer)
            if inner is not layer:
                replacements[layer.name] = inner
            folded += inner_folded
    graph_network = getattr(model, "_is_graph_network", False) or isinstance(
        model, tf.keras.Sequential)
    if graph_network:
        by_name = {layer.name: layer for layer in model.layers}
        for name, consumers in _consumers(model.get_config()).items():
            after = by_name.get(consumers[0]) if len(consumers) == 1 else None
            if name in by_name and _foldable(by_name[name], after):
                replacements[name] = _folded(by_name[name], after)
                replacements[after.name] = tf.keras.layers.Activation("linear", name=after.name)
                folded.append(name)
    if not replacements or not graph_network:
        return model, []
    return tf.keras.models.clone_model(
        model, clone_function=lambda layer: replacements.get(layer.name, layer)), folded
