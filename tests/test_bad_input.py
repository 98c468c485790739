"""Bad input to the commands other than ``train``: each case ends
with one clear line on stderr and its exit status (0 ok, 1 parity failed, 2 bad input or
a failure before results, 3 conversion failed), and nothing a user made is destroyed.
The table of docs/bad_input.md lists the same cases."""

import os

import numpy as np
import pytest
import tensorflow as tf

from horq_keras.cli import main as cli_main
from horq_keras.exit_status import BAD_INPUT, CONVERSION_FAILED, OK, PARITY_FAILED


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny softmax classifier saved as .h5, its converted .tflite, and a copy whose
    class-1 logit bias is shifted by +2."""
    directory = tmp_path_factory.mktemp("bad_input")
    tf.random.set_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(8, "relu"),
                                 tf.keras.layers.Dense(3, activation="softmax")])
    paths = {name: str(directory / name) for name in ("m.h5", "m.tflite", "shifted.h5")}
    model.save(paths["m.h5"])
    assert cli_main(["convert", paths["m.h5"], "-o", paths["m.tflite"], "--verify", "0",
                     "--quiet"]) == OK
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, bias + [0.0, 2.0, 0.0]])
    model.save(paths["shifted.h5"])
    return paths


def _run(capsys, argv, status):
    """Run the CLI; assert the exit status and one line on stderr; return that line."""
    assert cli_main(argv) == status
    err = capsys.readouterr().err.strip()
    if status == OK:
        return err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def _snapshot(*paths):
    return {path: open(path, "rb").read() for path in paths}


# -- outputs: never an input, never another output, checked before any work ----------

def test_convert_output_is_the_model(files, capsys):
    kept = _snapshot(files["m.h5"])
    line = _run(capsys, ["convert", files["m.h5"], "-o", files["m.h5"], "--quiet"], BAD_INPUT)
    assert "`--output`" in line and "is the input MODEL" in line
    assert _snapshot(files["m.h5"]) == kept


def test_convert_report_is_the_model(files, capsys, tmp_path):
    kept = _snapshot(files["m.h5"])
    out = tmp_path / "y.tflite"
    line = _run(capsys, ["convert", files["m.h5"], "-o", str(out), "--report", files["m.h5"],
                         "--quiet"], BAD_INPUT)
    assert "`--report`" in line and "is the input MODEL" in line
    assert _snapshot(files["m.h5"]) == kept and not out.exists()


def test_convert_report_is_the_output(files, capsys, tmp_path):
    out = str(tmp_path / "y.tflite")
    line = _run(capsys, ["convert", files["m.h5"], "-o", out, "--report", out, "--quiet"],
                BAD_INPUT)
    assert "`--report` and `--output` name the same file" in line
    assert not os.path.exists(out)


def test_convert_output_is_a_symlink_to_the_model(files, capsys, tmp_path):
    link = tmp_path / "link.tflite"
    link.symlink_to(files["m.h5"])
    kept = _snapshot(files["m.h5"])
    line = _run(capsys, ["convert", files["m.h5"], "-o", str(link), "--quiet"], BAD_INPUT)
    assert "is the input MODEL" in line and _snapshot(files["m.h5"]) == kept


@pytest.mark.parametrize("output, message", [
    ("newdir/", "`--output` must be a file path; 'newdir/' names a directory"),
    ("missing/m.tflite", "`--output`: the directory"),
])
def test_convert_bad_output_fails_before_converting(files, capsys, tmp_path, monkeypatch,
                                                    output, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("horq_keras.converters.conversion.load_model",
                        lambda *a, **k: pytest.fail("the model was loaded"))
    line = _run(capsys, ["convert", files["m.h5"], "-o", output, "--quiet"], BAD_INPUT)
    assert message in line


@pytest.mark.parametrize("report", ["m.tflite", "m.h5"])
def test_verify_report_is_an_input(files, capsys, report):
    kept = _snapshot(files["m.h5"], files["m.tflite"])
    line = _run(capsys, ["verify", files["m.h5"], files["m.tflite"], "--report", files[report],
                         "--quiet"], BAD_INPUT)
    assert "`--report`" in line and "is the input" in line
    assert _snapshot(files["m.h5"], files["m.tflite"]) == kept


@pytest.mark.parametrize("argv, message", [
    (["--json", "{m}"], "`--json` ('{m}') is the input MODEL.tflite"),
    (["--plot", "{m}"], "`--plot` ('{m}') is the input MODEL.tflite"),
    (["--baseline", "{b}", "--json", "{b}"], "`--json` ('{b}') is the input --baseline"),
    (["--json", "{o}", "--plot", "{o}"], "`--plot` and `--json` name the same file"),
])
def test_bench_outputs(files, capsys, tmp_path, argv, message):
    baseline = tmp_path / "float.tflite"
    baseline.write_bytes(open(files["m.tflite"], "rb").read())
    names = {"m": files["m.tflite"], "b": str(baseline), "o": str(tmp_path / "out.json")}
    kept = _snapshot(files["m.tflite"], str(baseline))
    line = _run(capsys, ["bench", files["m.tflite"], *[a.format(**names) for a in argv]],
                BAD_INPUT)
    assert message.format(**names) in line
    assert _snapshot(files["m.tflite"], str(baseline)) == kept
    assert not os.path.exists(names["o"])


def test_weights_only_h5_is_named_as_such(capsys, tmp_path):
    weights = tmp_path / "weights.h5"
    tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]).save_weights(weights)
    line = _run(capsys, ["convert", str(weights), "-o", str(tmp_path / "m.tflite"), "--quiet"],
                BAD_INPUT)
    assert f"`model` ('{weights}') holds weights only, no model" in line
    assert "GFile" not in line and not (tmp_path / "m.tflite").exists()


def test_bench_of_a_directory_says_it_is_one(capsys, tmp_path):
    line = _run(capsys, ["bench", str(tmp_path)], BAD_INPUT)
    assert f"must be a .tflite file; '{tmp_path}' is a directory" in line


# -- exit codes ------------------------------------------------------------------------

def test_parity_failure_is_1(files, capsys):
    assert cli_main(["verify", files["shifted.h5"], files["m.tflite"], "--quiet"]) == PARITY_FAILED
    assert "FAILED" in capsys.readouterr().out
    assert cli_main(["verify", files["m.h5"], files["m.tflite"], "--quiet"]) == OK


def test_conversion_failure_is_3(capsys, tmp_path):
    model = tf.keras.Sequential([tf.keras.Input((5, 3)), tf.keras.layers.LSTM(4),
                                 tf.keras.layers.Dense(2)])
    path = str(tmp_path / "lstm.h5")
    model.save(path)
    line = _run(capsys, ["convert", path, "-o", str(tmp_path / "lstm.tflite"), "--quiet"],
                CONVERSION_FAILED)
    assert line.startswith("horq-keras convert: error: LCE could not convert")
    assert not (tmp_path / "lstm.tflite").exists()


def test_import_of_a_failing_module_is_2(files, capsys, tmp_path, monkeypatch):
    (tmp_path / "broken_layers.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    line = _run(capsys, ["verify", files["m.h5"], files["m.tflite"], "--import",
                         "broken_layers", "--quiet"], BAD_INPUT)
    assert "`--import`: module 'broken_layers' raised RuntimeError when imported: boom" in line


def test_help_documents_the_exit_codes(capsys):
    for command in ([], ["convert"], ["verify"], ["bench"]):
        with pytest.raises(SystemExit):
            cli_main([*command, "--help"])
        out = capsys.readouterr().out
        assert "exit status:" in out and "3  conversion failed" in out, command


# -- layer and quantizer arguments (one clear ValueError at construction) --------------

@pytest.mark.parametrize("make, message", [
    ("UniformActivation(2, clip_value=float('inf'))", "`clip_value` must be a finite number > 0"),
    ("UniformActivation(2, clip_value='abc')", "`clip_value` must be a finite number > 0"),
    ("UniformActivation(2.0)", "`bits` must be one of"),
    ("groupnet_resnet18(activation_bits=2.0)", "`activation_bits` must be one of"),
    ("HORQConv2D(4, 3, pad_values=float('nan'))", "`pad_values` must be 1.0"),
    ("HORQConv2D(4, 3, pad_values=-1.0)", "`pad_values` must be 1.0"),
    ("HORQConv2D(4, 3, pad_values='abc')", "`pad_values` must be 1.0"),
    ("HORQConv2D(4, 3, clip_value=float('nan'))", "`clip_value` must be a finite number > 0"),
    ("HORQConv2D(4, 3, padding=None)", "`padding` must be 'valid' or 'same'; got None"),
    ("HORQConv2D(4, 3, dtype='float16')", "`dtype` of HORQConv2D must be float32"),
])
def test_layer_arguments(make, message):
    from horq_keras.groupnet import UniformActivation, groupnet_resnet18  # noqa: F401
    from horq_keras.layers import HORQConv2D  # noqa: F401

    with pytest.raises(ValueError, match=message.replace("(", "\\(").replace(")", "\\)")):
        eval(make)  # noqa: S307 - the table's own expressions


def test_numpy_integer_order_is_accepted():
    from horq_keras.layers import HORQConv2D

    assert HORQConv2D(4, 3, order=np.int64(3)).order == 3


class _Scale(tf.keras.layers.Layer):
    """A custom layer registered only in this process (unknown to a fresh loader)."""

    def call(self, inputs):
        return 2.0 * inputs


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_unknown_custom_object_advice_is_valid_python(capsys, tmp_path, suffix):
    tf.keras.utils.get_custom_objects()["mypkg>_Scale"] = _Scale
    try:
        model = tf.keras.Sequential([tf.keras.Input((3,)), _Scale()])
        path = str(tmp_path / f"custom{suffix}")
        model.save(path)
    finally:
        del tf.keras.utils.get_custom_objects()["mypkg>_Scale"]
    capsys.readouterr()  # Keras' notes while saving
    line = _run(capsys, ["convert", path, "-o", str(tmp_path / "c.tflite"), "--quiet"],
                BAD_INPUT)
    assert "uses the custom object" in line and "--import" in line
    snippet = line.split("pass it: `", 1)[1]
    statement, objects = snippet.split("` and `")
    compile(statement, "advice", "exec")
    compile(objects.rstrip("`."), "advice", "exec")
