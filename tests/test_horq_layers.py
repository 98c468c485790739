"""HORQConv2D / HORQDense against the NumPy reference: forms, XNOR-Net, gradients, config."""

import itertools

import numpy as np
import numpy_horq
import pytest
import tensorflow as tf

from horq_keras.layers import BETA_FORMS, HORQConv2D, HORQDense
from horq_keras.models import horq_lenet

INPUT_SHAPE = (2, 8, 8, 4)
FILTERS = 6
BAD_ORDERS = [0, -1, 2.5, "2", None, True]


def _inputs(rng, shape=INPUT_SHAPE):
    return rng.standard_normal(shape).astype("float32")


def _conv(rng, kernel_size=3, input_shape=INPUT_SHAPE, kernel_range=1.0, **kwargs):
    """A built HORQConv2D with a random kernel in [-kernel_range, kernel_range]."""
    layer = HORQConv2D(FILTERS, kernel_size, **kwargs)
    layer.build((None, *input_shape[1:]))
    kernel = rng.uniform(-kernel_range, kernel_range, layer.kernel.shape).astype("float32")
    layer.set_weights([kernel])
    return layer, kernel


def _spec(layer):
    return numpy_horq.ConvSpec(
        layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding, layer.pad_values
    )


def _assert_close(actual, expected):
    """rtol 1e-5; near-zero outputs are judged against the output's scale."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


# --- the NumPy reference itself --------------------------------------------------------


@pytest.mark.parametrize(
    "size, kernel_size, strides, dilation, padding",
    [(8, 3, 1, 1, "SAME"), (8, 3, 2, 1, "SAME"), (7, 4, 2, 1, "SAME"), (8, 3, 1, 2, "SAME"),
     (8, 3, 2, 1, "VALID"), (9, 2, 1, 3, "VALID")],
)
def test_numpy_reference_convolution_matches_tensorflow(rng, size, kernel_size, strides,
                                                        dilation, padding):
    x = _inputs(rng, (2, size, size, 3))
    kernel = rng.standard_normal((kernel_size, kernel_size, 3, 5)).astype("float32")
    spec = numpy_horq.ConvSpec(kernel_size, strides, dilation, padding.lower())
    expected = tf.nn.conv2d(x, kernel, strides, padding, dilations=dilation).numpy()
    np.testing.assert_allclose(spec.conv(x, kernel, 0.0), expected, rtol=1e-4, atol=1e-5)


# --- forward: layers against NumPy -----------------------------------------------------


@pytest.mark.parametrize(
    "order, strides, padding",
    list(itertools.product([1, 2, 3, 4], [1, 2], ["valid", "same"])),
)
def test_column_form_matches_numpy(rng, order, strides, padding):
    layer, kernel = _conv(rng, order=order, beta_form="column", strides=strides, padding=padding)
    x = _inputs(rng)
    expected = numpy_horq.horq_conv_column(x, kernel, order, _spec(layer))
    _assert_close(layer(x).numpy(), expected)


@pytest.mark.parametrize(
    "beta_form, padding, pad_values, dilation",
    [("column", "same", 1.0, 2), ("column", "same", 0.0, 1), ("column", "valid", 1.0, 2),
     ("pixel", "same", 1.0, 2), ("sample", "same", 0.0, 2)],
)
def test_dilation_and_pad_values_match_numpy(rng, beta_form, padding, pad_values, dilation):
    layer, kernel = _conv(
        rng, order=2, beta_form=beta_form, padding=padding, pad_values=pad_values,
        dilation_rate=dilation,
    )
    x = _inputs(rng)
    expected = numpy_horq.HORQ_CONV[beta_form](x, kernel, 2, _spec(layer))
    _assert_close(layer(x).numpy(), expected)


@pytest.mark.parametrize(
    "beta_form, order, strides, padding, pad_values",
    [
        (form, order, strides, padding, pad_values)
        for form, order, strides in itertools.product(["pixel", "sample"], [1, 2, 3], [1, 2])
        for padding, pad_values in [("valid", 1.0), ("same", 0.0), ("same", 1.0)]
    ],
)
def test_deployable_forms_match_numpy(rng, beta_form, order, strides, padding, pad_values):
    layer, kernel = _conv(
        rng, order=order, beta_form=beta_form, strides=strides, padding=padding,
        pad_values=pad_values,
    )
    x = _inputs(rng)
    expected = numpy_horq.HORQ_CONV[beta_form](x, kernel, order, _spec(layer))
    _assert_close(layer(x).numpy(), expected)


@pytest.mark.parametrize("beta_form", ["pixel", "sample"])
@pytest.mark.parametrize("order", [1, 2])
def test_chained_layers_match_numpy(rng, beta_form, order):
    """A HORQ layer fed by another one (a binary product can cancel to exactly 0).

    The first layer's outputs are ``alpha * beta * n`` with integer ``n``; where the
    ±1 products cancel (``n = 0``) the output is exactly 0 and the next layer's sign
    is +1, as in LCE's integer popcount arithmetic.
    """
    first, kernel1 = _conv(rng, order=order, beta_form=beta_form)
    second, kernel2 = _conv(
        rng, order=order, beta_form=beta_form, input_shape=(2, 6, 6, FILTERS), padding="same",
    )
    x = _inputs(rng)
    hidden = numpy_horq.HORQ_CONV[beta_form](x, kernel1, order, _spec(first))
    assert np.sum(hidden == 0) > 0, "the test needs cancelling binary products"
    expected = numpy_horq.HORQ_CONV[beta_form](hidden, kernel2, order, _spec(second))
    _assert_close(second(first(x)).numpy(), expected)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_dense_matches_numpy(rng, order):
    layer = HORQDense(5, order=order)
    layer.build((None, 12))
    kernel = rng.uniform(-1, 1, (12, 5)).astype("float32")
    layer.set_weights([kernel])
    x = _inputs(rng, (4, 12))
    _assert_close(layer(x).numpy(), numpy_horq.horq_dense(x, kernel, order))


@pytest.mark.parametrize(
    "strides, padding, pad_values", [(1, "valid", 1.0), (2, "same", 1.0), (1, "same", 0.0)]
)
def test_order_one_is_xnor_net(rng, strides, padding, pad_values):
    x = _inputs(rng)
    kwargs = {"order": 1, "strides": strides, "padding": padding, "pad_values": pad_values}
    pixel, kernel = _conv(rng, beta_form="pixel", **kwargs)
    _assert_close(pixel(x).numpy(), numpy_horq.xnor_net_conv(x, kernel, _spec(pixel)))
    column = HORQConv2D(FILTERS, 3, beta_form="column", **kwargs)
    column.build(x.shape)
    column.set_weights([kernel])
    _assert_close(column(x).numpy(), numpy_horq.xnor_net_column_conv(x, kernel, _spec(column)))


def test_higher_order_approximates_the_float_convolution_better(rng):
    """eq. 15 at layer level: the column form's output error falls with the order."""
    x = _inputs(rng)
    kernel = rng.uniform(-1, 1, (3, 3, 4, FILTERS)).astype("float32")
    alpha, binary = numpy_horq.binary_kernel(kernel)
    float_input = numpy_horq.ConvSpec(3).conv(x, binary * alpha, 0.0)
    errors = []
    for order in range(1, 5):
        layer = HORQConv2D(FILTERS, 3, order=order, beta_form="column")
        layer.build(x.shape)
        layer.set_weights([kernel])
        errors.append(np.linalg.norm(layer(x).numpy() - float_input))
    assert all(later < earlier for earlier, later in itertools.pairwise(errors)), errors


