"""Mixed-precision training (Keras ``mixed_float16``) and the float32 copy that LCE converts.

Under ``mixed_float16`` every layer computes in float16 and keeps float32 variables:

- larq's latent weights stay float32 variables (the optimizer updates full-precision
  weights; only their float16 cast reaches the convolution), and a quantizer's sign is
  exact in float16;
- Keras' ``BatchNormalization`` computes mean, variance and moving averages in float32
  for float16 inputs, and keeps float32 statistics;
- the builders end in a float32 softmax, so the loss is computed in float32.

LCE refuses to convert a ``mixed_float16`` model (TensorFlow issue 46380), so
:func:`float32_copy` rebuilds the model in float32 (nested quantizers included: larq
serializes their dtype policy inside the layer's config) and copies the weights. Made
outside a ``tf.distribute`` scope, the copy is also a plain, non-distributed model that
predicts and converts on the chief alone.
"""

import tensorflow as tf

__all__ = ["MIXED_POLICY", "float32_copy", "set_mixed_precision"]

#: The Keras policy of ``--mixed-precision``.
MIXED_POLICY = "mixed_float16"


def set_mixed_precision(enabled):
    """Set Keras' global dtype policy: :data:`MIXED_POLICY` if ``enabled``, else float32.

    Set it before building the model: a layer takes the global policy when created.
    """
    tf.keras.mixed_precision.set_global_policy(MIXED_POLICY if enabled else "float32")


def _float32_config(config):
    """``config`` with every dtype (layer and nested quantizer policies) set to float32."""
    if isinstance(config, dict):
        return {key: "float32" if key == "dtype" and value is not None
                else _float32_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    return config


def _float32_layer(layer):
    return layer.__class__.from_config(_float32_config(layer.get_config()))


def float32_copy(model):
    """A float32 copy of ``model`` (same architecture, weights copied by value).

    Call it outside any ``strategy.scope()``: the copy is then a plain model with
    ordinary variables, which predicts and converts on one process. The model object
    itself takes the global policy when created (LCE checks it), so the copy is made
    under float32 and the caller's policy restored.
    """
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("float32")
    try:
        copy = tf.keras.models.clone_model(model, clone_function=_float32_layer)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy
