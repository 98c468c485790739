"""Planted bugs: the layer-wise parity check fails on each and names the layer.

Each model is trained briefly, converted once (the correct .tflite), and must pass with
the default options. Then one bug is planted in a copy of the Keras reference (a batch
norm's moving variance x1.1 or shift +0.05 in a middle layer, one branch scale x1.05,
one output filter's signs flipped, one logit +0.01 of the logit scale) and checked
against the correct .tflite; or the converter's batch-norm fold drops one channel's
shift, and the .tflite it writes is checked against the correct model. Each must fail,
and the first failing layer (the Keras layers its converted operators compute) must hold
the one with the bug.
"""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from horq_keras.converters import batchnorm_fold, convert
from horq_keras.converters.conversion import convert_to_flatbuffer, deployable
from horq_keras.converters.verification import parity
from horq_keras.groupnet import BranchScales, groupnet_resnet
from horq_keras.models import horq_resnet18

SHAPE, CLASSES, SAMPLES = (16, 16, 3), 4, 24

BUILDERS = {
    "groupnet_w1a1_k5": lambda: groupnet_resnet(
        stage_blocks=(1, 1), stage_filters=(32, 32), num_bases=5, activation_bits=1,
        input_shape=SHAPE, num_classes=CLASSES),
    "groupnet_w1a2_k3": lambda: groupnet_resnet(
        stage_blocks=(1, 1), stage_filters=(32, 32), num_bases=3, activation_bits=2,
        input_shape=SHAPE, num_classes=CLASSES),
    "horq2_resnet18": lambda: horq_resnet18(order=2, width=8, input_shape=SHAPE,
                                            num_classes=CLASSES),
}


def _build(name, weights=None):
    tf.keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    if weights is not None:
        model.set_weights(weights)
    return model


@pytest.fixture(scope="module", params=list(BUILDERS))
def trained(request):
    """``(name, model, correct flatbuffer, inputs)`` after two training steps."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64 + SAMPLES, *SHAPE)).astype(np.float32)
    y = rng.integers(0, CLASSES, 64)
    model = _build(request.param)
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x[:64], y, batch_size=32, epochs=1, verbose=0)
    flatbuffer = convert_to_flatbuffer(deployable(model)[0])
    return request.param, model, flatbuffer, x[64:]


def _middle(model, kind):
    layers = [layer for layer in model.layers if isinstance(layer, kind)]
    return layers[len(layers) // 2]


def _bn_variance(model):
    layer = _middle(model, tf.keras.layers.BatchNormalization)
    gamma, beta, mean, variance = layer.get_weights()
    layer.set_weights([gamma, beta, mean, variance * 1.1])
    return layer.name


def _bn_shift(model):
    layer = _middle(model, tf.keras.layers.BatchNormalization)
    gamma, beta, mean, variance = layer.get_weights()
    layer.set_weights([gamma, beta + 0.05, mean, variance])
    return layer.name


def _branch_scale(model):
    layer = _middle(model, BranchScales)
    (scales,) = layer.get_weights()
    layer.set_weights([scales * np.eye(len(scales))[0] * 0.05 + scales])
    return layer.name


def _filter_signs(model):
    layer = _middle(model, lq.layers.QuantConv2D)
    kernel, *rest = layer.get_weights()
    kernel[..., 0] *= -1
    layer.set_weights([kernel, *rest])
    return layer.name


def _logit(model, x):
    layer = model.layers[-2] if model.layers[-1].count_params() == 0 else model.layers[-1]
    logits = tf.keras.Model(model.inputs, layer.output)(x).numpy()
    kernel, bias = layer.get_weights()
    bias[1] += 0.01 * np.abs(logits).max()
    layer.set_weights([kernel, bias])
    return layer.name


def test_the_trained_model_passes(trained):
    _, model, flatbuffer, x = trained
    result = parity(model, flatbuffer, x)
    assert result.ok, result.failure
    assert len(result.layers) > 10
    assert max(layer.max_abs_diff / layer.tolerance for layer in result.layers) < 1


@pytest.mark.parametrize("bug", ["bn_variance", "bn_shift", "branch_scale", "filter_signs",
                                 "logit"])
def test_a_planted_bug_fails_and_names_its_layer(trained, bug):
    name, model, flatbuffer, x = trained
    if bug == "branch_scale" and not any(isinstance(layer, BranchScales)
                                         for layer in model.layers):
        pytest.skip("a HORQ ResNet has no branch scales")
    mutated = _build(name, model.get_weights())
    plant = {"bn_variance": _bn_variance, "bn_shift": _bn_shift,
             "branch_scale": _branch_scale, "filter_signs": _filter_signs,
             "logit": lambda m: _logit(m, x)}[bug]
    layer = plant(mutated)
    result = parity(mutated, flatbuffer, x)
    assert not result.ok
    # The first failing converted group computes the mutated layer (its last layer, or
    # one the converter fused into it), and the message names it.
    assert layer in result.failed_layer.keras_layers, result.failure
    assert layer in result.failure


def test_a_fold_that_drops_one_shift_fails_and_names_its_layer(trained, monkeypatch, tmp_path):
    _, model, _, x = trained
    if not deployable(model)[3]:
        pytest.skip("no batch norm of this model folds into a HORQ convolution")
    affine = batchnorm_fold._batch_norm_affine
    dropped = []

    def drop_first_shift(batch_norm):
        scale, shift = affine(batch_norm)
        if not dropped:
            dropped.append(batch_norm.name)
            shift = shift.copy()
            shift[np.argmax(np.abs(shift))] = 0.0
        return scale, shift

    monkeypatch.setattr(batchnorm_fold, "_batch_norm_affine", drop_first_shift)
    report = convert(model, tmp_path / "model.tflite", verify_data=x)
    assert dropped and not report.parity.ok
    # The batch norm lives in the HORQ layer it folds into: either may be named.
    folded_into = model.get_layer(dropped[0]).inbound_nodes[0].inbound_layers.name
    failed = report.parity.failed_layer
    assert {dropped[0], folded_into} & set(failed.keras_layers), report.parity.failure
