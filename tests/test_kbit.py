"""k-bit activations as binary bit planes: the identity in NumPy, the rewritten Keras layer
against the original QuantConv2D (every padding case), the rewrite of a model, and the
converted model: k LceBconv2d per layer and parity with the original Keras model."""

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import randomize_batch_norms

from horq_keras.converters import convert, rewrite_bit_planes
from horq_keras.converters.kbit import BitPlaneConv2D, bit_plane_spec

from horq_keras.groupnet.quantizers import UniformActivation


class _LocalUniform(lq.quantizers.Quantizer):
    """Group-Net's formula, defined here: ``v round(clip(x, 0, v) / v n) / n``."""

    def __init__(self, bits, clip_value=1.0, **kwargs):
        self.precision, self.clip_value = bits, clip_value
        super().__init__(**kwargs)

    def call(self, x):
        n = 2**self.precision - 1
        return self.clip_value * tf.round(tf.clip_by_value(x, 0.0, self.clip_value)
                                          / self.clip_value * n) / n


_LocalUniform.__name__ = "UniformActivation"  # duck-typed like Group-Net's class


def _numpy_planes(x, bits, clip_value):
    """q = v/2 - sum_i c_i t_i, t_i = 1 - 2 b_i (the module docstring's identity)."""
    n = 2**bits - 1
    m = np.round(np.clip(x, 0, clip_value) / clip_value * n).astype(np.int64)
    t = [1 - 2 * ((m >> i) & 1) for i in range(bits)]
    return clip_value / 2 - sum(clip_value * 2**i / (2 * n) * t[i] for i in range(bits))


@pytest.mark.parametrize("bits,clip_value", [(1, 1.0), (2, 1.0), (3, 2.5), (8, 1.0)])
def test_bit_plane_identity_in_numpy(rng, bits, clip_value):
    x = rng.uniform(-1, clip_value + 1, 10_000)
    n = 2**bits - 1
    q = clip_value * np.round(np.clip(x, 0, clip_value) / clip_value * n) / n
    np.testing.assert_allclose(_numpy_planes(x, bits, clip_value), q, atol=1e-12)


def _quant_conv(quantizer, padding, pad_values, strides=1, dilation=1, use_bias=False,
                name=None):
    return lq.layers.QuantConv2D(
        8, 3, name=name, padding=padding, pad_values=pad_values, strides=strides,
        dilation_rate=dilation, use_bias=use_bias, input_quantizer=quantizer,
        kernel_quantizer="magnitude_aware_sign", kernel_constraint="weight_clip",
        activation="relu" if use_bias else None,
    )


CASES = [  # quantizer, padding, pad_values, strides, dilation, use_bias
    (lq.quantizers.DoReFa(2, mode="activations"), "same", 0.0, 1, 1, False),
    (lq.quantizers.DoReFa(4, mode="activations"), "same", 1.0, 2, 1, True),
    (UniformActivation(3, clip_value=2.0), "same", 0.5, 1, 2, False),
    (UniformActivation(2, clip_value=1.5), "valid", 0.0, 2, 1, True),
    (_LocalUniform(2, clip_value=1.0), "same", 0.0, 2, 1, False),
]


@pytest.mark.parametrize("quantizer,padding,pad_values,strides,dilation,use_bias", CASES)
def test_bit_plane_layer_equals_the_quantized_conv(rng, quantizer, padding, pad_values,
                                                   strides, dilation, use_bias):
    source = _quant_conv(quantizer, padding, pad_values, strides, dilation, use_bias)
    source.build((None, 9, 9, 5))
    source.set_weights([rng.uniform(-1, 1, w.shape) for w in source.get_weights()])
    bits, clip_value = bit_plane_spec(quantizer)
    planes = BitPlaneConv2D(bits=bits, clip_value=clip_value, **{
        k: v for k, v in source.get_config().items() if k != "input_quantizer"})
    planes.build((None, 9, 9, 5))
    planes.set_weights(source.get_weights())
    # Inputs on and around every level, both sides of the clip range.
    x = rng.uniform(-0.5, clip_value + 0.5, (3, 9, 9, 5)).astype("float32")
    expected = source(x).numpy()
    np.testing.assert_allclose(planes(x).numpy(), expected, rtol=0,
                               atol=1e-5 * max(1.0, np.abs(expected).max()))


def test_spec_recognises_only_uniform_activations():
    assert bit_plane_spec(lq.quantizers.DoReFa(3, mode="activations")) == (3, 1.0)
    assert bit_plane_spec(UniformActivation(4, clip_value=2.0)) == (4, 2.0)
    assert bit_plane_spec(_LocalUniform(2, clip_value=0.5)) == (2, 0.5)
    assert bit_plane_spec(lq.quantizers.DoReFa(2, mode="weights")) is None
    assert bit_plane_spec(lq.quantizers.SteSign()) is None  # 1 bit, but ±1, not {0, 1}
    assert bit_plane_spec(UniformActivation(32)) is None  # full precision
    assert bit_plane_spec(UniformActivation(1)) is None  # scaled sign, not {0, 1} levels


@pytest.mark.parametrize("bits", [0, 9, 2.0, True])
def test_bit_plane_layer_rejects_bad_bits(bits):
    with pytest.raises(ValueError, match="`bits` must be an integer in 1..8"):
        BitPlaneConv2D(4, 3, bits=bits)


