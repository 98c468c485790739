"""``--mixed-precision``: the mixed_float16 policy is honoured, and the model converts."""

import horq_keras  # noqa: F401  (selects Keras 2 before TensorFlow is used)
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

from horq_keras.datasets import load_mnist, scale_images
from horq_keras.training.mixed_precision import MIXED_POLICY, float32_copy, set_mixed_precision
from horq_keras.models import horq_lenet
from horq_keras.tflite.graph import op_counts
from horq_keras.tflite.runner import run_tflite


@pytest.fixture
def mixed_policy():
    set_mixed_precision(True)
    yield
    set_mixed_precision(False)


def mnist_slice(count):
    try:
        (x, y), _ = load_mnist()
    except FileNotFoundError:
        pytest.skip("MNIST not installed (run `make data`)")
    return scale_images(x[:count]).numpy(), y[:count]


def test_policy_honoured_and_float32_copy_converts(mixed_policy):
    images, labels = mnist_slice(128)
    model = horq_lenet(order=2)
    model.compile(tf.keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=64, epochs=1, verbose=0)

    conv2, bn2, softmax = (model.get_layer(name) for name in ("conv2", "bn2", "softmax"))
    assert conv2.dtype_policy.name == MIXED_POLICY and conv2.compute_dtype == "float16"
    assert conv2.kernel_quantizer.dtype_policy.name == MIXED_POLICY  # nested quantizer too
    assert all(w.dtype == tf.float32 for w in model.weights)  # latent weights, BN statistics
    assert bn2.moving_variance.dtype == tf.float32
    assert softmax.compute_dtype == "float32" and model.output.dtype == tf.float32
    inner = tf.keras.Model(model.input, conv2.output)
    assert inner(images[:2]).dtype == tf.float16  # the binary conv computes in float16

    with pytest.raises(ValueError, match="Mixed precision float16"):
        lce.convert_keras_model(model)  # why float32_copy exists

    copy = float32_copy(model)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    assert copy.dtype_policy.name == "float32"  # what LCE checks
    assert tf.keras.mixed_precision.global_policy().name == MIXED_POLICY  # restored
    assert copy.get_layer("conv2").kernel_quantizer.dtype_policy.name == "float32"
    for ours, theirs in zip(model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    mixed_probs, float_probs = model.predict(images, verbose=0), copy.predict(images, verbose=0)
    # float16 activations vs float32: the probabilities differ by float16 rounding only
    # (top-1 may flip on near ties: the model trained two steps).
    assert np.abs(mixed_probs - float_probs).max() < 0.05

    flatbuffer = lce.convert_keras_model(copy)
    assert op_counts(flatbuffer)["LceBconv2d"] == 4
    tflite_probs = run_tflite(flatbuffer, [images], isolate=False)[0]
    assert np.mean(tflite_probs.argmax(-1) == float_probs.argmax(-1)) >= 0.99
    np.testing.assert_allclose(tflite_probs, float_probs, atol=1e-3)
