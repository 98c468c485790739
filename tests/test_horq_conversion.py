"""LCE conversion of HORQ models: binary op counts, one stored kernel, interpreter parity."""

import collections

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from horq_keras.tflite.graph import op_counts, operator_names
from tensorflow.lite.tools import flatbuffer_utils

from horq_keras.layers import HORQConv2D

INPUT_SHAPE = (8, 8, 4)
FILTERS = 6


def _horq_layers(model):
    return [layer for layer in model.layers if isinstance(layer, HORQConv2D)]


def _two_layer_model(rng, beta_form, order, batch_norm=True):
    """HORQ (valid, stride 1) -> [BN] -> HORQ (same, pad_values 1, stride 2)."""
    inputs = tf.keras.Input(INPUT_SHAPE)
    x = HORQConv2D(FILTERS, 3, order=order, beta_form=beta_form, padding="valid")(inputs)
    if batch_norm:
        x = tf.keras.layers.BatchNormalization()(x)
    x = HORQConv2D(
        FILTERS, 3, order=order, beta_form=beta_form, padding="same", pad_values=1.0, strides=2
    )(x)
    model = tf.keras.Model(inputs, x)
    for layer in model.layers:
        if isinstance(layer, HORQConv2D):
            layer.set_weights([rng.uniform(-1, 1, layer.kernel.shape)])
        elif isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.set_weights([  # trained-looking statistics: gamma, beta, mean, variance
                rng.uniform(0.5, 1.5, FILTERS), rng.normal(0, 0.3, FILTERS),
                rng.normal(0, 1, FILTERS), rng.uniform(0.5, 2, FILTERS),
            ])
    return model


def _bconv_filter_buffers(flatbuffer):
    """Buffer index of the filter (input 1) of every LceBconv2d op."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    names = operator_names(flatbuffer)
    buffers = [
        subgraph.tensors[op.inputs[1]].buffer
        for op, name in zip(subgraph.operators, names) if name == "LceBconv2d"
    ]
    for index in buffers:
        assert model.buffers[index].data is not None and len(model.buffers[index].data) > 0
    return buffers


def _float_conv_filter_shapes(flatbuffer):
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    return [
        tuple(subgraph.tensors[op.inputs[1]].shape)
        for op, name in zip(subgraph.operators, operator_names(flatbuffer))
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    ]


def _assert_interpreter_matches_keras(flatbuffer, model, x):
    interpreter = lce.testing.Interpreter(
        flatbuffer, num_threads=1, use_indirect_bgemm=True, use_xnnpack=True
    )
    expected = model(x).numpy()
    np.testing.assert_allclose(
        interpreter.predict(x), expected, rtol=0, atol=1e-4 * np.abs(expected).max()
    )


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("beta_form", ["pixel", "sample"])
def test_deployable_forms_convert_to_order_binary_convs(rng, beta_form, order):
    model = _two_layer_model(rng, beta_form, order)
    flatbuffer = lce.convert_keras_model(model)
    layers = _horq_layers(model)

    assert op_counts(flatbuffer)["LceBconv2d"] == order * len(layers)
    # One stored binary kernel per layer, read by all ``order`` binary convolutions.
    reads = collections.Counter(_bconv_filter_buffers(flatbuffer))
    assert len(reads) == len(layers)
    assert set(reads.values()) == {order}
    # No float convolution of the bases: the only float convs are the pixel form's
    # one-channel receptive-field means of the beta maps.
    float_convs = _float_conv_filter_shapes(flatbuffer)
    if beta_form == "pixel":
        assert float_convs == [(1, 3, 3, 1)] * (order * len(layers))
    else:
        assert float_convs == []

    x = rng.standard_normal((3, *INPUT_SHAPE)).astype("float32")
    _assert_interpreter_matches_keras(flatbuffer, model, x)


def test_column_form_does_not_convert_to_binary_convs(rng):
    flatbuffer = lce.convert_keras_model(_two_layer_model(rng, "column", 2))
    assert op_counts(flatbuffer)["LceBconv2d"] == 0


def test_directly_chained_layers_match_keras(rng):
    """No batch norm between two HORQ layers: cancelling ±1 products (exact zeros in
    LCE's popcount arithmetic) must give the same next-layer signs in Keras."""
    model = _two_layer_model(rng, "pixel", 2, batch_norm=False)
    flatbuffer = lce.convert_keras_model(model)
    assert op_counts(flatbuffer)["LceBconv2d"] == 4
    x = rng.standard_normal((3, *INPUT_SHAPE)).astype("float32")
    _assert_interpreter_matches_keras(flatbuffer, model, x)