# --- gradients -------------------------------------------------------------------------


def straight_through_sign(r, clip_value):
    """Forward sign (0 -> +1); backward passes where |r| <= clip_value."""
    binary = tf.where(r >= 0, tf.ones_like(r), -tf.ones_like(r))
    passed = r if clip_value is None else tf.clip_by_value(r, -clip_value, clip_value)
    return passed - tf.stop_gradient(passed) + tf.stop_gradient(binary)


def reference_bases(x, order, axis, clip_value):
    residual, bases = x, []
    for _ in range(order):
        beta = tf.reduce_mean(tf.abs(residual), axis=axis, keepdims=True)
        sign = straight_through_sign(residual, clip_value)
        bases.append((beta, sign))
        residual = residual - beta * sign
    return bases


def reference_kernel(kernel):
    """larq's magnitude_aware_sign rule: alpha under stop_gradient, ste_sign(clip 1)."""
    axes = list(range(len(kernel.shape) - 1))
    alpha = tf.stop_gradient(tf.reduce_mean(tf.abs(kernel), axis=axes))
    return alpha * straight_through_sign(kernel, 1.0)


def reference_conv_output(layer, x, kernel):
    """HORQConv2D's forward in plain TF ops with the documented gradient rule."""
    spec = _spec(layer)
    paddings = [[0, 0], *[
        numpy_horq.same_padding(x.shape[i + 1], spec.kernel_size[i], spec.strides[i],
                                spec.dilation[i]) if spec.padding == "same" else (0, 0)
        for i in range(2)
    ], [0, 0]]

    def conv(t, filters, value):
        return tf.nn.conv2d(tf.pad(t, paddings, constant_values=value), filters, spec.strides,
                            "VALID", dilations=spec.dilation)

    weights = reference_kernel(kernel)
    if layer.beta_form == "column":
        columns = tf.image.extract_patches(
            tf.pad(x, paddings, constant_values=spec.pad_values), [1, *spec.kernel_size, 1],
            [1, *spec.strides, 1], [1, *spec.dilation, 1], "VALID",
        )
        quantized = tf.add_n([b * h for b, h in reference_bases(columns, layer.order, -1,
                                                                layer.clip_value)])
        return tf.tensordot(quantized, tf.reshape(weights, [-1, FILTERS]), axes=1)
    axis = -1 if layer.beta_form == "pixel" else [1, 2, 3]
    box = tf.fill([*spec.kernel_size, 1, 1], np.float32(1.0 / np.prod(spec.kernel_size)))
    outputs = []
    for beta, sign in reference_bases(x, layer.order, axis, layer.clip_value):
        scale = conv(beta, box, 0.0) if layer.beta_form == "pixel" else beta
        outputs.append(conv(sign, weights, spec.pad_values) * scale)
    return tf.add_n(outputs)


