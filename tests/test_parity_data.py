"""Parity with real data: a trained MNIST LeNet whose one logit bias is shifted by +2 must
fail against the original .tflite (real MNIST images, synthetic inputs, every data form
and the command line), the original must pass, and the report says what was compared."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from horq_keras.converters import convert, verify
from horq_keras.converters.logits import flatbuffer_logits, keras_logits
from horq_keras.converters.parity_data import ParityData, parity_data
from horq_keras.converters.report import Parity, misses_allowed
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
    assert result.samples_within >= 0.99 and result.top1_agreement >= 0.99


@pytest.mark.parametrize("form", ["tuple", "array", "dataset", "synthetic"])
def test_shifted_bias_fails(trained, form):
    x, y = trained["x"], trained["y"]
    data = {"tuple": (x, y), "array": x, "synthetic": None,
            "dataset": tf.data.Dataset.from_tensor_slices((x, y)).batch(64)}[form]
    result = verify(trained["perturbed"], trained["paths"]["model.tflite"], data=data)
    assert not result.ok and "FAILED" in result.summary()
    assert result.max_abs_diff == pytest.approx(2.0, abs=0.05)
    assert result.samples_within < 0.5
    # The strict check failed, so the rounding floor was measured: this LeNet's float
    # rounding moves its logits by far less than the shifted bias, which stays a failure.
    assert result.rounding_floor is not None and result.rounding_floor < 1e-3
    assert result.strict_within == result.samples_within
    assert "rounding floor" in result.summary()
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
    saved = json.loads(report.read_text())
    assert saved["ok"] is False and saved["samples"] == 200
    assert saved["keras_accuracy"] is not None and saved["compared"] == "pre-softmax logits"
    assert saved["rounding_floor"] < 1e-3 and saved["strict_within"] == saved["samples_within"]

    status = cli_main(["verify", paths["bias.h5"], paths["model.tflite"], "--data",
                       f"idx:{MNIST}", "--samples", "50", "--report", str(report), "--quiet",
                       "--no-rounding-floor"])
    out = capsys.readouterr().out
    assert status == 1 and "rounding floor" not in out
    assert json.loads(report.read_text())["rounding_floor"] is None

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


@pytest.mark.parametrize("minimum, samples, allowed", [
    (0.99, 32, 1), (0.99, 300, 3), (0.9, 32, 3), (1.0, 32, 0), (0.5, 1, 1)])
def test_a_share_under_all_tolerates_one_sample(minimum, samples, allowed):
    assert misses_allowed(minimum, samples) == allowed

    def parity(within, top1):
        return Parity(samples=samples, max_abs_diff=1.0, mean_abs_diff=0.1,
                      reference_max_abs=2.0, samples_within=within / samples,
                      top1_agreement=top1 / samples, min_within=minimum, min_top1=minimum)

    assert parity(samples - allowed, samples).ok
    assert parity(samples, samples - allowed).ok
    if allowed < samples:
        assert not parity(samples - allowed - 1, samples).ok
        assert not parity(samples, samples - allowed - 1).ok


class _Runs:
    """Stands in for the interpreter: the XNNPACK run gives ``actual``, the run without
    XNNPACK ``actual + floor`` on the first sample's first logit."""

    def __init__(self, actual, floor):
        self.actual, self.floor, self.options = actual, floor, []

    def __call__(self, flatbuffer, inputs, *, options=None, **kwargs):
        self.options.append(options)
        if options is None or options.use_xnnpack:
            return [self.actual]
        other = self.actual.copy()
        other[0, 0] += self.floor
        return [other]


