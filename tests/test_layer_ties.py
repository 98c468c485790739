"""What a quantizer input on its threshold can change, per output element, against NumPy:
a k-bit input on a rounding threshold, a sign input at 0 and a HORQ residual at 0 reach
exactly the outputs whose receptive field holds them, by what crossing does; every other
output has reach 0.
A value over the tolerance is excused only within that reach."""

import larq as lq
import numpy as np
import tensorflow as tf

from horq_keras.converters.layer_map import layer_inputs
from horq_keras.converters.layer_ties import CrossingReach
from horq_keras.converters.layerwise import _Stats
from horq_keras.groupnet.quantizers import UniformActivation
from horq_keras.layers import HORQConv2D


def _conv_model(kernel_size, input_quantizer):
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((5, 5, 1), name="image")
    outputs = lq.layers.QuantConv2D(2, kernel_size, padding="same", use_bias=False,
                                    input_quantizer=input_quantizer,
                                    kernel_quantizer="ste_sign", name="conv")(inputs)
    return tf.keras.Model(inputs, outputs)


def _reach(model, x):
    conv = model.get_layer("conv")
    return CrossingReach([conv], layer_inputs(model))({"image": x}, np.arange(len(x))), conv


def test_a_kbit_tie_reaches_its_pixel_by_one_level():
    """2-bit activation (clip 1), 1x1 conv: a pixel at u = 1.5 levels (x = 0.5) may round
    to level 1 or 2, which moves its two outputs by |w| / 3; nothing else moves."""
    x = np.full((2, 5, 5, 1), 0.1, np.float32)  # u = 0.3: no tie
    x[0, 2, 3, 0] = 0.5
    reach, conv = _reach(_conv_model(1, UniformActivation(2)), x)
    expected = np.zeros((2, 5, 5, 2))
    expected[0, 2, 3] = np.abs(np.sign(conv.get_weights()[0][0, 0, 0])) / 3
    np.testing.assert_allclose(reach, expected, atol=1e-6)


def test_a_sign_input_at_zero_reaches_its_receptive_field():
    """Sign input, 3x3 conv: an input at 0 flips from +1 to -1, which moves each output
    whose 3x3 window holds it by 2 |w| at that tap; outputs elsewhere do not move."""
    x = np.random.default_rng(0).uniform(0.5, 1.0, (1, 5, 5, 1)).astype(np.float32)
    x[0, 1, 1, 0] = 0.0
    reach, _ = _reach(_conv_model(3, "ste_sign"), x)
    moved = np.zeros((5, 5), bool)
    moved[0:3, 0:3] = True
    assert np.all(reach[0][moved] == 2.0) and np.all(reach[0][~moved] == 0.0)


def test_a_second_order_residual_at_zero_reaches_its_pixel():
    """HORQ-2, pixel beta, 1x1 conv: the pixel (1, 0.5, 1.5) has beta_1 = 1, so its first
    residual R_1 = (0, -0.5, 0.5) (eq. 17) sits on the threshold of H_2 at channel 0 while
    no input is near 0. Flipping that sign moves both outputs of the pixel by
    2 * beta_2 * alpha = 2/3 alpha; the other pixels (0.9, 0.2, 0.4) have no tie."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((3, 3, 3), name="image")
    conv = HORQConv2D(2, 1, order=2, beta_form="pixel", name="conv")
    model = tf.keras.Model(inputs, conv(inputs))
    x = np.tile(np.float32([0.9, 0.2, 0.4]), (1, 3, 3, 1))
    x[0, 1, 2] = [1.0, 0.5, 1.5]
    reach = CrossingReach([conv], layer_inputs(model))({"image": x}, np.arange(1))
    alpha = np.max(np.abs(conv._quantized_kernel().numpy()), axis=(0, 1, 2))
    expected = np.zeros((1, 3, 3, 2))
    expected[0, 1, 2] = 2 / 3 * alpha
    np.testing.assert_allclose(reach, expected, rtol=1e-5, atol=1e-7)


def test_layers_without_a_quantizer_have_no_reach():
    model = tf.keras.Sequential([tf.keras.Input((3,), name="x"),
                                 tf.keras.layers.Dense(2, name="dense")])
    reach = CrossingReach([model.get_layer("dense")], layer_inputs(model))
    assert not reach.quantized and reach({"x": np.ones((1, 3))}, np.arange(1)) is None


def test_only_values_within_the_reach_are_excused():
    expected = np.zeros((2, 4))
    actual = expected.copy()
    actual[0, 1] = 0.3   # over the tolerance, within the reach 0.5 of that element
    actual[0, 2] = 0.3   # over the tolerance, reach 0 there
    actual[1, 0] = 0.9   # over the tolerance and over the reach
    reach = np.array([[0.0, 0.5, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    stats = _Stats()
    stats.add(actual, expected, 1e-3, 0, lambda rows: reach[rows])
    result = stats.result("conv", ("conv",), "t", ("LceBconv2d",), 1.0, 1e-3, 2)
    assert (result.elements_over, result.elements_excused, result.samples_over) == (3, 1, 2)
    assert not result.ok and result.max_abs_diff == 0.9 and result.worst_sample == 1
    stats = _Stats()
    stats.add(actual[:1, :2], expected[:1, :2], 1e-3, 0, lambda rows: reach[:1, :2][rows])
    assert stats.result("conv", ("conv",), "t", (), 1.0, 1e-3, 1).ok