@pytest.mark.parametrize(
    "beta_form, order, strides, padding, clip_value",
    [("pixel", 1, 1, "valid", 1.0), ("pixel", 2, 2, "same", 1.0), ("pixel", 3, 1, "same", None),
     ("column", 1, 1, "same", 1.0), ("column", 2, 2, "valid", 1.0), ("column", 3, 1, "same", None),
     ("sample", 2, 2, "same", 1.0)],
)
def test_conv_gradients_follow_documented_rule(rng, beta_form, order, strides, padding,
                                               clip_value):
    # Kernel partly outside [-1, 1] (set directly; the constraint acts only in
    # optimizer steps) so the kernel's straight-through clipping is exercised.
    layer, kernel = _conv(
        rng, order=order, beta_form=beta_form, strides=strides, padding=padding,
        clip_value=clip_value, kernel_range=1.5,
    )
    x = tf.constant(1.5 * _inputs(rng))
    reference_kernel_variable = tf.Variable(kernel)
    upstream = None
    results = []
    for forward, variable in [
        (lambda: layer(x), layer.kernel),
        (lambda: reference_conv_output(layer, x, reference_kernel_variable),
         reference_kernel_variable),
    ]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward()
            if upstream is None:
                upstream = tf.constant(rng.standard_normal(y.shape).astype("float32"))
            loss = tf.reduce_sum(y * upstream)
        grad_x, grad_kernel = tape.gradient(loss, [x, variable])
        results.append((y.numpy(), grad_x.numpy(), grad_kernel.numpy()))
    (y, grad_x, grad_kernel), (ref_y, ref_grad_x, ref_grad_kernel) = results
    _assert_close(y, ref_y)
    _assert_close(grad_x, ref_grad_x)
    _assert_close(grad_kernel, ref_grad_kernel)
    assert np.any(ref_grad_kernel == 0) and np.any(ref_grad_kernel != 0)  # clipped and not


@pytest.mark.parametrize(
    "order, strides, padding, pad_values",
    [(1, 1, "same", 1.0), (2, 2, "same", 1.0), (3, 1, "same", 0.0), (2, 1, "valid", 1.0),
     (3, 2, "same", 1.0)],
)
def test_sample_training_path_equals_inference_path(rng, order, strides, padding, pad_values):
    """The sample form trains with one merged convolution; values and gradients are those
    of the K-convolution path that inference and LCE use (checked against NumPy above)."""
    layer, _ = _conv(rng, order=order, beta_form="sample", strides=strides, padding=padding,
                     pad_values=pad_values, kernel_range=1.5)
    x = tf.constant(1.5 * _inputs(rng))
    upstream = tf.constant(rng.standard_normal(layer(x).shape).astype("float32"))
    results = []
    for training in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * upstream)
        grad_x, grad_kernel = tape.gradient(loss, [x, layer.kernel])
        results.append((y.numpy(), grad_x.numpy(), grad_kernel.numpy()))
    for merged, per_base in zip(*results):
        _assert_close(merged, per_base)


