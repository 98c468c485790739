"""Export-time folding of the batch norm after a HORQ convolution (converters.batchnorm_fold).

The folded model computes what the Keras model computes (NumPy-free identity of eq. 16–19
with the batch norm's affine map moved in front of beta), and its converted graph has
the op counts that the equations need per order and beta form: one ``MUL`` fewer per
folded layer than LCE alone gives, the batch norm's scale fused into ``LceBconv2d``.
"""

import collections
import os
import pathlib

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from horq_keras.converters import convert
from horq_keras.tflite.graph import op_counts
from horq_keras.converters.batchnorm_fold import FoldedHORQConv2D, fold_horq_batch_norms
from helpers import randomize_batch_norms

from horq_keras.layers import HORQConv2D
from horq_keras.models import horq_lenet

CHANNELS = 32  # LCE's bitpacking unit: keeps every binary conv one LceBconv2d


def _randomize_horq(model, rng):
    for layer in model.layers:
        if isinstance(layer, HORQConv2D):
            layer.set_weights([rng.uniform(-1, 1, w.shape) for w in layer.get_weights()])
    return model


def _randomize(model, rng):
    """Trained-looking weights and batch-norm statistics, negative gammas included."""
    randomize_batch_norms(model, rng, spread=0.3, mean_spread=0.5)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.gamma.assign(layer.gamma * rng.choice([-1.0, 1.0], layer.gamma.shape))
    return _randomize_horq(model, rng)


def _stack(rng, order, beta_form, layers=2, **horq_kwargs):
    inputs = x = tf.keras.Input((8, 8, CHANNELS))
    for _ in range(layers):
        x = HORQConv2D(CHANNELS, 3, order=order, beta_form=beta_form, padding="same",
                       pad_values=1.0, **horq_kwargs)(x)
        x = tf.keras.layers.BatchNormalization()(x)
    return _randomize(tf.keras.Model(inputs, x), rng)


def expected_ops_per_layer(order, beta_form):
    """Ops of one folded HORQ layer (eq. 16–19): per base i, |R|, its mean (the sample
    form: height-width then channel mean; the pixel form: channel mean and box filter),
    the sign (LceQuantize), one LceBconv2d (alpha and the batch norm's scale fused) and
    the beta multiply; per residual update (K - 1) the dequantized sign, its beta multiply
    and the subtraction; K additions: K - 1 between the terms and the batch norm's shift."""
    per_base = {"ABS": 1, "MEAN": 2 if beta_form == "sample" else 1, "LceQuantize": 1,
                "LceBconv2d": 1, "MUL": 1, "ADD": 1}
    if beta_form == "pixel":
        per_base["CONV_2D"] = 1
    counts = collections.Counter({op: order * n for op, n in per_base.items()})
    counts.update({"LceDequantize": order - 1, "MUL": order - 1, "SUB": order - 1})
    return {op: n for op, n in counts.items() if n}


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("beta_form", ["pixel", "sample"])
def test_folded_graph_has_the_expected_fewer_ops_and_matches_keras(tmp_path, rng, order,
                                                                   beta_form):
    model = _stack(rng, order, beta_form)
    before = op_counts(lce.convert_keras_model(model))
    x = rng.standard_normal((4, 8, 8, CHANNELS)).astype("float32")
    report = convert(model, tmp_path / "m.tflite", verify_data=x)
    after = op_counts((tmp_path / "m.tflite").read_bytes())

    expected = {op: 2 * n for op, n in expected_ops_per_layer(order, beta_form).items()}
    assert dict(after) == expected
    assert before["MUL"] == after["MUL"] + 2  # the batch norms' scales are gone
    assert sum(before.values()) == sum(after.values()) + 2
    assert "ADD_N" not in before  # the terms are summed by ADD (XNNPACK), not ADD_N
    assert report.parity.ok, report.parity.summary()
    assert any("batch norms folded" in note for note in report.notes)


@pytest.mark.parametrize("beta_form", ["pixel", "sample"])
def test_folded_keras_model_computes_the_same_function(rng, beta_form):
    model = _stack(rng, 2, beta_form, layers=3, use_bias=True)
    folded, names = fold_horq_batch_norms(model)
    assert len(names) == 3
    assert [type(layer).__name__ for layer in folded.layers[1:]] == [
        "FoldedHORQConv2D", "Activation"] * 3
    x = rng.standard_normal((5, 8, 8, CHANNELS)).astype("float32")
    expected = model(x, training=False).numpy()
    np.testing.assert_allclose(folded(x).numpy(), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())
    assert model.layers[1].kernel is not folded.layers[1].kernel  # the source is untouched


