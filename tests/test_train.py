"""``horq-keras train``: the real CLI path on a slice of MNIST, resuming, bad options."""

import csv
import json
import pathlib

import horq_keras  # noqa: F401  (selects Keras 2 before TensorFlow is used)
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

from horq_keras import train
from horq_keras.cli import main
from horq_keras.datasets import load_mnist, scale_images

REAL_MNIST = pathlib.Path(__file__).resolve().parents[1] / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not REAL_MNIST.is_dir(), reason=f"real MNIST not installed at {REAL_MNIST} (run `make data`)"
)


class Interrupted(Exception):
    pass


class InterruptAtEpoch(tf.keras.callbacks.Callback):
    """Record the epochs begun; raise in the first batch of epoch ``stop`` (like a kill)."""

    def __init__(self, stop, begun):
        super().__init__()
        self.stop, self.begun = stop, begun

    def on_epoch_begin(self, epoch, logs=None):
        self.begun.append(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.begun[-1] == self.stop:
            raise Interrupted(f"simulated interruption in epoch {self.stop}")


def history_epochs(output_dir):
    with open(output_dir / "history.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@needs_mnist
def test_train_interrupted_then_resumed(tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "--epochs", "2", "--limit-train", "1024", "--limit-test", "256",
            "--batch-size", "32", "--data-dir", str(REAL_MNIST), "--output-dir", str(out)]
    make_callbacks = train.make_callbacks

    # Run 1 dies during epoch 2 of 2: the backup of epoch 1 survives, no result is written.
    begun = []
    monkeypatch.setattr(train, "make_callbacks", lambda *a: [*make_callbacks(*a),
                                                             InterruptAtEpoch(1, begun)])
    with pytest.raises(Interrupted):
        main(argv)
    assert begun == [0, 1]
    assert (out / "backup").is_dir() and (out / "checkpoint.h5").is_file()
    assert not any((out / name).exists() for name in ("model.h5", "model.tflite", "report.json"))
    assert history_epochs(out) == [0]

    # Resuming with other options is refused (exit code 2) and leaves the backup alone.
    assert main([*argv, "--order", "1"]) == 2
    assert (out / "backup").is_dir()

    # Run 2 resumes at epoch 2 instead of starting over, then converts and verifies.
    begun.clear()
    monkeypatch.setattr(train, "make_callbacks", lambda *a: [*make_callbacks(*a),
                                                             InterruptAtEpoch(99, begun)])
    assert main(argv) == 0
    assert begun == [1]
    assert history_epochs(out) == [0, 1]
    assert not (out / "backup").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp files

    report = json.loads((out / "report.json").read_text())
    assert report["epochs_run"] == [1] and report["converted"] is True
    assert report["config"]["order"] == 2 and report["config"]["beta_form"] == "pixel"
    assert report["test_samples"] == 256
    for key in ("keras_test_accuracy", "tflite_test_accuracy", "top1_agreement"):
        assert 0.0 <= report[key] <= 1.0
    assert report["keras_test_accuracy"] > 0.7  # 64 steps: far above chance (0.1)
    assert report["top1_agreement"] >= train.MIN_AGREEMENT
    assert abs(report["keras_test_accuracy"] - report["tflite_test_accuracy"]) <= (
        1.0 - report["top1_agreement"] + 1e-9)
    assert 0.0 <= report["max_abs_prob_diff"] < 0.1
    assert report["op_counts"]["LceBconv2d"] == 4  # order 2 x two HORQ layers
    assert report["train_seconds"] > 0

    # The saved files are the evaluated models: reload both and recompute the figures.
    (_, _), (x_test, y_test) = load_mnist(REAL_MNIST)
    x = scale_images(x_test[:256]).numpy()
    keras_probs = tf.keras.models.load_model(str(out / "model.h5")).predict(x, verbose=0)
    assert np.mean(keras_probs.argmax(-1) == y_test[:256]) == report["keras_test_accuracy"]
    interpreter = lce.testing.Interpreter((out / "model.tflite").read_bytes(),
                                          use_indirect_bgemm=True, use_xnnpack=True)
    tflite_probs = interpreter.predict(x)
    assert np.mean(tflite_probs.argmax(-1) == y_test[:256]) == report["tflite_test_accuracy"]
    assert np.mean(tflite_probs.argmax(-1) == keras_probs.argmax(-1)) == report["top1_agreement"]

    # A finished run is not overwritten by accident.
    assert main(argv) == 2
    assert json.loads((out / "report.json").read_text()) == report


@needs_mnist
def test_train_column_form_overwrites_and_skips_conversion(tmp_path, capsys):
    out = tmp_path / "column"
    out.mkdir()
    old_files = {"model.h5": b"old model", "model.tflite": b"old tflite", "report.json": b"{}"}
    for name, content in old_files.items():
        (out / name).write_bytes(content)
    argv = ["train", "--beta-form", "column", "--order", "1", "--epochs", "1",
            "--limit-train", "128", "--limit-test", "64", "--data-dir", str(REAL_MNIST),
            "--output-dir", str(out)]

    assert main(argv) == 2  # a finished run is kept unless --overwrite is given
    assert "already holds a finished run" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in old_files} == old_files

    assert main([*argv, "--overwrite"]) == 0
    assert "Skipping conversion: beta_form='column'" in capsys.readouterr().out
    assert not (out / "model.tflite").exists()  # the old one described another model
    model = tf.keras.models.load_model(str(out / "model.h5"))
    assert model.get_layer("conv2").beta_form == "column"
    report = json.loads((out / "report.json").read_text())
    assert report["converted"] is False and "tflite_test_accuracy" not in report
    assert report["config"]["beta_form"] == "column" and report["test_samples"] == 64
    assert 0.0 <= report["keras_test_accuracy"] <= 1.0


@pytest.mark.parametrize("option, value, message", [
    ("--order", "0", "argument --order: must be an integer >= 1; got '0'"),
    ("--order", "two", "argument --order: must be an integer >= 1; got 'two'"),
    ("--beta-form", "foo", "argument --beta-form: invalid choice: 'foo'"),
    ("--epochs", "0", "argument --epochs: must be an integer >= 1; got '0'"),
    ("--learning-rate", "-1", "argument --learning-rate: must be a finite number > 0"),
    ("--limit-test", "-3", "argument --limit-test: must be an integer >= 1; got '-3'"),
])
def test_bad_options(option, value, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", option, value, "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
