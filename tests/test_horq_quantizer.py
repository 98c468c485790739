"""HORQ residual binarization (eq. 15–17): values, eq. 15, gradients, config, bad input."""

import numpy as np
import numpy_horq
import pytest
import tensorflow as tf

from horq_keras.quantizers import ResidualSign, residual_bases

AXES = [-1, (1, 2, 3), [1, 2]]
BAD_ORDERS = [0, -1, 2.5, "2", None, True]


def _images(rng, shape=(3, 5, 5, 4), scale=1.5):
    return (scale * rng.standard_normal(shape)).astype("float32")


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_bases_match_numpy(rng, order, axis):
    x = _images(rng)
    bases = residual_bases(tf.constant(x), order, axis=axis)
    expected = numpy_horq.residual_bases(x, order, axis=tuple(np.atleast_1d(axis)))
    assert len(bases) == order
    for (beta, sign), (ref_beta, ref_sign) in zip(bases, expected):
        assert beta.shape == ref_beta.shape
        np.testing.assert_allclose(beta.numpy(), ref_beta, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(sign.numpy(), ref_sign)
    quantized = ResidualSign(order, axis=axis)(tf.constant(x)).numpy()
    np.testing.assert_allclose(
        quantized, numpy_horq.residual_binarize(x, order, tuple(np.atleast_1d(axis))),
        rtol=1e-5, atol=1e-6,
    )


def test_order_one_is_xnor_scaled_sign(rng):
    x = _images(rng, (6, 9))
    expected = np.abs(x).mean(axis=-1, keepdims=True) * np.where(x >= 0, 1.0, -1.0)
    np.testing.assert_allclose(ResidualSign(1)(x).numpy(), expected, rtol=1e-6)


def test_sign_of_zero_is_plus_one():
    x = tf.constant([[0.0, 0.0, 2.0, -2.0]])
    (beta1, sign1), (beta2, sign2) = residual_bases(x, 2)
    np.testing.assert_array_equal(sign1.numpy(), [[1.0, 1.0, 1.0, -1.0]])
    np.testing.assert_allclose(beta1.numpy(), [[1.0]])
    # R_1 = [-1, -1, 1, -1]: beta_2 = 1, H_2 = sign(R_1).
    np.testing.assert_array_equal(sign2.numpy(), [[-1.0, -1.0, 1.0, -1.0]])
    np.testing.assert_allclose(beta2.numpy(), [[1.0]])


def _columns(rng, distribution):
    """64 im2col-like columns of length 36 (3x3 kernel, 4 channels)."""
    if distribution == "normal":
        return rng.standard_normal((64, 36)).astype("float32")
    return rng.standard_cauchy((64, 36)).astype("float32")


@pytest.mark.parametrize("distribution", ["normal", "cauchy"])
def test_residual_norm_never_grows(rng, distribution):
    """eq. 15: ||R_i||^2 = ||R_{i-1}||^2 - n beta_i^2 <= ||R_{i-1}||^2, per column."""
    x = _columns(rng, distribution)
    bases = residual_bases(tf.constant(x, tf.float64), 6, axis=-1)
    residual = x.astype(np.float64)
    norms = [np.linalg.norm(residual, axis=-1)]
    for beta, sign in bases:
        beta = beta.numpy()
        expected_sq = norms[-1] ** 2 - x.shape[-1] * beta[:, 0] ** 2
        residual = residual - beta * sign.numpy()
        norms.append(np.linalg.norm(residual, axis=-1))
        np.testing.assert_allclose(norms[-1] ** 2, expected_sq, rtol=1e-9, atol=1e-9)
    norms = np.stack(norms)
    assert np.all(np.diff(norms, axis=0) < 0), "every generic column must shrink strictly"


@pytest.mark.parametrize("distribution", ["normal", "cauchy"])
def test_reconstruction_error_falls_with_order(rng, distribution):
    x = _columns(rng, distribution)
    errors = np.stack([
        np.linalg.norm(x - ResidualSign(order)(x).numpy(), axis=-1) for order in range(1, 7)
    ])
    scale = np.linalg.norm(x, axis=-1)
    assert np.all(errors[1:] <= errors[:-1] + 1e-6 * scale)
    assert np.all(errors[1:] < errors[:-1]), "generic data: strictly decreasing error"
    assert np.all(errors[0] < scale)  # order 1 already beats the zero approximation


def straight_through_sign(r, clip_value):
    """The documented rule: forward sign (0 -> +1), backward 1 where |r| <= clip."""
    binary = tf.where(r >= 0, tf.ones_like(r), -tf.ones_like(r))
    passed = r if clip_value is None else tf.clip_by_value(r, -clip_value, clip_value)
    return passed - tf.stop_gradient(passed) + tf.stop_gradient(binary)


def reference_quantize(x, order, clip_value, axis=-1):
    """sum_i beta_i H_i with straight-through signs and exact beta / residual gradients."""
    residual, total = x, 0.0
    for _ in range(order):
        beta = tf.reduce_mean(tf.abs(residual), axis=axis, keepdims=True)
        sign = straight_through_sign(residual, clip_value)
        total += beta * sign
        residual = residual - beta * sign
    return total


@pytest.mark.parametrize("clip_value", [1.0, None])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_gradient_follows_straight_through_rule(rng, order, clip_value):
    x = tf.constant(_images(rng, (4, 3, 3, 6), scale=1.5))  # some |x| > 1: clipped
    upstream = tf.constant(rng.standard_normal(x.shape).astype("float32"))
    quantizer = ResidualSign(order, clip_value=clip_value)
    outputs, grads = [], []
    for fn in (quantizer, lambda t: reference_quantize(t, order, clip_value)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * upstream)
        outputs.append(y.numpy())
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_gradient_is_zero_outside_clip_for_order_one():
    """Order 1, clip 1: d/dx [mean|x| sign(x)] = sign(x)/n + beta * 1{|x| <= 1}."""
    x = tf.constant([[-3.0, -0.5, 0.25, 2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(ResidualSign(1, clip_value=1.0)(x) * [[1.0, 2.0, 3.0, 4.0]])
    grad = tape.gradient(loss, x).numpy()
    beta, signs = np.abs(x.numpy()).mean(), np.sign(x.numpy())
    upstream = np.array([[1.0, 2.0, 3.0, 4.0]])
    mask = (np.abs(x.numpy()) <= 1.0).astype(float)
    expected = signs * (upstream * signs).sum() / 4 + beta * upstream * mask
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{}, {"order": 3, "clip_value": None, "axis": (1, 2, 3)}, {"order": 1, "axis": 1}]
)
def test_config_round_trip(rng, kwargs):
    quantizer = ResidualSign(**kwargs)
    config = quantizer.get_config()
    restored = ResidualSign.from_config(config)
    assert restored.get_config() == config
    deserialized = tf.keras.utils.deserialize_keras_object(
        tf.keras.utils.serialize_keras_object(quantizer)
    )  # by its registered name, without custom_objects
    assert type(deserialized) is ResidualSign
    assert deserialized.get_config() == config
    x = _images(rng)
    for other in (restored, deserialized):
        np.testing.assert_array_equal(other(x).numpy(), quantizer(x).numpy())


def test_precision_is_one_bit():
    assert ResidualSign(3).precision == 1


@pytest.mark.parametrize("order", BAD_ORDERS, ids=repr)
def test_bad_order_is_rejected(order):
    for build in (lambda: ResidualSign(order), lambda: residual_bases(tf.ones([2, 3]), order)):
        with pytest.raises(ValueError, match=r"`order` must be an integer >= 1"):
            build()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_value_stays_in_its_group(rng, bad):
    x = _images(rng, (3, 8))
    clean = ResidualSign(3)(x).numpy()
    x[0, 2] = bad
    y = ResidualSign(3)(x).numpy()
    assert not np.isfinite(y[0]).any()  # its group's beta is non-finite
    np.testing.assert_array_equal(y[1:], clean[1:])
