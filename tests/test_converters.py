"""``horq_keras.converters.convert`` / ``verify``: report figures against references
computed from the Keras model, float fallbacks with reasons, atomic output, bad inputs,
and the ``horq-keras convert`` / ``verify`` command line."""

import json
import math
import os
import signal

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from horq_keras.converters import convert, verify
from horq_keras.tflite.graph import read_graph
from horq_keras.tflite import runner
from horq_keras.tflite.check import check_flatbuffer

from horq_keras.cli import main as cli_main
from horq_keras.layers import HORQConv2D
from horq_keras.models import horq_lenet

INPUT_SHAPE = (16, 16, 1)


def _lenet(order=2, beta_form="pixel"):
    tf.random.set_seed(7)
    return horq_lenet(order=order, beta_form=beta_form, input_shape=INPUT_SHAPE)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One converted HORQ LeNet (order 2), its saved Keras model and its report."""
    directory = tmp_path_factory.mktemp("converted")
    model = _lenet()
    keras_path = str(directory / "lenet.h5")
    model.save(keras_path)
    tflite_path = str(directory / "lenet.tflite")
    report = convert(model, tflite_path, verify_data=4)
    return {"model": model, "keras_path": keras_path, "tflite_path": tflite_path,
            "report": report, "directory": directory}


def _reference_macs(model):
    """Binary and float MACs from the Keras layers' shapes (HORQ: order x, plus the
    pixel form's box filter of each beta map)."""
    binary = floating = 0
    for layer in model.layers:
        if isinstance(layer, (HORQConv2D, tf.keras.layers.Conv2D)):
            _, out_h, out_w, filters = layer.output_shape
            k_h, k_w, c_in, _ = layer.kernel.shape
            macs = out_h * out_w * filters * k_h * k_w * c_in
            if isinstance(layer, HORQConv2D):
                binary += layer.order * macs
                floating += layer.order * out_h * out_w * k_h * k_w
            else:
                floating += macs
        elif isinstance(layer, tf.keras.layers.Dense):
            floating += layer.kernel.shape[0] * layer.kernel.shape[1]
    return binary, floating


def test_report_counts_match_the_keras_model(converted):
    report, model = converted["report"], converted["model"]
    horq = [layer for layer in model.layers if isinstance(layer, HORQConv2D)]

    assert report.bconv_ops == 2 * len(horq)
    # Order 2: two LceBconv2d per HORQ layer, reading one stored kernel.
    assert [(l.name, l.bconvs, l.expected_bconvs, l.kernel_buffers, l.lowered)
            for l in report.layers] == [(layer.name, 2, 2, 1, True) for layer in horq]
    assert report.float_fallbacks == []
    assert report.float_conv_ops == 1 + 2 * len(horq)  # conv1 + one box filter per base
    assert report.box_filter_ops == 2 * len(horq)
    assert report.float_fc_ops == 1 and report.int8_conv_ops == report.int8_fc_ops == 0

    binary, floating = _reference_macs(model)
    assert (report.macs.binary, report.macs.float, report.macs.int8) == (binary, floating, 0)
    assert report.macs.binary_fraction == pytest.approx(binary / (binary + floating))


def test_report_sizes_and_written_file(converted):
    report, model = converted["report"], converted["model"]
    with open(converted["tflite_path"], "rb") as file:
        data = file.read()
    assert report.size_bytes == len(data)
    check_flatbuffer(data)
    extra = 0
    for layer in model.layers:
        if isinstance(layer, HORQConv2D):
            k_h, k_w, c_in, filters = layer.kernel.shape
            packed = filters * k_h * k_w * math.ceil(c_in / 32) * 4
            extra += 4 * k_h * k_w * c_in * filters - packed
    assert report.float_equivalent_bytes == len(data) + extra
    assert not [name for name in os.listdir(converted["directory"]) if name.startswith(".")]


def test_report_parity_json_and_table(converted, tmp_path):
    report = converted["report"]
    assert report.parity.samples == 4 and report.parity.ok
    assert report.parity.max_abs_diff < 1e-4 and report.parity.top1_agreement == 1.0

    path = tmp_path / "report.json"
    report.save_json(path)
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["op_counts"]["LceBconv2d"] == 4 and data["parity"]["ok"] is True
    assert data["macs"]["binary"] == report.macs.binary

    text = str(report)
    for expected in ("LceBconv2d ops", "binary share of MACs", "conv2", "fc3", "parity vs Keras"):
        assert expected in text


def test_verify_existing_pair(converted):
    result = verify(converted["keras_path"], converted["tflite_path"], data=3)
    assert result.ok and result.samples == 3
    inputs = np.random.default_rng(1).uniform(0, 1, (2, *INPUT_SHAPE)).astype("float32")
    result = verify(converted["model"], converted["tflite_path"], data=inputs)
    assert result.ok and result.inputs == "given inputs"


