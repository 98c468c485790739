"""``horq-keras train``: train the HORQ LeNet on MNIST, convert it with LCE and verify it.

Steps (each a small function below): load MNIST → build ``horq_lenet(order, beta_form)``
→ ``Model.fit`` (Adam, cosine-decayed learning rate, resumable through
``BackupAndRestore``) → save ``model.h5`` → convert with ``lce.convert_keras_model`` to
``model.tflite`` → run the flatbuffer with LCE's x86 interpreter on the test set → compare
with Keras and write ``report.json``.

Files in ``--output-dir`` (each written atomically, see ``horq_keras.tflite.files``):

- ``run_config.json`` — the options a resumed run must share with the interrupted one;
- ``backup/`` — ``BackupAndRestore`` state while training; removed when ``fit`` ends;
- ``checkpoint.h5`` — the model after the last finished epoch;
- ``history.csv`` — loss and accuracy per epoch (appended to when resuming);
- ``model.h5``, ``model.tflite``, ``report.json`` — the results.

The command's options are declared in :mod:`horq_keras.train_cli` (no TensorFlow, so
that ``horq-keras --help`` is instant). Exit code 0 when the converted model agrees with Keras (top-1 agreement >=
:data:`MIN_AGREEMENT`), 1 when it does not, 2 for bad options.
"""

import contextlib
import io
import json
import os
import sys
import time

import h5py
import larq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

from horq_keras.datasets import load_mnist, mnist_datasets, scale_images
from horq_keras.models import horq_lenet
from horq_keras.training.cluster import DistributeError
from horq_keras.training.distribute import Distribution, weights_fingerprint
from horq_keras.training.mixed_precision import float32_copy
from horq_keras.tflite.files import atomic_write_bytes, atomic_write_text
from horq_keras.tflite.graph import op_counts
from horq_keras.tflite.runner import run_tflite

__all__ = ["MIN_AGREEMENT", "run"]

#: Smallest top-1 agreement between the converted model and Keras for exit code 0.
MIN_AGREEMENT = 0.99

#: Options whose change makes a half-finished run impossible to resume.
_RESUME_KEYS = ("order", "beta_form", "epochs", "batch_size", "learning_rate", "seed",
                "limit_train", "global_batch", "lr_scaling", "mixed_precision")



