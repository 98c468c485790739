"""One candidate at one rung: a ``horq-keras train`` process, or its finished report.

A rung's run lives in ``WORK/<candidate key>/e<epochs>/``, a run folder of the trainer.
A folder holding ``report.json`` is finished and is read, never retrained; an unfinished
one is resumed by the trainer itself (the same command continues from its last epoch).
Each run is a process of its own (a fresh interpreter, its own TensorFlow), appending
its output to ``e<epochs>.log`` beside the folder, so a resumed run's log keeps the
earlier attempts.
"""

import json
import pathlib
import subprocess
import sys

__all__ = ["TRAIN", "RunFailed", "result", "run_folder", "train_argv", "train_run"]

#: One ``horq-keras train`` in a fresh interpreter: the argv after ``-c TRAIN``.
TRAIN = "import sys; from horq_keras.cli import main; sys.exit(main(sys.argv[1:]))"


class RunFailed(RuntimeError):
    """A ``horq-keras train`` process ended without a report (its log says why)."""


def run_folder(work, candidate, epochs):
    return pathlib.Path(work) / candidate.key / f"e{epochs}"


def train_argv(candidate, epochs, out, common):
    """The ``horq-keras train`` arguments of ``candidate`` at ``epochs`` into ``out``;
    ``common``: the options every run shares (data, recipe, limits)."""
    argv = ["train", "--model", candidate.model]
    for pair in candidate.model_args:
        argv += ["--model-arg", pair]
    return argv + ["--epochs", str(epochs), "--output-dir", str(out), *common]


def train_process(argv, log_path):
    """Run ``horq-keras train argv`` in a new interpreter; its exit code."""
    with open(log_path, "a") as log:
        return subprocess.call([sys.executable, "-c", TRAIN, *argv], stdout=log,
                               stderr=subprocess.STDOUT)


def train_run(argv, out):
    """The report of the run in ``out``: read when finished, else trained first.

    Exit codes 0 and 1 (parity failed: the run and its report are complete) give a
    report; any other raises :class:`RunFailed` naming the log.
    """
    out = pathlib.Path(out)
    report = out / "report.json"
    if not report.exists():
        log_path = pathlib.Path(f"{out}.log")
        out.parent.mkdir(parents=True, exist_ok=True)
        code = train_process(argv, log_path)
        if code not in (0, 1) or not report.exists():
            raise RunFailed(f"horq-keras train failed with exit code {code} (log: {log_path}): "
                            f"{' '.join(argv)}")
    return json.loads(report.read_text())


def result(report, out):
    """What the search keeps of a run's report: the accuracy of the deployed model (the
    ``.tflite`` on the whole validation set; the Keras model's when not converted), the
    parity verdict and the files."""
    converted = report.get("converted", False)
    tflite = pathlib.Path(out) / "model.tflite"
    return {
        "accuracy": report["tflite_test_accuracy"] if converted else report["keras_test_accuracy"],
        "keras_accuracy": report.get("keras_test_accuracy"),
        "tflite_accuracy": report.get("tflite_test_accuracy"),
        "verified": bool(converted and report.get("parity_ok")),
        "top1_agreement": report.get("top1_agreement"),
        "train_seconds": report.get("train_seconds"),
        "val_samples": report.get("val_samples"),
        "folder": str(out),
        "tflite": str(tflite) if converted and tflite.exists() else None,
    }
