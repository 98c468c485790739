"""Group-Net quantizers (eq. 1–2) against NumPy: values, straight-through gradients,
the convolution forms that use them, configs and bad arguments."""

import numpy as np
import numpy_horq
import pytest
import tensorflow as tf

from horq_keras.groupnet import (
    ACTIVATION_BITS,
    BinaryWeight,
    UniformActivation,
    binary_conv,
)

UNIFORM_BITS = [2, 3, 4, 8]
BAD_BITS = [0, 9, 16, 64, -1, 1.5, "2", None, True]


def numpy_uniform(x, bits, a):
    """eq. 2: ``a * round(clip(x, 0, a) / a * n) / n`` with ``n = 2**bits - 1`` (float32)."""
    n = np.float32(2**bits - 1)
    a = np.float32(a)
    return a * np.round(np.clip(x, 0, a) / a * n) / n


def numpy_scaled_sign(x):
    """XNOR-Net's scaled sign: ``mean|x|`` over each sample times ``sign(x)`` (sign(0) = +1)."""
    beta = np.abs(x).mean(axis=tuple(range(1, x.ndim)), keepdims=True)
    return beta * numpy_horq.sign(x)


def _value_and_grad(quantizer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x)
        loss = tf.reduce_sum(y * upstream)
    return y.numpy(), tape.gradient(loss, x).numpy()


@pytest.mark.parametrize("clip_value", [1.0, 2.5])
@pytest.mark.parametrize("bits", UNIFORM_BITS)
def test_uniform_activation_matches_numpy(rng, bits, clip_value):
    x = rng.uniform(-1.0, clip_value + 1.0, (4, 5, 5, 3)).astype("float32")
    x[0, 0, 0, :] = [0.0, clip_value, clip_value / 3]  # boundaries and a level
    quantizer = UniformActivation(bits, clip_value=clip_value)
    upstream = rng.standard_normal(x.shape).astype("float32")
    y, grad = _value_and_grad(quantizer, x, upstream)

    expected = numpy_uniform(x, bits, clip_value)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)
    levels = y / clip_value * (2**bits - 1)
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)  # on the k-bit grid
    used = set(np.unique(np.round(levels)).astype(int))
    assert used <= set(range(2**bits)) and {0, 2**bits - 1} <= used
    if bits <= 4:
        assert len(used) == 2**bits  # every level is reached
    inside = (x >= 0) & (x <= clip_value)
    np.testing.assert_array_equal(grad, np.where(inside, upstream, 0.0))  # STE


def test_uniform_activation_rounds_half_to_even():
    # 2 bits, a = 1: x = 1/6 sits halfway between levels 0 and 1/3 -> level 0 (even).
    x = np.array([[1 / 6, 0.5]], dtype="float32")
    np.testing.assert_allclose(
        UniformActivation(2)(x).numpy(), numpy_uniform(x, 2, 1.0), atol=1e-7
    )


