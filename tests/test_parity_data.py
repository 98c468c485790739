"""Parity with real data: a trained MNIST LeNet whose one logit bias is shifted by +2 must
fail against the original .tflite, naming its logits layer (real MNIST images, synthetic
inputs, every data form and the command line), the original must pass, and the report
says what was compared; a NaN on either side fails with its own message."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from horq_keras.converters import convert, verify
from horq_keras.converters.logits import flatbuffer_logits, keras_logits
from horq_keras.converters.parity_data import ParityData, parity_data
from horq_keras.converters.report import LayerParity, Parity
from horq_keras.tflite.runner import run_tflite

from horq_keras.cli import main as cli_main
from horq_keras.datasets import load_mnist, scale_images
from horq_keras.models import horq_lenet
from train_data import mnist_folder

MNIST = pathlib.Path(__file__).resolve().parents[1] / "data" / "mnist"
SAMPLES = 300


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LeNet (binary weights) trained for one short epoch on real MNIST, saved and
    converted, plus a copy whose class-3 logit bias is shifted by +2."""
    directory = tmp_path_factory.mktemp("trained")
    (x_train, y_train), (x_test, y_test) = load_mnist(MNIST)
    tf.random.set_seed(0)
    model = horq_lenet(variant="binary_weights")
    model.compile(tf.keras.optimizers.Adam(5e-3), "sparse_categorical_crossentropy")
    model.fit(scale_images(x_train[:4096]).numpy(), y_train[:4096], batch_size=64, epochs=1,
              verbose=0)
    paths = {name: str(directory / name) for name in ("model.h5", "model.tflite", "bias.h5")}
    model.save(paths["model.h5"])
    convert(model, paths["model.tflite"], verify_data=False)
    layer = model.get_layer("logits_float")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + 2.0 * (np.arange(len(bias)) == 3)])
    model.save(paths["bias.h5"])
    x, y = scale_images(x_test[:SAMPLES]).numpy(), y_test[:SAMPLES]
    return {"paths": paths, "perturbed": model, "x": x, "y": y, "directory": directory}


def test_real_data_passes_with_accuracy(trained):
    result = verify(trained["paths"]["model.h5"], trained["paths"]["model.tflite"],
                    data=(trained["x"], trained["y"]))
    assert result.ok and result.compared == "pre-softmax logits"
    assert result.samples == SAMPLES and result.inputs == "given (inputs, labels)"
    assert result.keras_accuracy > 0.8
    assert abs(result.keras_accuracy - result.tflite_accuracy) <= 0.01
    assert result.top1_agreement >= 0.99 and result.failure is None
    assert len(result.layers) >= 5 and all(layer.ok for layer in result.layers)
    assert result.layers[-1].layer in ("logits_float", "softmax")


@pytest.mark.parametrize("form", ["tuple", "array", "dataset", "synthetic"])
def test_shifted_bias_fails(trained, form):
    x, y = trained["x"], trained["y"]
    data = {"tuple": (x, y), "array": x, "synthetic": None,
            "dataset": tf.data.Dataset.from_tensor_slices((x, y)).batch(64)}[form]
    result = verify(trained["perturbed"], trained["paths"]["model.tflite"], data=data)
    assert not result.ok and "FAILED" in result.summary()
    assert result.max_abs_diff == pytest.approx(2.0, abs=0.05)
    # Every layer before the logits computes what Keras computes; the logits layer is
    # the first over its tolerance, by the shifted bias.
    failed = result.failed_layer
    assert failed.layer == "logits_float" and failed.operators[-1] == "FULLY_CONNECTED"
    assert failed.max_abs_diff == pytest.approx(2.0, abs=1e-4)
    assert all(layer.ok for layer in result.layers[:result.layers.index(failed)])
    assert "layer 'logits_float'" in result.failure and "FULLY_CONNECTED" in result.failure
    if form == "dataset":
        assert result.samples == SAMPLES and result.keras_accuracy is not None
    if form == "synthetic":
        assert result.samples == 64
        assert result.inputs.endswith("10 of 10 classes predicted")


