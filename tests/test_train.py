"""``horq-keras train``: the real CLI path on a slice of MNIST, resuming at every stage,
``--overwrite`` that keeps the old results until the new ones are complete."""

import csv
import json
import types

import horq_keras  # noqa: F401  (selects Keras 2 before TensorFlow is used)
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from train_data import REAL_MNIST, needs_mnist

from horq_keras.training import callbacks, train
from horq_keras.cli import main
from horq_keras.datasets import load_mnist, scale_images
from horq_keras.exit_status import INTERRUPTED
from horq_keras.training.rundir import MARKER, STAGING


class Interrupted(KeyboardInterrupt):
    """A simulated Ctrl-C."""


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


def history_epochs(path):
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


MAKE_CALLBACKS = train.make_callbacks


def interrupt_at(monkeypatch, stop, begun):
    monkeypatch.setattr(train, "make_callbacks", lambda *a: [*MAKE_CALLBACKS(*a),
                                                             InterruptAtEpoch(stop, begun)])


ARGV = ["train", "--epochs", "2", "--limit-train", "1024", "--limit-test", "256",
        "--batch-size", "32", "--data-dir", str(REAL_MNIST)]


@needs_mnist
def test_train_interrupted_then_resumed(tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = [*ARGV, "--output-dir", str(out)]
    staging = out / STAGING

    # Run 1 dies during epoch 2 of 2: the backup of epoch 1 survives, no result is written.
    begun = []
    interrupt_at(monkeypatch, 1, begun)
    assert main(argv) == INTERRUPTED
    assert begun == [0, 1]
    assert (staging / "backup").is_dir() and (staging / "checkpoint.h5").is_file()
    assert sorted(p.name for p in out.iterdir()) == [MARKER, STAGING]  # no result yet
    assert history_epochs(staging / "history.csv") == [0]
    assert json.loads((staging / "state.json").read_text())["stage"] == "training"

    # Resuming with other options is refused (exit code 2) and leaves the backup alone.
    assert main([*argv, "--order", "1"]) == 2
    assert (staging / "backup").is_dir()

    # Run 2 resumes at epoch 2 instead of starting over, then converts and verifies.
    begun.clear()
    interrupt_at(monkeypatch, 99, begun)
    assert main(argv) == 0
    assert begun == [1]
    assert history_epochs(out / "history.csv") == [0, 1]
    assert not staging.exists()
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER, "history.csv", "labels.txt", "model.h5", "model.tflite", "report.json",
        "run_config.json"]

    report = json.loads((out / "report.json").read_text())
    assert report["epochs_run"] == [1] and report["converted"] is True
    # The history and the training time are the whole run's, not only the resumed part's.
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert report["history"]["val_accuracy"] == [float(row["val_accuracy"]) for row in rows]
    assert len(report["history"]["loss"]) == 2 and "seconds" not in report["history"]
    assert all(float(row["seconds"]) > 0 for row in rows)
    assert report["train_seconds"] == pytest.approx(sum(float(row["seconds"]) for row in rows))
    assert report["config"]["model"] == "horq_lenet" and report["config"]["data"] == "mnist"
    assert report["val_samples"] == report["parity_samples"] == 256
    assert report["keras_test_accuracy"] > 0.7  # 64 steps: far above chance (0.1)
    assert report["top1_agreement"] >= 0.99 and report["parity_ok"] is True
    assert report["conversion"]["parity"]["inputs"].startswith("given tf.data.Dataset")
    assert report["op_counts"]["LceBconv2d"] == 4  # order 2 x two HORQ layers

    # The saved files are the evaluated models: reload both and recompute the figures.
    (_, _), (x_test, y_test) = load_mnist(REAL_MNIST)
    x = scale_images(x_test[:256]).numpy()
    keras_probs = tf.keras.models.load_model(str(out / "model.h5")).predict(x, verbose=0)
    assert np.mean(keras_probs.argmax(-1) == y_test[:256]) == pytest.approx(
        report["keras_test_accuracy"])
    interpreter = lce.testing.Interpreter((out / "model.tflite").read_bytes(),
                                          use_indirect_bgemm=True, use_xnnpack=True)
    tflite_probs = interpreter.predict(x)
    assert np.mean(tflite_probs.argmax(-1) == y_test[:256]) == pytest.approx(
        report["tflite_test_accuracy"])

    # A finished run is not overwritten by accident.
    assert main(argv) == 2
    assert json.loads((out / "report.json").read_text()) == report


