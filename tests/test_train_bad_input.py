"""``horq-keras train`` bad input: one line on stderr, exit code 2, nothing written.

Each case of the table in docs/bad_input.md; none may print a traceback or download anything.
"""

import argparse
import json
import os
import pathlib
import re
import signal
import socket
import threading
import time

import horq_keras  # noqa: F401
import numpy as np
import pytest
import tensorflow as tf
from train_data import REAL_MNIST, mnist_folder, needs_mnist

from horq_keras.training import train
from horq_keras.cli import main
from horq_keras.datasets import ENV_VAR, load_mnist, scale_images
from horq_keras.datasets.pipelines import inspect_data
from horq_keras.datasets.sources import parse_source
from horq_keras.exit_status import EPILOG, INTERNAL_ERROR
from horq_keras.tflite.graph import operator_names
from horq_keras.tflite.interpreter import LceInterpreter
from horq_keras.tflite.metadata import embed_labels, labels_text, read_labels
from horq_keras.training import memory, registry
from horq_keras.training.cluster import parse_tf_config, wait_for_cluster
from horq_keras.training.distill import DistillationLoss, distillation_model
from horq_keras.training.local_cluster import free_ports
from horq_keras.training.rundir import STAGING


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return mnist_folder(tmp_path_factory.mktemp("digits"), n_train=20, n_val=10)


def run_train(args, out, capsys):
    """``main(["train", ...])``: (exit code, stderr); argparse errors count too."""
    try:
        code = main(["train", *args, "--output-dir", str(out)])
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


def assert_refused(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_train(args, out, capsys)
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "usage:" not in line
             and not line.startswith(" ")]
    assert len(lines) == 1, err
    assert not out.exists()


# (case, arguments, message): the table of docs/bad_input.md.
CASES = [
    ("unknown model", ["--model", "resnet9000"], "--model: unknown model 'resnet9000'"),
    ("unknown model argument", ["--model-arg", "depth=3"],
     "--model-arg depth: horq_lenet takes no argument 'depth'"),
    ("mistyped model argument", ["--model-arg", "order=two"],
     "--model-arg order: must be an integer; got 'two'"),
    ("model argument without =", ["--model-arg", "order"], "--model-arg: expected key=value"),
    ("model argument the builder refuses", ["--model-arg", "order=0"],
     "--model horq_lenet with {'order': 0}"),
    ("reserved model argument", ["--model-arg", "num_classes=3"],
     "--model-arg num_classes: set by the trainer from the data"),
    ("model argument given twice", ["--model-arg", "order=2", "--model-arg", "order=3"],
     "--model-arg order: given twice with different values, 2 and 3"),
    ("--order against --model-arg", ["--model-arg", "order=3", "--order", "2"],
     "--order 2 conflicts with --model-arg order=3"),
    ("--beta-form against --model-arg", ["--model-arg", "beta_form=pixel", "--beta-form",
                                         "sample"],
     "--beta-form sample conflicts with --model-arg beta_form=pixel"),
    ("--order on a model without it", ["--model", "groupnet_alexnet", "--order", "2"],
     "--order: groupnet_alexnet has no order argument"),
    ("malformed --data", ["--data", "imagenet"],
     "argument --data: must be mnist, idx:DIR, folder:DIR or tfds:NAME"),
    ("missing --data-dir", ["--data-dir", "/no/such/mnist"],
     "--data-dir: MNIST directory /no/such/mnist does not exist"),
    ("missing idx:DIR", ["--data", "idx:/no/such/idx"],
     "--data idx:/no/such/idx: directory /no/such/idx does not exist"),
    ("missing folder:DIR", ["--data", "folder:/no/such/images"],
     "--data folder:/no/such/images: /no/such/images/train does not exist"),
    ("tfds without --data-dir", ["--data", "tfds:imagenet2012"],
     "--data tfds:imagenet2012: --data-dir must name the folder"),
    ("tfds not prepared", ["--data", "tfds:imagenet2012", "--data-dir", "/no/such/tfds"],
     "--data-dir: /no/such/tfds/imagenet2012 holds no prepared TFDS dataset"),
    ("--image-size with IDX data", ["--image-size", "64"], "--image-size: applies to folder:"),
    ("seed out of range", ["--seed", "4294967296"],
     "argument --seed: must be an integer in [0, 4294967295]; got '4294967296'"),
    ("unknown recipe", ["--recipe", "imagenet"], "argument --recipe: invalid choice: 'imagenet'"),
    ("bad recipe value", ["--lr-milestones", "30,10"],
     "argument --lr-milestones: must be increasing comma-separated epochs"),
    ("step schedule without milestones", ["--schedule", "step"],
     "--lr-milestones: a 'step' schedule needs at least one epoch"),
    ("distillation weight above 1", ["--distill-weight", "2"],
     "--distill-weight: must be in [0, 1]"),
    ("missing teacher file", ["--teacher", "/no/such/teacher.h5"], "--teacher"),
    ("epochs 0", ["--epochs", "0"], "argument --epochs: must be an integer >= 1; got '0'"),
    ("bad --beta-form", ["--beta-form", "foo"], "argument --beta-form: invalid choice: 'foo'"),
    ("negative learning rate", ["--learning-rate", "-1"],
     "argument --learning-rate: must be a finite number > 0"),
]