def test_synthetic_inputs_reach_every_class(trained):
    model = tf.keras.models.load_model(trained["paths"]["model.h5"])
    data = parity_data(model, 20)
    assert data.inputs[0].shape == (20, 28, 28, 1) and data.labels is None
    assert 0.0 <= data.inputs[0].min() and data.inputs[0].max() <= 1.0
    predicted = np.argmax(model.predict(data.inputs[0], verbose=0), 1)
    assert set(predicted) == set(range(10))


def test_cli_real_data(trained, capsys, tmp_path):
    paths = trained["paths"]
    report = tmp_path / "parity.json"
    status = cli_main(["verify", paths["bias.h5"], paths["model.tflite"], "--data",
                       f"idx:{MNIST}", "--samples", "200", "--report", str(report), "--quiet"])
    out = capsys.readouterr().out
    assert status == 1 and "FAILED" in out and f"validation split of idx:{MNIST}" in out
    assert "Worst layers" in out and "logits_float" in out
    saved = json.loads(report.read_text())
    assert saved["ok"] is False and saved["samples"] == 200
    assert saved["failed_layer"] == "logits_float" and "logits_float" in saved["failure"]
    end_to_end = saved["end_to_end"]
    assert end_to_end["keras_accuracy"] is not None
    assert end_to_end["compared"] == "pre-softmax logits"
    assert next(layer["layer"] for layer in saved["layers"] if not layer["ok"]) == "logits_float"
    assert all({"max_abs_diff", "tolerance", "operators", "worst_sample"} <= set(layer)
               for layer in saved["layers"])

    with pytest.raises(SystemExit):  # the self-measured rounding floor is gone
        cli_main(["verify", paths["bias.h5"], paths["model.tflite"], "--no-rounding-floor"])
    assert "unrecognized arguments: --no-rounding-floor" in capsys.readouterr().err

    np.save(tmp_path / "x.npy", trained["x"][:50])
    np.save(tmp_path / "y.npy", trained["y"][:50])
    status = cli_main(["verify", paths["model.h5"], paths["model.tflite"], "--data",
                       str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0 and "x.npy with labels" in out and "first 50 samples" in out
    assert "accuracy Keras" in out

    status = cli_main(["convert", paths["bias.h5"], "-o", str(tmp_path / "b.tflite"),
                       "--data", f"idx:{MNIST}", "--verify", "100", "--quiet"])
    assert status == 0  # the shifted model converts to its own, equal, flatbuffer
    out = capsys.readouterr().out
    assert "100 samples (validation split of idx:" in out and ": OK" in out


@pytest.mark.parametrize("argv, message", [
    (["--data", "nope.txt"],
     "argument --data: must be mnist, idx:DIR, folder:DIR, tfds:NAME or PATH.npy"),
    (["--data", "missing.npy"], "--data: no such file"),
    (["--labels", "y.npy"], "--labels needs --data PATH.npy"),
    (["--data", "idx:"], "argument --data: must be mnist, idx:DIR"),
    (["--data", "idx:/nonexistent"], "--data idx:/nonexistent: directory /nonexistent does not"),
    (["--data", "folder:/nonexistent"], "--data folder:/nonexistent: /nonexistent/train does not"),
    (["--data", "mnist", "--data-dir", "/nonexistent"],
     "--data-dir: MNIST directory /nonexistent does not exist"),
    (["--data-dir", "/nonexistent"], "--data-dir needs --data mnist or --data tfds:NAME"),
])
def test_cli_bad_data(trained, capsys, argv, message):
    paths = trained["paths"]
    try:
        status = cli_main(["verify", paths["model.h5"], paths["model.tflite"], *argv, "--quiet"])
    except SystemExit as exit:  # argparse refuses a malformed --data
        status = exit.code
    assert status == 2 and message in capsys.readouterr().err


def test_bad_data_forms(trained):
    model, x, y = trained["perturbed"], trained["x"], trained["y"]
    with pytest.raises(ValueError, match="labels must be 300 class ids"):
        parity_data(model, (x, y[:10]))
    with pytest.raises(ValueError, match="a tuple must be \\(inputs, labels\\)"):
        parity_data(model, (x, y, y))
    with pytest.raises(ValueError, match="infinite"):
        parity_data(model, tf.data.Dataset.from_tensor_slices((x, y)).repeat())
    with pytest.raises(ValueError, match="must be >= 1 samples"):
        parity_data(model, 0)
    one_hot = parity_data(model, ParityData([x], np.eye(10)[y], "mine"))
    assert np.array_equal(one_hot.labels, y) and one_hot.source == "mine"


def test_logits_of_a_dense_softmax(tmp_path):
    tf.random.set_seed(1)
    model = tf.keras.Sequential([tf.keras.Input((6,)),
                                 tf.keras.layers.Dense(4, activation="softmax")])
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    kernel, bias = model.layers[0].get_weights()
    assert np.allclose(keras_logits(model)(x), x @ kernel + bias, atol=1e-5)
    assert np.allclose(model(x), tf.nn.softmax(x @ kernel + bias), atol=1e-6)  # unchanged
    import larq_compute_engine as lce

    flatbuffer = lce.convert_keras_model(model)
    (logits,) = run_tflite(flatbuffer_logits(flatbuffer), [x])
    assert np.allclose(logits, x @ kernel + bias, atol=1e-5)
    no_softmax = tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(4)])
    assert keras_logits(no_softmax) is None
    assert flatbuffer_logits(lce.convert_keras_model(no_softmax)) is None