@needs_mnist
def test_interrupt_after_training_resumes_at_conversion(tmp_path, monkeypatch):
    """model.h5 saved, conversion interrupted: the same command converts, no retraining."""
    out = tmp_path / "run"
    argv = [*ARGV, "--epochs", "1", "--output-dir", str(out)]
    convert_and_verify = train.convert_and_verify

    def interrupted(*args, **kwargs):
        raise Interrupted("simulated interruption during conversion")

    monkeypatch.setattr(train, "convert_and_verify", interrupted)
    assert main(argv) == INTERRUPTED
    state = json.loads((out / STAGING / "state.json").read_text())
    assert state["stage"] == "trained" and (out / STAGING / "model.h5").is_file()
    trained = (out / STAGING / "model.h5").read_bytes()

    monkeypatch.setattr(train, "convert_and_verify", convert_and_verify)
    begun = []
    interrupt_at(monkeypatch, 99, begun)
    assert main(argv) == 0
    assert begun == []  # not trained again
    assert (out / "model.h5").read_bytes() == trained
    assert json.loads((out / "report.json").read_text())["converted"] is True


@needs_mnist
def test_overwrite_keeps_the_old_run_until_the_new_one_is_complete(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    old = {"model.h5": b"old model", "model.tflite": b"old tflite", "report.json": b"{}",
           "run_config.json": b"{}", "history.csv": b"epoch\n0\n"}
    for name, content in old.items():
        (out / name).write_bytes(content)
    (out / MARKER).write_text(json.dumps({"tool": "horq-keras train", "results": [*old]}))
    argv = [*ARGV, "--epochs", "1", "--output-dir", str(out), "--beta-form", "column",
            "--order", "1"]

    assert main(argv) == 2  # a finished run is kept unless --overwrite is given
    assert main([*argv, "--overwrite", "--data-dir", str(tmp_path / "typo")]) == 2
    assert {name: (out / name).read_bytes() for name in old} == old
    assert not (out / STAGING).exists()

    begun = []
    interrupt_at(monkeypatch, 0, begun)  # the new run dies: the old one is intact
    assert main([*argv, "--overwrite"]) == INTERRUPTED
    assert {name: (out / name).read_bytes() for name in old} == old

    interrupt_at(monkeypatch, 99, begun)
    assert main([*argv, "--overwrite"]) == 0
    assert not (out / "model.tflite").exists()  # the old one described another model
    model = tf.keras.models.load_model(str(out / "model.h5"))
    assert model.get_layer("conv2").beta_form == "column"
    report = json.loads((out / "report.json").read_text())
    assert report["converted"] is False and "tflite_test_accuracy" not in report
    assert report["config"]["model_args"] == {"beta_form": "column", "order": 1}
    assert 0.0 <= report["keras_test_accuracy"] <= 1.0
    assert history_epochs(out / "history.csv") == [0]


def test_history_csv_keeps_the_rows_before_the_resumed_epoch(tmp_path, monkeypatch):
    """A row written after the last backup (then interrupted) is dropped on resume; the
    history and the seconds cover the kept rows and the new one."""
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,seconds\n0,1.0,3.5\n1,0.5,4.0\n")
    clock = iter([100.0, 102.25])
    monkeypatch.setattr(callbacks, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    callback = callbacks.HistoryCSV(path)
    callback.on_epoch_begin(1)  # the backup holds epoch 0 only
    callback.on_epoch_end(1, {"loss": 0.25})
    assert path.read_text() == "epoch,loss,seconds\n0,1.0,3.5\n1,0.25,2.25\n"
    assert callback.history() == {"loss": [1.0, 0.25]}
    assert callback.seconds() == 5.75


def test_history_csv_of_a_run_begun_without_seconds(tmp_path, monkeypatch):
    """Rows written before the ``seconds`` column existed count 0 seconds."""
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n")
    clock = iter([10.0, 12.0])
    monkeypatch.setattr(callbacks, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    callback = callbacks.HistoryCSV(path)
    callback.on_epoch_begin(1)
    callback.on_epoch_end(1, {"loss": 0.5})
    assert path.read_text() == "epoch,loss,seconds\n0,1.0,\n1,0.5,2.0\n"
    assert callback.history() == {"loss": [1.0, 0.5]}
    assert callback.seconds() == 2.0


def test_saving_the_run_model_shows_no_hdf5_format_advice(tmp_path):
    """The trainer saves HDF5 on purpose; tf_keras' "legacy format" warning is not shown."""
    import warnings

    import tensorflow as tf
    from horq_keras.training.callbacks import save_model_atomic

    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inputs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_model_atomic(model, tmp_path / "model.h5")
    assert not [w for w in caught if "HDF5" in str(w.message)]
    assert tf.keras.models.load_model(tmp_path / "model.h5").get_weights()[0].shape == (4, 2)
