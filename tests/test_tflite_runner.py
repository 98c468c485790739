"""The one LCE interpreter runner: batching (with a padded last batch), the child process
and in-process runs agree with Keras, and bad calls fail clearly."""

import os

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

from horq_keras.layers import HORQConv2D
from horq_keras.tflite.runner import InterpreterOptions, LceInterpreter, run_tflite


@pytest.fixture(scope="module")
def batch_two():
    """A HORQ model converted with a fixed batch of 2 samples per call."""
    inputs = tf.keras.Input((6, 6, 3), batch_size=2)
    model = tf.keras.Model(inputs, HORQConv2D(4, 3, order=2, padding="same")(inputs))
    return model, lce.convert_keras_model(model)


def test_batches_pad_the_last_one_and_match_keras(batch_two):
    model, flatbuffer = batch_two
    interpreter = LceInterpreter(flatbuffer)
    assert interpreter.input_shapes == [(2, 6, 6, 3)]
    x = np.random.default_rng(0).standard_normal((5, 6, 6, 3)).astype(np.float32)
    (outputs,) = interpreter.predict([x])
    assert outputs.shape == (5, 6, 6, 4)
    expected = np.concatenate([model(x[i:i + 2]).numpy() for i in range(0, 4, 2)]
                              + [model(np.concatenate([x[4:], np.zeros_like(x[:1])])).numpy()[:1]])
    np.testing.assert_allclose(outputs, expected, atol=1e-4, rtol=1e-4)


def test_child_process_and_in_process_runs_agree(batch_two):
    _, flatbuffer = batch_two
    x = np.random.default_rng(1).standard_normal((3, 6, 6, 3)).astype(np.float32)
    options = InterpreterOptions(use_xnnpack=False)
    (isolated,) = run_tflite(flatbuffer, x, options=options)
    (here,) = run_tflite(flatbuffer, [x], options=options, isolate=False)
    np.testing.assert_array_equal(isolated, here)


def test_wrong_input_shape_is_a_clear_error(batch_two):
    _, flatbuffer = batch_two
    x = np.zeros((2, 5, 5, 3), np.float32)
    for isolate in (True, False):
        with pytest.raises(ValueError, match="LCE's interpreter could not run the model"):
            run_tflite(flatbuffer, x, isolate=isolate, source="the model")


def test_the_xnnpack_notice_is_not_printed(batch_two, capfd):
    """TFLite's native "Created ... XNNPACK delegate" line stays off stderr, in a child
    process and in this one."""
    _, flatbuffer = batch_two
    x = np.zeros((2, 6, 6, 3), np.float32)
    run_tflite(flatbuffer, x, progress=True)  # the child's stderr is this test's
    LceInterpreter(flatbuffer).predict([x])
    assert "XNNPACK delegate" not in capfd.readouterr().err


def test_other_native_stderr_lines_still_show(capfd):
    from horq_keras.tflite.interpreter import DELEGATE_NOTICE, _without_delegate_notice

    with _without_delegate_notice():
        os.write(2, f"{DELEGATE_NOTICE}\nERROR: a real problem\n".encode())
    assert capfd.readouterr().err == "ERROR: a real problem\n"
