"""W1A1 Group-Nets convert with LCE: every branch convolution is one ``LceBconv2d``, the
converted model agrees with Keras, and each branch scale lambda_i stays one float MUL.

Where the scales land (checked below): LCE does not fuse a branch scale into the binary
convolution. The 1-bit branch output is ``beta * (sign(x) ⊛ alpha B)`` with a
data-dependent ``beta`` (XNOR-Net's activation scale), so the op after each
``LceBconv2d`` is the float ``MUL`` by ``beta``, and ``lambda_i`` follows as one more
scalar float ``MUL`` per branch before the ``ADD``s of the sum.
"""

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from horq_keras.tflite.graph import op_counts, operator_names
from tensorflow.lite.tools import flatbuffer_utils

from horq_keras.groupnet import BranchScales, groupnet_alexnet, groupnet_resnet


def _randomize(model, rng):
    """Random BN statistics and distinct branch scales, so parity is not trivial."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2, var.shape)])
    scales = [layer for layer in model.layers if isinstance(layer, BranchScales)]
    values = rng.permutation(np.linspace(0.2, 1.7, 2 * len(scales))).astype("float32")
    for index, layer in enumerate(scales):
        layer.set_weights([values[2 * index:2 * index + 2]])
    return values


def _scalar_mul_constants(flatbuffer):
    """The scalar constant operand of every MUL whose other operand is a tensor."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    constants = []
    for name, op in zip(operator_names(flatbuffer), graph.operators):
        if name != "MUL":
            continue
        for index in op.inputs:
            tensor = graph.tensors[index]
            data = model.buffers[tensor.buffer].data
            shape = [] if tensor.shape is None else list(tensor.shape)
            if data is not None and len(data) and int(np.prod(shape)) == 1:
                constants.append(float(np.frombuffer(bytes(data), dtype=np.float32)[0]))
    return constants


def _convert_and_check(model, rng, expected_bconvs):
    scales = _randomize(model, rng)
    flatbuffer = lce.convert_keras_model(model)
    counts = op_counts(flatbuffer)
    assert counts["LceBconv2d"] == expected_bconvs
    assert counts["LceQuantize"] == expected_bconvs  # every branch input is binarized
    assert counts["CONV_2D"] == 1  # only the full-precision first layer stays a float conv
    assert counts["FULLY_CONNECTED"] == 1  # the full-precision classifier

    # Each lambda_i is exactly one scalar float MUL (not fused into LceBconv2d).
    muls = np.array(_scalar_mul_constants(flatbuffer))
    for value in scales:
        assert np.sum(np.isclose(muls, value, rtol=0, atol=1e-6)) == 1, value

    x = rng.uniform(0, 1, (4, *model.input_shape[1:])).astype("float32")
    expected = model.predict(x, verbose=0)
    converted = lce.testing.Interpreter(flatbuffer, num_threads=1).predict(x)
    np.testing.assert_allclose(converted, expected, rtol=1e-4, atol=1e-5)
    return counts


def test_groupnet_resnet_w1a1_converts_every_branch_conv(rng):
    # 2 bases x (stage 1: 2 convs; stage 2: 2 convs + the downsampling shortcut) = 10.
    model = groupnet_resnet(stage_blocks=(1, 1), stage_filters=(8, 16), num_bases=2,
                            partition="v1", input_shape=(12, 12, 1), num_classes=5)
    counts = _convert_and_check(model, rng, expected_bconvs=10)
    assert counts["ADD_N"] == 2  # one scaled sum per group


def test_layerwise_alexnet_w1a1_converts_fc_layers_too(rng):
    # 2 bases x 6 binary layers (conv2-conv5, fc6, fc7 as convolutions) = 12.
    model = groupnet_alexnet(num_bases=2, partition="layerwise", fc_units=16,
                             input_shape=(16, 16, 1), num_classes=5)
    counts = _convert_and_check(model, rng, expected_bconvs=12)
    assert counts["ADD_N"] == 6  # one scaled sum per layer