def _fallback_model():
    """Layers meant to be binary that LCE keeps float (one per rule), and one that lowers."""
    binary = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign",
              "kernel_constraint": "weight_clip"}
    inputs = tf.keras.Input((6, 6, 64))
    branches = [
        lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, name="lowered", **binary),
        lq.layers.QuantConv2D(64, 3, groups=4, name="grouped16", **binary),
        lq.layers.QuantDepthwiseConv2D(3, input_quantizer="ste_sign",
                                       depthwise_quantizer="ste_sign",
                                       depthwise_constraint="weight_clip", name="depthwise"),
        lq.layers.QuantConv2D(32, 3, input_quantizer="magnitude_aware_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              name="scaled_input"),
        lq.layers.QuantConv2D(32, 3, kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip", name="float_inputs"),
        lq.layers.QuantConv2D(32, 3, input_quantizer=lq.quantizers.DoReFa(2, mode="activations"),
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              name="two_bit"),
    ]
    pooled = [tf.keras.layers.GlobalAveragePooling2D()(branch(inputs)) for branch in branches]
    x = tf.keras.layers.Concatenate()(pooled)
    # Float inputs, binary kernel: meant binary, and no sign of a near-zero mean to flip.
    outputs = lq.layers.QuantDense(10, kernel_quantizer="ste_sign",
                                   kernel_constraint="weight_clip", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="fallbacks")


def test_float_fallbacks_are_reported_with_their_reason(tmp_path):
    report = convert(_fallback_model(), tmp_path / "fallbacks.tflite", kbit=False,
                     verify_data=2)
    layers = {layer.name: layer for layer in report.layers}
    assert layers["lowered"].bconvs == 1 and layers["lowered"].reason is None
    assert report.bconv_ops == 1
    reasons = {layer.name: layer.reason for layer in report.float_fallbacks}
    assert set(reasons) == {"grouped16", "depthwise", "scaled_input", "float_inputs",
                            "two_bit", "dense"}
    assert "16 input channels per group, not a multiple of 32" in reasons["grouped16"]
    assert "depthwise" in reasons["depthwise"]
    assert "MagnitudeAwareSign is not lowered" in reasons["scaled_input"]
    assert "float inputs" in reasons["float_inputs"]
    assert "2-bit input quantizer DoReFa" in reasons["two_bit"]
    assert "kbit=True" in reasons["two_bit"]
    assert "dense layers in float" in reasons["dense"]
    assert report.parity.ok
    assert "Stayed float" in str(report)


def test_zero_padding_stays_float_for_xcore_and_is_a_note_for_arm(tmp_path):
    inputs = tf.keras.Input((5, 5, 32))
    outputs = lq.layers.QuantConv2D(
        32, 3, padding="same", pad_values=0.0, input_quantizer="ste_sign",
        kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name="zero_pad")(inputs)
    model = tf.keras.Model(inputs, outputs)
    xcore = convert(model, tmp_path / "xcore.tflite", target="xcore", verify_data=False)
    assert xcore.parity is None and xcore.bconv_ops == 0
    (fallback,) = xcore.float_fallbacks
    assert fallback.name == "zero_pad" and "zero padding" in fallback.reason
    arm = convert(model, tmp_path / "arm.tflite", verify_data=2)
    assert arm.bconv_ops == 1 and arm.float_fallbacks == [] and arm.parity.ok
    assert any("zero_pad: zero padding converts" in note for note in arm.notes)


def test_column_form_is_refused_and_nothing_is_written(tmp_path):
    output = tmp_path / "model.tflite"
    output.write_bytes(b"previous model")
    with pytest.raises(ValueError, match="beta_form='column'.*conv2, fc3.*'pixel'"):
        convert(_lenet(beta_form="column"), output)
    assert output.read_bytes() == b"previous model"
    assert sorted(os.listdir(tmp_path)) == ["model.tflite"]


def test_bad_arguments_fail_before_any_work(tmp_path, converted):
    model = converted["model"]
    with pytest.raises(ValueError, match="`target` must be one of .*'arm'.*'xcore'.*'riscv'"):
        convert(model, tmp_path / "a.tflite", target="riscv")
    with pytest.raises(TypeError, match="`int8` must be True or False"):
        convert(model, tmp_path / "a.tflite", int8="yes")
    with pytest.raises(FileNotFoundError, match="`output_path`.*does not exist"):
        convert(model, tmp_path / "missing_dir" / "a.tflite")
    with pytest.raises(ValueError, match="`output_path`.*is a directory"):
        convert(model, tmp_path)
    with pytest.raises(PermissionError, match="`output_path`: cannot write"):
        convert(model, "/sys/horq_keras_test.tflite")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="`output_path`.*not a directory"):
        convert(model, tmp_path / "file" / "a.tflite")
    with pytest.raises(ValueError, match="`verify_data` must have shape \\(samples, 16, 16, 1\\)"):
        convert(model, tmp_path / "a.tflite", verify_data=np.zeros((2, 28, 28, 1)))
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_bad_model_paths(tmp_path, converted):
    output = tmp_path / "out.tflite"
    with pytest.raises(FileNotFoundError, match="`model`: no such file or directory"):
        convert(str(tmp_path / "missing.h5"), output)
    with pytest.raises(ValueError, match="is a TFLite flatbuffer, not a Keras model.*verify"):
        convert(converted["tflite_path"], output)
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="`model`.*not a Keras model"):
        convert(str(tmp_path / "junk.h5"), output)
    with pytest.raises(TypeError, match="`model` must be a tf.keras.Model or the path"):
        convert(42, output)
    assert not output.exists()