def _layer(name, diff, tolerance=1e-3, **nonfinite):
    return LayerParity(layer=name, keras_layers=(name,), tensor=f"model/{name}",
                       operators=("ADD",), samples=4, max_abs_diff=diff,
                       mean_abs_diff=diff / 2, worst_sample=1, scale=1.0, tolerance=tolerance, elements_over=int(diff > tolerance),
                       samples_over=int(diff > tolerance), **nonfinite)


@pytest.mark.parametrize("layers, top1, failure", [
    ([_layer("a", 1e-4), _layer("b", 1e-4)], 1.0, None),
    ([_layer("a", 1e-4), _layer("b", 0.5), _layer("c", 0.7)], 1.0, "layer 'b'"),
    ([_layer("a", 1e-4, keras_nonfinite=3)], 1.0, "Keras layer 'a' outputs 3 NaN"),
    ([_layer("a", 1e-4, tflite_nonfinite=2)], 1.0, "of layer 'a' output 2 NaN"),
    ([_layer("a", 1e-4)], 0.5, "top-1 agreement 50.0% is under 90%"),
    ([], 1.0, "no Keras layer output was found"),
])
def test_the_verdict_comes_from_the_first_failing_layer(layers, top1, failure):
    result = Parity(samples=4, max_abs_diff=0.1, mean_abs_diff=0.01, reference_max_abs=2.0,
                    layers=layers, top1_agreement=top1)
    assert result.ok == (failure is None)
    if failure is None:
        assert result.failure is None and result.summary().endswith(": OK")
    else:
        assert failure in result.failure and failure in result.summary()
        assert result.to_dict()["failure"] == result.failure
    if "layer 'b'" in (failure or ""):
        assert result.failed_layer.layer == "b" and result.to_dict()["failed_layer"] == "b"
        assert "up to 0.5 on sample 1" in result.failure
        table = result.layer_table(2)
        assert table.index("| c ") < table.index("| b ") and "| a " not in table  # worst first


def test_end_to_end_nan_fails_with_its_own_message():
    result = Parity(samples=4, max_abs_diff=0.0, mean_abs_diff=0.0, reference_max_abs=1.0,
                    layers=[_layer("a", 0.0)], tflite_nonfinite=4, compared="pre-softmax logits")
    assert not result.ok
    assert "the converted model's pre-softmax logits hold 4 NaN" in result.failure