@needs_mnist
@pytest.mark.parametrize("case, args, message", CASES, ids=[case[0] for case in CASES])
def test_refused(case, args, message, tmp_path, capsys, monkeypatch):
    if "--data-dir" not in args and not any(a.startswith(("idx:", "folder:", "tfds:"))
                                            for a in args):
        args = [*args, "--data-dir", str(REAL_MNIST)]
    assert_refused(args, message, tmp_path, capsys)


def test_no_local_mnist_is_an_error_not_a_download(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert_refused([], "--data-dir: MNIST directory", tmp_path, capsys)


def test_class_folder_without_images(tmp_path, capsys):
    root = mnist_folder(tmp_path / "digits", n_train=20, n_val=10)
    (root / "train" / "empty").mkdir()
    (root / "train" / "empty" / "notes.txt").write_text("no image here")
    assert_refused(["--data", f"folder:{root}"],
                   f"class folder {root / 'train' / 'empty'} has no JPEG or PNG images",
                   tmp_path, capsys)


def test_image_size_the_model_cannot_take(folder, tmp_path, capsys):
    assert_refused(["--data", f"folder:{folder}", "--image-size", "8"],
                   "--model horq_lenet with its defaults and input shape (8, 8, 1)",
                   tmp_path, capsys)


def test_output_dir_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("a file")
    code, err = run_train(["--data-dir", str(REAL_MNIST)], out, capsys)
    assert code == 2 and f"--output-dir: {out} exists and is not a directory" in err
    assert out.read_text() == "a file"


def test_val_classes_must_be_training_classes(tmp_path, capsys):
    root = mnist_folder(tmp_path / "digits", n_train=20, n_val=10)
    (root / "val" / "unicorn").mkdir()
    assert_refused(["--data", f"folder:{root}"], "val/ has classes that train/ lacks: unicorn",
                   tmp_path, capsys)



def assert_one_line(code, err, status=2):
    assert code == status, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "usage:" not in line
             and not line.startswith(" ")]
    assert len(lines) == 1, err


def user_files(folder):
    """``{relative path: bytes}`` of every file under ``folder``."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def write_files(root, files):
    """Write ``{relative path: text}`` under ``root``; return ``root``."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def assert_refused_keeping(folder, args, out, message, capsys):
    """``train ARGS --output-dir OUT`` is refused with one line naming ``message``, and
    nothing under ``folder`` changes."""
    before = user_files(folder)
    code, err = run_train(args, out, capsys)
    assert_one_line(code, err)
    assert message in err, err
    assert user_files(folder) == before


@needs_mnist
def test_folder_of_the_user_is_refused_without_overwrite(tmp_path, capsys):
    out = write_files(tmp_path / "mine", {
        **{name: f"the user's {name}" for name in ("report.json", "history.csv",
                                                   "model.tflite", "float_model.h5")},
        ".partial/notes.txt": "the user's notes"})
    assert_refused_keeping(out, ["--data-dir", str(REAL_MNIST)], out,
                           f"--output-dir: {out} is not empty and is not a horq-keras train run",
                           capsys)


@needs_mnist
def test_overwrite_in_a_folder_of_the_user_replaces_only_the_run_files(tmp_path, capsys):
    out = write_files(tmp_path / "mine", {".partial/notes.txt": "the user's notes",
                                          "model.tflite": "the user's model",
                                          "model.h5": "replaced by the run"})
    args = ["--data-dir", str(REAL_MNIST), "--epochs", "1", "--limit-train", "32",
            "--limit-test", "32", "--batch-size", "32", "--no-convert", "--overwrite"]
    code, err = run_train(args, out, capsys)
    assert code == 0, err
    assert (out / ".partial" / "notes.txt").read_text() == "the user's notes"
    assert (out / "model.tflite").read_text() == "the user's model"  # not a result of this run
    assert (out / "model.h5").read_bytes().startswith(b"\x89HDF")
    # The folder is now a run: the same command with --overwrite starts another.
    assert run_train(args, out, capsys)[0] == 0
    assert (out / ".partial" / "notes.txt").is_file() and (out / "model.tflite").is_file()