@pytest.mark.parametrize("floor, ok", [(0.3, True), (0.05, False)])
def test_rounding_floor_widens_a_failing_check(trained, monkeypatch, floor, ok):
    """Keras vs the .tflite differ by 0.5 on 20 % of the samples: strict parity fails;
    with a rounding floor of 0.3 the tolerance grows by 0.6 and the check passes, with
    0.05 it still fails."""
    from horq_keras.converters import verification

    x = trained["x"][:50]
    keras_model = keras_logits(tf.keras.models.load_model(trained["paths"]["model.h5"]))
    expected = keras_model.predict(x, verbose=0)
    actual, rows = expected.copy(), np.arange(0, len(x), 5)
    actual[rows, np.argmax(expected[rows], 1)] += 0.5  # top-1 kept
    runs = _Runs(actual, floor)
    monkeypatch.setattr(verification, "run_tflite", runs)
    monkeypatch.setattr(verification, "flatbuffer_logits", lambda flatbuffer: flatbuffer)
    model = tf.keras.models.load_model(trained["paths"]["model.h5"])
    result = verification.parity(model, b"tflite", x)
    assert [o.use_xnnpack for o in runs.options[1:]] == [False]  # one extra run
    assert result.strict_within == pytest.approx(0.8)
    # The floor is added to float32 logits: exact up to float32 rounding.
    assert result.rounding_floor == pytest.approx(floor, abs=1e-6)
    assert result.tolerance == pytest.approx(result.strict_tolerance + 2 * floor, abs=2e-6)
    assert result.samples_within == pytest.approx(1.0 if ok else 0.8)
    assert result.ok == ok and result.top1_agreement == 1.0
    assert result.to_dict()["rounding_floor"] == pytest.approx(floor, abs=1e-6)

    runs.options.clear()
    strict = verification.parity(model, b"tflite", x, rounding_floor=False)
    assert not strict.ok and strict.rounding_floor is None and len(runs.options) == 1


def test_rounding_floor_is_not_measured_when_the_check_passes(trained, monkeypatch):
    from horq_keras.converters import verification

    x = trained["x"][:20]
    model = tf.keras.models.load_model(trained["paths"]["model.h5"])
    runs = _Runs(keras_logits(model).predict(x, verbose=0), 1.0)
    monkeypatch.setattr(verification, "run_tflite", runs)
    monkeypatch.setattr(verification, "flatbuffer_logits", lambda flatbuffer: flatbuffer)
    result = verification.parity(model, b"tflite", x)
    assert result.ok and result.rounding_floor is None and len(runs.options) == 1
    assert "rounding floor" not in result.summary()


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


def _tie_inputs(samples=10, ties=(0, 1)):
    """Pixels at u = 3x in [0.75, 0.9], away from the thresholds 0.5, 1.5, 2.5 of a 2-bit
    activation; samples ``ties`` get one pixel at x = 1/6 (u = 0.5 up to float32)."""
    x = np.random.default_rng(0).uniform(0.25, 0.3, (samples, 4, 4, 1)).astype(np.float32)
    x[list(ties), 1, 2, 0] = np.float32(1 / 6)
    return x


def test_near_ties_against_the_thresholds():
    from horq_keras.converters.ties import TIE_EPSILON, near_ties

    two_bit = np.array([[1.5 / 3 + 1e-7], [0.5 / 3 + 1e-4], [2.0], [-1.0], [2.5 / 3 - 1e-7]])
    assert near_ties([two_bit], [(2, 1.0)]).tolist() == [True, False, False, False, True]
    # 3 bits, clip 2: thresholds at x = 2 (i + 1/2) / 7; u = 3.5 at x = 1.
    three_bit = np.array([[0.3, 1.0], [0.3, 1.0 + 2 * TIE_EPSILON / 7], [0.3, 0.3]])
    assert near_ties([three_bit], [(3, 2.0)]).tolist() == [True, False, False]
    # A sample ties when any quantizer's input does.
    assert near_ties([two_bit[:3], three_bit], [(2, 1.0), (3, 2.0)]).tolist() == [
        True, False, False]


