"""Run a flatbuffer with LCE's interpreter, in this process or in a child process.

LCE's Python interpreter does not verify flatbuffers, so a damaged file can crash the
process that loads it. With ``isolate=True`` (the default for files from elsewhere)
inference runs in a child (:mod:`horq_keras.tflite.interpreter` as a script) that
loads only LCE's interpreter extension; a crash becomes a ``ValueError`` here and the
caller's session (a notebook, a training job) survives. ``isolate=False`` runs it
here (a flatbuffer this process just converted), without the cost of a new process.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict

import numpy as np

from horq_keras.tflite import interpreter as _interpreter
from horq_keras.tflite.interpreter import InterpreterOptions, LceInterpreter

__all__ = ["InterpreterOptions", "LceInterpreter", "run_tflite"]

_CHILD = os.path.abspath(_interpreter.__file__)


def _describe_exit(returncode):
    if returncode < 0:
        try:
            return f"it crashed with {signal.Signals(-returncode).name}"
        except ValueError:
            return f"it was killed by signal {-returncode}"
    return f"it exited with status {returncode}"


def _cannot_run(source, what, detail):
    return ValueError(
        f"LCE's interpreter could not run {source}: {what} ({detail or 'no message'}). The "
        f"file is corrupt, truncated, or uses ops this LCE build cannot run."
    )


def _run_in_child(flatbuffer, inputs, options, progress, source):
    with tempfile.TemporaryDirectory(prefix="horq_keras_tflite_") as workdir:
        with open(os.path.join(workdir, "model.tflite"), "wb") as file:
            file.write(flatbuffer)
        np.savez(os.path.join(workdir, "inputs.npz"),
                 **{f"input_{i}": x for i, x in enumerate(inputs)})
        with open(os.path.join(workdir, "job.json"), "w") as file:
            json.dump({**asdict(options), "progress": progress}, file)
        completed = subprocess.run(
            [sys.executable, "-P", _CHILD, workdir],  # -P: no script dir on sys.path
            stdout=subprocess.PIPE,
            stderr=None if progress else subprocess.PIPE,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            error_path = os.path.join(workdir, "error.txt")
            if os.path.exists(error_path):
                with open(error_path) as file:
                    detail = file.read().strip().splitlines()[-1]
            else:
                detail = (completed.stderr or "").strip()[-500:]
            raise _cannot_run(source, _describe_exit(completed.returncode), detail)
        with np.load(os.path.join(workdir, "outputs.npz")) as data:
            return [data[f"output_{i}"] for i in range(len(data.files))]


def run_tflite(flatbuffer, inputs, *, options=InterpreterOptions(), isolate=True,
               progress=False, source="the TFLite model"):
    """Run ``flatbuffer`` on every sample of ``inputs``; return the list of outputs.

    Args:
        flatbuffer: the model (bytes).
        inputs: one array per model input, each with the samples on axis 0 and the
            dtype of the model's input (a single array for a one-input model).
        options: :class:`InterpreterOptions` (LCE's x86 flags, threads).
        isolate: run in a child process, so that a crash of the interpreter on a
            damaged file ends only the child.
        progress: show a progress bar (on stderr) while the samples run.
        source: how error messages name the model.

    Raises:
        ValueError: the interpreter could not load or run the model (for example a
            corrupt file that crashed the child).
    """
    inputs = [np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    if isolate:
        return _run_in_child(bytes(flatbuffer), inputs, options, progress, source)
    try:
        return LceInterpreter(flatbuffer, options).predict(inputs, progress=progress)
    except (RuntimeError, ValueError) as error:  # what LCE's interpreter raises
        raise _cannot_run(source, "it raised an error", str(error).strip()) from error