def test_one_bit_is_xnor_scaled_sign(rng):
    x = rng.standard_normal((3, 4, 4, 5)).astype("float32")
    x[0, 0, 0, 0] = 0.0
    upstream = rng.standard_normal(x.shape).astype("float32")
    y, grad = _value_and_grad(UniformActivation(1), x, upstream)
    np.testing.assert_allclose(y, numpy_scaled_sign(x), rtol=1e-6)

    # d/dx_j sum_k g_k beta sign(x_k) = beta g_j 1{|x_j| <= 1} + sign(x_j)/n sum_k g_k sign(x_k)
    axes = (1, 2, 3)
    n = np.prod(x.shape[1:])
    beta = np.abs(x).mean(axis=axes, keepdims=True)
    sign = numpy_horq.sign(x)
    expected = beta * upstream * (np.abs(x) <= 1.0) + np.sign(x) / n * (
        (upstream * sign).sum(axis=axes, keepdims=True)
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_thirty_two_bits_is_identity(rng):
    x = rng.standard_normal((2, 7)).astype("float32") * 3
    upstream = rng.standard_normal(x.shape).astype("float32")
    y, grad = _value_and_grad(UniformActivation(32), x, upstream)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(grad, upstream)


@pytest.mark.parametrize("bits", ACTIVATION_BITS)
def test_precision_config_and_serialization(bits):
    quantizer = UniformActivation(bits, clip_value=2.0)
    assert quantizer.precision == quantizer.bits == bits and quantizer.clip_value == 2.0
    serialized = tf.keras.utils.serialize_keras_object(quantizer)
    assert serialized["registered_name"] == "horq_keras>UniformActivation"
    restored = tf.keras.utils.deserialize_keras_object(serialized)
    assert isinstance(restored, UniformActivation)
    assert (restored.precision, restored.clip_value) == (bits, 2.0)


@pytest.mark.parametrize("bits", BAD_BITS, ids=repr)
def test_bad_bits_are_rejected(bits):
    with pytest.raises(ValueError, match=r"`bits` must be one of \(1, 2, 3, 4, 5, 6, 7, 8, 32\)"):
        UniformActivation(bits)


@pytest.mark.parametrize("clip_value", [0.0, -1.0, "1", None, True])
def test_bad_clip_value_is_rejected(clip_value):
    with pytest.raises(ValueError, match="`clip_value` must be a finite number > 0"):
        UniformActivation(2, clip_value=clip_value)


@pytest.mark.parametrize("per_channel", [True, False])
def test_binary_weight_matches_numpy(rng, per_channel):
    w = rng.uniform(-1.5, 1.5, (3, 3, 4, 6)).astype("float32")
    upstream = rng.standard_normal(w.shape).astype("float32")
    y, grad = _value_and_grad(BinaryWeight(per_channel=per_channel), w, upstream)
    axes = (0, 1, 2) if per_channel else (0, 1, 2, 3)
    alpha = np.abs(w).mean(axis=axes)
    np.testing.assert_allclose(y, alpha * numpy_horq.sign(w), rtol=1e-6)
    if per_channel:
        assert len(np.unique(np.abs(y).max(axis=(0, 1, 2)).round(6))) == 6  # alpha per channel
    else:
        assert len(np.unique(np.abs(y).round(6))) == 1  # one alpha for the layer
    # alpha is held constant; the sign is straight-through inside |w| <= 1.
    np.testing.assert_allclose(grad, alpha * upstream * (np.abs(w) <= 1.0), rtol=1e-6)


def test_binary_weight_config_and_bad_flag():
    quantizer = BinaryWeight(per_channel=False, clip_value=0.5)
    assert quantizer.precision == 1
    restored = tf.keras.utils.deserialize_keras_object(
        tf.keras.utils.serialize_keras_object(quantizer))
    assert (restored.per_channel, restored.clip_value) == (False, 0.5)
    with pytest.raises(TypeError, match="`per_channel` must be True or False"):
        BinaryWeight(per_channel="channel")


def _numpy_branch_conv(x, kernel, bits, spec, per_channel=True):
    """The convolution of eq. 1–2 quantized operands, written directly in NumPy."""
    axes = (0, 1, 2) if per_channel else (0, 1, 2, 3)
    weights = np.abs(kernel).mean(axis=axes) * numpy_horq.sign(kernel)
    if bits == 1:
        # beta * (sign(x) padded with +1) ⊛ W: the quantized input's binary image is padded.
        beta = np.abs(x).mean(axis=(1, 2, 3), keepdims=True)
        return beta * spec.conv(numpy_horq.sign(x), weights, 1.0)
    quantized = x if bits == 32 else numpy_uniform(x, bits, 1.0)
    return spec.conv(quantized, weights, 0.0)


@pytest.mark.parametrize("padding,strides", [("valid", 1), ("same", 1), ("same", 2)])
@pytest.mark.parametrize("bits", [1, 2, 4, 32])
def test_branch_conv_is_conv_of_quantized_operands(rng, bits, padding, strides):
    x = rng.standard_normal((2, 7, 7, 5)).astype("float32")
    layer = binary_conv(6, 3, strides=strides, padding=padding, activation_bits=bits)
    y = layer(x).numpy()
    kernel = layer.kernel.numpy()
    spec = numpy_horq.ConvSpec(3, strides=strides, padding=padding)
    np.testing.assert_allclose(y, _numpy_branch_conv(x, kernel, bits, spec), rtol=1e-4,
                               atol=1e-4)
    assert layer.input_quantizer.precision == bits
    assert layer.kernel_quantizer.precision == 1 and not layer.use_bias
    if padding == "valid":  # no padding: exactly the convolution of UniformActivation(x)
        reference = tf.nn.conv2d(UniformActivation(bits)(x), BinaryWeight()(kernel),
                                 strides, "VALID")
        np.testing.assert_allclose(y, reference.numpy(), rtol=1e-4, atol=1e-4)


def test_per_layer_weight_scale_in_branch_conv(rng):
    x = rng.standard_normal((1, 5, 5, 3)).astype("float32")
    layer = binary_conv(4, 3, padding="valid", activation_bits=2, per_channel_weights=False)
    y = layer(x).numpy()
    spec = numpy_horq.ConvSpec(3)
    expected = _numpy_branch_conv(x, layer.kernel.numpy(), 2, spec, per_channel=False)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bits", BAD_BITS, ids=repr)
def test_branch_conv_rejects_bad_activation_bits(bits):
    with pytest.raises(ValueError, match=r"`activation_bits` must be one of"):
        binary_conv(4, 3, activation_bits=bits)