def test_bias_and_batch_norm_without_scale_or_center_fold(rng):
    inputs = tf.keras.Input((6, 6, CHANNELS))
    x = HORQConv2D(CHANNELS, 3, order=2, use_bias=True)(inputs)
    x = tf.keras.layers.BatchNormalization(scale=False, center=False, epsilon=0.01)(x)
    model = _randomize_horq(tf.keras.Model(inputs, x), rng)
    model.layers[1].bias.assign(rng.normal(0, 1, CHANNELS))
    model.layers[2].set_weights([rng.normal(0, 1, CHANNELS), rng.uniform(0.1, 3, CHANNELS)])
    folded, names = fold_horq_batch_norms(model)
    assert names == [model.layers[1].name]
    x = rng.standard_normal((3, 6, 6, CHANNELS)).astype("float32")
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_what_does_not_fold(rng):
    inputs = tf.keras.Input((6, 6, CHANNELS))
    shared = HORQConv2D(CHANNELS, 3, order=2, padding="same", name="two_consumers")(inputs)
    a = tf.keras.layers.BatchNormalization(name="bn_a")(shared)
    b = tf.keras.layers.ReLU()(shared)  # a second consumer: the HORQ output is needed
    relu = HORQConv2D(CHANNELS, 3, order=1, padding="same", activation="relu",
                      name="activated")(a)
    c = tf.keras.layers.BatchNormalization(name="bn_c")(relu)
    column = HORQConv2D(CHANNELS, 3, beta_form="column", padding="same", name="column")(c)
    d = tf.keras.layers.BatchNormalization(name="bn_d")(column)
    output = HORQConv2D(CHANNELS, 3, padding="same", name="model_output")(d)
    e = tf.keras.layers.BatchNormalization(name="bn_e")(output)
    model = tf.keras.Model(inputs, [b, e, output])
    folded, names = fold_horq_batch_norms(model)
    assert (folded, names) == (model, [])


def test_sequential_and_nested_models_fold(rng):
    inner = _stack(rng, 1, "sample")
    sequential = tf.keras.Sequential([
        tf.keras.Input((8, 8, CHANNELS)),
        HORQConv2D(CHANNELS, 3, order=2, padding="same", name="seq_horq"),
        tf.keras.layers.BatchNormalization(),
    ])
    _randomize(sequential, rng)
    inputs = tf.keras.Input((8, 8, CHANNELS))
    outer = tf.keras.Model(inputs, sequential(inner(inputs)))
    folded, names = fold_horq_batch_norms(outer)
    assert len(names) == 3 and "seq_horq" in names
    x = rng.standard_normal((2, 8, 8, CHANNELS)).astype("float32")
    expected = outer(x).numpy()
    np.testing.assert_allclose(folded(x).numpy(), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())


def test_folded_layer_config_round_trip_and_bad_beta_form():
    layer = FoldedHORQConv2D(8, 3, order=3, beta_form="sample", padding="same")
    clone = FoldedHORQConv2D.from_config(layer.get_config())
    assert (clone.order, clone.beta_form, clone.padding) == (3, "sample", "same")
    with pytest.raises(ValueError, match="`beta_form` must be 'pixel' or 'sample'"):
        FoldedHORQConv2D(8, 3, beta_form="column")


def _mnist_test_images(count):
    directory = pathlib.Path(os.environ.get("HORQ_KERAS_MNIST_DIR")
                             or pathlib.Path(__file__).resolve().parents[1] / "data" / "mnist")
    if not (directory / "t10k-images-idx3-ubyte").is_file():
        pytest.skip(f"no MNIST IDX files in {directory} (make data)")
    from horq_keras.datasets import load_mnist, scale_images

    _, (images, _) = load_mnist(directory)
    return scale_images(images[:count]).numpy()


@pytest.mark.parametrize("beta_form", ["pixel", "sample"])
def test_lenet_on_mnist_folds_and_keeps_parity(tmp_path, rng, beta_form):
    """``make train``'s model (HORQ LeNet, order 2) with trained-looking batch norms."""
    model = _randomize(horq_lenet(order=2, beta_form=beta_form), rng)
    images = _mnist_test_images(64)
    before = op_counts(lce.convert_keras_model(model))
    report = convert(model, tmp_path / "lenet.tflite", verify_data=images)
    after = op_counts((tmp_path / "lenet.tflite").read_bytes())
    assert report.parity.ok and report.parity.top1_agreement == 1.0, report.parity.summary()
    assert after["LceBconv2d"] == before["LceBconv2d"] == 4
    assert after["MUL"] == before["MUL"] - 2  # bn2 and bn3 folded into conv2 and fc3