def write_json_atomic(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_model_atomic(model, path):
    """Save ``model`` as HDF5, atomically (tf_keras 2.16 has no ``.keras`` format for larq).

    Keras writes the HDF5 file into memory first; :func:`atomic_write_bytes` then puts it
    in place, so a crash never leaves a half-written model.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5_file:
        model.save(h5_file)
    atomic_write_bytes(path, buffer.getvalue())


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Save the model after every epoch (atomically): a loadable model of the last epoch."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        save_model_atomic(self.model, self.path)


def build_model(order, beta_form, learning_rate, decay_steps):
    """``horq_lenet`` compiled with Adam and a cosine-decayed learning rate."""
    model = horq_lenet(order=order, beta_form=beta_form)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def make_callbacks(output_dir, resuming, backup):
    """Resumable training: ``backup`` (``BackupAndRestore``), a per-epoch checkpoint and the
    CSV history in ``output_dir``."""
    return [
        backup,
        EpochCheckpoint(output_dir / "checkpoint.h5"),
        tf.keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=resuming),
    ]


def check_output_dir(output_dir, config, overwrite):
    """Refuse to clobber a finished run or to resume one trained with other options.

    Returns ``(resuming, error message or None)``.
    """
    backup = output_dir / "backup"
    resuming = backup.is_dir() and any(backup.iterdir())
    config_path = output_dir / "run_config.json"
    if resuming and config_path.is_file():
        saved = json.loads(config_path.read_text())
        changed = {k: (saved.get(k), config[k]) for k in _RESUME_KEYS if saved.get(k) != config[k]}
        if changed:
            return resuming, (
                f"{output_dir} holds an interrupted run with other options "
                f"(saved vs given: {changed}); rerun with the saved options to resume, "
                f"delete {backup} to start over, or choose another --output-dir."
            )
    elif (output_dir / "model.h5").exists() and not overwrite:
        return resuming, (
            f"{output_dir} already holds a finished run (model.h5); pass --overwrite to "
            f"replace it or choose another --output-dir."
        )
    return resuming, None


def train(model, dataset, epochs, output_dir, resuming, backup):
    """``Model.fit`` with a progress bar; returns the history and the wall time (s)."""
    start = time.perf_counter()
    history = model.fit(dataset, epochs=epochs,
                        callbacks=make_callbacks(output_dir, resuming, backup), verbose=1)
    seconds = time.perf_counter() - start
    with contextlib.suppress(OSError):  # BackupAndRestore empties its directory but keeps it
        os.rmdir(backup.backup_dir)
    return history, seconds


def convert(model):
    """Flatbuffer bytes of ``model`` from Larq Compute Engine."""
    return lce.convert_keras_model(model)


def predict_tflite(flatbuffer, images):
    """Run the flatbuffer with LCE's x86 interpreter, with a progress bar.

    One thread (:class:`~horq_keras.tflite.runner.InterpreterOptions`): an MNIST image
    is too little work to split, and a second thread made 10000 images take minutes
    instead of seconds on a busy 2-core machine (XNNPACK's worker threads spin while
    waiting).
    """
    return run_tflite(flatbuffer, [images], isolate=False, progress=True,
                      source="the converted model")[0]


def compare(keras_probs, tflite_probs, labels):
    """TFLite accuracy, top-1 agreement with Keras and max |Δ probability|."""
    keras_top1, tflite_top1 = keras_probs.argmax(-1), tflite_probs.argmax(-1)
    return {
        "tflite_test_accuracy": float(np.mean(tflite_top1 == labels)),
        "top1_agreement": float(np.mean(keras_top1 == tflite_top1)),
        "max_abs_prob_diff": float(np.max(np.abs(keras_probs - tflite_probs))),
    }


def _print_results(report):
    rows = [
        ("Keras test accuracy", "keras_test_accuracy", ".4f"),
        ("TFLite test accuracy", "tflite_test_accuracy", ".4f"),
        ("top-1 agreement", "top1_agreement", ".4f"),
        ("max |Δ probability|", "max_abs_prob_diff", ".2e"),
        ("training wall time (s)", "train_seconds", ".1f"),
        ("TFLite ops", "op_counts", ""),
    ]
    for name, key, spec in rows:
        if key in report:
            print(f"{name:>24}: {report[key]:{spec}}")


def run(args):
    """The ``train`` job; returns the process exit code.

    The distribution (strategy, replicas, batch, learning rate) comes first: collective
    ops can only be configured before TensorFlow starts. In a multi-worker run every
    worker trains; only the chief writes into ``--output-dir``, converts and reports.
    """
    try:
        distribution = Distribution.from_args(args, batch_size=args.batch_size,
                                              learning_rate=args.learning_rate)
    except DistributeError as error:
        print(f"horq-keras train: error: {error}", file=sys.stderr)
        return 2
    print(distribution.describe())
    with distribution.write_dir(args.output_dir) as write_dir:
        return _run(args, distribution, write_dir)


def _run(args, distribution, write_dir):
    output_dir = args.output_dir  # the backup lives here for every worker
    write_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "order": args.order, "beta_form": args.beta_form, "epochs": args.epochs,
        "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": args.seed,
        "limit_train": args.limit_train, "limit_test": args.limit_test,
        **distribution.to_config(),
    }
    resuming, error = check_output_dir(output_dir, config, args.overwrite)
    if error:
        print(f"horq-keras train: error: {error}", file=sys.stderr)
        return 2
    if args.overwrite and not resuming:  # results of the replaced run must not linger
        for name in ("model.tflite", "report.json"):
            (write_dir / name).unlink(missing_ok=True)
    write_json_atomic(write_dir / "run_config.json", config)

    tf.keras.utils.set_random_seed(args.seed)
    data = load_mnist(args.data_dir)
    train_set, test_set = mnist_datasets(
        distribution.global_batch, data=data, limit_train=args.limit_train,
        limit_test=args.limit_test, seed=args.seed,
    )
    train_set, policy = distribution.shard(train_set, "mnist")
    print(f"auto-shard policy: {policy} (mnist)")
    with distribution.strategy.scope():
        model = build_model(args.order, args.beta_form, distribution.learning_rate,
                            decay_steps=args.epochs * len(train_set))
    backup = distribution.backup_callback(output_dir / "backup", args.backup_every)
    history, train_seconds = train(model, train_set, args.epochs, write_dir, resuming, backup)
    model = float32_copy(model)  # plain float32: saves, predicts and converts on one process
    save_model_atomic(model, write_dir / "model.h5")
    print(f"final weights sha256: {weights_fingerprint(model)}")
    if not distribution.is_chief:
        return 0

    x_test, y_test = data[1][0][:args.limit_test], data[1][1][:args.limit_test]
    keras_probs = model.predict(test_set, verbose=0)
    report = {
        "config": config,
        "epochs_run": history.epoch,  # 0-based; a resumed run starts after the backup
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "train_seconds": train_seconds,
        "test_samples": len(y_test),
        "keras_test_accuracy": float(np.mean(keras_probs.argmax(-1) == y_test)),
        "versions": _versions(),
    }
    status = 0
    if args.no_convert or args.beta_form == "column":
        report["converted"] = False
        if args.beta_form == "column":
            print("Skipping conversion: beta_form='column' (per-im2col-column beta) has no "
                  "LCE lowering; train with --beta-form pixel or sample to deploy.")
    else:
        start = time.perf_counter()
        flatbuffer = convert(model)
        atomic_write_bytes(write_dir / "model.tflite", flatbuffer)
        report["convert_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        tflite_probs = predict_tflite(flatbuffer, scale_images(x_test).numpy())
        report["tflite_seconds"] = time.perf_counter() - start
        report.update(compare(keras_probs, tflite_probs, y_test))
        report["op_counts"] = dict(op_counts(flatbuffer))
        report["converted"] = True
        if report["top1_agreement"] < MIN_AGREEMENT:
            print(f"TFLite and Keras disagree: top-1 agreement {report['top1_agreement']:.4f} "
                  f"< {MIN_AGREEMENT}.", file=sys.stderr)
            status = 1
    write_json_atomic(write_dir / "report.json", report)
    _print_results(report)
    print(f"Results in {write_dir}/")
    return status


def _versions():
    return {"tensorflow": tf.__version__, "larq": larq.__version__,
            "larq_compute_engine": lce.__version__}