@pytest.mark.parametrize("where", ["kernel", "inputs"])
def test_nan_kernel_or_nan_inputs_fail(trained, tmp_path, where):
    """A NaN kernel in the Keras model (the .tflite is the trained one), or all-NaN inputs:
    no layer can be compared, and the check fails saying so."""
    model = tf.keras.models.load_model(trained["paths"]["model.h5"])
    x = trained["x"][:8].copy()
    if where == "kernel":
        layer = model.get_layer("logits_float")
        kernel, bias = layer.get_weights()
        layer.set_weights([np.full_like(kernel, np.nan), bias])
    else:
        x[:] = np.nan
    result = verify(model, trained["paths"]["model.tflite"], data=x)
    assert not result.ok and "NaN or infinite" in result.failure
    if where == "kernel":
        assert "'logits_float'" in result.failure


def _kbit_model():
    """4x4 image -> 2-bit activation (clip 1) -> binary 1x1 conv -> dense -> softmax."""
    import larq as lq

    from horq_keras.groupnet.quantizers import UniformActivation

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((4, 4, 1))
    x = lq.layers.QuantConv2D(2, 1, input_quantizer=UniformActivation(2),
                              kernel_quantizer="ste_sign", use_bias=False)(inputs)
    x = tf.keras.layers.Dense(3)(tf.keras.layers.Flatten()(x))
    return tf.keras.Model(inputs, tf.keras.layers.Softmax()(x))


def test_logits_of_a_model_sharing_its_softmax():
    """The bit-plane rewrite clones the model around its layers, so the clone's softmax
    layer is the original's: its logits are the clone's own call of that layer."""
    from horq_keras.converters.conversion import deployable

    model = _kbit_model()
    x = np.random.default_rng(0).uniform(0.25, 0.3, (10, 4, 4, 1)).astype(np.float32)
    deployed = deployable(model)[0]
    assert deployed.layers[-1] is model.layers[-1]
    np.testing.assert_allclose(keras_logits(deployed).predict(x, verbose=0),
                               keras_logits(model).predict(x, verbose=0), atol=1e-5)


def test_cli_verifies_on_the_data_train_reads(trained, capsys, tmp_path):
    """``--data`` means what it means for ``train``: an image folder's and any IDX data's
    validation split (not only checksummed MNIST), prepared as ``train`` prepares it."""
    paths = trained["paths"]
    folder = mnist_folder(tmp_path / "digits", n_train=60, n_val=40)
    status = cli_main(["verify", paths["model.h5"], paths["model.tflite"], "--data",
                       f"folder:{folder}", "--report", str(tmp_path / "f.json"), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"validation split of folder:{folder}, first 40 samples" in out
    assert json.loads((tmp_path / "f.json").read_text())["end_to_end"]["keras_accuracy"] > 0.5

    idx = tmp_path / "idx"  # IDX data that is not MNIST: its checksums differ
    idx.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (idx / name).write_bytes((MNIST / name).read_bytes())
    images = bytearray((MNIST / "t10k-images-idx3-ubyte").read_bytes())
    images[16:16 + 28 * 28] = bytes(28 * 28)  # the first test digit blanked
    (idx / "t10k-images-idx3-ubyte").write_bytes(bytes(images))
    status = cli_main(["verify", paths["model.h5"], paths["model.tflite"], "--data",
                       f"idx:{idx}", "--samples", "30", "--quiet"])
    out = capsys.readouterr().out
    assert status == 0 and f"validation split of idx:{idx}, first 30 samples" in out


@pytest.mark.parametrize("labels, message", [
    (np.full(20, 10), "--labels: class ids must be in 0..9 (the model's 10 classes); got ids 10..10"),
    (np.full(20, -1), "class ids must be in 0..9"),
    (np.full(20, 0.5), "--labels: class ids must be integers; got float64"),
    (np.zeros((20, 2), np.int64), "--labels: class ids must be a 1-D array"),
])
def test_cli_refuses_labels_outside_the_model(trained, capsys, tmp_path, labels, message):
    paths = trained["paths"]
    np.save(tmp_path / "x.npy", trained["x"][:20])
    np.save(tmp_path / "y.npy", labels)
    status = cli_main(["verify", paths["model.h5"], paths["model.tflite"], "--data",
                       str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--quiet"])
    assert status == 2 and message in capsys.readouterr().err