def test_dense_gradients_follow_documented_rule(rng):
    layer = HORQDense(5, order=2)
    layer.build((None, 12))
    kernel = rng.uniform(-1.5, 1.5, (12, 5)).astype("float32")
    layer.set_weights([kernel])
    reference_kernel_variable = tf.Variable(kernel)
    x = tf.constant(1.5 * _inputs(rng, (4, 12)))
    upstream = tf.constant(rng.standard_normal((4, 5)).astype("float32"))

    def reference():
        quantized = tf.add_n([b * h for b, h in reference_bases(x, 2, -1, 1.0)])
        return quantized @ reference_kernel(reference_kernel_variable)

    grads = []
    for forward, variable in [(lambda: layer(x), layer.kernel),
                              (reference, reference_kernel_variable)]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(forward() * upstream)
        grads.append([g.numpy() for g in tape.gradient(loss, [x, variable])])
    for actual, expected in zip(*grads):
        _assert_close(actual, expected)


# --- config ----------------------------------------------------------------------------


@pytest.mark.parametrize("beta_form", BETA_FORMS)
def test_conv_config_round_trip(rng, beta_form):
    layer, kernel = _conv(
        rng, order=3, beta_form=beta_form, strides=2, padding="same", pad_values=0.0,
        dilation_rate=1, clip_value=None, name=f"horq_{beta_form}",
    )
    config = layer.get_config()
    assert (config["order"], config["beta_form"], config["clip_value"]) == (3, beta_form, None)
    restored = HORQConv2D.from_config(config)
    restored.build((None, *INPUT_SHAPE[1:]))
    restored.set_weights([kernel])
    assert restored.get_config() == config
    x = _inputs(rng)
    np.testing.assert_array_equal(restored(x).numpy(), layer(x).numpy())


def test_dense_config_round_trip(rng):
    layer = HORQDense(5, order=4, clip_value=0.5, use_bias=True, name="horq_dense_rt")
    layer.build((None, 12))
    layer.set_weights([rng.uniform(-1, 1, (12, 5)), rng.standard_normal(5)])
    config = layer.get_config()
    assert (config["order"], config["clip_value"]) == (4, 0.5)
    restored = HORQDense.from_config(config)
    restored.build((None, 12))
    restored.set_weights(layer.get_weights())
    assert restored.get_config() == config
    x = _inputs(rng, (3, 12))
    np.testing.assert_array_equal(restored(x).numpy(), layer(x).numpy())


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("order", BAD_ORDERS, ids=repr)
def test_bad_order_is_rejected(order):
    builders = [
        lambda: HORQConv2D(4, 3, order=order),
        lambda: HORQDense(4, order=order),
        lambda: horq_lenet(order=order),
    ]
    for build in builders:
        with pytest.raises(ValueError, match=r"`order` must be an integer >= 1"):
            build()


@pytest.mark.parametrize("beta_form", ["Pixel", "columns", "", None])
def test_unknown_beta_form_is_rejected(beta_form):
    with pytest.raises(ValueError, match=r"`beta_form` must be one of") as error:
        HORQConv2D(4, 3, beta_form=beta_form)
    assert all(repr(form) in str(error.value) for form in BETA_FORMS)


def test_rank_three_input_is_rejected():
    layer = HORQConv2D(4, 3)
    with pytest.raises(ValueError, match=r"`inputs` .* must be rank 4"):
        layer(tf.zeros([2, 28, 28]))
    with pytest.raises(ValueError, match=r"`inputs` .* must be rank 4"):
        HORQConv2D(4, 3)(tf.keras.Input((28, 28)))


def _receptive_fields_containing(layer, shape, row, col):
    """Output positions whose receptive field contains input pixel (row, col)."""
    marker = np.zeros((1, *shape[1:3], 1))
    marker[0, row, col, 0] = 1.0
    spec = _spec(layer)
    ones = np.ones((*spec.kernel_size, 1, 1))
    return spec.conv(marker, ones, 0.0)[0, :, :, 0] > 0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("beta_form", BETA_FORMS)
def test_non_finite_input_stays_in_its_beta_group(rng, beta_form, bad):
    layer, _ = _conv(rng, order=2, beta_form=beta_form, padding="same", strides=2)
    x = _inputs(rng)
    clean = layer(x).numpy()
    x[0, 3, 4, 1] = bad
    y = layer(x).numpy()
    # Other samples: unaffected, and equal to their output computed alone (up to float
    # rounding: the column form's matmul may block differently for another batch size).
    np.testing.assert_array_equal(y[1:], clean[1:])
    np.testing.assert_allclose(y[1:], layer(x[1:]).numpy(), rtol=1e-5, atol=1e-6)
    # Sample 0: non-finite exactly in the beta group of the bad pixel.
    if beta_form == "sample":
        group = np.ones(y.shape[1:3], dtype=bool)
    else:
        group = _receptive_fields_containing(layer, x.shape, 3, 4)
    assert not np.isfinite(y[0][group]).any()
    np.testing.assert_array_equal(y[0][~group], clean[0][~group])