def _kbit_model(rng):
    inputs = tf.keras.Input((10, 10, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn0")(x)
    x = _quant_conv(lq.quantizers.DoReFa(2, mode="activations"), "same", 0.0,
                    name="two_bit")(x)
    x = tf.keras.layers.BatchNormalization(name="bn1")(x)
    x = lq.layers.QuantConv2D(32, 3, strides=2, padding="same", pad_values=1.0,
                              input_quantizer=UniformActivation(3, clip_value=2.0),
                              kernel_quantizer="magnitude_aware_sign",
                              kernel_constraint="weight_clip", name="three_bit")(x)
    x = tf.keras.layers.BatchNormalization(name="bn2")(x)
    x = lq.layers.QuantConv2D(32, 3, groups=2, input_quantizer=UniformActivation(2),
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              name="grouped")(x)
    outputs = tf.keras.layers.Dense(4, name="head")(tf.keras.layers.Flatten()(x))
    model = tf.keras.Model(inputs, outputs, name="kbit")
    randomize_batch_norms(model, rng, beta_range=(0.3, 0.8), variance_range=(0.5, 1.5))
    return model


def test_rewrite_replaces_eligible_layers_and_keeps_the_function(rng):
    model = _kbit_model(rng)
    rewritten, names, skipped = rewrite_bit_planes(model)
    eligible = [layer.name for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)
                and layer.groups == 1]
    assert names == eligible and len(names) == 2
    assert skipped == {"grouped": "groups=2; the bit-plane rewrite needs groups=1"}
    for name in names:
        layer = rewritten.get_layer(name)
        assert isinstance(layer, BitPlaneConv2D)
        np.testing.assert_array_equal(layer.kernel.numpy(), model.get_layer(name).kernel.numpy())
    assert rewritten.get_layer("grouped") is model.get_layer("grouped")
    assert rewritten.get_layer("three_bit").bits == 3
    x = rng.normal(0, 1, (4, 10, 10, 3)).astype("float32")
    expected = model(x).numpy()
    np.testing.assert_allclose(rewritten(x).numpy(), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())


def test_rewrite_leaves_subclassed_models_and_plain_models_alone(rng):
    class Subclassed(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = _quant_conv(lq.quantizers.DoReFa(2, mode="activations"), "same", 0.0)

        def call(self, x):
            return self.conv(x)

    model = Subclassed()
    model(tf.zeros((1, 5, 5, 2)))
    same, names, skipped = rewrite_bit_planes(model)
    assert same is model and names == []
    assert "subclassed model" in skipped[model.conv.name]

    inputs = tf.keras.Input((5, 5, 2))
    plain = tf.keras.Model(inputs, tf.keras.layers.Conv2D(2, 3)(inputs))
    assert rewrite_bit_planes(plain) == (plain, [], {})


def test_bit_plane_layer_config_round_trip(rng, tmp_path):
    rewritten, _, _ = rewrite_bit_planes(_kbit_model(rng))
    path = str(tmp_path / "planes.keras")
    rewritten.save(path)
    loaded = tf.keras.models.load_model(path, compile=False)
    layer = loaded.get_layer("three_bit")
    assert isinstance(layer, BitPlaneConv2D) and (layer.bits, layer.clip_value) == (3, 2.0)
    assert layer.pad_values == 1.0 and layer.strides == (2, 2)
    x = rng.normal(0, 1, (2, 10, 10, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), rewritten(x).numpy(), rtol=1e-6, atol=1e-5)


def test_converted_bit_planes_match_the_original_keras_model(rng, tmp_path):
    model = _kbit_model(rng)
    x = rng.normal(0, 1, (6, 10, 10, 3)).astype("float32")
    report = convert(model, tmp_path / "kbit.tflite", verify_data=x)

    layers = {layer.name: layer for layer in report.layers}
    assert report.bit_plane_layers == ["two_bit", "three_bit"]
    assert (layers["two_bit"].bconvs, layers["three_bit"].bconvs) == (2, 3)
    assert layers["two_bit"].expected_bconvs == 2 and layers["three_bit"].expected_bconvs == 3
    assert report.bconv_ops == 5
    assert not layers["grouped"].lowered
    assert "groups=2" in layers["grouped"].reason
    # The only float convolutions left: the stem and the grouped layer.
    assert report.float_conv_ops == 2
    assert report.parity.ok and report.parity.inputs == "given inputs"
    assert report.parity.max_abs_diff <= 1e-4 * report.parity.reference_max_abs + 1e-5
    data = json.loads(report.to_json())
    assert data["bit_plane_layers"] == report.bit_plane_layers


def test_groupnet_w1a2_converts_to_two_bconvs_per_layer(tmp_path):
    from horq_keras.groupnet import groupnet_resnet

    model = groupnet_resnet(stage_blocks=(1,), stage_filters=(32,), num_bases=2,
                            activation_bits=2, input_shape=(16, 16, 3), num_classes=4)
    report = convert(model, tmp_path / "w1a2.tflite", verify_data=3)
    kbit_layers = [layer.name for layer in model.layers
                   if isinstance(layer, lq.layers.QuantConv2D)
                   and isinstance(layer.input_quantizer, UniformActivation)]
    assert kbit_layers and report.bit_plane_layers == kbit_layers
    assert report.bconv_ops == 2 * len(kbit_layers) and report.float_fallbacks == []
    assert report.parity.ok
    # The low bit plane comes from FLOOR (XNNPACK), not TFLite's reference FLOOR_MOD.
    assert "FLOOR_MOD" not in report.op_counts
    # One per layer, shared by the layers that read the same activation (the bases' first
    # convs of a block).
    assert 1 <= report.op_counts["FLOOR"] <= len(kbit_layers)