def test_tie_probe_reads_the_kbit_inputs(trained):
    from horq_keras.converters.ties import tie_probe

    probe, specs = tie_probe(_kbit_model())
    x = _tie_inputs()
    assert specs == [(2, 1.0)]
    np.testing.assert_array_equal(probe(x).numpy(), x)  # the quantizer reads the image
    assert tie_probe(tf.keras.models.load_model(trained["paths"]["model.h5"])) is None


def test_nudged_crosses_only_the_thresholds_it_sits_on():
    """Moving every 2-bit input by +-epsilon levels changes exactly the samples with a
    tie (their pixel at u = 0.5 rounds to level 1 up, stays at 0 down), in NumPy terms."""
    from horq_keras.converters.ties import nudged

    model, x = _kbit_model(), _tie_inputs(ties=(0, 1))
    conv = model.layers[1]
    plain = keras_logits(model).predict(x, verbose=0)
    up = keras_logits(nudged(model, 1)).predict(x, verbose=0)
    down = keras_logits(nudged(model, -1)).predict(x, verbose=0)
    np.testing.assert_array_equal(down, plain)
    np.testing.assert_array_equal(up[2:], plain[2:])
    # Reference: the tie pixel at level 1 (1/3) instead of 0, through the same weights.
    levels = np.round(np.clip(x, 0, 1) * 3) / 3
    levels[[0, 1], 1, 2, 0] = 1 / 3
    kernel = np.sign(conv.get_weights()[0])[0, 0]  # (1, 2)
    dense_kernel, dense_bias = model.layers[3].get_weights()
    reference = (levels.reshape(10, 16, 1) @ kernel).reshape(10, -1) @ dense_kernel + dense_bias
    np.testing.assert_allclose(up[:2], reference[:2], atol=1e-5)
    assert np.abs(up[:2] - plain[:2]).max() > 0.01


@pytest.mark.parametrize("case, excused", [("ties flipped", 2), ("others moved", 0),
                                           ("ties moved far", 0)])
def test_samples_on_a_kbit_threshold_are_excused(monkeypatch, case, excused):
    """Two of 10 samples have a 2-bit input on a rounding threshold. The .tflite rounds
    those ties the other way (its logits are Keras' with the ties crossed): excused. The
    .tflite differs by 0.5 on two other samples, or by 50 on the tied ones (beyond what
    crossing a tie does): not excused."""
    from horq_keras.converters import verification
    from horq_keras.converters.ties import nudged

    model, x = _kbit_model(), _tie_inputs(ties=(0, 1))
    expected = keras_logits(model).predict(x, verbose=0)
    actual = expected.copy()
    if case == "ties flipped":
        actual[:2] = keras_logits(nudged(model, 1)).predict(x[:2], verbose=0)
    else:
        rows = [2, 3] if case == "others moved" else [0, 1]
        actual[rows, np.argmax(expected[rows], 1)] += 0.5 if case == "others moved" else 50
    monkeypatch.setattr(verification, "run_tflite", _Runs(actual, 0.0))
    monkeypatch.setattr(verification, "flatbuffer_logits", lambda flatbuffer: flatbuffer)
    result = verification.parity(model, b"tflite", x)
    assert result.strict_within == pytest.approx(0.8) and result.rounding_floor == 0.0
    assert result.tie_samples == 2 and result.tie_excused == excused
    assert result.samples_within == pytest.approx(0.8 + excused / 10)
    assert result.ok == (excused == 2)
    assert result.to_dict()["tie_excused"] == excused
    assert f"{excused} sample(s) over it excused" in result.summary()
    strict = verification.parity(model, b"tflite", x, rounding_floor=False)
    assert not strict.ok and strict.tie_samples is None


def test_logits_of_a_model_sharing_its_softmax():
    """The bit-plane rewrite clones the model around its layers, so the clone's softmax
    layer is the original's: its logits are the clone's own call of that layer."""
    from horq_keras.converters.conversion import deployable

    model, x = _kbit_model(), _tie_inputs(ties=())
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
    assert json.loads((tmp_path / "f.json").read_text())["keras_accuracy"] > 0.5

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
