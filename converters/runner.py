"""Run a flatbuffer with LCE's interpreter in a child process.

LCE's Python interpreter does not verify flatbuffers, so a damaged file can crash the
process that loads it. Inference therefore runs in a child (``_tflite_child.py``) that
loads only LCE's interpreter extension; a crash becomes a ``ValueError`` here and the
caller's session (a notebook, a training job) survives.
"""

import glob
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["InterpreterOptions", "lce_extension_path", "run_tflite"]

_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_tflite_child.py")


@dataclass(frozen=True)
class InterpreterOptions:
    """Arguments of ``lce.testing.Interpreter``; the defaults are the fastest x86 path."""

    num_threads: int = 1
    use_reference_bconv: bool = False
    use_indirect_bgemm: bool = True
    use_xnnpack: bool = True


def lce_extension_path():
    """Path of LCE's compiled interpreter extension (``interpreter_wrapper_lite``)."""
    spec = importlib.util.find_spec("larq_compute_engine")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "larq-compute-engine is not installed (`pip install larq-compute-engine`)."
        )
    pattern = os.path.join(
        spec.submodule_search_locations[0], "tflite", "python", "interpreter_wrapper_lite*"
    )
    matches = [p for p in glob.glob(pattern) if not p.endswith(".py")]
    if not matches:
        raise ImportError(f"LCE's interpreter extension was not found ({pattern}).")
    return matches[0]


def _describe_exit(returncode):
    if returncode < 0:
        try:
            return f"it crashed with {signal.Signals(-returncode).name}"
        except ValueError:
            return f"it was killed by signal {-returncode}"
    return f"it exited with status {returncode}"


def run_tflite(flatbuffer, inputs, *, options=InterpreterOptions(), progress=False,
               source="the TFLite model"):
    """Run ``flatbuffer`` on every sample of ``inputs``; return the list of outputs.

    Args:
        flatbuffer: the model (bytes).
        inputs: one array per model input, each with the samples on axis 0 and the
            dtype of the model's input.
        options: :class:`InterpreterOptions`.
        progress: show a progress bar (on stderr) while the samples run.
        source: how error messages name the model.

    Raises:
        ValueError: the interpreter could not load or run the model (for example a
            corrupt file that crashed it).
    """
    with tempfile.TemporaryDirectory(prefix="horq_keras_tflite_") as workdir:
        with open(os.path.join(workdir, "model.tflite"), "wb") as file:
            file.write(flatbuffer)
        np.savez(os.path.join(workdir, "inputs.npz"),
                 **{f"input_{i}": np.asarray(x) for i, x in enumerate(inputs)})
        job = {**asdict(options), "extension": lce_extension_path(), "progress": progress}
        with open(os.path.join(workdir, "job.json"), "w") as file:
            json.dump(job, file)
        completed = subprocess.run(
            [sys.executable, _CHILD, workdir],
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
            raise ValueError(
                f"LCE's interpreter could not run {source}: {_describe_exit(completed.returncode)}"
                f" ({detail or 'no message'}). The file is corrupt, truncated, or uses ops "
                f"this LCE build cannot run."
            )
        with np.load(os.path.join(workdir, "outputs.npz")) as data:
            return [data[f"output_{i}"] for i in range(len(data.files))]
