"""int8 ends: QAT preparation of the float first/last layers, LCE's int8 + binary
conversion with parity, and clear errors for models that were not prepared."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from horq_keras.converters import convert, is_int8_prepared, prepare_int8
from horq_keras.converters.int8 import full_precision_ends
from horq_keras.converters.loading import load_model

from horq_keras.layers import HORQConv2D
from horq_keras.models import horq_lenet

QuantizeWrapper = tfmot.quantization.keras.QuantizeWrapper


def _lenet():
    tf.random.set_seed(3)
    return horq_lenet(order=2, input_shape=(16, 16, 1))


def test_prepare_wraps_exactly_the_float_ends(rng):
    model = _lenet()
    assert full_precision_ends(model) == ["conv1_float", "logits_float"]
    prepared = prepare_int8(model)
    wrapped = {layer.layer.name: layer.name for layer in prepared.layers
               if isinstance(layer, QuantizeWrapper)}
    assert wrapped["conv1_float"] == "int8_conv1_float"
    assert wrapped["logits_float"] == "int8_logits_float"
    # tfmot also wraps the weightless layer feeding the dense layer (its input quantizer).
    assert set(wrapped) == {"conv1_float", "logits_float", "flatten"}
    assert is_int8_prepared(prepared) and not is_int8_prepared(model)
    horq = [layer for layer in prepared.layers if isinstance(layer, HORQConv2D)]
    assert [layer.name for layer in horq] == ["conv2", "fc3"]
    np.testing.assert_array_equal(prepared.get_layer("conv2").kernel.numpy(),
                                  model.get_layer("conv2").kernel.numpy())
    (kernel,) = [w for w in prepared.get_layer("int8_conv1_float").trainable_weights
                 if "kernel" in w.name]
    np.testing.assert_array_equal(kernel.numpy(), model.get_layer("conv1_float").kernel.numpy())
    assert not any(isinstance(layer, QuantizeWrapper) for layer in model.layers)  # untouched


def test_prepare_rejects_bad_arguments():
    model = _lenet()
    with pytest.raises(ValueError, match="`layers`: no layer named 'nope'"):
        prepare_int8(model, layers=["nope"])
    with pytest.raises(ValueError, match="`layers`: 'conv2' is a HORQConv2D"):
        prepare_int8(model, layers=["conv2"])
    with pytest.raises(ValueError, match="`prefix` '' gives names already in the model"):
        prepare_int8(model, prefix="")
    inputs = tf.keras.Input((4,))
    no_float = tf.keras.Model(inputs, tf.keras.layers.ReLU()(inputs))
    with pytest.raises(ValueError, match="no full-precision Conv2D"):
        prepare_int8(no_float)


def test_unprepared_model_with_int8_is_refused(tmp_path):
    output = tmp_path / "int8.tflite"
    with pytest.raises(ValueError, match="int8=True.*prepare_int8.*fine-tune"):
        convert(_lenet(), output, int8=True)
    assert not output.exists()


def test_qat_model_converts_to_int8_around_binary_ops(rng, tmp_path):
    prepared = prepare_int8(_lenet())
    x = rng.uniform(0, 1, (64, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 10, 64)
    prepared.compile("adam", "sparse_categorical_crossentropy")
    prepared.fit(x, y, batch_size=32, epochs=1, verbose=0)  # calibrates the fake quants

    path = str(tmp_path / "qat.h5")  # tfmot QAT models reload from .h5 (not .keras)
    prepared.save(path)
    loaded = load_model(path)
    assert is_int8_prepared(loaded)

    report = convert(loaded, tmp_path / "int8.tflite", int8=True, verify_data=x[:8])
    assert report.int8 and report.bconv_ops == 4
    assert report.int8_conv_ops == 1 and report.int8_fc_ops == 1
    assert report.float_conv_ops == report.box_filter_ops == 4  # only HORQ's beta-map means
    assert report.macs.int8 > 0 and report.macs.binary > 0
    assert "QUANTIZE" in report.op_counts
    assert report.float_equivalent_bytes > report.size_bytes
    assert report.parity.ok and report.parity.top1_agreement >= 0.75