# A custom layer from a module that cannot be imported: the .keras format would
# otherwise re-import a class defined in this (importable) test module.
_Unregistered = type("_Unregistered", (tf.keras.layers.Layer,),
                     {"call": lambda self, inputs: 2.0 * inputs, "__module__": "gone_module"})


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_unknown_custom_objects(tmp_path, suffix):
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, _Unregistered()(tf.keras.layers.Dense(3)(inputs)))
    path = str(tmp_path / f"custom{suffix}")
    model.save(path)
    with pytest.raises(ValueError, match="custom object '_Unregistered'.*--import"):
        convert(path, tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()


def test_verify_rejects_missing_truncated_and_corrupt_files(tmp_path, converted):
    with open(converted["tflite_path"], "rb") as file:
        data = file.read()
    keras_path = converted["keras_path"]
    with pytest.raises(FileNotFoundError, match="`tflite`: no such file"):
        verify(keras_path, tmp_path / "missing.tflite")
    (tmp_path / "truncated.tflite").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        verify(keras_path, tmp_path / "truncated.tflite")
    (tmp_path / "cut_end.tflite").write_bytes(data[:-64])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        verify(keras_path, tmp_path / "cut_end.tflite")
    corrupt = bytearray(data)
    corrupt[0:4] = (len(data) + 1000).to_bytes(4, "little")  # root table beyond the end
    (tmp_path / "corrupt.tflite").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        verify(keras_path, tmp_path / "corrupt.tflite")
    (tmp_path / "text.tflite").write_text("hello, this is not a model")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        verify(keras_path, tmp_path / "text.tflite")


def test_verify_rejects_a_file_of_another_model(tmp_path, converted):
    other = tf.keras.Sequential([tf.keras.Input((20, 20, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(10)])
    path = tmp_path / "other.tflite"
    path.write_bytes(lce.convert_keras_model(other))
    with pytest.raises(ValueError, match="does not belong to the model"):
        verify(converted["model"], path)


def test_interpreter_failures_become_clear_errors(monkeypatch, tmp_path):
    inputs = tf.keras.Input((6, 6, 4))
    column = tf.keras.Model(inputs, HORQConv2D(4, 3, order=2, beta_form="column")(inputs))
    flatbuffer = lce.convert_keras_model(column)  # runs into ExtractImagePatches
    check_flatbuffer(flatbuffer)
    x = [np.zeros((1, 6, 6, 4), np.float32)]
    with pytest.raises(ValueError, match="could not run the model.*status 1"):
        runner.run_tflite(flatbuffer, x, source="the model")
    with pytest.raises(ValueError, match="could not run the model: it raised an error"):
        runner.run_tflite(flatbuffer, x, source="the model", isolate=False)

    crashing = tmp_path / "crash.py"
    crashing.write_text(f"import os\nos.kill(os.getpid(), {int(signal.SIGSEGV)})\n")
    monkeypatch.setattr(runner, "_CHILD", str(crashing))
    with pytest.raises(ValueError, match="crashed with SIGSEGV"):
        runner.run_tflite(flatbuffer, x)


def test_cli_convert_and_verify(tmp_path, converted, capsys):
    output, report = tmp_path / "cli.tflite", tmp_path / "cli.json"
    status = cli_main(["convert", converted["keras_path"], "-o", str(output), "--report",
                       str(report), "--verify", "2", "--quiet"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "LceBconv2d ops" in printed and "Layers meant to be binary" in printed
    data = json.loads(report.read_text())
    assert data["bconv_ops"] == 4 and data["parity"]["samples"] == 2
    assert read_graph(output.read_bytes()).operators

    assert cli_main(["verify", converted["keras_path"], str(output), "--samples", "2",
                     "--quiet"]) == 0
    assert "OK" in capsys.readouterr().out


def test_cli_bad_inputs_exit_2_with_message(tmp_path, converted, capsys):
    status = cli_main(["convert", str(tmp_path / "none.h5"), "-o", str(tmp_path / "o.tflite"),
                       "--quiet"])
    assert status == 2 and "no such file or directory" in capsys.readouterr().err
    (tmp_path / "bad.tflite").write_bytes(b"12345678" * 8)
    status = cli_main(["verify", converted["keras_path"], str(tmp_path / "bad.tflite"), "--quiet"])
    assert status == 2 and "not a TFLite flatbuffer" in capsys.readouterr().err
    status = cli_main(["convert", converted["keras_path"], "-o", str(tmp_path / "o.tflite"),
                       "--import", "no_such_module_xyz", "--quiet"])
    assert status == 2 and "cannot import module 'no_such_module_xyz'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["convert", converted["keras_path"], "-o", "x.tflite", "--verify", "-1"])
    assert not (tmp_path / "o.tflite").exists()