def test_empty_output_dir_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_refused_keeping(tmp_path, [], "", "argument --output-dir: must name a folder; got ''",
                           capsys)
    assert list(tmp_path.iterdir()) == []


def test_output_dir_inside_the_data_folder_is_refused(folder, capsys):
    assert_refused_keeping(folder, ["--data", f"folder:{folder}"], folder / "train",
                           f"--output-dir: {folder / 'train'} is inside the data folder {folder}",
                           capsys)


@needs_mnist
def test_staging_folder_not_made_by_a_run_is_refused(tmp_path, capsys):
    out = write_files(tmp_path / "out", {".horq-keras-staging/state.json": "{}"})
    for overwrite in ([], ["--overwrite"]):
        assert_refused_keeping(out, ["--data-dir", str(REAL_MNIST), *overwrite], out,
                               "was not made by a horq-keras train run in this folder", capsys)


class PoisonAtEpoch(tf.keras.callbacks.Callback):
    """Set the first kernel of the model to NaN when epoch ``epoch`` begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            layer = next(layer for layer in self.model.layers if layer.get_weights())
            layer.set_weights([np.full_like(w, np.nan) for w in layer.get_weights()])


@needs_mnist
def test_loss_that_becomes_nan_stops_the_run_keeping_the_last_good_epoch(tmp_path, capsys,
                                                                        monkeypatch):
    make_callbacks = train.make_callbacks
    monkeypatch.setattr(train, "make_callbacks",
                        lambda *a: [*make_callbacks(*a), PoisonAtEpoch(1)])
    out = tmp_path / "out"
    code, err = run_train(["--data-dir", str(REAL_MNIST), "--epochs", "2", "--limit-train",
                           "64", "--limit-test", "32", "--batch-size", "32"], out, capsys)
    assert_one_line(code, err)
    checkpoint = out / STAGING / "checkpoint.h5"
    assert (f"training stopped: the loss became nan in epoch 2, batch 1; the model of the "
            f"last good epoch is kept in {checkpoint}") in err
    assert not (out / "model.h5").exists()
    model = tf.keras.models.load_model(str(checkpoint))
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert (out / STAGING / "history.csv").read_text().splitlines()[1].startswith("0,")


def test_model_argument_given_twice_with_the_same_value_is_accepted():
    args = argparse.Namespace(model="horq_lenet", model_arg=["order=2", "order=2"], order=2,
                              beta_form=None)
    assert train._model_args(args) == {"order": 2}


class SignalAtFirstBatch(tf.keras.callbacks.Callback):
    """Send ``signum`` to this process in the first training batch (Ctrl-C, ``kill``)."""

    def __init__(self, signum):
        super().__init__()
        self.signum = signum

    def on_train_batch_begin(self, batch, logs=None):
        os.kill(os.getpid(), self.signum)


@needs_mnist
def test_ctrl_c_and_sigterm_end_with_one_line_and_their_status(tmp_path, capsys, monkeypatch):
    make_callbacks = train.make_callbacks
    args = ["--data-dir", str(REAL_MNIST), "--epochs", "1", "--limit-train", "32",
            "--limit-test", "32", "--batch-size", "32", "--no-convert"]
    out = tmp_path / "out"
    # Python's own Ctrl-C handler, whatever an earlier test in this process left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for signum, status, word in ((signal.SIGINT, 130, "interrupted"),
                                     (signal.SIGTERM, 143, "terminated")):
            monkeypatch.setattr(train, "make_callbacks",
                                lambda *a, signum=signum: [*make_callbacks(*a),
                                                           SignalAtFirstBatch(signum)])
            code, err = run_train(args, out, capsys)
            assert_one_line(code, err, status)
            assert f"horq-keras train: {word}; run the same command to resume" in err
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.setattr(train, "make_callbacks", make_callbacks)
    assert run_train(args, out, capsys)[0] == 0  # resumed
    assert "130" in EPILOG and "143" in EPILOG


@needs_mnist
def test_unexpected_error_has_its_own_status_and_one_line(tmp_path, capsys, monkeypatch):
    def broken(plan):
        raise RuntimeError("an unexpected failure")

    monkeypatch.setattr(train, "build_datasets", broken)
    code, err = run_train(["--data-dir", str(REAL_MNIST)], tmp_path / "out", capsys)
    assert_one_line(code, err, INTERNAL_ERROR)
    assert ("horq-keras train: error: internal error: RuntimeError: an unexpected failure "
            "(run with --verbose for the traceback)") in err
    try:
        code = main(["--verbose", "train", "--data-dir", str(REAL_MNIST), "--output-dir",
                     str(tmp_path / "out")])
    finally:
        err = capsys.readouterr().err
    assert code == INTERNAL_ERROR and "Traceback" in err and "an unexpected failure" in err


@pytest.fixture(scope="module")
def converted_run(tmp_path_factory):
    """A converted run on 64 validation images whose parity check uses 32 of them."""
    out = tmp_path_factory.mktemp("run") / "out"
    code = main(["train", "--data-dir", str(REAL_MNIST), "--epochs", "1", "--limit-train",
                 "64", "--limit-test", "64", "--batch-size", "32", "--verify-samples", "32",
                 "--output-dir", str(out)])
    assert code in (0, 1)
    return out


@needs_mnist
def test_test_accuracy_is_the_validation_sets_and_parity_samples_have_their_own(converted_run):
    report = json.loads((converted_run / "report.json").read_text())
    assert report["val_samples"] == 64 and report["parity_samples"] == 32
    (_, _), (x_val, y_val) = load_mnist(REAL_MNIST)
    x = scale_images(x_val[:64]).numpy()
    keras = tf.keras.models.load_model(str(converted_run / "model.h5")).predict(x, verbose=0)
    tflite = LceInterpreter((converted_run / "model.tflite").read_bytes()).predict([x])[0]
    for key, probabilities in (("keras", keras), ("tflite", tflite)):
        correct = probabilities.argmax(-1) == y_val[:64]
        assert report[f"{key}_test_accuracy"] == pytest.approx(correct.mean())
        assert report[f"parity_{key}_accuracy"] == pytest.approx(correct[:32].mean())


@needs_mnist
def test_class_names_are_written_beside_the_tflite_and_in_the_report(converted_run):
    report = json.loads((converted_run / "report.json").read_text())
    digits = [str(digit) for digit in range(10)]
    assert report["class_names"] == digits
    assert (converted_run / "labels.txt").read_text() == "".join(f"{d}\n" for d in digits)
    assert read_labels((converted_run / "model.tflite").read_bytes()) == (digits, True)


def test_class_names_of_an_image_folder_are_its_class_folders(tmp_path):
    root = mnist_folder(tmp_path / "digits", n_train=40, n_val=20)
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    for split in ("train", "val"):
        for digit, word in enumerate(words):
            if (root / split / str(digit)).is_dir():
                (root / split / str(digit)).rename(root / split / word)
    info = inspect_data(parse_source(f"folder:{root}"), image_size=32)
    assert info.class_names == sorted(words)
    assert labels_text(["cat", "dog"]) == "cat\ndog\n"


def test_image_size_too_large_for_the_memory_is_refused_before_anything_is_allocated(
        folder, tmp_path, capsys):
    assert_refused(["--data", f"folder:{folder}", "--image-size", "100000"],
                   "--image-size: the model on inputs of shape (100000, 100000, 1) needs about",
                   tmp_path, capsys)


@needs_mnist
def test_batch_too_large_for_the_memory_is_refused_naming_the_batch_that_fits(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 50_000_000)
    assert_refused(["--data-dir", str(REAL_MNIST), "--batch-size", "1024"],
                   "--batch-size: a batch of 1024 needs about", tmp_path, capsys)
    err = run_train(["--data-dir", str(REAL_MNIST), "--batch-size", "1024"],
                    tmp_path / "out", capsys)[1]
    fits = int(re.search(r"--batch-size (\d+) fits", err).group(1))
    assert run_train(["--data-dir", str(REAL_MNIST), "--batch-size", str(fits), "--epochs",
                      "1", "--limit-train", "32", "--limit-test", "32", "--no-convert"],
                     tmp_path / "fits", capsys)[0] == 0


def test_available_memory_is_the_smaller_of_meminfo_and_the_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1000 kB\nMemAvailable:  800 kB\n")
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("100\n")
    assert memory.available_memory(meminfo, tmp_path) == 800 * 1024
    (tmp_path / "memory.max").write_text("500000\n")
    assert memory.available_memory(meminfo, tmp_path) == 500000 - 100
    assert memory.available_memory(tmp_path / "none", tmp_path / "none") is None


@needs_mnist
def test_tensorboard_naming_a_file_is_refused(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.write_text("a file")
    assert_refused(["--data-dir", str(REAL_MNIST), "--tensorboard", str(logs)],
                   f"--tensorboard: {logs} exists and is not a directory", tmp_path, capsys)
    assert logs.read_text() == "a file"


@needs_mnist
def test_teacher_with_another_class_count_is_refused(tmp_path, capsys):
    teacher = tmp_path / "teacher.h5"
    registry.build("horq_lenet", {"variant": "float"}, input_shape=(28, 28, 1),
                   num_classes=5).save(teacher)
    assert_refused(["--data-dir", str(REAL_MNIST), "--recipe", "distill", "--teacher",
                    str(teacher)],
                   f"--teacher: {teacher} has 5 outputs; the data has 10 classes",
                   tmp_path, capsys)


def test_teacher_of_the_students_own_architecture_and_name_distills():
    student, teacher = (registry.build("horq_lenet", {}, input_shape=(28, 28, 1),
                                       num_classes=10) for _ in range(2))
    assert student.name == teacher.name
    trained = distillation_model(student, teacher)
    trained.compile("adam", DistillationLoss())
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    trained.fit(x, np.zeros(4, "int64"), epochs=1, verbose=0)
    assert trained.get_layer("teacher").get_weights()[0].shape == \
        teacher.get_weights()[0].shape


def train_in_cluster(monkeypatch, capsys, addresses, index, *args):
    """``main(["train", ...])`` as worker ``index`` of a TF_CONFIG of ``addresses``."""
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": addresses},
                                                "task": {"type": "worker", "index": index}}))
    start = time.monotonic()
    code, err = run_train(["--strategy", "multi-worker", *args], pathlib.Path("unused"),
                          capsys)
    return code, err, time.monotonic() - start


def test_worker_that_never_starts_is_named_after_the_cluster_timeout(monkeypatch, capsys):
    addresses = [f"127.0.0.1:{port}" for port in free_ports(3)]
    code, err, seconds = train_in_cluster(monkeypatch, capsys, addresses, 0,
                                          "--cluster-timeout", "1")
    assert_one_line(code, err)
    assert (f"--cluster-timeout: worker 1 ({addresses[1]}), worker 2 ({addresses[2]}) of "
            f"TF_CONFIG did not start within 1 s") in err
    assert seconds < 30


def test_sigterm_while_waiting_for_the_cluster_ends_the_run(monkeypatch, capsys):
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code, err, seconds = train_in_cluster(monkeypatch, capsys, addresses, 1,
                                              "--cluster-timeout", "60")
    finally:
        timer.cancel()
    assert_one_line(code, err, 143)
    assert seconds < 30


def test_port_of_this_worker_in_use_is_refused(monkeypatch, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addresses = [f"127.0.0.1:{taken.getsockname()[1]}",
                     f"127.0.0.1:{free_ports(1)[0]}"]
        code, err, _ = train_in_cluster(monkeypatch, capsys, addresses, 0)
    assert_one_line(code, err)
    assert f"TF_CONFIG: this task's address {addresses[0]} (worker 0) is in use" in err


def test_waiting_worker_sees_a_peer_that_starts_later():
    """Worker 1 starts a second late, waits for worker 0, then serves its port as
    TensorFlow's server would: both waits end."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    tasks = [parse_tf_config(json.dumps({"cluster": {"worker": addresses},
                                         "task": {"type": "worker", "index": index}}))
             for index in range(2)]
    done = threading.Event()

    def late_worker():
        time.sleep(1.0)
        wait_for_cluster(tasks[1], 20, poll=0.1)
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", int(addresses[1].rpartition(":")[2])))
            server.listen()
            done.wait(timeout=30)

    peer = threading.Thread(target=late_worker, daemon=True)
    peer.start()
    try:
        start = time.monotonic()
        wait_for_cluster(tasks[0], 20, poll=0.1)
        assert time.monotonic() - start < 20
    finally:
        done.set()
        peer.join(timeout=30)
    assert not peer.is_alive()


@needs_mnist
def test_embedded_labels_are_replaced_and_leave_the_outputs_alone(converted_run):
    flatbuffer = (converted_run / "model.tflite").read_bytes()
    names = [f"class {index}" for index in range(10)]
    relabelled = embed_labels(flatbuffer, names)
    assert read_labels(relabelled) == (names, True)
    assert operator_names(relabelled) == operator_names(flatbuffer)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(LceInterpreter(relabelled).predict([x])[0],
                                  LceInterpreter(flatbuffer).predict([x])[0])
